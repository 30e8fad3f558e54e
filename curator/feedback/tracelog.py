"""The trace log of ``curator serve`` and what the workspace makes of it.

Design: the server never holds the DuckDB file (DuckDB locks it exclusively, so a server holding it
would stop ``curator round``, ``stats`` and ``review``).  It appends JSON lines to its own file,
``WORKSPACE/traces/<UTC start time>-<pid>.jsonl``, from one writer thread (:mod:`curator.serve.traces`);
everything in that file is PII-scrubbed with :func:`curator.quality.pii.scrub` before it is written.
Two record types::

    {"type": "trace", "v": 1, "id": "chatcmpl-...", "created_at": "2026-11-28 12:00:00.123456", "model": "triage",
     "run_id": "r-...", "adapter": "r-...", "ab_name": null, "ab_arm": null, "user_id": null,
     "messages": [...the request..., {"role": "assistant", "content": "the served answer"}],
     "params": {"max_tokens": 256, "temperature": 0.0, ...}, "latency_ms": 812.5, "prompt_tokens": 61,
     "completion_tokens": 40, "finish_reason": "stop", "meta": {"engine": "transformers", "stream": false}}
    {"type": "feedback", "v": 1, "id": "fb-...", "trace_id": "chatcmpl-...", "created_at": "...",
     "rating": 5, "thumbs": null, "comment": null, "correction": null}

:func:`import_traces` copies what is new into the workspace, in one short transaction: ``traces`` (primary
key: the trace id), ``trace_feedback`` (primary key: the feedback id; each feedback field of a trace --
rating, thumbs, comment, correction -- keeps its latest given value on the ``traces`` row) and ``trace_logs`` (the byte offset read up to, per file).  Only complete
lines are read (a line still being written waits for the next import), and rows whose key is already
stored are skipped, so importing twice, or after a crash between the insert and the offset, adds nothing:
nothing lost, nothing counted twice.  ``curator traces ...`` and ``curator feedback ingest --traces`` import
first.

:func:`ingest_traces` then turns rated traces that were not ingested yet into feedback events through the
same path as a feedback file (:func:`curator.feedback.ingest.ingest_feedback`, format ``serve``: PII scrub,
duplicate and eval/test leakage gates, positives -> examples, preference pairs).  A correction becomes a
positive example and, with the served answer as the rejected side, a preference pair.  The feedback event's
key is the trace id, so a trace is learned from once: a rating changed after its trace was ingested updates
``traces`` but not the training data.
"""

from __future__ import annotations

import logging
import math
import os
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import pyarrow as pa

from curator.errors import CuratorError, WorkspaceLockedError
from curator.quality.pii import DEFAULT_BACKEND, scrub
from curator.workspace import Workspace

if TYPE_CHECKING:
    import duckdb

__all__ = [
    "LOG_DIR",
    "ImportReport",
    "TraceIngestReport",
    "get_trace",
    "import_traces",
    "ingest_traces",
    "is_positive",
    "known_trace_ids",
    "list_traces",
    "log_dir",
    "now_utc",
    "scrub_text",
    "scrub_messages",
    "trace_stats",
    "wilson_interval",
]

LOG_DIR = "traces"
_TRACE_COLS = ("id", "created_at", "model", "run_id", "adapter", "ab_name", "ab_arm", "user_id", "messages",
               "params", "latency_ms", "prompt_tokens", "completion_tokens", "finish_reason", "source", "meta")
_FB_COLS = ("id", "trace_id", "created_at", "rating", "thumbs", "comment", "correction", "source")


def log_dir(ws: Workspace) -> Path:
    """``WORKSPACE/traces``: the append-only trace logs of ``curator serve``."""
    return ws.path / LOG_DIR


