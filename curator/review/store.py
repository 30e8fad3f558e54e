"""What ``curator review`` reads and writes: the three queues and the actions on them, as plain functions.

Every function takes a :class:`~curator.workspace.Workspace` and opens it for one short read
(``ws.connect(read_only=True)``) or one short write (``ws.transaction()``), so the review server holds
nothing open between clicks.  Another command holding the workspace lock is waited for briefly
(:func:`retrying`, about 3 s); then :class:`Busy` says so and the click can be repeated.

Queues:

* examples -- :func:`list_examples` (filters: origin, task, split, status, synthetic ``job``, audit
  ``flag``; ``LIMIT``/``OFFSET`` pagination in DuckDB with a total), :func:`get_example` (turns,
  provenance, decisions, edits), :func:`decide` (``accept`` / ``reject`` / ``edit``);
* answers -- :func:`list_evals`, :func:`list_answers` (prompt, reference, answer, automatic scores and
  this reviewer's rating), :func:`rate` (1-5 and a note into ``human_ratings``; re-rating replaces);
* A/B -- :func:`list_pairs` (the examples two evaluations share, blind: :func:`is_swapped` decides per
  item, deterministically, which answer is shown first), :func:`prefer` (``left`` / ``right`` / ``tie``
  in the evaluations' order into ``human_choices``; a non-tie also stores a preference pair with
  ``meta.basis = "human"`` through :func:`curator.feedback.preferences.store_pairs`).

Decisions (kinds in :data:`curator.quality.decisions.REVIEW_KINDS`): ``review_accept`` leaves the example
active; ``review_reject`` excludes it with the reason; ``edited`` excludes it and stores the edit as a new
example (origin ``edited``, ``parent_id`` the old id, same task and split) after the gates new data passes:
exact duplicates (:func:`curator.quality.dedup.find_duplicates_of`), leakage across the split boundary
(:func:`curator.quality.leakage.find_leaks_of`, exact and n-gram) and the prompt-group rule.  A new
decision on an example undoes that example's earlier live accept or reject (the last word counts).
``curator restore review_reject`` / ``restore edited`` undo them from the command line.

Errors (all :class:`ReviewError`, a :class:`~curator.errors.CuratorError`, each with an HTTP status):
:class:`InvalidField` 422 (names the field), :class:`NotFound` 404, :class:`Conflict` 409, :class:`Busy` 503.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import duckdb
import orjson

from curator.data.splits import SPLITS
from curator.data.validate import check_chat_record
from curator.errors import CuratorError, WorkspaceError, WorkspaceLockedError
from curator.feedback.preferences import Pair, store_pairs
from curator.quality.refusal import find_refusal
from curator.records import Example, example_id, normalize_messages
from curator.workspace import Workspace

_ALIAS = "workspace"  # the name Workspace attaches its file under (curator.workspace.cursor uses it too)

__all__ = [
    "ACTIONS",
    "CHOICES",
    "FLAGS",
    "MAX_LIMIT",
    "STATUSES",
    "Busy",
    "Conflict",
    "ExampleFilter",
    "InvalidField",
    "NotFound",
    "ReviewError",
    "decide",
    "examples_progress",
    "get_example",
    "is_swapped",
    "list_answers",
    "list_evals",
    "list_examples",
    "list_pairs",
    "ORDER",
    "ReviewWorkspace",
    "count_query",
    "page_query",
    "page_rows",
    "prefer",
    "rate",
    "resume_offset",
    "retrying",
]

ACTIONS = ("accept", "reject", "edit")
CHOICES = ("left", "right", "tie")
STATUSES = ("active", "excluded")
ORIGINS = ("import", "seed", "synthetic", "feedback", "edited")
#: Audit flags the examples queue filters by, each a cheap per-row test (see :func:`_flag_sql`).
FLAGS = {
    "refusal": "a boilerplate refusal or AI disclaimer in an assistant turn (the audit's detector)",
    "empty": "no assistant turn last, or an empty one",
    "long": "a last answer of more than 500 words",
    "duplicate": "named by a live dedup decision (excluded as a duplicate, or the copy kept)",
}
MAX_LIMIT = 500
MAX_NOTE = 4000
MAX_REASON = 2000
_ACTION_KIND = {"accept": "review_accept", "reject": "review_reject", "edit": "edited"}
_RETRY_S = 3.0

T = TypeVar("T")


# -- errors ---------------------------------------------------------------------------------------------------
class ReviewError(CuratorError):
    """A review request that cannot be done; ``status`` is its HTTP status, ``field`` the input at fault."""

    status = 400

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class InvalidField(ReviewError):
    """A bad input value (422); the message starts with the field's name."""

    status = 422

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}", field)


class NotFound(ReviewError):
    """An unknown example, evaluation or answer (404)."""

    status = 404


class Conflict(ReviewError):
    """An action the example's state does not allow (409), e.g. editing an excluded example."""

    status = 409


class Busy(ReviewError):
    """Another process held the workspace for longer than the retry window (503)."""

    status = 503


