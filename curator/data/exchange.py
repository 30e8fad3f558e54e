"""The row layout of curator's Parquet and Hugging Face exports, shared by the writer and the readers.

``curator snapshot export --format parquet`` and ``--format hf`` write one row per example:

=============  ===========================================================  ==========================
column         type                                                         holds
=============  ===========================================================  ==========================
``id``         string                                                       the example id
``split``      string (Parquet only; in ``hf`` the split is the folder)     ``train``, ``validation``,
                                                                            ``test``
``task``       string                                                       the task
``origin``     string                                                       seed, import, synthetic...
``source``     string                                                       the file it came from
``parent_id``  string                                                       the example it derives from
``messages``   ``list<struct<role, content, name, weight, tool_calls,       the conversation
               tool_call_id>>``
``meta``       JSON (Arrow ``arrow.json`` extension, Parquet logical JSON)  everything else
=============  ===========================================================  ==========================

``messages`` is a list of structs whose fields are addressed by name; a field a message does not have
is null (``name`` on most messages, ``weight`` where no loss weight was given, ``tool_calls`` off an
assistant message that calls tools, ``tool_call_id`` off a tool message).  ``tool_calls`` is
``list<struct<id, type, function: struct<name, arguments>>>`` with ``arguments`` the JSON text of the
call's arguments, as in OpenAI's format.  New optional fields are appended at the end of
:data:`MESSAGE_FIELDS`: readers that select by name keep working, and the readers here drop null fields.
The example's function schemas (OpenAI's top-level ``tools``) are in ``meta`` under ``tools``.

:func:`openai_message` and :func:`openai_record` write a stored example back in OpenAI's chat
fine-tuning format (the ``openai`` export).

``meta`` is one JSON column rather than a struct over the union of the keys: its keys vary per example
and so do their types (a key may hold a list in one example and a string in another), which a struct
cannot hold, and a struct would give every example every key (``null`` where it had none), which
reads back as different meta.  The JSON column keeps each example's meta exactly as stored; DuckDB sees
it as ``JSON`` (``meta->>'$.key_phrases'``) and ``datasets`` decodes it to a dict (its ``Json`` feature).

Curator's own readers (``curator ingest`` of such a Parquet file or ``datasets`` folder) recognise the
layout by its columns (:func:`is_export_layout`) and turn each row back into a chat record
(:func:`from_export_record`): the messages, the task and the meta keys, with the split taken from the
``split`` column or the ``datasets`` split name (``validation`` is curator's ``eval``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import pyarrow as pa

__all__ = [
    "EXPORT_SPLIT_NAMES",
    "MESSAGE_FIELDS",
    "MESSAGE_TYPE",
    "export_schema",
    "export_table",
    "from_export_record",
    "is_export_layout",
    "openai_message",
    "openai_record",
]

#: One tool call of an assistant message (OpenAI's shape; ``arguments`` is JSON text).
TOOL_CALL_TYPE = pa.struct([
    pa.field("id", pa.string()), pa.field("type", pa.string()),
    pa.field("function", pa.struct([pa.field("name", pa.string()), pa.field("arguments", pa.string())])),
])
#: The fields of one message, in order (append new optional fields at the end).
MESSAGE_FIELDS: tuple[tuple[str, pa.DataType], ...] = (
    ("role", pa.string()), ("content", pa.string()), ("name", pa.string()), ("weight", pa.int64()),
    ("tool_calls", pa.list_(TOOL_CALL_TYPE)), ("tool_call_id", pa.string()),
)
MESSAGE_TYPE = pa.struct([pa.field(n, t) for n, t in MESSAGE_FIELDS])

#: curator split -> the name exports give it (the Hugging Face convention: the dev split is ``validation``).
EXPORT_SPLIT_NAMES = {"train": "train", "eval": "validation", "test": "test"}

#: The columns that make a table curator's export layout (``split`` is optional).
_LAYOUT = frozenset({"id", "task", "origin", "source", "parent_id", "messages", "meta"})


def export_schema(*, with_split: bool) -> pa.Schema:
    """The Arrow schema of an export table (``with_split``: the Parquet files' ``split`` column)."""
    fields = [pa.field("id", pa.string())]
    if with_split:
        fields.append(pa.field("split", pa.string()))
    fields += [pa.field(n, pa.string()) for n in ("task", "origin", "source", "parent_id")]
    fields += [pa.field("messages", pa.list_(MESSAGE_TYPE)), pa.field("meta", pa.json_())]
    return pa.schema(fields, metadata={b"curator.layout": b"examples/1"})


def _weight(example: str, value: Any) -> int | None:
    if value is None:
        return None
    if value in (0, 1):  # True/False and 0.0/1.0 too
        return int(value)
    raise ValueError(f"example {example}: message weight {value!r} is not 0 or 1")


def _message(example: str, m: dict[str, Any]) -> dict[str, Any]:
    known = {n for n, _ in MESSAGE_FIELDS}
    extra = sorted(set(m) - known)
    if extra:  # normalize_messages keeps only these fields: a new one needs its column first
        raise ValueError(f"example {example}: message field(s) {extra} have no place in the export layout "
                         "(add them to MESSAGE_FIELDS in curator/data/exchange.py)")
    return {"role": m["role"], "content": m["content"], "name": m.get("name"),
            "weight": _weight(example, m.get("weight")), "tool_calls": m.get("tool_calls") or None,
            "tool_call_id": m.get("tool_call_id")}


def openai_message(m: dict[str, Any]) -> dict[str, Any]:
    """A stored message in OpenAI's chat format: ``content`` ``null`` for an assistant message that only
    calls tools (stored as ``""``), ``name``, ``weight``, ``tool_calls``, ``tool_call_id`` when present."""
    content: str | None = m["content"]
    if m.get("tool_calls") and not content:
        content = None
    out: dict[str, Any] = {"role": m["role"], "content": content}
    for k in ("name", "weight", "tool_calls", "tool_call_id"):
        if m.get(k) is not None:
            out[k] = m[k]
    return out


def openai_record(messages: list[dict[str, Any]], meta: dict[str, Any], *, task: str | None = None,
                  messages_only: bool = False) -> dict[str, Any]:
    """One line of the ``openai`` export: ``messages``, the ``tools`` list and ``parallel_tool_calls`` when the
    example has them, then (unless ``messages_only``) ``task`` and the other meta keys."""
    rec: dict[str, Any] = {"messages": [openai_message(m) for m in messages]}
    for k in ("tools", "parallel_tool_calls"):
        if meta.get(k) is not None:
            rec[k] = meta[k]
    if not messages_only:
        if task is not None:
            rec["task"] = task
        for k, v in meta.items():
            rec.setdefault(k, v)
    return rec


def export_table(rows: Iterable[dict[str, Any]], split: str | None = None) -> pa.Table:
    """Snapshot rows (``messages`` decoded, ``meta`` as its stored JSON text) -> an export table.

    ``split`` (a curator split) adds the ``split`` column with its export name (``eval`` -> ``validation``).
    """
    cols: dict[str, list[Any]] = {n: [] for n in ("id", "task", "origin", "source", "parent_id", "messages", "meta")}
    for r in rows:
        for n in ("id", "task", "origin", "source", "parent_id"):
            cols[n].append(r[n])
        cols["messages"].append([_message(r["id"], m) for m in r["messages"]])
        cols["meta"].append(r["meta"])
    schema = export_schema(with_split=split is not None)
    if split is not None:
        cols["split"] = [EXPORT_SPLIT_NAMES[split]] * len(cols["id"])
    return pa.table({f.name: pa.array(cols[f.name], f.type) for f in schema}, schema=schema)


def is_export_layout(columns: Iterable[str]) -> bool:
    """Whether a table with these columns is a curator export (see the module docstring)."""
    return _LAYOUT <= set(columns)


def from_export_record(rec: dict[str, Any]) -> dict[str, Any]:
    """An export row -> the chat record it came from: ``messages`` (null fields dropped), ``task``, the meta keys.

    The provenance columns (``id``, ``split``, ``origin``, ``source``, ``parent_id``) are left out: ingest
    computes the id again from the messages and records its own provenance.  A ``meta`` that is not a JSON
    object raises ``ValueError`` (the reader reports it with the row number).
    """
    meta = rec.get("meta")
    if isinstance(meta, str):
        try:
            meta = json.loads(meta)
        except ValueError as e:
            raise ValueError(f'"meta" is not valid JSON: {e}') from None
    if meta is None:
        meta = {}
    if not isinstance(meta, dict):
        raise ValueError(f'"meta" must be a JSON object, got {type(meta).__name__}')
    messages = rec.get("messages")
    if isinstance(messages, list):
        messages = [{k: v for k, v in m.items() if v is not None} if isinstance(m, dict) else m for m in messages]
    out: dict[str, Any] = {"messages": messages}
    if rec.get("task") is not None:
        out["task"] = rec["task"]
    for k, v in meta.items():
        out.setdefault(k, v)  # ("messages" and "task" cannot be meta keys: the chat reader takes them)
    return out
