"""Feedback ingestion: rated production events in, SFT examples and preference pairs out.

:func:`ingest_feedback` reads one file (see :mod:`curator.feedback.readers`), then:

1. scrubs every string of every event (all turns, assistant too, the trace id, model and metadata)
   with :func:`curator.quality.pii.scrub` (the ``pii_backend`` argument, else the workspace setting of
   that name, else the patterns), and normalises the messages;
2. gives events without a trace id a deterministic one (a hash of the scrubbed content), and keeps
   the first of repeated trace ids;
3. in one transaction: skips events whose trace id is already stored (so the same file twice adds
   nothing and a grown log adds only its new events); turns new positives into examples
   (``origin='feedback'``, trace id and rating in ``meta``) after the duplicate and leakage gates
   (:mod:`curator.feedback.gates`); stores every new event in ``feedback`` (with the example it
   became, or why it did not); stores the preference pairs (:mod:`curator.feedback.preferences`).

Negatives never become examples.  A bad record rejects the whole file with ``FILE:LINE: what is
wrong`` and leaves the workspace unchanged, unless ``skip_invalid``: then the good records are stored
and every skipped line is reported.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import pyarrow as pa

from curator.data.ingest import store_examples
from curator.data.readers.shapes import RowError
from curator.errors import CuratorError, InputError
from curator.feedback.events import Event, Parsed, RatingRules
from curator.feedback.gates import GateResult, gate, gate_methods
from curator.feedback.preferences import Pair, store_pairs
from curator.feedback.readers import read_feedback
from curator.quality.pii import DEFAULT_BACKEND, KINDS, PII_BACKEND_SETTING, prepare_backend, scrub
from curator.records import Example, example_id, messages_json, normalize_messages
from curator.workspace import Workspace

if TYPE_CHECKING:
    import duckdb

__all__ = ["FeedbackReport", "ingest_feedback"]

_TRACE_PREFIX = {"chat": "chat", "trace": "trace", "oasst": "oasst", "hh-rlhf": "hh"}


@dataclass
class FeedbackReport:
    """What one ``feedback ingest`` did.  Counts of labels and examples are of the *new* events."""

    path: str
    format: str
    records: int = 0
    events: int = 0
    new_events: int = 0
    already_present: int = 0
    duplicates_in_file: int = 0
    positive: int = 0
    negative: int = 0
    neutral: int = 0
    examples_added: int = 0
    positives_already_examples: int = 0
    positives_rejected: list[dict[str, Any]] = field(default_factory=list)
    positives_not_for_sft: dict[str, int] = field(default_factory=dict)
    pairs_found: int = 0
    pairs_added: int = 0
    unpaired: list[dict[str, Any]] = field(default_factory=list)
    pii: dict[str, int] = field(default_factory=dict)
    skipped: list[dict[str, Any]] = field(default_factory=list)
    by_split: dict[str, int] = field(default_factory=dict)
    gates: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Event:
    """An event after scrubbing, ready to store."""

    trace_id: str
    messages: list[dict[str, Any]]
    label: str
    rating: float | None
    rating_kind: str | None
    model: str | None
    event_time: str | None
    task: str | None
    meta: dict[str, Any]
    pii: dict[str, int]
    sft: bool
    sft_reason: str | None
    pair_by_prompt: bool
    line: int
    prompt_key: str = ""
    example_id: str | None = None
    gate_reason: str | None = None

    def __post_init__(self) -> None:
        self.prompt_key = example_id(self.messages[:-1])

    @property
    def answer(self) -> str:
        return str(self.messages[-1]["content"])


def _scrub_value(value: Any, counts: Counter[str], backend: str = DEFAULT_BACKEND) -> Any:
    """``value`` with every string in it scrubbed (lists and objects walked); counts added to ``counts``."""
    if isinstance(value, str):
        text, found = scrub(value, backend)
        counts.update({k: v for k, v in found.items() if v})
        return text
    if isinstance(value, list):
        return [_scrub_value(v, counts, backend) for v in value]
    if isinstance(value, dict):
        return {k: _scrub_value(v, counts, backend) for k, v in value.items()}
    return value


def _prepare(parsed: Parsed, line: int, fmt: str, backend: str = DEFAULT_BACKEND) -> list[_Event]:
    """Scrub and normalise the events of one record; trace ids for those without one."""
    out: list[_Event] = []
    for e in parsed.events:
        counts: Counter[str] = Counter()
        messages = normalize_messages(_scrub_value([{"role": m["role"], "content": m["content"]} for m in e.messages],
                                                   counts, backend))
        out.append(_Event(
            trace_id=_scrub_value(e.trace_id, counts, backend) if e.trace_id else "", messages=messages,
            label=e.label, rating=e.rating, rating_kind=e.rating_kind, model=_scrub_value(e.model, counts, backend),
            event_time=e.event_time, task=e.task, meta=_scrub_value(e.meta, counts, backend), pii=dict(counts),
            sft=e.sft, sft_reason=e.sft_reason,
            pair_by_prompt=e.pair_by_prompt, line=line,
        ))
    _trace_ids(parsed.events, out, fmt)
    return out


def _trace_ids(raw: list[Event], events: list[_Event], fmt: str) -> None:
    """Deterministic ids: a hash of the record's scrubbed content, plus the event's suffix or position."""
    if all(e.trace_id for e in events) and not any(r.trace_suffix for r in raw):
        return
    content = [[e.messages, e.rating, e.label, e.event_time, e.model] for e in events]
    digest = hashlib.sha256(orjson.dumps(content)).hexdigest()[:24]
    for i, (r, e) in enumerate(zip(raw, events, strict=True)):
        base = e.trace_id or f"{_TRACE_PREFIX.get(fmt, fmt)}-{digest}"
        suffix = r.trace_suffix or (str(i) if len(events) > 1 and not e.trace_id else None)
        e.trace_id = f"{base}:{suffix}" if suffix else base


def _existing(con: duckdb.DuckDBPyConnection, table: str, column: str, values: list[str]) -> set[str]:
    if not values:
        return set()
    con.register("_lookup", pa.table({"v": values}))
    try:
        rows = con.execute(f"SELECT DISTINCT {column} FROM {table} WHERE {column} IN (SELECT v FROM _lookup)").fetchall()
    finally:
        con.unregister("_lookup")
    return {r[0] for r in rows}


def _insert_events(con: duckdb.DuckDBPyConnection, events: list[_Event], source: str, fmt: str) -> None:
    if not events:
        return
    table = pa.table({
        "trace_id": [e.trace_id for e in events],
        "source": [source] * len(events),
        "format": [fmt] * len(events),
        "messages": [messages_json(e.messages) for e in events],
        "rating": pa.array([e.rating for e in events], pa.float64()),
        "label": [e.label for e in events],
        "model": pa.array([e.model for e in events], pa.string()),
        "event_time": pa.array([e.event_time for e in events], pa.string()),
        "pii_counts": [orjson.dumps(e.pii).decode() for e in events],
        "example_id": pa.array([e.example_id for e in events], pa.string()),
        "meta": [orjson.dumps({**e.meta, "rating_kind": e.rating_kind, "line": e.line}).decode() for e in events],
        "prompt_key": [e.prompt_key for e in events],
        "gate_reason": pa.array([e.gate_reason for e in events], pa.string()),
    })
    con.register("_incoming_feedback", table)
    try:
        con.execute(
            """INSERT INTO feedback (trace_id, source, format, messages, rating, label, model, event_time, pii_counts,
                                     example_id, meta, prompt_key, gate_reason)
               SELECT i.trace_id, i.source, i.format, i.messages, i.rating, i.label, i.model, i.event_time,
                      i.pii_counts, i.example_id, i.meta, i.prompt_key, i.gate_reason
               FROM _incoming_feedback i ANTI JOIN feedback f ON f.trace_id = i.trace_id"""
        )
    finally:
        con.unregister("_incoming_feedback")


def _explicit_pairs(events: list[_Event], refs: list[tuple[int, int, float | None, str]], source: str,
                    fmt: str) -> list[Pair]:
    """Pairs the reader made (OASST siblings, HH-RLHF records)."""
    out = []
    for ci, ri, margin, basis in refs:
        c, r = events[ci], events[ri]
        if c.messages[:-1] != r.messages[:-1] or not c.answer.strip() or not r.answer.strip() or c.answer == r.answer:
            continue
        meta = {"basis": basis, "format": fmt, "chosen_trace": c.trace_id, "rejected_trace": r.trace_id,
                "line": c.line}
        if "tree_id" in c.meta:
            meta["tree_id"] = c.meta["tree_id"]
        out.append(Pair(c.messages[:-1], c.answer, r.answer, source, margin, meta))
    return out


def _prompt_pairs(con: duckdb.DuckDBPyConnection, new: list[_Event], source: str) -> list[Pair]:
    """Liked x disliked answers to the same prompt, over every stored rated-log event of the prompts touched."""
    keys = sorted({e.prompt_key for e in new if e.pair_by_prompt and e.label in ("positive", "negative")})
    if not keys:
        return []
    con.register("_keys", pa.table({"k": keys}))
    try:
        rows = con.execute(
            """SELECT prompt_key, trace_id, messages::VARCHAR, rating, label, meta->>'rating_kind', format
               FROM feedback WHERE prompt_key IN (SELECT k FROM _keys) AND label IN ('positive', 'negative')
                 AND format IN ('chat', 'trace', 'serve')
               ORDER BY prompt_key, created_at, trace_id"""
        ).fetchall()
    finally:
        con.unregister("_keys")
    by_key: dict[str, dict[str, list[tuple[Any, ...]]]] = {}
    for row in rows:
        by_key.setdefault(row[0], {"positive": [], "negative": []})[row[4]].append(row)
    out = []
    for sides in by_key.values():
        for pos in sides["positive"]:
            pos_msgs = orjson.loads(pos[2])
            for neg in sides["negative"]:
                neg_answer = orjson.loads(neg[2])[-1]["content"]
                if neg_answer == pos_msgs[-1]["content"]:
                    continue
                margin = pos[3] - neg[3] if pos[5] == neg[5] and pos[3] is not None and neg[3] is not None else None
                out.append(Pair(pos_msgs[:-1], pos_msgs[-1]["content"], neg_answer, source, margin,
                                {"basis": "rating", "format": pos[6], "chosen_trace": pos[1], "rejected_trace": neg[1]}))
    return out


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def ingest_feedback(
    ws: Workspace,
    path: str | Path,
    *,
    fmt: str = "auto",
    task: str | None = None,
    min_rating: float | None = None,
    positive_threshold: float | None = None,
    negative_threshold: float | None = None,
    rating_field: str | None = None,
    messages_field: str | None = None,
    trace_field: str | None = None,
    skip_invalid: bool = False,
    gates: bool | Sequence[str] = True,
    sft_chosen: bool = False,
    pii_backend: str | None = None,
) -> FeedbackReport:
    """Read one feedback file into the workspace (all or nothing); see the module docstring.

    ``min_rating`` is another name for ``positive_threshold`` (the architecture's ``--min-rating``).
    ``gates``: ``True`` runs every gate (duplicates exact, near and semantic; leakage exact, n-gram and
    semantic), a list of duplicate methods (``("exact", "near")``) runs those (semantic leakage only
    with ``semantic``), ``False`` stores every new positive unchecked.
    ``pii_backend``: ``"patterns"`` or ``"presidio"`` (:func:`curator.quality.pii.scrub`); ``None`` reads the
    workspace setting ``pii_backend`` (default ``"patterns"``).
    """
    if min_rating is not None:
        if positive_threshold is not None and positive_threshold != min_rating:
            raise CuratorError("--min-rating and --positive-threshold are the same setting: pass one of them")
        positive_threshold = min_rating
    backend = prepare_backend(pii_backend or ws.get_setting(PII_BACKEND_SETTING, DEFAULT_BACKEND))
    rules = RatingRules(positive_threshold, negative_threshold, rating_field, messages_field, trace_field, sft_chosen)
    path = Path(path)
    src, parsed = read_feedback(path, fmt, rules)
    source = str(path.resolve())
    report = FeedbackReport(path=str(path), format=src.format)

    events: list[_Event] = []
    refs: list[tuple[int, int, float | None, str]] = []
    bad: list[tuple[int, str]] = []
    for line, item in parsed:
        report.records += 1
        if isinstance(item, RowError):
            bad.append((line, str(item)))
            if not skip_invalid:
                break
            continue
        base = len(events)
        events.extend(_prepare(item, line, src.format, backend))
        refs.extend((base + p.chosen, base + p.rejected, p.margin, p.basis) for p in item.pairs)
        report.unpaired.extend({"line": line, "reason": r} for r in item.unpaired)
    if bad and not skip_invalid:
        raise src.error(*bad[0])
    report.skipped = [{"line": n, "unit": src.unit, "reason": r} for n, r in bad]
    if not events and not bad:
        raise InputError("no feedback events found", path)
    report.events = len(events)

    unique: dict[str, _Event] = {}
    for e in events:
        unique.setdefault(e.trace_id, e)
    report.duplicates_in_file = len(events) - len(unique)

    methods = gate_methods(gates)
    with ws.connect() as con:  # one connection (and the write lock) from the first read to the commit
        seen = _existing(con, "feedback", "trace_id", list(unique))
        new = [e for tid, e in unique.items() if tid not in seen]
        report.new_events, report.already_present = len(new), len(unique) - len(new)
        labels = Counter(e.label for e in new)
        report.positive, report.negative, report.neutral = labels["positive"], labels["negative"], labels["neutral"]
        plan = _plan_positives(con, new, task, source, src.format, report)
        # The gates may compute and cache embeddings of stored examples: before the transaction.
        result = gate(ws, con, plan.candidates, methods) if methods else GateResult(gates=["off"])
        report.gates = result.gates
        for eid, split in plan.stored.items():  # the very conversation of an eval/test item: a leak, not a link
            if split != "train" and methods:
                result.rejected[eid] = f"leakage (exact) into {split} example {eid}: the same conversation"
        with ws.transaction() as con:
            accepted = [ex for ex in plan.candidates if ex.id not in result.rejected]
            report.examples_added, report.by_split = store_examples(con, ws, accepted)
            for e, eid in plan.owners:
                if eid in result.rejected:
                    e.gate_reason = result.rejected[eid]
                    report.positives_rejected.append({"trace_id": e.trace_id, "line": e.line, "reason": e.gate_reason})
                else:
                    e.example_id = eid
                    if eid in plan.stored:
                        report.positives_already_examples += 1
            _insert_events(con, new, source, src.format)
            pairs = _explicit_pairs(events, refs, source, src.format) + _prompt_pairs(con, new, source)
            report.pairs_found = len({p.id for p in pairs})
            report.pairs_added = store_pairs(con, pairs)
            con.execute(
                "INSERT INTO ingests (path, sha256, format, rows_read, rows_added, rows_skipped) VALUES (?,?,?,?,?,?)",
                [source, _file_sha256(path), f"feedback/{src.format}", report.records, report.new_events, len(bad)],
            )
    totals: Counter[str] = Counter()
    for e in new:
        totals.update(e.pii)
    report.pii = {k: totals[k] for k in KINDS if totals[k]}
    return report


@dataclass
class _Plan:
    """The new positives as examples: candidates for the gates, those already stored, and who owns which."""

    candidates: list[Example]
    stored: dict[str, str]  # example id -> split, of positives whose conversation is already an example
    owners: list[tuple[_Event, str]]


def _plan_positives(con: duckdb.DuckDBPyConnection, new: list[_Event], task: str | None, source: str, fmt: str,
                    report: FeedbackReport) -> _Plan:
    """New positives -> examples (one per distinct conversation); the rest get their ``gate_reason``."""
    not_for_sft: Counter[str] = Counter()
    examples: dict[str, Example] = {}
    owners: list[tuple[_Event, str]] = []
    for e in new:
        if e.label != "positive":
            continue
        if not e.sft or not e.answer.strip():
            e.gate_reason = e.sft_reason if not e.sft else "the answer is empty"
            not_for_sft[e.gate_reason or "not for SFT"] += 1
            continue
        ex = Example(messages=e.messages, task=task or e.task or "default", origin="feedback", source=source,
                     meta={"trace_id": e.trace_id, "rating": e.rating, "rating_kind": e.rating_kind, "label": e.label,
                           "model": e.model, "event_time": e.event_time,
                           "source": {"path": source, "format": f"feedback/{fmt}", "line": e.line}},
                     id=example_id(e.messages))
        examples.setdefault(ex.id, ex)
        owners.append((e, ex.id))
    report.positives_not_for_sft = dict(not_for_sft)
    stored: dict[str, str] = {}
    if examples:
        con.register("_lookup", pa.table({"v": list(examples)}))
        try:
            stored = dict(con.execute(
                "SELECT s.example_id, s.split FROM splits s WHERE s.example_id IN (SELECT v FROM _lookup)").fetchall())
        finally:
            con.unregister("_lookup")
    return _Plan([ex for eid, ex in examples.items() if eid not in stored], stored, owners)