# -- connections ------------------------------------------------------------------------------------------------
def retrying(fn: Callable[[], T], wait_s: float = _RETRY_S) -> T:
    """Run ``fn``; while another process holds the workspace lock, retry for up to ``wait_s`` seconds."""
    deadline = time.monotonic() + wait_s
    delay = 0.05
    while True:
        try:
            return fn()
        except WorkspaceLockedError as e:
            if time.monotonic() + delay > deadline:
                raise Busy(f"{e}. Nothing was saved: try again in a moment.") from None
            time.sleep(delay)
            delay = min(delay * 2, 0.5)


class ReviewWorkspace(Workspace):
    """A workspace whose read-only blocks attach the file to one in-memory DuckDB the process keeps, and detach
    it when the block ends.

    Each read of the review server is then about 2 ms of opening instead of about 50 (a new DuckDB instance per
    ``connect`` costs 20-30 ms on 2 cores, the attach the rest), while the file is still held only during the
    block: between requests no lock is held and other commands write freely.  Writes (and anything not
    read-only) go through :meth:`Workspace.connect` unchanged.  Not thread-safe: the app serialises its
    database work.
    """

    def __init__(self, path: str | Path | None = None) -> None:
        super().__init__(path)
        self._mem: duckdb.DuckDBPyConnection | None = None
        self._ro_depth = 0

    @contextmanager
    def connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        if not read_only:
            with super().connect(read_only) as con:
                yield con
            return
        if not self.db_path.exists():
            raise WorkspaceError(f"no workspace at {self.path} (run `curator ingest` first, or pass --workspace)")
        if self._mem is None:
            self._mem = duckdb.connect()
        con = self._mem
        if self._ro_depth == 0:
            path = str(self.db_path).replace("'", "''")
            try:
                con.execute(f"ATTACH '{path}' AS {_ALIAS} (READ_ONLY)")
            except duckdb.IOException as e:
                if "lock" in str(e).lower():
                    raise WorkspaceLockedError(f"workspace {self.path} is in use by another process; wait for it "
                                               "to finish") from None
                raise WorkspaceError(f"cannot open workspace {self.path}: {e}") from None
            except duckdb.Error as e:
                raise WorkspaceError(f"cannot open workspace {self.path}: {e}") from None
            con.execute(f"USE {_ALIAS}")
        self._ro_depth += 1
        try:
            yield con
        finally:
            self._ro_depth -= 1
            if self._ro_depth == 0:
                con.execute("USE memory")
                con.execute(f"DETACH {_ALIAS}")


@contextmanager
def _read(ws: Workspace) -> Iterator[duckdb.DuckDBPyConnection]:
    with ws.connect(read_only=True) as con:
        yield con


def _json(value: Any) -> Any:
    if value is None or not isinstance(value, str | bytes):
        return value
    return orjson.loads(value)


def _text(field: str, value: Any, limit: int, required: bool = False) -> str | None:
    if value is None or (value == "" and not required):
        if required:
            raise InvalidField(field, "is required")
        return None
    if not isinstance(value, str):
        raise InvalidField(field, "must be a string")
    if required and not value.strip():
        raise InvalidField(field, "must not be empty")
    if len(value) > limit:
        raise InvalidField(field, f"is longer than {limit} characters")
    return value


