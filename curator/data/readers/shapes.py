"""Helpers shared by the record-shape readers (chat, alpaca, sharegpt, ...)."""

from __future__ import annotations

import decimal
import json
from typing import Any

import orjson

from curator.records import ROLES

__all__ = ["META_MAX_DEPTH", "RowError", "check_messages", "encode_meta", "prompt_with_input", "require_str"]

#: Deepest nesting of a stored ``meta`` value (what orjson writes).
META_MAX_DEPTH = 254


class RowError(ValueError):
    """What is wrong with one record; the dispatcher adds file and line.

    ``kind`` names the problem for ``curator validate`` (``json_error``, ``bad_utf8``, ...), when there is one.
    """

    def __init__(self, message: str, kind: str | None = None) -> None:
        super().__init__(message)
        self.kind = kind


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
        name = m.get("name")
        if name is not None and not isinstance(name, str):
            raise RowError(f'message {i} ({role}) "name" must be a string, got {type(name).__name__}')
    if not any(m["role"] == "assistant" for m in messages):
        raise RowError("no assistant message")
    return messages


class _Unstorable(TypeError):
    pass


def _default(value: Any) -> Any:
    # Parquet / HF decimals keep their exact digits, as a string; anything else (bytes, images) is refused.
    if isinstance(value, decimal.Decimal):
        return str(value)
    raise _Unstorable(type(value).__name__)


def encode_meta(meta: dict[str, Any]) -> str:
    """``meta`` as the JSON text stored, or a :class:`RowError` saying what cannot be stored.

    orjson writes it; when it refuses, the reason is found: a value nested over
    :data:`META_MAX_DEPTH` levels, a lone surrogate, a value of a type JSON has no place for (bytes)
    are refused; an integer over 64 bits is kept exactly (the standard library writes it).
    """
    try:
        return orjson.dumps(meta, default=_default).decode("utf-8")
    except orjson.JSONEncodeError as e:
        problem = str(e)
        cause = e.__cause__
    if isinstance(cause, _Unstorable) or "not JSON serializable" in problem:
        name = cause.args[0] if isinstance(cause, _Unstorable) else problem.rsplit(":", 1)[-1].strip()
        raise RowError(f"a field holds a value of type {name}, which cannot be stored as JSON "
                       "(drop the column or convert it to text)", kind="unstorable_value") from None
    if "ecursion" in problem:
        raise RowError(f"a field is nested more than {META_MAX_DEPTH} levels deep", kind="nesting_too_deep") from None
    if "surrogate" in problem:
        raise RowError("a field holds a lone surrogate (not valid Unicode text)", kind="invalid_unicode") from None
    if "64-bit" in problem:
        try:
            return json.dumps(meta, ensure_ascii=False, allow_nan=False, separators=(",", ":"), default=_default)
        except (ValueError, TypeError, RecursionError) as e2:
            raise RowError(f"a field cannot be stored as JSON: {e2}", kind="unstorable_value") from None
    raise RowError(f"a field cannot be stored as JSON: {problem}", kind="unstorable_value")
