"""Helpers shared by the record-shape readers (chat, alpaca, sharegpt, ...)."""

from __future__ import annotations

import decimal
import json
from dataclasses import dataclass
from typing import Any

import orjson

from curator.records import ROLES

__all__ = [
    "MESSAGE_KEYS", "META_MAX_DEPTH", "Problem", "RowError", "check_messages", "encode_meta", "message_problems",
    "prompt_with_input", "require_str",
]

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


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a record: its ``kind`` (what ``curator validate`` counts), a one-line ``message``
    (the caller adds file and line), and whether ingest refuses the record for it (``hard``) or stores it
    and leaves it to ``validate`` and ``audit`` to report."""

    kind: str
    message: str
    hard: bool = True


#: The message keys OpenAI's chat fine-tuning format knows, and which roles take each optional one.
MESSAGE_KEYS = ("role", "content", "name", "weight", "tool_calls", "tool_call_id", "function_call")
_KEY_ROLES = {
    "name": ("system", "user", "assistant", "function"),
    "weight": ("assistant",),
    "tool_calls": ("assistant",),
    "function_call": ("assistant",),
    "tool_call_id": ("tool",),
}
_OPENAI_ROLES = (*ROLES, "function")
_PLAIN_KEYS = frozenset({"role", "content", "name", "weight"})
_PLAIN_ROLES = frozenset({"system", "user", "assistant"})
_CALL_KEYS = {"id", "type", "function"}
_FUNCTION_KEYS = {"name", "arguments"}


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _arguments_problem(where: str, args: str) -> Problem | None:
    try:
        value = json.loads(args, parse_constant=_no_constant)
    except json.JSONDecodeError as e:
        return Problem("bad_tool_call_arguments", f'{where} "arguments" is not valid JSON ({e.msg}, column {e.colno})')
    except ValueError as e:  # NaN / Infinity
        return Problem("bad_tool_call_arguments", f'{where} "arguments" is not valid JSON ({e})')
    except RecursionError:
        return Problem("bad_tool_call_arguments", f'{where} "arguments" is nested too deeply')
    if isinstance(value, str):
        return Problem("bad_tool_call_arguments", f'{where} "arguments" is a JSON string, not an object '
                                                  "(encoded twice? decode it once)")
    if not isinstance(value, dict):
        return Problem("bad_tool_call_arguments",
                       f'{where} "arguments" must encode a JSON object, got {type(value).__name__}')
    return None


def _tool_call_problems(i: int, calls: Any) -> list[Problem]:
    head = f"message {i} (assistant)"
    if not isinstance(calls, list):
        return [Problem("bad_tool_calls", f'{head} "tool_calls" must be a list, got {type(calls).__name__}')]
    out: list[Problem] = []
    for j, c in enumerate(calls, 1):
        where = f"{head} tool call {j}"
        if not isinstance(c, dict):
            out.append(Problem("bad_tool_calls", f"{where} is not an object"))
            continue
        extra = sorted(set(c) - _CALL_KEYS)
        if extra:
            out.append(Problem("bad_tool_calls", f"{where} has unknown key(s) {extra} (expected id, type, function)"))
        if not isinstance(c.get("id"), str) or not c["id"].strip():
            out.append(Problem("bad_tool_calls", f'{where} needs an "id" (a non-empty string the tool message '
                                                 'answers with "tool_call_id")'))
        if c.get("type", "function") != "function":
            out.append(Problem("bad_tool_calls", f'{where} "type" must be "function", got {c.get("type")!r}'))
        fn = c.get("function")
        if not isinstance(fn, dict):
            out.append(Problem("bad_tool_calls", f'{where} needs a "function" object {{"name", "arguments"}}'))
            continue
        extra = sorted(set(fn) - _FUNCTION_KEYS)
        if extra:
            out.append(Problem("bad_tool_calls", f'{where} "function" has unknown key(s) {extra} '
                                                 "(expected name, arguments)"))
        if not isinstance(fn.get("name"), str) or not fn["name"].strip():
            out.append(Problem("bad_tool_calls", f'{where} "function" needs a "name" (a non-empty string)'))
        args = fn.get("arguments")
        if not isinstance(args, str):
            got = "missing" if args is None else f"got {type(args).__name__}"
            out.append(Problem("bad_tool_calls", f'{where} "arguments" must be a JSON text (a string), {got}'))
        else:
            p = _arguments_problem(where, args)
            if p is not None:
                out.append(p)
    return out


def _content_problems(i: int, role: str, m: dict[str, Any], calls: bool) -> list[Problem]:
    """``content``: a string, or a list of text parts; absent or null only beside tool calls."""
    head = f"message {i} ({role})"
    if "content" not in m:
        if calls:
            return []
        return [Problem("message_missing_key", f'{head} has no "content"'),
                Problem("missing_content", f'{head} has no "content"')]
    content = m["content"]
    if content is None:
        if calls:
            return []
        return [Problem("missing_content", f"{head} content is null (only an assistant message with "
                                           "tool_calls may leave it out)")]
    if isinstance(content, str):
        out = []
        if not content and not calls:
            out.append(Problem("missing_content", f"{head} content is empty", hard=False))
        if not content.strip() and not calls:
            out.append(Problem("empty_content", f"{head} content is empty or blank", hard=False))
        return out
    if isinstance(content, list):
        if not content:
            return [Problem("missing_content", f"{head} content is an empty list of parts")]
        out = []
        for j, part in enumerate(content, 1):
            kind = part.get("type") if isinstance(part, dict) else None
            if kind != "text":
                what = f"of type {kind!r}" if isinstance(kind, str) else "not a {\"type\": \"text\", \"text\"} object"
                out.append(Problem("bad_content_part", f"{head} content part {j} is {what}: curator trains text "
                                                       "models, only text parts are accepted"))
            elif not isinstance(part.get("text"), str):
                out.append(Problem("bad_content_part", f'{head} content part {j} needs a "text" string'))
            elif set(part) - {"type", "text"}:
                out.append(Problem("bad_content_part", f"{head} content part {j} has unknown key(s) "
                                                       f"{sorted(set(part) - {'type', 'text'})}"))
        if not out and not "".join(p["text"] for p in content).strip() and not calls:
            out.append(Problem("empty_content", f"{head} content is empty or blank", hard=False))
        return out
    return [Problem("missing_content", f"{head} content must be a string or a list of text parts, "
                                       f"got {type(content).__name__}"),
            Problem("non_string_content", f"{head} content must be a string or a list of text parts, "
                                          f"got {type(content).__name__}")]


def message_problems(messages: Any) -> list[Problem]:
    """Every problem of a list of chat messages, in OpenAI's current chat fine-tuning format.

    Hard problems (ingest refuses the record): shape, unknown roles, content that is not text,
    weights other than 0/1 or on other roles than assistant, malformed tool calls (arguments that are
    not a JSON object's text), a key on a role that does not take it, the deprecated ``function_call``,
    no assistant message.  Soft ones (stored, reported by ``validate``): unknown keys (dropped),
    empty content, a tool message answering no call of the assistant message before it, a tool call
    left unanswered before the conversation goes on, a last message that is not the assistant's,
    two consecutive messages of one role (tool messages aside).
    """
    if not isinstance(messages, list):
        return [Problem("data_type", f'"messages" must be a list, got {type(messages).__name__}')]
    if not messages:
        return [Problem("missing_messages_list", '"messages" is empty')]
    out: list[Problem] = []
    call_ids: set[str] = set()
    tools_used = False
    for i, m in enumerate(messages, 1):
        if type(m) is dict and m.keys() <= _PLAIN_KEYS and m.get("role") in _PLAIN_ROLES:
            # The common message (text content, no tool use) takes this fast path when nothing is wrong with it.
            c, w, n = m.get("content"), m.get("weight"), m.get("name")
            if (type(c) is str and c.strip() and (n is None or type(n) is str)
                    and (w is None or (m["role"] == "assistant" and (w == 0 or w == 1) and type(w) is not bool))):
                continue
        if not isinstance(m, dict):
            out.append(Problem("data_type", f"message {i} is not an object"))
            continue
        tools_used = tools_used or bool(m.get("tool_calls")) or m.get("role") == "tool"
        role = m.get("role")
        if role is None:
            out.append(Problem("message_missing_key", f'message {i} has no "role"'))
            continue
        if role not in _OPENAI_ROLES:
            out.append(Problem("unrecognized_role", f"message {i} has unknown role {role!r} "
                                                    f"(expected one of {', '.join(ROLES)})"))
            continue
        head = f"message {i} ({role})"
        if role == "function" or m.get("function_call") is not None:
            out.append(Problem("function_call_unsupported",
                               f"{head} uses the deprecated function calling (function_call / the function role): "
                               "write tool_calls and tool messages instead"))
        extra = sorted(k for k in m if k not in MESSAGE_KEYS)
        if extra:
            out.append(Problem("message_unrecognized_key", f"{head} has unknown key(s) {extra} (dropped on ingest)",
                               hard=False))
        for key, takers in _KEY_ROLES.items():
            if m.get(key) is not None and role not in takers and key != "weight":
                out.append(Problem("key_not_for_role", f'{head} has "{key}", which only {" and ".join(takers)} '
                                                       "messages take"))
        name = m.get("name")
        if name is not None and not isinstance(name, str):
            out.append(Problem("data_type", f'{head} "name" must be a string, got {type(name).__name__}'))
        weight = m.get("weight")
        if weight is not None:
            if isinstance(weight, bool) or not isinstance(weight, int | float) or weight not in (0, 1):
                out.append(Problem("bad_weight", f'{head} "weight" must be 0 or 1, got {weight!r}'))
            if role != "assistant":
                out.append(Problem("weight_not_on_assistant", f'{head} has a "weight": only assistant messages take '
                                                              "one (0: not trained on, 1: trained on)"))
        calls = m.get("tool_calls") if role == "assistant" else None
        if calls is not None:
            found = _tool_call_problems(i, calls)
            out.extend(found)
            if not found:
                for c in calls:
                    if c["id"] in call_ids:
                        out.append(Problem("bad_tool_calls", f'{head} repeats the tool call id {c["id"]!r}'))
                    call_ids.add(c["id"])
        if role == "tool":
            tid = m.get("tool_call_id")
            if tid is None:
                out.append(Problem("message_missing_key", f'{head} has no "tool_call_id" (the id of the call it answers)'))
            elif not isinstance(tid, str) or not tid.strip():
                out.append(Problem("data_type", f'{head} "tool_call_id" must be a non-empty string, got {tid!r}'))
        out.extend(_content_problems(i, role, m, bool(calls) or m.get("function_call") is not None))
    roles = [m.get("role") if isinstance(m, dict) else None for m in messages]
    if "assistant" not in roles:
        out.append(Problem("example_missing_assistant_message", "no assistant message"))
    if out and any(p.hard for p in out):
        return out  # the conversation-level checks below assume well-formed messages
    if tools_used:
        out.extend(_tool_flow_problems(messages))
    if roles[-1] != "assistant":
        out.append(Problem("last_not_assistant", f"the last message is {roles[-1]!r}, not the assistant's answer",
                           hard=False))
    same = next((i for i in range(1, len(roles)) if roles[i] == roles[i - 1] and roles[i] != "tool"), None)
    if same is not None:
        out.append(Problem("consecutive_same_role", f"messages {same} and {same + 1} are both {roles[same]!r}",
                           hard=False))
    return out


def _tool_flow_problems(messages: list[dict[str, Any]]) -> list[Problem]:
    """Tool messages answer a call of the assistant message before them; calls are answered before the
    conversation goes on (the last assistant message's calls are the target and stay unanswered)."""
    out: list[Problem] = []
    pending: dict[str, int] = {}  # call id -> message number, of the latest assistant message with calls
    for i, m in enumerate(messages, 1):
        role = m["role"]
        if role == "tool":
            tid = m["tool_call_id"]
            if tid not in pending:
                out.append(Problem("unknown_tool_call_id", f"message {i} (tool) answers tool call {tid!r}, which the "
                                                           "assistant message before it did not make", hard=False))
            pending.pop(tid, None)
            continue
        if pending:
            out.append(Problem("unanswered_tool_call", f"message {min(pending.values())} (assistant) tool call(s) "
                                                       f"{sorted(pending)} have no tool message before message {i}",
                               hard=False))
            pending = {}
        if role == "assistant" and m.get("tool_calls"):
            pending = {c["id"]: i for c in m["tool_calls"]}
    return out


def check_messages(messages: Any) -> list[dict[str, Any]]:
    """Structural checks every stored example must pass; returns the messages unchanged.

    Only what makes a record unusable is an error here (the hard :func:`message_problems`: shape,
    roles, content that is not text, weights, malformed tool calls, no assistant turn); the first one
    raises :class:`RowError`.  Softer problems (empty content, consecutive roles, a trailing user turn,
    unanswered tool calls) are stored and reported by ``curator validate`` and ``curator audit``.
    """
    for p in message_problems(messages):
        if p.hard:
            raise RowError(p.message, kind=p.kind)
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
