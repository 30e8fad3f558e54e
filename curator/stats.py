"""``curator stats``: counts by split, origin and task, and token length percentiles."""

from __future__ import annotations

import json
import logging
from typing import Any

import numpy as np
import pyarrow as pa

from curator.data.splits import SPLITS
from curator.errors import WorkspaceError
from curator.models import DEFAULT_CHAT_MODEL, token_lengths
from curator.progress import progress
from curator.snapshots import read_split, resolve_snapshot, snapshot_stats
from curator.workspace import Workspace

__all__ = ["workspace_stats"]

log = logging.getLogger(__name__)


def _percentiles(lengths: list[int]) -> dict[str, Any]:
    a = np.asarray(lengths)
    q = np.percentile(a, [10, 50, 90, 99]).round().astype(int).tolist()
    return {"n": len(lengths), "p10": q[0], "p50": q[1], "p90": q[2], "p99": q[3], "max": int(a.max())}


def workspace_stats(ws: Workspace, ref: str | None = None, *, tokens: bool = True,
                    model: str = DEFAULT_CHAT_MODEL) -> dict[str, Any]:
    """Counts (live workspace or a snapshot) and, with ``tokens``, length percentiles per split.

    Lengths are whole conversations rendered with ``model``'s chat template and tokenizer.  Each
    example is tokenized once per tokenizer: the counts are kept in the ``token_counts`` table (by
    example id, which changes whenever the text does), so a second call tokenizes only what is new.
    """
    out = snapshot_stats(ws, ref)
    if not tokens or not out.get("total"):
        return out
    ids: dict[str, list[str]] = {}
    texts: dict[str, list[dict[str, Any]]] = {}
    if ref is not None:
        snap = resolve_snapshot(ws, ref)
        for s in SPLITS:
            for r in read_split(ws, snap, s):
                ids.setdefault(s, []).append(r["id"])
                texts[r["id"]] = r["messages"]
        with ws.connect() as con:
            known = _known(con, model, list(texts))
    else:
        with ws.connect() as con:
            rows = con.execute(
                """SELECT s.split, e.id, t.tokens FROM examples e JOIN splits s ON s.example_id = e.id
                   LEFT JOIN token_counts t ON t.example_id = e.id AND t.tokenizer = ?
                   WHERE e.status = 'active'""", [model]).fetchall()
            known = {eid: n for _, eid, n in rows if n is not None}
            missing = [eid for _, eid, n in rows if n is None]
            for split, eid, _ in rows:
                ids.setdefault(split, []).append(eid)
            if missing:
                con.register("_missing", pa.table({"id": missing}))
                texts = {eid: json.loads(m) for eid, m in con.execute(
                    "SELECT e.id, e.messages FROM examples e JOIN _missing USING (id)").fetchall()}
                con.unregister("_missing")
    todo = [eid for eid in texts if eid not in known]
    if todo:
        with progress("stats: counting tokens", len(todo)) as bar:
            counts = token_lengths([texts[eid] for eid in todo], model, progress=bar.advance)
        new = dict(zip(todo, counts, strict=True))
        _cache(ws, model, todo, counts)
        known.update(new)
    out["tokens"] = {s: _percentiles([known[eid] for eid in c]) for s, c in ids.items() if c}
    out["tokenizer"] = model
    return out


def _cache(ws: Workspace, model: str, example_ids: list[str], counts: list[int]) -> None:
    """Keep the counts in ``token_counts``.  A read-only workspace (``curator stats``) writes them in one brief
    writer connection of its own, and skips the cache when another process holds the file."""
    writer = Workspace(ws.path) if ws.read_only else ws
    try:
        with writer.transaction() as con:
            con.register("_new", pa.table({"example_id": example_ids, "tokens": pa.array(counts, pa.int32())}))
            con.execute("INSERT OR IGNORE INTO token_counts SELECT example_id, ?, tokens FROM _new", [model])
            con.unregister("_new")
    except WorkspaceError as e:
        if not ws.read_only:
            raise
        log.debug("token counts not cached: %s", e)


def _known(con: Any, model: str, example_ids: list[str]) -> dict[str, int]:
    """Stored token counts of ``example_ids`` for ``model``."""
    if not example_ids:
        return {}
    con.register("_ids", pa.table({"id": example_ids}))
    try:
        rows = con.execute("SELECT t.example_id, t.tokens FROM token_counts t JOIN _ids i ON i.id = t.example_id "
                           "WHERE t.tokenizer = ?", [model]).fetchall()
    finally:
        con.unregister("_ids")
    return {eid: int(n) for eid, n in rows}
