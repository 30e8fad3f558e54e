"""Dolly: ``{"instruction", "context", "response"}``.

Also the Dolly decode files (``{"instruction", "text", "decoded"}``), where ``text`` is the
human reference answer and ``decoded`` a model's output, kept in ``meta``.
"""

from __future__ import annotations

from typing import Any

from curator.data.readers.shapes import prompt_with_input, require_str

NAME = "dolly"
__all__ = ["NAME", "convert", "detect"]


def detect(obj: dict[str, Any]) -> bool:
    return "instruction" in obj and ("response" in obj or ("text" in obj and "decoded" in obj))


def convert(obj: dict[str, Any]) -> list[tuple[list[dict[str, Any]], dict[str, Any]]]:
    instruction = require_str(obj, "instruction")
    context = require_str(obj, "context", allow_empty=True) if "context" in obj else ""
    answer_key = "response" if "response" in obj or "text" not in obj else "text"
    answer = require_str(obj, answer_key, allow_empty=True)
    meta: dict[str, Any] = {}
    if "category" in obj:
        meta["category"] = obj["category"]
    if isinstance(obj.get("decoded"), str):
        meta["model_output"] = obj["decoded"]
    if "id" in obj:
        meta["id"] = obj["id"]
    messages = [
        {"role": "user", "content": prompt_with_input(instruction, context)},
        {"role": "assistant", "content": answer},
    ]
    return [(messages, meta)]
