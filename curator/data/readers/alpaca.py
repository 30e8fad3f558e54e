"""Alpaca: ``{"instruction", "input", "output"}`` (JSON array or JSON Lines)."""

from __future__ import annotations

from typing import Any

from curator.data.readers.shapes import prompt_with_input, require_str

NAME = "alpaca"
__all__ = ["NAME", "convert", "detect"]


def detect(obj: dict[str, Any]) -> bool:
    return "instruction" in obj and "output" in obj


def convert(obj: dict[str, Any]) -> list[tuple[list[dict[str, Any]], dict[str, Any]]]:
    instruction = require_str(obj, "instruction")
    extra = require_str(obj, "input", allow_empty=True) if "input" in obj else ""
    output = require_str(obj, "output", allow_empty=True)
    messages = [
        {"role": "user", "content": prompt_with_input(instruction, extra)},
        {"role": "assistant", "content": output},
    ]
    return [(messages, {})]
