"""Examples: normalised chat messages, their content hash and provenance.

An example is identified by the sha256 of its *normalised* messages, so the same
conversation ingested twice (from the same or another file) is stored once.

A stored message is ``{"role", "content"}`` with, when present, ``name``, ``weight`` (0 or 1, on
assistant messages), ``tool_calls`` (on assistant messages: ``[{"id", "type": "function",
"function": {"name", "arguments"}}]``, ``arguments`` a JSON text) and ``tool_call_id`` (on ``tool``
messages).  ``content`` is always a string: a list of text parts is joined with ``"\n"`` and the
``null`` content of an assistant message that only calls tools is stored as ``""``.  The example's
function schemas (OpenAI's top-level ``tools`` list) live in ``meta["tools"]``.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any

import orjson

__all__ = [
    "ROLES",
    "TEXT_PART_SEPARATOR",
    "Example",
    "content_text",
    "messages_json",
    "example_id",
    "first_user_turn",
    "group_key",
    "message_text",
    "normalize_messages",
    "normalize_text",
    "uses_tools",
]

ROLES = ("system", "user", "assistant", "tool")
#: What joins the text parts of a ``content`` list (the way vLLM's OpenAI server joins them).
TEXT_PART_SEPARATOR = "\n"
_TRAILING_WS = re.compile(r"[ \t\u00a0\u3000]+$", re.MULTILINE)
_MANY_BLANK_LINES = re.compile(r"\n{3,}")


def normalize_text(text: str) -> str:
    """Unicode NFC, ``\\r\\n`` to ``\\n``, no trailing spaces on lines, at most one blank line, stripped.

    Inner spacing is kept (indentation in code answers matters); only what is invisible goes.
    """
    # Each step only runs when it can change something: ingest calls this for every message.
    if not text.isascii() and not unicodedata.is_normalized("NFC", text):
        text = unicodedata.normalize("NFC", text)
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    if "\n" in text:
        if " \n" in text or "\t\n" in text or "\u00a0\n" in text or "\u3000\n" in text:
            text = _TRAILING_WS.sub("", text)
        if "\n\n\n" in text:
            text = _MANY_BLANK_LINES.sub("\n\n", text)
    return text.strip()


def content_text(content: Any) -> str:
    """A message's ``content`` as text: a string as is, a list of ``{"type": "text", "text"}`` parts joined
    with :data:`TEXT_PART_SEPARATOR`, ``None`` (an assistant message that only calls tools) as ``""``.

    The readers refuse other parts (images, audio) before this is called.
    """
    if content is None:
        return ""
    if isinstance(content, list):
        return TEXT_PART_SEPARATOR.join(p["text"] for p in content)
    return str(content)


def _tool_call(call: dict[str, Any]) -> dict[str, Any]:
    fn = call["function"]
    return {"id": call["id"], "type": call.get("type") or "function",
            "function": {"name": fn["name"], "arguments": fn["arguments"]}}


def normalize_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Normalise each message's content; keep ``role``, ``content`` and, when present, ``name``, ``weight``,
    ``tool_calls`` and ``tool_call_id`` (the arguments of a tool call are kept exactly as given)."""
    out: list[dict[str, Any]] = []
    for m in messages:
        n: dict[str, Any] = {"role": m["role"], "content": normalize_text(content_text(m.get("content")))}
        if m.get("name") is not None:
            n["name"] = m["name"]
        w = m.get("weight")
        if w is not None:
            n["weight"] = int(w) if w in (0, 1) else w  # 1.0 is stored as 1
        if m.get("tool_calls"):
            n["tool_calls"] = [_tool_call(c) for c in m["tool_calls"]]
        if m.get("tool_call_id") is not None:
            n["tool_call_id"] = m["tool_call_id"]
        out.append(n)
    return out


def messages_json(messages: list[dict[str, Any]]) -> str:
    """Compact JSON of (normalised) messages, as stored in the workspace."""
    return orjson.dumps(messages).decode("utf-8")


def uses_tools(messages: list[dict[str, Any]]) -> bool:
    """Whether a conversation calls tools (an assistant ``tool_calls``) or holds a tool's answer."""
    return any(m.get("tool_calls") or m.get("role") == "tool" for m in messages)


def _segment(m: dict[str, Any]) -> str:
    s = f"{m['role']}\x1f{m.get('name') or ''}\x1f{len(m['content'])}\x1f{m['content']}"
    calls = m.get("tool_calls")
    if calls:
        s += "\x1ftool_calls\x1f" + "\x1d".join(
            f"{c['id']}\x1f{c.get('type') or 'function'}\x1f{c['function']['name']}\x1f"
            f"{len(c['function']['arguments'])}\x1f{c['function']['arguments']}" for c in calls)
    if m.get("tool_call_id") is not None:
        s += f"\x1ftool_call_id\x1f{m['tool_call_id']}"
    return s


def example_id(messages: list[dict[str, Any]], tools: list[Any] | None = None) -> str:
    """sha256 (hex) of already-normalised messages: role, name and content of each, length-prefixed.

    The key is a plain string, not JSON, so that it does not depend on a JSON library's escaping:
    ``role \x1f name \x1f len(content) \x1f content`` per message, joined by ``\x1e``.  ``weight`` is
    not part of it (the same conversation with other loss weights is the same example).

    Tool use extends the key only where it is present, so every example without it keeps its id:
    a message's ``tool_calls`` (id, type, name and length-prefixed arguments of each call) and
    ``tool_call_id`` are appended to its segment after ``\x1f`` (which cannot follow the
    length-prefixed content in a key without them), and the ``tools`` list (JSON with sorted keys)
    after ``\x1d`` at the end, for a conversation that uses tools (:func:`uses_tools`).  A ``tools``
    list offered to a conversation that calls none does not change its id.
    """
    key = "\x1e".join(_segment(m) for m in messages)
    if tools and uses_tools(messages):
        key += "\x1dtools\x1f" + json.dumps(tools, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def message_text(m: dict[str, Any]) -> str:
    """A message's text with its tool calls written out (``name(arguments)``, one per line), for dedup
    and similarity: two conversations that differ only in the calls they make are not the same text."""
    calls = m.get("tool_calls")
    if not calls:
        return str(m.get("content") or "")
    lines = [str(m.get("content") or "")] if m.get("content") else []
    lines += [f"{c['function']['name']}({c['function']['arguments']})" for c in calls]
    return "\n".join(lines)


def first_user_turn(messages: list[dict[str, Any]]) -> str:
    for m in messages:
        if m["role"] == "user":
            return m["content"]
    return ""


def group_key(messages: list[dict[str, Any]]) -> str:
    """Key of the split group: the first user turn, casefolded and with whitespace folded.

    Examples sharing it always land in the same split, so one prompt never sits in two splits.
    """
    text = first_user_turn(messages)
    if not text.isascii():
        text = unicodedata.normalize("NFKC", text)
    text = " ".join(text.split()).casefold()
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


@dataclass
class Example:
    """One normalised chat example ready to be stored."""

    messages: list[dict[str, Any]]
    task: str = "default"
    origin: str = "import"
    source: str | None = None
    parent_id: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    id: str = ""

    def __post_init__(self) -> None:
        if not self.id:
            self.id = example_id(self.messages, self.meta.get("tools"))

    @classmethod
    def from_messages(cls, messages: list[dict[str, Any]], **kw: Any) -> Example:
        """Normalise ``messages`` and build the example (the id follows from them)."""
        return cls(messages=normalize_messages(messages), **kw)

    @property
    def group(self) -> str:
        return group_key(self.messages)