def now_utc() -> str:
    """The current UTC time as the log writes it (``YYYY-MM-DD HH:MM:SS.ffffff``, a DuckDB TIMESTAMP)."""
    return datetime.now(UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")


def scrub_text(text: str | None, counts: Counter[str] | None = None, backend: str = DEFAULT_BACKEND) -> str | None:
    """``text`` with PII replaced (:func:`curator.quality.pii.scrub` with ``backend``); ``counts`` gets what was found."""
    if text is None:
        return None
    out, found = scrub(text, backend)
    if counts is not None:
        counts.update({k: v for k, v in found.items() if v})
    return out


def scrub_messages(messages: list[dict[str, Any]], counts: Counter[str] | None = None,
                   backend: str = DEFAULT_BACKEND) -> list[dict[str, Any]]:
    """Role and scrubbed content of each message (nothing else of a message is kept)."""
    return [{"role": str(m["role"]), "content": scrub_text(str(m.get("content") or ""), counts, backend)}
            for m in messages]


# -- import -------------------------------------------------------------------------------------------------
@dataclass
class ImportReport:
    """What one :func:`import_traces` read and stored."""

    files: int = 0
    lines: int = 0
    traces_added: int = 0
    feedback_added: int = 0
    already_present: int = 0
    bad_lines: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _log_files(ws: Workspace) -> list[Path]:
    d = log_dir(ws)
    return sorted(p for p in d.glob("*.jsonl") if p.is_file()) if d.is_dir() else []


def _read_from(path: Path, offset: int) -> tuple[list[tuple[int, bytes]], int]:
    """(line number within the new part, raw line) of the complete lines after ``offset``; the new offset."""
    with path.open("rb") as f:
        f.seek(offset)
        data = f.read()
    end = data.rfind(b"\n")
    if end < 0:
        return [], offset
    body = data[: end + 1]
    return list(enumerate(body.splitlines(), 1)), offset + len(body)


def _offsets(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    return {f: int(o) for f, o in con.execute('SELECT file, "offset" FROM trace_logs').fetchall()}


def import_traces(ws: Workspace) -> ImportReport:
    """Copy the new records of every trace log into ``traces`` / ``trace_feedback`` (see the module docstring).

    A read-only workspace (``curator traces list`` and friends) imports through a brief writer connection of
    its own; when another process holds the file, nothing is imported now and the traces imported before are
    shown (the next command imports the rest).
    """
    if ws.read_only:
        try:
            return import_traces(Workspace(ws.path))
        except WorkspaceLockedError as e:
            logging.getLogger(__name__).warning("trace logs not imported now (%s); showing the traces imported "
                                                "before", e)
            return ImportReport()
    report = ImportReport()
    files = _log_files(ws)
    report.files = len(files)
    if not files:
        if ws.exists():
            with ws.connect():
                pass  # migrate, so the traces tables exist for readers
        return report
    with ws.transaction() as con:
        offsets = _offsets(con)
        traces: list[dict[str, Any]] = []
        feedback: list[dict[str, Any]] = []
        new_offsets: list[tuple[str, int, int]] = []
        for path in files:
            key = path.name
            lines, end = _read_from(path, offsets.get(key, 0))
            if end == offsets.get(key, 0):
                continue
            for n, raw in lines:
                if not raw.strip():
                    continue
                report.lines += 1
                try:
                    rec = orjson.loads(raw)
                    kind = rec["type"]
                except (orjson.JSONDecodeError, KeyError, TypeError):
                    report.bad_lines.append({"file": key, "line": n, "reason": "not a trace log record"})
                    continue
                rec["source"] = key
                if kind == "trace":
                    traces.append(rec)
                elif kind == "feedback":
                    feedback.append(rec)
                else:
                    report.bad_lines.append({"file": key, "line": n, "reason": f"unknown record type {kind!r}"})
            new_offsets.append((key, end, len(lines)))
        report.traces_added, dup_t = _insert(con, "traces", _TRACE_COLS, traces)
        report.feedback_added, dup_f = _insert(con, "trace_feedback", _FB_COLS, feedback)
        report.already_present = dup_t + dup_f
        if feedback:
            _apply_feedback(con, sorted({f["trace_id"] for f in feedback}))
        if report.traces_added:  # feedback that reached the log before its trace (another server's log)
            _apply_feedback(con, None)
        for key, end, n in new_offsets:
            con.execute(
                """INSERT INTO trace_logs (file, "offset", records, imported_at) VALUES (?, ?, ?, current_timestamp)
                   ON CONFLICT (file) DO UPDATE SET "offset" = excluded."offset",
                   records = trace_logs.records + excluded.records, imported_at = excluded.imported_at""",
                [key, end, n],
            )
    return report


def _json(v: Any) -> str | None:
    return None if v is None else orjson.dumps(v).decode("utf-8")


def _insert(con: duckdb.DuckDBPyConnection, table: str, cols: tuple[str, ...], records: list[dict[str, Any]]) -> tuple[int, int]:
    """Insert records whose id is new (the first of repeats wins); (added, already there or repeated)."""
    if not records:
        return 0, 0
    unique: dict[str, dict[str, Any]] = {}
    for r in records:
        unique.setdefault(str(r["id"]), r)
    json_cols = {"messages", "params", "meta"}
    int_cols = {"prompt_tokens", "completion_tokens", "rating"}
    data: dict[str, pa.Array] = {}
    for c in cols:
        values = [unique[k].get(c) for k in unique]
        if c in json_cols:
            data[c] = pa.array([_json(v) for v in values], pa.string())
        elif c in int_cols:
            data[c] = pa.array([None if v is None else int(v) for v in values], pa.int64())
        elif c == "latency_ms":
            data[c] = pa.array([None if v is None else float(v) for v in values], pa.float64())
        else:
            data[c] = pa.array([None if v is None else str(v) for v in values], pa.string())
    con.register("_incoming", pa.table(data))
    try:
        before = con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]
        casts = ", ".join(f"CAST(i.{c} AS TIMESTAMP)" if c == "created_at" else f"i.{c}" for c in cols)
        con.execute(f"INSERT INTO {table} ({', '.join(cols)}) SELECT {casts} FROM _incoming i "
                    f"ANTI JOIN {table} t ON t.id = i.id")
        after = con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]
    finally:
        con.unregister("_incoming")
    added = int(after - before)
    return added, len(records) - added


