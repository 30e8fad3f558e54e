"""Helpers shared by the record-shape readers (chat, alpaca, sharegpt, ...)."""

from __future__ import annotations

from typing import Any

from curator.records import ROLES

__all__ = ["RowError", "check_messages", "prompt_with_input", "require_str"]


class RowError(ValueError):
    """What is wrong with one record; the dispatcher adds file and line."""


def require_str(obj: dict[str, Any], key: str, *, allow_empty: bool = False) -> str:
    if key not in obj:
        raise RowError(f'missing "{key}"')
    value = obj[key]
    if value is None and allow_empty:
        return ""
    if not isinstance(value, str):
        raise RowError(f'"{key}" must be a string, got {type(value).__name__}')
    if not allow_empty and not value.strip():
        raise RowError(f'"{key}" is empty')
    return value


def prompt_with_input(instruction: str, extra: str) -> str:
    """Alpaca-style user turn: the instruction, then the input (when there is one) after a blank line."""
    extra = extra.strip()
    return f"{instruction.strip()}\n\n{extra}" if extra else instruction.strip()


def check_messages(messages: Any) -> list[dict[str, Any]]:
    """Structural checks every stored example must pass; returns the messages unchanged.

    Only what makes a record unusable is an error here (shape, roles, non-string content, no
    assistant turn).  Softer problems (empty content, consecutive roles, a trailing user turn) are
    stored and reported by ``curator validate`` and ``curator audit``.
    """
    if not isinstance(messages, list):
        raise RowError(f'"messages" must be a list, got {type(messages).__name__}')
    if not messages:
        raise RowError('"messages" is empty')
    for i, m in enumerate(messages, 1):
        if not isinstance(m, dict):
            raise RowError(f"message {i} is not an object")
        role = m.get("role")
        if role is None:
            raise RowError(f'message {i} has no "role"')
        if role not in ROLES:
            raise RowError(f'message {i} has unknown role {role!r} (expected one of {", ".join(ROLES)})')
        if "content" not in m:
            raise RowError(f'message {i} ({role}) has no "content"')
        content = m["content"]
        if not isinstance(content, str):
            raise RowError(f"message {i} ({role}) content must be a string, got {type(content).__name__}")
    if not any(m["role"] == "assistant" for m in messages):
        raise RowError("no assistant message")
    return messages
