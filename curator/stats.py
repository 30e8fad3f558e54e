"""``curator stats``: counts by split, origin and task, and token length percentiles."""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from curator.data.splits import SPLITS
from curator.models import token_lengths
from curator.progress import progress
from curator.snapshots import read_split, resolve_snapshot, snapshot_stats
from curator.workspace import Workspace

__all__ = ["workspace_stats"]


def _percentiles(lengths: list[int]) -> dict[str, Any]:
    a = np.asarray(lengths)
    q = np.percentile(a, [10, 50, 90, 99]).round().astype(int).tolist()
    return {"n": len(lengths), "p10": q[0], "p50": q[1], "p90": q[2], "p99": q[3], "max": int(a.max())}


def workspace_stats(ws: Workspace, ref: str | None = None, *, tokens: bool = True) -> dict[str, Any]:
    """Counts (live workspace or a snapshot) and, with ``tokens``, length percentiles per split."""
    out = snapshot_stats(ws, ref)
    if not tokens or not out.get("total"):
        return out
    per_split: dict[str, list[list[dict[str, Any]]]] = {}
    if ref is not None:
        snap = resolve_snapshot(ws, ref)
        for s in SPLITS:
            per_split[s] = [r["messages"] for r in read_split(ws, snap, s)]
    else:
        with ws.connect() as con:
            rows = con.execute(
                """SELECT s.split, e.messages FROM examples e JOIN splits s ON s.example_id = e.id
                   WHERE e.status = 'active'"""
            ).fetchall()
        for split, messages in rows:
            per_split.setdefault(split, []).append(json.loads(messages))
    out["tokens"] = {}
    with progress("stats: counting tokens", sum(len(c) for c in per_split.values())) as bar:
        for s, c in per_split.items():
            if c:
                out["tokens"][s] = _percentiles(token_lengths(c, progress=bar.advance))
    return out
