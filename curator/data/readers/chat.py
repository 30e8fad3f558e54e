"""OpenAI chat fine-tuning JSONL: ``{"messages": [{"role", "content", "weight"?}, ...]}``."""

from __future__ import annotations

from typing import Any

from curator.data.readers.shapes import RowError, check_messages

NAME = "chat"
__all__ = ["NAME", "convert", "detect"]


def detect(obj: dict[str, Any]) -> bool:
    return "messages" in obj


def convert(obj: dict[str, Any]) -> list[tuple[list[dict[str, Any]], dict[str, Any]]]:
    if "messages" not in obj:
        raise RowError('missing "messages"')
    messages = check_messages(obj["messages"])
    for i, m in enumerate(messages, 1):
        w = m.get("weight")
        if w is not None and w not in (0, 1):
            raise RowError(f'message {i} "weight" must be 0 or 1, got {w!r}')
    # Everything else on the line is kept (e.g. ``key_phrases`` lists that the evaluator uses).
    meta = {k: v for k, v in obj.items() if k != "messages"}
    return [(messages, meta)]