def _apply_feedback(con: duckdb.DuckDBPyConnection, trace_ids: list[str] | None) -> None:
    """Copy the latest feedback of each trace (of ``trace_ids``, or all) onto its ``traces`` row, field by field
    (``arg_max`` skips NULLs: a later thumbs-only feedback keeps the earlier rating and correction)."""
    where = ""
    if trace_ids is not None:
        con.register("_fb_ids", pa.table({"v": trace_ids}))
        where = "WHERE trace_id IN (SELECT v FROM _fb_ids)"
    try:
        con.execute(
            f"""UPDATE traces SET rating = l.rating, thumbs = l.thumbs, comment = l.comment,
                       correction = l.correction, feedback_at = l.created_at
                FROM (SELECT trace_id, arg_max(rating, (created_at, id)) AS rating,
                             arg_max(thumbs, (created_at, id)) AS thumbs, arg_max(comment, (created_at, id)) AS comment,
                             arg_max(correction, (created_at, id)) AS correction, max(created_at) AS created_at
                      FROM trace_feedback {where} GROUP BY trace_id) l
                WHERE traces.id = l.trace_id AND (traces.feedback_at IS NULL OR traces.feedback_at <= l.created_at)"""
        )
    finally:
        if trace_ids is not None:
            con.unregister("_fb_ids")


def known_trace_ids(ws: Workspace) -> set[str]:
    """Ids of every trace the workspace has or its logs hold (what ``/v1/feedback`` accepts at start-up).

    Opens the database only briefly (and only when it exists); reads only the not-yet-imported log tails.
    """
    ids: set[str] = set()
    offsets: dict[str, int] = {}
    if ws.exists():
        with ws.connect() as con:
            ids.update(r[0] for r in con.execute("SELECT id FROM traces").fetchall())
            offsets = _offsets(con)
    for path in _log_files(ws):
        lines, _ = _read_from(path, offsets.get(path.name, 0))
        for _, raw in lines:
            try:
                rec = orjson.loads(raw)
            except orjson.JSONDecodeError:
                continue
            if isinstance(rec, dict) and rec.get("type") == "trace":
                ids.add(str(rec["id"]))
    return ids


# -- reading ------------------------------------------------------------------------------------------------
def is_positive(rating: int | None, thumbs: str | None) -> bool | None:
    """True (rating >= 4 or thumbs up), False (rating <= 2 or thumbs down), None (unrated or 3)."""
    if rating is not None:
        return True if rating >= 4 else False if rating <= 2 else None
    if thumbs is not None:
        return thumbs == "up"
    return None


_ROW = ("id", "created_at", "model", "run_id", "adapter", "ab_name", "ab_arm", "user_id", "messages", "params",
        "latency_ms", "prompt_tokens", "completion_tokens", "finish_reason", "rating", "thumbs", "comment",
        "correction", "feedback_at", "ingested_at", "source", "meta")


