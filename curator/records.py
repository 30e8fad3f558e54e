"""Examples: normalised chat messages, their content hash and provenance.

An example is identified by the sha256 of its *normalised* messages, so the same
conversation ingested twice (from the same or another file) is stored once.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any

import orjson

__all__ = [
    "ROLES",
    "Example",
    "messages_json",
    "example_id",
    "first_user_turn",
    "group_key",
    "normalize_messages",
    "normalize_text",
]

ROLES = ("system", "user", "assistant")
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


def normalize_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Normalise each message's content; keep ``role``, ``content`` and, when present, ``name`` and ``weight``."""
    out: list[dict[str, Any]] = []
    for m in messages:
        n: dict[str, Any] = {"role": m["role"], "content": normalize_text(m["content"])}
        if m.get("name") is not None:
            n["name"] = m["name"]
        if m.get("weight") is not None:
            n["weight"] = m["weight"]
        out.append(n)
    return out


def messages_json(messages: list[dict[str, Any]]) -> str:
    """Compact JSON of (normalised) messages, as stored in the workspace."""
    return orjson.dumps(messages).decode("utf-8")


def example_id(messages: list[dict[str, Any]]) -> str:
    """sha256 (hex) of already-normalised messages: role, name and content of each, length-prefixed.

    The key is a plain string, not JSON, so that it does not depend on a JSON library's escaping:
    ``role \x1f name \x1f len(content) \x1f content`` per message, joined by ``\x1e``.  ``weight`` is
    not part of it (the same conversation with other loss weights is the same example).
    """
    key = "\x1e".join(
        f"{m['role']}\x1f{m.get('name') or ''}\x1f{len(m['content'])}\x1f{m['content']}" for m in messages
    )
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


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
            self.id = example_id(self.messages)

    @classmethod
    def from_messages(cls, messages: list[dict[str, Any]], **kw: Any) -> Example:
        """Normalise ``messages`` and build the example (the id follows from them)."""
        return cls(messages=normalize_messages(messages), **kw)


    @property
    def group(self) -> str:
        return group_key(self.messages)