def _id(field: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidField(field, "must be a non-empty string")
    if len(value) > 200:
        raise InvalidField(field, "is longer than 200 characters")
    return value


# -- the examples queue -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ExampleFilter:
    """The examples queue's filters (None: any)."""

    origin: str | None = None
    task: str | None = None
    split: str | None = None
    status: str | None = None
    job: str | None = None
    flag: str | None = None

    def check(self) -> ExampleFilter:
        """Raise :class:`InvalidField` for a value outside its choices."""
        for name, value, choices in (("origin", self.origin, ORIGINS), ("split", self.split, SPLITS),
                                     ("status", self.status, STATUSES), ("flag", self.flag, tuple(FLAGS))):
            if value is not None and value not in choices:
                raise InvalidField(name, f"must be one of {', '.join(choices)} (got {value!r})")
        for name, value in (("task", self.task), ("job", self.job)):
            if value is not None and len(value) > 200:
                raise InvalidField(name, "is longer than 200 characters")
        return self

    def params(self) -> dict[str, str]:
        """The set filters, as query parameters."""
        return {k: v for k, v in (("origin", self.origin), ("task", self.task), ("split", self.split),
                                  ("status", self.status), ("job", self.job), ("flag", self.flag)) if v}


def _answers_text(messages_json: str | None) -> str:
    if not messages_json:
        return ""
    try:
        msgs = orjson.loads(messages_json)
    except orjson.JSONDecodeError:
        return ""
    return "\n".join(str(m.get("content") or "") for m in msgs if isinstance(m, dict) and m.get("role") == "assistant")


def _is_refusal(messages_json: str | None) -> bool:
    text = _answers_text(messages_json)
    return bool(text) and find_refusal(text) is not None


def _flag_sql(con: duckdb.DuckDBPyConnection, flag: str) -> str:
    last = "e.messages->>'$[#-1].content'"
    if flag == "empty":
        return f"(coalesce(e.messages->>'$[#-1].role', '') <> 'assistant' OR trim(coalesce({last}, '')) = '')"
    if flag == "long":
        return (f"(e.messages->>'$[#-1].role' = 'assistant' AND "
                f"len(string_split_regex(trim({last}), '\\s+')) > 500)")
    if flag == "duplicate":
        return ("(e.id IN (SELECT example_id FROM decisions WHERE undone_at IS NULL AND kind LIKE 'dedup_%') OR "
                "e.id IN (SELECT other_id FROM decisions WHERE undone_at IS NULL AND kind LIKE 'dedup_%' "
                "AND other_id IS NOT NULL))")
    # refusal: the one detector, as a Python function over the row's messages
    try:
        con.create_function("review_is_refusal", _is_refusal, ["VARCHAR"], "BOOLEAN", side_effects=False)
    except duckdb.Error:
        pass  # already registered on this connection
    return "review_is_refusal(e.messages::VARCHAR)"


def _where(con: duckdb.DuckDBPyConnection, f: ExampleFilter) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    for col, value in (("e.origin", f.origin), ("e.task", f.task), ("s.split", f.split), ("e.status", f.status),
                       ("e.meta->>'job'", f.job)):
        if value is not None:
            clauses.append(f"{col} = ?")
            params.append(value)
    if f.flag is not None:
        clauses.append(_flag_sql(con, f.flag))
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


_COLUMNS = """e.id, e.messages, e.origin, e.task, s.split, e.status, e.source, e.parent_id, e.meta, e.created_at,
       e.excluded_reason"""
#: The queue's order: creation time, then insertion order (rows are never deleted, only excluded).
ORDER = "e.created_at, e.rowid"


def _from(f: ExampleFilter) -> str:
    # the splits table is joined only when the split is filtered on (a page's rows get theirs afterwards)
    return " FROM examples e" + (" LEFT JOIN splits s ON s.example_id = e.id" if f.split is not None else "")


def page_query(con: duckdb.DuckDBPyConnection, f: ExampleFilter, limit: int, offset: int) -> tuple[str, list[Any]]:
    """The SQL and parameters that pick one page's row ids (narrow columns only: a sort of 100k wide rows is slow)."""
    where, params = _where(con, f)
    return f"SELECT e.rowid{_from(f)}{where} ORDER BY {ORDER} LIMIT ? OFFSET ?", [*params, limit, offset]


def count_query(con: duckdb.DuckDBPyConnection, f: ExampleFilter) -> tuple[str, list[Any]]:
    """The SQL and parameters of the filtered count (the ``total`` beside each page)."""
    where, params = _where(con, f)
    return f"SELECT count(*){_from(f)}{where}", params


def page_rows(con: duckdb.DuckDBPyConnection, f: ExampleFilter, limit: int, offset: int) -> list[tuple[Any, ...]]:
    """One page's rows, in queue order: :func:`page_query`, then the full rows of those row ids."""
    sql, params = page_query(con, f, limit, offset)
    rowids = [r[0] for r in con.execute(sql, params).fetchall()]
    if not rowids:
        return []
    rows = con.execute(f"""SELECT e.rowid, {_COLUMNS} FROM examples e LEFT JOIN splits s ON s.example_id = e.id
                           WHERE e.rowid IN (SELECT unnest(?::BIGINT[]))""", [rowids]).fetchall()
    by_rowid = {r[0]: r[1:] for r in rows}
    return [by_rowid[i] for i in rowids]


def _row(r: tuple[Any, ...]) -> dict[str, Any]:
    return {"id": r[0], "messages": _json(r[1]), "origin": r[2], "task": r[3], "split": r[4], "status": r[5],
            "source": r[6], "parent_id": r[7], "meta": _json(r[8]) or {},
            "created_at": r[9].isoformat(sep=" ", timespec="seconds") if r[9] is not None else None,
            "excluded_reason": r[10]}


def _reviews(con: duckdb.DuckDBPyConnection, ids: list[str]) -> dict[str, dict[str, Any]]:
    """The live review decision of each example that has one."""
    if not ids:
        return {}
    rows = con.execute(
        """SELECT example_id, kind, reviewer, reason, other_id, created_at FROM decisions
           WHERE undone_at IS NULL AND kind IN ('review_accept', 'review_reject', 'edited')
             AND example_id IN (SELECT unnest(?::VARCHAR[]))
           ORDER BY created_at""", [ids]).fetchall()
    return {r[0]: {"kind": r[1], "reviewer": r[2], "reason": r[3], "other_id": r[4],
                   "created_at": r[5].isoformat(sep=" ", timespec="seconds")} for r in rows}


def _check_page(limit: Any, offset: Any) -> tuple[int, int]:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise InvalidField("limit", f"must be an integer from 1 to {MAX_LIMIT}")
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise InvalidField("offset", "must be an integer >= 0")
    return limit, offset


def list_examples(ws: Workspace, f: ExampleFilter | None = None, *, limit: int = 50,
                  offset: int = 0) -> dict[str, Any]:
    """``{"examples": [...], "total", "limit", "offset"}``: one page of the filtered examples, each with its
    split, status, provenance fields and live ``review`` decision (or None)."""
    f = (f or ExampleFilter()).check()
    limit, offset = _check_page(limit, offset)

    def run() -> dict[str, Any]:
        with _read(ws) as con:
            rows = page_rows(con, f, limit, offset)
            csql, cparams = count_query(con, f)
            total = con.execute(csql, cparams).fetchall()[0][0]
            reviews = _reviews(con, [r[0] for r in rows])
        out = []
        for r in rows:
            item = _row(r)
            item["review"] = reviews.get(item["id"])
            out.append(item)
        return {"examples": out, "total": int(total), "limit": limit, "offset": offset}

    return retrying(run)


def examples_progress(ws: Workspace, f: ExampleFilter | None = None) -> dict[str, int]:
    """``{"total", "reviewed"}`` of the filtered queue (reviewed: a live accept, reject or edit)."""
    f = (f or ExampleFilter()).check()

    def run() -> dict[str, int]:
        with _read(ws) as con:
            csql, params = count_query(con, f)
            total = con.execute(csql, params).fetchall()[0][0]
            joined = " AND " if " WHERE " in csql else " WHERE "
            reviewed = con.execute(
                csql + joined + "e.id IN (SELECT example_id FROM decisions WHERE undone_at IS NULL "
                "AND kind IN ('review_accept', 'review_reject', 'edited'))", params).fetchall()[0][0]
        return {"total": int(total), "reviewed": int(reviewed)}

    return retrying(run)


def resume_offset(ws: Workspace, f: ExampleFilter | None = None) -> int | None:
    """The position in the filtered queue of its first example without a live review decision (None: all done)."""
    f = (f or ExampleFilter()).check()

    def run() -> int | None:
        with _read(ws) as con:
            where, params = _where(con, f)
            rows = con.execute(
                f"""SELECT pos FROM (
                        SELECT e.id, row_number() OVER (ORDER BY {ORDER}) - 1 AS pos{_from(f)}{where}) q
                    WHERE q.id NOT IN (SELECT example_id FROM decisions WHERE undone_at IS NULL
                                       AND kind IN ('review_accept', 'review_reject', 'edited'))
                    ORDER BY pos LIMIT 1""", params).fetchall()
        return int(rows[0][0]) if rows else None

    return retrying(run)


def _provenance(item: dict[str, Any]) -> list[tuple[str, Any]]:
    """(label, value) lines of where an example came from: file and line, teacher and prompt, trace."""
    meta = item.get("meta") or {}
    out: list[tuple[str, Any]] = [("origin", item["origin"])]
    src = meta.get("source") if isinstance(meta.get("source"), dict) else None
    if src:
        where = src.get("path") or item.get("source")
        unit = next((k for k in ("line", "record", "row") if k in src), None)
        out.append(("source", f"{where}" + (f", {unit} {src[unit]}" if unit else "")))
        if src.get("format"):
            out.append(("format", src["format"]))
    elif item.get("source"):
        out.append(("source", item["source"]))
    for key in ("teacher", "job", "mode", "template", "template_hash", "weakness_id", "question_line", "trace_id",
                "rating", "label", "edited_by"):
        if meta.get(key) is not None:
            out.append((key.replace("_", " "), meta[key]))
    if isinstance(meta.get("judge"), dict):
        out.append(("judge", f"{meta['judge'].get('model')}: {meta['judge'].get('score')}"))
    if item.get("parent_id"):
        out.append(("edited from", item["parent_id"]))
    return out


def get_example(ws: Workspace, eid: str) -> dict[str, Any]:
    """One example: its fields, ``provenance`` lines, every ``decisions`` row about it, its ``edits``."""
    eid = _id("example_id", eid)

    def run() -> dict[str, Any]:
        with _read(ws) as con:
            rows = con.execute(
                """SELECT e.id, e.messages, e.origin, e.task, s.split, e.status, e.source, e.parent_id, e.meta,
                          e.created_at, e.excluded_reason
                   FROM examples e LEFT JOIN splits s ON s.example_id = e.id WHERE e.id = ?""", [eid]).fetchall()
            if not rows:
                raise NotFound(f"no example {eid}")
            d_rows = con.execute(
                """SELECT example_id, kind, other_id, score, reason, reviewer, created_at, undone_at FROM decisions
                   WHERE example_id = ? OR other_id = ? ORDER BY created_at, kind""", [eid, eid]).fetchall()
            edits = [r[0] for r in con.execute("SELECT id FROM examples WHERE parent_id = ? ORDER BY created_at",
                                               [eid]).fetchall()]
            review = _reviews(con, [eid]).get(eid)
        item = _row(rows[0])
        item["review"] = review
        item["decisions"] = [
            {"example_id": r[0], "kind": r[1], "other_id": r[2], "score": r[3], "reason": r[4], "reviewer": r[5],
             "created_at": r[6].isoformat(sep=" ", timespec="seconds"),
             "undone_at": r[7].isoformat(sep=" ", timespec="seconds") if r[7] else None}
            for r in d_rows]
        item["edits"] = edits
        item["provenance"] = _provenance(item)
        return item

    return retrying(run)


# -- decisions ------------------------------------------------------------------------------------------------------
def _check_messages(value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not value:
        raise InvalidField("messages", "must be a non-empty list of {role, content} turns")
    for i, m in enumerate(value):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str) or not isinstance(m.get("content"), str):
            raise InvalidField(f"messages[{i}]", "must be an object with string role and content")
        if m["role"] not in ("system", "user", "assistant"):
            raise InvalidField(f"messages[{i}].role", "must be system, user or assistant")
        if len(m["content"]) > 200_000:
            raise InvalidField(f"messages[{i}].content", "is longer than 200000 characters")
    messages = normalize_messages([{"role": m["role"], "content": m["content"]} for m in value])
    errs = check_chat_record({"messages": messages})
    if errs:
        raise InvalidField("messages", "is not a valid chat example: " + ", ".join(errs))
    return messages


def _undo_reviews(con: duckdb.DuckDBPyConnection, eid: str, now: Any) -> None:
    con.execute("""UPDATE decisions SET undone_at = ? WHERE example_id = ? AND undone_at IS NULL
                   AND kind IN ('review_accept', 'review_reject')""", [now, eid])


def _reactivate_if_free(con: duckdb.DuckDBPyConnection, eid: str) -> None:
    """Active again when no live decision excludes it any more (after a reject was replaced by an accept)."""
    from curator.quality.decisions import NON_EXCLUDING_KINDS

    con.execute(
        """UPDATE examples SET status = 'active', excluded_reason = NULL
           WHERE id = ? AND status = 'excluded' AND excluded_reason LIKE 'review_reject:%'
             AND id NOT IN (SELECT example_id FROM decisions WHERE undone_at IS NULL
                            AND kind NOT IN (SELECT unnest(?::VARCHAR[])))""", [eid, list(NON_EXCLUDING_KINDS)])


def decide(ws: Workspace, eid: str, action: Any, *, reviewer: str, reason: Any = None,
           messages: Any = None) -> dict[str, Any]:
    """Record a reviewer's ``accept``, ``reject`` (``reason`` stored) or ``edit`` (``messages``: the corrected
    conversation) of one example.  Returns ``{"example_id", "action", "kind", "status", "new_id"?}``."""
    eid = _id("example_id", eid)
    if action not in ACTIONS:
        raise InvalidField("action", f"must be one of {', '.join(ACTIONS)}")
    reason = _text("reason", reason, MAX_REASON)
    if action == "edit":
        return _edit(ws, eid, _check_messages(messages), reviewer, reason)
    if messages is not None:
        raise InvalidField("messages", "only an edit takes messages")
    kind = _ACTION_KIND[action]

    def run() -> dict[str, Any]:
        from datetime import datetime

        now = datetime.now()
        with ws.transaction() as con:
            rows = con.execute("SELECT status, excluded_reason FROM examples WHERE id = ?", [eid]).fetchall()
            if not rows:
                raise NotFound(f"no example {eid}")
            if con.execute("SELECT count(*) FROM decisions WHERE example_id = ? AND kind = 'edited' "
                           "AND undone_at IS NULL", [eid]).fetchall()[0][0]:
                raise Conflict(f"example {eid} was edited into a new example; review that one "
                               "(or `curator restore edited` first)")
            _undo_reviews(con, eid, now)
            con.execute("INSERT INTO decisions (example_id, kind, reason, reviewer, created_at) VALUES (?, ?, ?, ?, ?)",
                        [eid, kind, reason, reviewer, now])
            if kind == "review_reject":
                con.execute("""UPDATE examples SET status = 'excluded', excluded_reason = ?
                               WHERE id = ? AND status = 'active'""",
                            [f"review_reject: {reason or 'rejected'} ({reviewer})", eid])
            else:
                _reactivate_if_free(con, eid)
            status = con.execute("SELECT status FROM examples WHERE id = ?", [eid]).fetchall()[0][0]
        return {"example_id": eid, "action": action, "kind": kind, "status": status, "reviewer": reviewer}

    return retrying(run)


def _gate_edit(ws: Workspace, old: dict[str, Any], cand: Example) -> str | None:
    """Why the edited example may not be stored (None: it may).  The gates of new data, old example left out."""
    from curator.quality.dedup import find_duplicates_of
    from curator.quality.leakage import find_leaks_of

    split = old["split"] or "train"
    with _read(ws) as con:
        present = con.execute("SELECT status FROM examples WHERE id = ?", [cand.id]).fetchall()
        if present:
            return f"this conversation is already stored as example {cand.id} ({present[0][0]})"
        if split == "train":
            rows = con.execute(
                """SELECT s.split, min(e.id) FROM examples e JOIN splits s ON s.example_id = e.id
                   WHERE s.split IN ('eval', 'test') AND e.status = 'active' AND e.group_key = ? AND e.id <> ?
                   GROUP BY s.split ORDER BY s.split DESC""", [cand.group, old["id"]]).fetchall()
            if rows:
                return f"leakage (prompt) into {rows[0][0]} example {rows[0][1]}: same first user turn"
    others = ("eval", "test") if split == "train" else ("train",)
    for m in find_leaks_of(ws, [cand], splits=others, methods=("exact", "ngram")):
        if m.other_id != old["id"]:
            score = "" if m.kind == "exact" else f" {m.score:.2f}"
            return f"leakage ({m.kind}{score}) into {m.split} example {m.other_id}"
    for m in find_duplicates_of(ws, [cand], methods=("exact",)):
        if m.other_id != old["id"]:
            return f"duplicate (exact) of example {m.other_id}"
    return None


def _edit(ws: Workspace, eid: str, messages: list[dict[str, Any]], reviewer: str,
          reason: str | None) -> dict[str, Any]:
    from curator.data.ingest import Columns, store_examples

    old = get_example(ws, eid)
    if old["status"] != "active":
        raise Conflict(f"example {eid} is {old['status']} ({old['excluded_reason']}); only an active example is edited")
    new_id = example_id(messages)
    if new_id == eid:
        raise InvalidField("messages", "the edit changes nothing")
    meta = {"edited_by": reviewer, "parent_origin": old["origin"]}
    if (old["meta"] or {}).get("source") is not None:
        meta["source"] = old["meta"]["source"]
    cand = Example(messages=messages, task=old["task"], origin="edited", source=old["source"], parent_id=eid, meta=meta)
    refusal = retrying(lambda: _gate_edit(ws, old, cand))
    if refusal is not None:
        raise InvalidField("messages", f"the edit was refused: {refusal}")
    split = old["split"] or "train"

    def run() -> dict[str, Any]:
        from datetime import datetime

        now = datetime.now()
        with ws.transaction() as con:
            rows = con.execute("SELECT status FROM examples WHERE id = ?", [eid]).fetchall()
            if not rows or rows[0][0] != "active":
                raise Conflict(f"example {eid} changed while the edit was checked; reload it")
            pinned = con.execute("SELECT pinned FROM splits WHERE example_id = ?", [eid]).fetchall()
            added, _ = store_examples(con, ws, Columns.of([cand], [split]))
            if not added:
                raise Conflict(f"example {new_id} appeared while the edit was checked; reload")
            con.execute("UPDATE splits SET pinned = ? WHERE example_id = ?",
                        [bool(pinned[0][0]) if pinned else False, new_id])
            _undo_reviews(con, eid, now)
            con.execute("""INSERT INTO decisions (example_id, kind, other_id, reason, reviewer, created_at)
                           VALUES (?, 'edited', ?, ?, ?, ?)""", [eid, new_id, reason or "edited in review", reviewer, now])
            con.execute("UPDATE examples SET status = 'excluded', excluded_reason = ? WHERE id = ?",
                        [f"edited: into {new_id} ({reviewer})", eid])
        return {"example_id": eid, "action": "edit", "kind": "edited", "status": "excluded", "new_id": new_id,
                "split": split, "reviewer": reviewer}

    return retrying(run)


# -- the answers queue ----------------------------------------------------------------------------------------------
def list_evals(ws: Workspace, reviewer: str | None = None) -> list[dict[str, Any]]:
    """Every evaluation with its answers count and how many of them ``reviewer`` rated."""

    def run() -> list[dict[str, Any]]:
        with _read(ws) as con:
            rows = con.execute(
                """SELECT v.id, v.run_id, v.snapshot_id, v.split, v.created_at, count(r.example_id),
                          count(DISTINCT h.example_id)
                   FROM evals v LEFT JOIN eval_results r ON r.eval_id = v.id
                   LEFT JOIN human_ratings h ON h.eval_id = v.id AND h.example_id = r.example_id AND h.reviewer = ?
                   GROUP BY ALL ORDER BY v.created_at, v.id""", [reviewer or ""]).fetchall()
        return [{"id": r[0], "run_id": r[1], "snapshot_id": r[2], "split": r[3],
                 "created_at": r[4].isoformat(sep=" ", timespec="seconds"), "answers": int(r[5]), "rated": int(r[6])}
                for r in rows]

    return retrying(run)


def _prompt_and_reference(messages: list[dict[str, Any]] | None) -> tuple[list[dict[str, Any]], str | None]:
    msgs = list(messages or [])
    if msgs and msgs[-1].get("role") == "assistant":
        return msgs[:-1], msgs[-1].get("content")
    return msgs, None


def list_answers(ws: Workspace, eval_id: str, reviewer: str, *, limit: int = 1, offset: int = 0) -> dict[str, Any]:
    """One page of an evaluation's answers (by example id): ``{"eval", "answers": [...], "total", "rated",
    "resume"}``; each answer has its prompt, reference, prediction, scores, meta and this reviewer's rating."""
    eval_id = _id("eval_id", eval_id)
    limit, offset = _check_page(limit, offset)

    def run() -> dict[str, Any]:
        with _read(ws) as con:
            ev = con.execute("SELECT id, run_id, snapshot_id, split FROM evals WHERE id = ?", [eval_id]).fetchall()
            if not ev:
                raise NotFound(f"no evaluation {eval_id}")
            rows = con.execute(
                """SELECT r.example_id, e.messages, r.prediction, r.scores, r.meta, h.rating, h.note
                   FROM eval_results r LEFT JOIN examples e ON e.id = r.example_id
                   LEFT JOIN human_ratings h ON h.eval_id = r.eval_id AND h.example_id = r.example_id AND h.reviewer = ?
                   WHERE r.eval_id = ? ORDER BY r.example_id LIMIT ? OFFSET ?""",
                [reviewer, eval_id, limit, offset]).fetchall()
            total, rated = con.execute(
                """SELECT count(*), count(h.rating) FROM eval_results r
                   LEFT JOIN human_ratings h ON h.eval_id = r.eval_id AND h.example_id = r.example_id AND h.reviewer = ?
                   WHERE r.eval_id = ?""", [reviewer, eval_id]).fetchall()[0]
            first = con.execute(
                """SELECT pos FROM (SELECT r.example_id, row_number() OVER (ORDER BY r.example_id) - 1 AS pos
                   FROM eval_results r WHERE r.eval_id = ?) q
                   WHERE q.example_id NOT IN (SELECT example_id FROM human_ratings WHERE eval_id = ? AND reviewer = ?)
                   ORDER BY pos LIMIT 1""", [eval_id, eval_id, reviewer]).fetchall()
        answers = []
        for r in rows:
            prompt, reference = _prompt_and_reference(_json(r[1]))
            answers.append({"example_id": r[0], "prompt": prompt, "reference": reference, "prediction": r[2],
                            "scores": _json(r[3]) or {}, "meta": _json(r[4]) or {}, "rating": r[5], "note": r[6]})
        return {"eval": {"id": ev[0][0], "run_id": ev[0][1], "snapshot_id": ev[0][2], "split": ev[0][3]},
                "answers": answers, "total": int(total), "rated": int(rated), "offset": offset,
                "resume": int(first[0][0]) if first else None}

    return retrying(run)


def rate(ws: Workspace, eval_id: Any, example_id_: Any, rating: Any, *, reviewer: str,
         note: Any = None) -> dict[str, Any]:
    """Store ``reviewer``'s 1-5 rating (and note) of one answer; a second rating by the same person replaces it."""
    eval_id = _id("eval_id", eval_id)
    eid = _id("example_id", example_id_)
    if isinstance(rating, bool) or not isinstance(rating, int) or not 1 <= rating <= 5:
        raise InvalidField("rating", "must be an integer from 1 to 5")
    note = _text("note", note, MAX_NOTE)

    def run() -> dict[str, Any]:
        with ws.transaction() as con:
            if not con.execute("SELECT count(*) FROM evals WHERE id = ?", [eval_id]).fetchall()[0][0]:
                raise NotFound(f"no evaluation {eval_id}")
            if not con.execute("SELECT count(*) FROM eval_results WHERE eval_id = ? AND example_id = ?",
                               [eval_id, eid]).fetchall()[0][0]:
                raise NotFound(f"evaluation {eval_id} has no answer for example {eid}")
            con.execute("DELETE FROM human_ratings WHERE eval_id = ? AND example_id = ? AND reviewer = ?",
                        [eval_id, eid, reviewer])
            con.execute("INSERT INTO human_ratings (eval_id, example_id, reviewer, rating, note) VALUES (?, ?, ?, ?, ?)",
                        [eval_id, eid, reviewer, rating, note])
        return {"eval_id": eval_id, "example_id": eid, "reviewer": reviewer, "rating": rating, "note": note}

    return retrying(run)


# -- the A/B queue --------------------------------------------------------------------------------------------------
def is_swapped(left_eval: str, right_eval: str, eid: str) -> bool:
    """Whether the right evaluation's answer is shown first (as "A") for this item: a fixed coin per item."""
    return hashlib.sha256(f"{left_eval}\x1f{right_eval}\x1f{eid}".encode()).digest()[0] & 1 == 1


def list_pairs(ws: Workspace, left_eval: str, right_eval: str, reviewer: str, *, limit: int = 1,
               offset: int = 0) -> dict[str, Any]:
    """One page of the examples both evaluations answered, blind: each item has ``prompt``, ``a`` and ``b``
    (the answers in screen order), ``swapped`` (True: ``a`` is the right evaluation's) and this reviewer's
    ``choice`` (in evaluation order).  Also ``total``, ``chosen`` and ``resume``."""
    left_eval, right_eval = _id("left_eval", left_eval), _id("right_eval", right_eval)
    if left_eval == right_eval:
        raise InvalidField("right_eval", "must differ from left_eval")
    limit, offset = _check_page(limit, offset)

    def run() -> dict[str, Any]:
        with _read(ws) as con:
            for field, ev in (("left_eval", left_eval), ("right_eval", right_eval)):
                if not con.execute("SELECT count(*) FROM evals WHERE id = ?", [ev]).fetchall()[0][0]:
                    raise NotFound(f"no evaluation {ev} ({field})")
            both = """FROM eval_results l JOIN eval_results r ON r.example_id = l.example_id AND r.eval_id = ?
                      LEFT JOIN human_choices c ON c.left_eval = ? AND c.right_eval = ? AND c.example_id = l.example_id
                           AND c.reviewer = ?
                      WHERE l.eval_id = ?"""
            params = [right_eval, left_eval, right_eval, reviewer, left_eval]
            rows = con.execute(
                f"""SELECT l.example_id, e.messages, l.prediction, r.prediction, c.choice {both.replace(
                    'WHERE', 'LEFT JOIN examples e ON e.id = l.example_id WHERE')}
                    ORDER BY l.example_id LIMIT ? OFFSET ?""", [*params, limit, offset]).fetchall()
            total, chosen = con.execute(f"SELECT count(*), count(c.choice) {both}", params).fetchall()[0]
            first = con.execute(
                f"""SELECT pos FROM (SELECT l.example_id, c.choice,
                        row_number() OVER (ORDER BY l.example_id) - 1 AS pos {both}) q
                    WHERE q.choice IS NULL ORDER BY pos LIMIT 1""", params).fetchall()
        items = []
        for r in rows:
            prompt, reference = _prompt_and_reference(_json(r[1]))
            swapped = is_swapped(left_eval, right_eval, r[0])
            a, b = (r[3], r[2]) if swapped else (r[2], r[3])
            items.append({"example_id": r[0], "prompt": prompt, "reference": reference, "a": a, "b": b,
                          "swapped": swapped, "choice": r[4]})
        return {"left_eval": left_eval, "right_eval": right_eval, "items": items, "total": int(total),
                "chosen": int(chosen), "offset": offset, "resume": int(first[0][0]) if first else None}

    return retrying(run)


def prefer(ws: Workspace, left_eval: Any, right_eval: Any, example_id_: Any, choice: Any, *,
           reviewer: str) -> dict[str, Any]:
    """Store ``reviewer``'s choice between two evaluations' answers to one prompt (``left``/``right``/``tie`` in
    evaluation order).  A non-tie also stores the preference pair (chosen, rejected; ``meta.basis`` human).
    A second choice by the same person on the same item replaces the first (and its pair)."""
    left_eval, right_eval = _id("left_eval", left_eval), _id("right_eval", right_eval)
    eid = _id("example_id", example_id_)
    if left_eval == right_eval:
        raise InvalidField("right_eval", "must differ from left_eval")
    if choice not in CHOICES:
        raise InvalidField("choice", f"must be one of {', '.join(CHOICES)}")

    def run() -> dict[str, Any]:
        with ws.transaction() as con:
            answers: dict[str, str] = {}
            for field, ev in (("left_eval", left_eval), ("right_eval", right_eval)):
                if not con.execute("SELECT count(*) FROM evals WHERE id = ?", [ev]).fetchall()[0][0]:
                    raise NotFound(f"no evaluation {ev} ({field})")
                got = con.execute("SELECT prediction FROM eval_results WHERE eval_id = ? AND example_id = ?",
                                  [ev, eid]).fetchall()
                if not got:
                    raise NotFound(f"evaluation {ev} has no answer for example {eid}")
                answers[field] = got[0][0] or ""
            ex = con.execute("SELECT messages FROM examples WHERE id = ?", [eid]).fetchall()
            if not ex:
                raise NotFound(f"no example {eid}")
            old = con.execute(
                """SELECT preference_id FROM human_choices WHERE left_eval = ? AND right_eval = ? AND example_id = ?
                   AND reviewer = ?""", [left_eval, right_eval, eid, reviewer]).fetchall()
            con.execute("DELETE FROM human_choices WHERE left_eval = ? AND right_eval = ? AND example_id = ? "
                        "AND reviewer = ?", [left_eval, right_eval, eid, reviewer])
            for (pid,) in old:
                if pid and not con.execute("SELECT count(*) FROM human_choices WHERE preference_id = ?",
                                           [pid]).fetchall()[0][0]:
                    con.execute("DELETE FROM preferences WHERE id = ? AND meta->>'basis' = 'human'", [pid])
            pid = None
            if choice != "tie":
                chosen_eval = left_eval if choice == "left" else right_eval
                chosen = answers["left_eval" if choice == "left" else "right_eval"]
                rejected = answers["right_eval" if choice == "left" else "left_eval"]
                if chosen != rejected:
                    prompt, _ = _prompt_and_reference(_json(ex[0][0]))
                    pair = Pair(prompt=prompt, chosen=chosen, rejected=rejected, source=f"review:{reviewer}",
                                margin=None, meta={"basis": "human", "reviewer": reviewer, "example_id": eid,
                                                   "left_eval": left_eval, "right_eval": right_eval,
                                                   "chosen_eval": chosen_eval})
                    store_pairs(con, [pair])
                    pid = pair.id
            con.execute("""INSERT INTO human_choices (left_eval, right_eval, example_id, reviewer, choice, preference_id)
                           VALUES (?, ?, ?, ?, ?, ?)""", [left_eval, right_eval, eid, reviewer, choice, pid])
        return {"left_eval": left_eval, "right_eval": right_eval, "example_id": eid, "reviewer": reviewer,
                "choice": choice, "preference_id": pid}

    return retrying(run)