def _select() -> str:
    cols = [f"{c}::VARCHAR" if c in ("messages", "params", "meta") else c for c in _ROW]
    return "SELECT " + ", ".join(cols) + " FROM traces"


def _row(r: tuple[Any, ...]) -> dict[str, Any]:
    d = dict(zip(_ROW, r, strict=True))
    for c in ("messages", "params", "meta"):
        d[c] = orjson.loads(d[c]) if d[c] else None
    for c in ("created_at", "feedback_at", "ingested_at"):
        d[c] = None if d[c] is None else str(d[c])
    return d


def list_traces(ws: Workspace, *, model: str | None = None, rated: bool | None = None, limit: int = 20,
                do_import: bool = True) -> list[dict[str, Any]]:
    """The latest traces, newest first (after importing the logs)."""
    if do_import:
        import_traces(ws)
    if not ws.exists():
        return []
    where, params = [], []
    if model:
        where.append("model = ?")
        params.append(model)
    if rated is True:
        where.append("(rating IS NOT NULL OR thumbs IS NOT NULL)")
    elif rated is False:
        where.append("rating IS NULL AND thumbs IS NULL")
    sql = _select() + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY created_at DESC, id LIMIT ?"
    with ws.connect() as con:
        return [_row(r) for r in con.execute(sql, [*params, limit]).fetchall()]


def get_trace(ws: Workspace, trace_id: str, *, do_import: bool = True) -> dict[str, Any]:
    """One trace by id (or unique id prefix), with every feedback posted for it."""
    if do_import:
        import_traces(ws)
    if not ws.exists():
        raise CuratorError(f"no trace {trace_id!r}: the workspace has no traces yet")
    with ws.connect() as con:
        rows = con.execute(_select() + " WHERE id = ?", [trace_id]).fetchall()
        if not rows:
            rows = con.execute(_select() + " WHERE starts_with(id, ?) ORDER BY id LIMIT 3", [trace_id]).fetchall()
        if not rows:
            raise CuratorError(f"no trace {trace_id!r} (see `curator traces list`)")
        if len(rows) > 1:
            raise CuratorError(f"trace id prefix {trace_id!r} is ambiguous")
        out = _row(rows[0])
        fb = con.execute(
            "SELECT id, created_at, rating, thumbs, comment, correction FROM trace_feedback WHERE trace_id = ? "
            "ORDER BY created_at, id", [out["id"]]).fetchall()
    out["feedback"] = [{"id": f[0], "created_at": str(f[1]), "rating": f[2], "thumbs": f[3], "comment": f[4],
                        "correction": f[5]} for f in fb]
    return out


def wilson_interval(positive: int, n: int, z: float = 1.96) -> tuple[float, float] | None:
    """The Wilson score interval of a proportion (95 % by default); None when ``n`` is 0."""
    if n <= 0:
        return None
    p = positive / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def _group_stats(rows: list[Any]) -> dict[str, Any]:
    n, rated, pos, neg, p50, p95, out_tokens, secs = rows
    ci = wilson_interval(int(pos), int(pos) + int(neg))
    return {
        "traces": int(n), "rated": int(rated), "positive": int(pos), "negative": int(neg),
        "positive_rate": (int(pos) / (int(pos) + int(neg))) if int(pos) + int(neg) else None,
        "positive_rate_ci95": list(ci) if ci else None,
        "latency_ms_p50": None if p50 is None else round(float(p50), 1),
        "latency_ms_p95": None if p95 is None else round(float(p95), 1),
        "completion_tokens": int(out_tokens or 0),
        "tokens_per_s": round(float(out_tokens) / float(secs), 1) if secs else None,
    }


_AGG = """count(*), count(*) FILTER (WHERE rating IS NOT NULL OR thumbs IS NOT NULL),
          count(*) FILTER (WHERE rating >= 4 OR (rating IS NULL AND thumbs = 'up')),
          count(*) FILTER (WHERE rating <= 2 OR (rating IS NULL AND thumbs = 'down')),
          quantile_cont(latency_ms, 0.5), quantile_cont(latency_ms, 0.95),
          sum(completion_tokens), sum(latency_ms) / 1000.0"""


