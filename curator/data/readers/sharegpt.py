"""ShareGPT: ``{"conversations": [{"from": "human"|"gpt"|"system", "value": ...}, ...]}``."""

from __future__ import annotations

from typing import Any

from curator.data.readers.shapes import RowError, check_messages

NAME = "sharegpt"
__all__ = ["NAME", "convert", "detect"]

_ROLE = {
    "human": "user", "user": "user", "prompter": "user",
    "gpt": "assistant", "assistant": "assistant", "chatgpt": "assistant", "bard": "assistant", "bing": "assistant",
    "model": "assistant", "system": "system",
}


def detect(obj: dict[str, Any]) -> bool:
    return "conversations" in obj


def convert(obj: dict[str, Any]) -> list[tuple[list[dict[str, Any]], dict[str, Any]]]:
    turns = obj.get("conversations")
    if not isinstance(turns, list) or not turns:
        raise RowError('"conversations" must be a non-empty list')
    messages = []
    for i, t in enumerate(turns, 1):
        if not isinstance(t, dict):
            raise RowError(f"turn {i} is not an object")
        who = t.get("from")
        if who not in _ROLE:
            raise RowError(f'turn {i} has unknown "from" {who!r} (expected one of {", ".join(sorted(_ROLE))})')
        messages.append({"role": _ROLE[who], "content": t.get("value")})
    meta = {"id": obj["id"]} if isinstance(obj.get("id"), str | int) else {}
    return [(check_messages(messages), meta)]
