"""``curator validate FILE``: format checks only, nothing is written.

For OpenAI chat JSONL the seven error kinds of OpenAI's chat fine-tuning data checks (the
cookbook's notebook) are applied to the raw records, brought up to OpenAI's current format (tool
calls, tool messages, a ``tools`` list and content parts are valid): ``data_type``,
``missing_messages_list``, ``message_missing_key``, ``message_unrecognized_key``,
``unrecognized_role``, ``missing_content``, ``example_missing_assistant_message``.  Then the
current format's own rules: ``bad_weight`` (a weight other than 0 or 1), ``weight_not_on_assistant``,
``key_not_for_role`` (``tool_calls`` off an assistant message, ``tool_call_id`` off a tool message),
``bad_content_part`` (a part that is not text), ``bad_tool_calls``, ``bad_tool_call_arguments``
(not the JSON text of an object, e.g. encoded twice), ``bad_tools``, ``unknown_tool_call_id``,
``unanswered_tool_call``, ``function_call_unsupported`` (the deprecated form, which curator does not
store).  And curator's own: ``json_error``, ``bad_utf8``, ``line_too_long``, ``nul_byte``,
``invalid_unicode`` (a lone surrogate), ``nesting_too_deep``, ``unstorable_value`` (what ingest could
not store in ``meta``), ``bad_task``, ``empty_content``, ``non_string_content``,
``last_not_assistant``, ``consecutive_same_role``.  Each error comes with a one-line message naming
its line (``FILE:LINE: message 2 (assistant) tool call 1 "arguments" ...``).  Other formats report
their reader errors as ``invalid_record`` and get the same message-level checks after conversion.

Warnings follow OpenAI's notebook: examples without a system or user message, and examples over
the 4,096-token limit (counted with the base model's tokenizer and chat template), plus the
default epoch count and billed-token estimate; and ``tool_not_in_tools``, a call of a function the
example's ``tools`` list does not declare.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from curator.data.readers import BadRow, CsvMapping, read_rows
from curator.data.readers.chat import record_problems
from curator.data.readers.shapes import Problem, RowError, encode_meta, message_problems
from curator.data.readers.textfile import check_file, is_json_array, iter_json_records
from curator.records import normalize_messages

__all__ = ["MAX_TOKENS_PER_EXAMPLE", "ValidationReport", "chat_record_problems", "check_chat_record", "validate_file"]

MAX_TOKENS_PER_EXAMPLE = 4096
_FIRST_LINES = 5


@dataclass
class ValidationReport:
    path: str
    format: str
    examples: int = 0
    errors: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    warnings: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    tokens: dict[str, float] = field(default_factory=dict)
    messages_per_example: dict[str, float] = field(default_factory=dict)
    billing: dict[str, int] = field(default_factory=dict)
    unit: str = "line"
    #: kind -> the first (line, message) pairs of that kind, errors and warnings alike
    details: dict[str, list[tuple[int, str]]] = field(default_factory=lambda: defaultdict(list))

    @property
    def ok(self) -> bool:
        return not self.errors

    def error(self, kind: str, line: int, message: str) -> None:
        self._add(self.errors, kind, line, message)

    def warning(self, kind: str, line: int, message: str) -> None:
        self._add(self.warnings, kind, line, message)

    def _add(self, to: dict[str, list[int]], kind: str, line: int, message: str) -> None:
        lines = to[kind]
        if lines and lines[-1] == line:  # one count per record and kind, as OpenAI's notebook counts
            return
        lines.append(line)
        if len(self.details[kind]) < _FIRST_LINES:
            self.details[kind].append((line, message))

    def where(self, line: int) -> str:
        """``PATH:LINE`` (JSON Lines, CSV) or ``PATH: record N`` / ``PATH: row N``."""
        return f"{self.path}:{line}" if self.unit == "line" else f"{self.path}: {self.unit} {line}"

    def messages(self, per_kind: int = _FIRST_LINES, *, warnings: bool = False) -> list[str]:
        """``WHERE: kind: message`` for the first errors of each kind (then the warnings, with ``warnings``)."""
        out = []
        for d in (self.errors, self.warnings) if warnings else (self.errors,):
            for kind in sorted(d):
                out += [f"{self.where(line)}: {kind}: {msg}" for line, msg in self.details.get(kind, [])[:per_kind]]
        return out

    def to_dict(self) -> dict[str, Any]:
        def kinds(d: dict[str, list[int]]) -> dict[str, Any]:
            return {k: {"count": len(v), f"first_{self.unit}s": v[:_FIRST_LINES],
                        "first_messages": [{self.unit: line, "message": msg} for line, msg in self.details.get(k, [])]}
                    for k, v in sorted(d.items())}

        return {
            "path": self.path,
            "format": self.format,
            "examples": self.examples,
            "ok": self.ok,
            "errors": kinds(self.errors),
            "warnings": kinds(self.warnings),
            "messages_per_example": self.messages_per_example,
            "tokens_per_example": self.tokens,
            "billing": self.billing,
        }


def chat_record_problems(rec: Any) -> list[Problem]:
    """Every problem of one raw chat record: the format's (:func:`~curator.data.readers.chat.record_problems`),
    then what ingest could not store in ``meta`` (``bad_task``, ``unstorable_value``...)."""
    problems = record_problems(rec)
    if not isinstance(rec, dict):
        return problems
    meta = {k: v for k, v in rec.items() if k != "messages"}
    task = meta.get("task")
    if task is not None and not isinstance(task, str):
        problems.append(Problem("bad_task", f'"task" must be a string, got {type(task).__name__}'))
    try:
        encode_meta(meta)
    except RowError as e:
        problems.append(Problem(e.kind or "unstorable_value", str(e)))
    return problems


def check_chat_record(rec: Any) -> list[str]:
    """Error kinds of one raw chat record (OpenAI's seven, the current format's, then curator's own)."""
    return sorted({p.kind for p in chat_record_problems(rec)})


def _stats(values: list[int]) -> dict[str, float]:
    if not values:
        return {}
    a = np.asarray(values, dtype=float)
    return {
        "min": float(a.min()), "max": float(a.max()), "mean": float(a.mean()), "median": float(np.median(a)),
        "p10": float(np.quantile(a, 0.1)), "p90": float(np.quantile(a, 0.9)),
    }


def _epochs(n: int) -> int:
    """OpenAI's default epoch rule: 3, raised for tiny sets (to reach 100 examples seen), lowered for huge ones."""
    if n == 0:
        return 0
    if n * 3 < 100:
        return min(25, 100 // n)
    if n * 3 > 25000:
        return max(1, 25000 // n)
    return 3


def validate_file(
    path: str | Path,
    *,
    fmt: str = "auto",
    csv_mapping: CsvMapping | None = None,
    count_tokens: Callable[[list[dict[str, Any]]], int] | None = None,
) -> ValidationReport:
    """Check a file without writing anything.  File-level problems raise :class:`~curator.errors.InputError`."""
    p = Path(path)
    convs: list[tuple[int, list[dict[str, Any]]]] = []
    src, rows = read_rows(p, fmt, csv_mapping)  # raises for missing/empty/binary/UTF-16 files
    report = ValidationReport(path=str(path), format=src.format, unit=src.unit)
    if src.format == "chat" and p.is_file():
        check_file(p)
        report.unit = "record" if is_json_array(p) else "line"
        for line, rec in iter_json_records(p):
            report.examples += 1
            if isinstance(rec, RowError):
                reason = str(rec)
                kind = rec.kind or (
                    "bad_utf8" if "UTF-8" in reason else "line_too_long" if "limit" in reason else "json_error")
                report.error(kind, line, reason)
                continue
            problems = chat_record_problems(rec)
            for pr in problems:
                report.error(pr.kind, line, pr.message)
            if isinstance(rec, dict) and isinstance(rec.get("messages"), list):
                msgs = [m for m in rec["messages"] if isinstance(m, dict)]
                _warn(report, line, msgs, rec.get("tools"))
                if not problems:
                    convs.append((line, normalize_messages(msgs)))
    else:
        for row in rows:
            report.examples += 1
            if isinstance(row, BadRow):
                report.error("invalid_record", row.line, row.reason)
                continue
            for pr in message_problems(row.messages):
                if pr.kind == "missing_content" and not pr.hard:
                    continue  # OpenAI's count of empty content applies to chat records; empty_content says it here
                report.error(pr.kind, row.line, pr.message)
            _warn(report, row.line, row.messages, row.meta.get("tools") if src.format.endswith("chat") else None)
            convs.append((row.line, normalize_messages(row.messages)))
    report.errors = {k: v for k, v in report.errors.items() if v}
    report.messages_per_example = _stats([len(c) for _, c in convs])
    if count_tokens is not None and convs:
        lengths = [count_tokens(c) for _, c in convs]
        report.tokens = _stats(lengths)
        for (line, _), n in zip(convs, lengths, strict=True):
            if n > MAX_TOKENS_PER_EXAMPLE:
                report.warning("over_token_limit", line, f"{n} tokens, over OpenAI's {MAX_TOKENS_PER_EXAMPLE} per "
                                                         "example (truncated in fine-tuning)")
        billed = sum(min(MAX_TOKENS_PER_EXAMPLE, n) for n in lengths)
        epochs = _epochs(len(convs))
        report.billing = {"billed_tokens_per_epoch": billed, "default_epochs": epochs, "billed_tokens": billed * epochs}
    report.warnings = {k: v for k, v in report.warnings.items() if v}
    return report


def _warn(report: ValidationReport, line: int, messages: list[dict[str, Any]], tools: Any = None) -> None:
    roles = Counter(m.get("role") for m in messages)
    if not roles["system"]:
        report.warning("missing_system", line, "no system message")
    if not roles["user"]:
        report.warning("missing_user", line, "no user message")
    if isinstance(tools, list):
        declared = {t["function"].get("name") for t in tools if isinstance(t, dict) and isinstance(t.get("function"), dict)}
        for i, m in enumerate(messages, 1):
            calls = m.get("tool_calls")
            for c in calls if isinstance(calls, list) else []:
                fn = c.get("function") if isinstance(c, dict) else None
                name = fn.get("name") if isinstance(fn, dict) else None
                if isinstance(name, str) and name not in declared:
                    report.warning("tool_not_in_tools", line, f"message {i} calls {name!r}, which \"tools\" does not "
                                                              f"declare ({', '.join(sorted(map(str, declared)))})")
                    return


def token_counter(model: str) -> Callable[[list[dict[str, Any]]], int]:
    """Counts tokens of a whole conversation rendered with the model's chat template."""
    from curator.models import load_tokenizer, render_chat

    tok = load_tokenizer(model)

    def count(messages: list[dict[str, Any]]) -> int:
        if not messages:
            return 0
        return len(tok(render_chat(tok, messages), add_special_tokens=False)["input_ids"])

    return count