def trace_stats(ws: Workspace, *, do_import: bool = True) -> dict[str, Any]:
    """Volume, positive-feedback rate (with a 95 % Wilson interval) and latency p50/p95 per model and adapter,
    and per arm of every A/B route.  Positive: rating >= 4 or thumbs up; negative: rating <= 2 or thumbs down."""
    if do_import:
        import_traces(ws)
    out: dict[str, Any] = {"traces": 0, "by_model": [], "ab": []}
    if not ws.exists():
        return out
    with ws.connect() as con:
        total = con.execute(f"SELECT {_AGG} FROM traces").fetchall()[0]
        by_model = con.execute(
            f"SELECT model, coalesce(adapter, 'base'), {_AGG} FROM traces GROUP BY ALL ORDER BY 1, 2").fetchall()
        ab = con.execute(
            f"""SELECT ab_name, ab_arm, run_id, {_AGG} FROM traces WHERE ab_name IS NOT NULL
                GROUP BY ALL ORDER BY 1, 2, 3""").fetchall()
        pending = con.execute(
            "SELECT count(*) FROM traces WHERE (rating IS NOT NULL OR thumbs IS NOT NULL) AND ingested_at IS NULL"
        ).fetchall()[0][0]
    out["traces"] = int(total[0])
    out["overall"] = _group_stats(list(total))
    out["rated_not_ingested"] = int(pending)
    out["by_model"] = [{"model": r[0], "adapter": r[1], **_group_stats(list(r[2:]))} for r in by_model]
    out["ab"] = [{"name": r[0], "arm": r[1], "run_id": r[2], **_group_stats(list(r[3:]))} for r in ab]
    return out


# -- into the feedback tables ---------------------------------------------------------------------------------
@dataclass
class TraceIngestReport:
    """What ``curator feedback ingest --traces`` did: the import, and the feedback ingest of the rated traces."""

    imported: dict[str, Any]
    rated_traces: int = 0
    batch_file: str | None = None
    feedback: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def ingest_traces(
    ws: Workspace,
    *,
    task: str | None = None,
    positive_threshold: float | None = None,
    negative_threshold: float | None = None,
    gates: bool | Any = True,
    pii_backend: str | None = None,
) -> TraceIngestReport:
    """Import the trace logs, then ingest the rated traces not ingested yet as feedback (format ``serve``).

    The rated traces are written to ``traces/ingested/batch-<time>.jsonl`` (kept: the file the ``ingests``
    table names) and go through :func:`curator.feedback.ingest.ingest_feedback`; then their ``ingested_at``
    is set.  A crash between the two is harmless: the feedback table is keyed by trace id.
    """
    from curator.feedback.ingest import ingest_feedback

    report = TraceIngestReport(imported=import_traces(ws).to_dict())
    if not ws.exists():
        return report
    with ws.connect() as con:
        rows = con.execute(
            _select() + " WHERE (rating IS NOT NULL OR thumbs IS NOT NULL) AND ingested_at IS NULL "
            "ORDER BY created_at, id").fetchall()
    traces = [_row(r) for r in rows]
    report.rated_traces = len(traces)
    if not traces:
        return report
    out_dir = log_dir(ws) / "ingested"
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"batch-{datetime.now(UTC).strftime('%Y%m%d-%H%M%S-%f')}-{os.getpid()}.jsonl"
    with path.open("wb") as f:
        for t in traces:
            f.write(orjson.dumps({
                "object": "curator.trace", "id": t["id"], "created_at": t["created_at"], "model": t["model"],
                "run_id": t["run_id"], "adapter": t["adapter"], "ab_arm": t["ab_arm"], "messages": t["messages"],
                "rating": t["rating"], "thumbs": t["thumbs"], "comment": t["comment"], "correction": t["correction"],
            }) + b"\n")
    report.batch_file = str(path)
    fb = ingest_feedback(ws, path, fmt="serve", task=task, positive_threshold=positive_threshold,
                         negative_threshold=negative_threshold, gates=gates, pii_backend=pii_backend)
    report.feedback = fb.to_dict()
    with ws.transaction() as con:
        con.register("_ids", pa.table({"v": [t["id"] for t in traces]}))
        try:
            con.execute("UPDATE traces SET ingested_at = current_timestamp WHERE id IN (SELECT v FROM _ids)")
        finally:
            con.unregister("_ids")
    return report
