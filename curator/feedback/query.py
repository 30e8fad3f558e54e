"""Read-only views of the feedback tables: counts, events, preference pairs."""

from __future__ import annotations

import json
from typing import Any

from curator.workspace import Workspace

__all__ = ["feedback_stats", "list_events", "list_pairs"]


def feedback_stats(ws: Workspace) -> dict[str, Any]:
    """Events by format and label, what the positives became, pairs by basis, PII replaced by kind."""
    with ws.connect(read_only=not ws.exists()) as con:
        by = con.execute("SELECT format, label, count(*) FROM feedback GROUP BY ALL ORDER BY ALL").fetchall()
        fate = con.execute(
            """SELECT count(*) FILTER (WHERE example_id IS NOT NULL),
                      count(*) FILTER (WHERE example_id IS NULL AND gate_reason IS NOT NULL)
               FROM feedback WHERE label = 'positive'"""
        ).fetchall()[0]
        pairs = con.execute(
            "SELECT coalesce(meta->>'basis', '?'), count(*) FROM preferences GROUP BY ALL ORDER BY ALL"
        ).fetchall()
        pii_rows = con.execute("SELECT pii_counts::VARCHAR FROM feedback WHERE pii_counts::VARCHAR <> '{}'").fetchall()
    events: dict[str, dict[str, int]] = {}
    for fmt, label, n in by:
        events.setdefault(fmt, {})[label] = int(n)
    pii: dict[str, int] = {}
    for (raw,) in pii_rows:
        for k, v in json.loads(raw).items():
            pii[k] = pii.get(k, 0) + int(v)
    return {
        "events": sum(sum(v.values()) for v in events.values()),
        "by_format": events,
        "positives_as_examples": int(fate[0]),
        "positives_not_stored": int(fate[1]),
        "pairs": sum(int(n) for _, n in pairs),
        "pairs_by_basis": {b: int(n) for b, n in pairs},
        "pii_replaced": dict(sorted(pii.items())),
    }


def list_events(ws: Workspace, *, label: str | None = None, limit: int = 20) -> list[dict[str, Any]]:
    """The latest events (optionally of one label), newest first, with messages decoded."""
    where, params = ("WHERE label = ?", [label]) if label else ("", [])
    with ws.connect(read_only=not ws.exists()) as con:
        rows = con.execute(
            f"""SELECT trace_id, format, label, rating, example_id, gate_reason, messages::VARCHAR, created_at
                FROM feedback {where} ORDER BY created_at DESC, trace_id LIMIT ?""",
            [*params, limit],
        ).fetchall()
    keys = ("trace_id", "format", "label", "rating", "example_id", "gate_reason", "messages", "created_at")
    out = [dict(zip(keys, r, strict=True)) for r in rows]
    for r in out:
        r["messages"] = json.loads(r["messages"])
        r["created_at"] = str(r["created_at"])
    return out


def list_pairs(ws: Workspace, *, limit: int = 20, basis: str | None = None) -> list[dict[str, Any]]:
    """Stored preference pairs (optionally of one basis: rating, rank, votes, preference), by id."""
    where, params = ("WHERE meta->>'basis' = ?", [basis]) if basis else ("", [])
    with ws.connect(read_only=not ws.exists()) as con:
        rows = con.execute(
            f"""SELECT id, prompt::VARCHAR, chosen, rejected, source, margin, meta::VARCHAR
                FROM preferences {where} ORDER BY id LIMIT ?""",
            [*params, limit],
        ).fetchall()
    return [{"id": r[0], "prompt": json.loads(r[1]), "chosen": r[2], "rejected": r[3], "source": r[4],
             "margin": r[5], "meta": json.loads(r[6]) if r[6] else {}} for r in rows]
