"""OpenAI chat fine-tuning JSONL, the current format.

``{"messages": [...], "tools"?: [...], "parallel_tool_calls"?: bool}`` where a message is
``{"role": "system"|"user"|"assistant"|"tool", "content", "name"?, "weight"?, "tool_calls"?, "tool_call_id"?}``:

* ``content`` is a string or a list of text parts ``[{"type": "text", "text": ...}]`` (joined with
  ``"\\n"`` on ingest; image and audio parts are refused: curator trains text models); it may be
  ``null`` or absent on an assistant message that calls tools;
* ``weight`` (0 or 1) is allowed on assistant messages only;
* ``tool_calls`` (assistant) is ``[{"id", "type": "function", "function": {"name", "arguments"}}]``
  with ``arguments`` the JSON text of an object; a ``tool`` message answers one with ``tool_call_id``;
* ``tools`` lists the function schemas ``[{"type": "function", "function": {"name", "description"?,
  "parameters"?, "strict"?}}]``.

Every top-level key but ``messages`` goes to the example's ``meta`` (``tools`` and
``parallel_tool_calls`` included: ``meta["tools"]`` is where curator keeps the schemas, and the exports
write them back at the top level).  :func:`record_problems` is the full check ``curator validate``
reports; :func:`convert` refuses a record with a hard problem (the first one, as ingest's error).
"""

from __future__ import annotations

from typing import Any

from curator.data.readers.shapes import Problem, RowError, message_problems

NAME = "chat"
__all__ = ["NAME", "convert", "detect", "record_problems", "tools_problems"]

_TOOL_KEYS = {"type", "function"}
_SCHEMA_KEYS = {"name", "description", "parameters", "strict"}


def detect(obj: dict[str, Any]) -> bool:
    return "messages" in obj


def tools_problems(tools: Any) -> list[Problem]:
    """The top-level ``tools`` list: function schemas with unique names."""
    if not isinstance(tools, list) or not tools:
        got = "an empty list" if isinstance(tools, list) else type(tools).__name__
        return [Problem("bad_tools", f'"tools" must be a non-empty list of function schemas, got {got}')]
    out: list[Problem] = []
    names: set[str] = set()
    for j, t in enumerate(tools, 1):
        where = f"tool {j}"
        if not isinstance(t, dict) or not isinstance(t.get("function"), dict):
            out.append(Problem("bad_tools", f'{where} must be {{"type": "function", "function": {{"name", ...}}}}'))
            continue
        if t.get("type", "function") != "function":
            out.append(Problem("bad_tools", f'{where} "type" must be "function", got {t.get("type")!r}'))
        if set(t) - _TOOL_KEYS:
            out.append(Problem("bad_tools", f"{where} has unknown key(s) {sorted(set(t) - _TOOL_KEYS)}"))
        fn = t["function"]
        if set(fn) - _SCHEMA_KEYS:
            out.append(Problem("bad_tools", f'{where} "function" has unknown key(s) {sorted(set(fn) - _SCHEMA_KEYS)} '
                                            "(expected name, description, parameters, strict)"))
        name = fn.get("name")
        if not isinstance(name, str) or not name.strip():
            out.append(Problem("bad_tools", f'{where} "function" needs a "name" (a non-empty string)'))
        elif name in names:
            out.append(Problem("bad_tools", f"{where} repeats the function name {name!r}"))
        else:
            names.add(name)
        if "description" in fn and not isinstance(fn["description"], str):
            out.append(Problem("bad_tools", f'{where} "description" must be a string'))
        if "parameters" in fn and not isinstance(fn["parameters"], dict):
            out.append(Problem("bad_tools", f'{where} "parameters" must be a JSON schema object'))
        if "strict" in fn and not isinstance(fn["strict"], bool):
            out.append(Problem("bad_tools", f'{where} "strict" must be true or false'))
    return out


def record_problems(rec: Any) -> list[Problem]:
    """Every problem of one raw chat record (see the module docstring and :func:`message_problems`)."""
    if not isinstance(rec, dict):
        return [Problem("data_type", f"expected a JSON object, got {type(rec).__name__}")]
    messages = rec.get("messages")
    if not messages:
        what = ('missing "messages"' if "messages" not in rec else '"messages" is empty' if isinstance(messages, list)
                else f'"messages" must be a non-empty list, got {messages!r}')
        return [Problem("missing_messages_list", what)]
    out = message_problems(messages)
    if rec.get("tools") is not None:
        out.extend(tools_problems(rec["tools"]))
    ptc = rec.get("parallel_tool_calls")
    if ptc is not None and not isinstance(ptc, bool):
        out.append(Problem("bad_tools", f'"parallel_tool_calls" must be true or false, got {ptc!r}'))
    return out


def convert(obj: dict[str, Any]) -> list[tuple[list[dict[str, Any]], dict[str, Any]]]:
    for p in record_problems(obj):
        if p.hard:
            raise RowError(p.message, kind=p.kind)
    # Everything else on the line is kept (e.g. ``key_phrases`` lists that the evaluator uses, ``tools``).
    meta = {k: v for k, v in obj.items() if k != "messages"}
    return [(obj["messages"], meta)]
