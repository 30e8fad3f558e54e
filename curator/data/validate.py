"""``curator validate FILE``: format checks only, nothing is written.

For OpenAI chat JSONL the seven error kinds of OpenAI's chat fine-tuning data checks are applied
to the raw records (``data_type``, ``missing_messages_list``, ``message_missing_key``,
``message_unrecognized_key``, ``unrecognized_role``, ``missing_content``,
``example_missing_assistant_message``), plus curator's own: ``json_error``, ``bad_utf8``,
``line_too_long``, ``nul_byte``, ``invalid_unicode`` (a lone surrogate), ``nesting_too_deep``,
``unstorable_value`` (what ingest could not store in ``meta``), ``bad_task``, ``empty_content``,
``non_string_content``, ``last_not_assistant``, ``consecutive_same_role``.  Other formats report their reader errors as ``invalid_record`` and
get the same message-level checks after conversion.

Warnings follow OpenAI's notebook: examples without a system or user message, and examples over
the 4,096-token limit (counted with the base model's tokenizer and chat template), plus the
default epoch count and billed-token estimate.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from curator.data.readers import BadRow, CsvMapping, read_rows
from curator.data.readers.shapes import RowError, encode_meta
from curator.data.readers.textfile import check_file, is_json_array, iter_json_records

__all__ = ["MAX_TOKENS_PER_EXAMPLE", "ValidationReport", "check_chat_record", "validate_file"]

MAX_TOKENS_PER_EXAMPLE = 4096
_ALLOWED_KEYS = {"role", "content", "name", "function_call", "weight"}
_OPENAI_ROLES = {"system", "user", "assistant", "function"}
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

    @property
    def ok(self) -> bool:
        return not self.errors

    def to_dict(self) -> dict[str, Any]:
        def kinds(d: dict[str, list[int]]) -> dict[str, Any]:
            return {k: {"count": len(v), f"first_{self.unit}s": v[:_FIRST_LINES]} for k, v in sorted(d.items())}

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


def check_chat_record(rec: Any) -> list[str]:
    """Error kinds of one raw chat record (OpenAI's seven, then curator's own)."""
    if not isinstance(rec, dict):
        return ["data_type"]
    messages = rec.get("messages")
    if not messages:
        return ["missing_messages_list"]
    if not isinstance(messages, list):
        return ["data_type"]
    errs: list[str] = []
    for m in messages:
        if not isinstance(m, dict):
            errs.append("data_type")
            continue
        if "role" not in m or "content" not in m:
            errs.append("message_missing_key")
        if any(k not in _ALLOWED_KEYS for k in m):
            errs.append("message_unrecognized_key")
        if m.get("role") not in _OPENAI_ROLES:
            errs.append("unrecognized_role")
        if m.get("name") is not None and not isinstance(m["name"], str):
            errs.append("data_type")
        content = m.get("content")
        if (not content and not m.get("function_call")) or not isinstance(content, str):
            errs.append("missing_content")
        if content is not None and not isinstance(content, str):
            errs.append("non_string_content")
        elif isinstance(content, str) and not content.strip():
            errs.append("empty_content")
    dict_msgs = [m for m in messages if isinstance(m, dict)]
    if not any(m.get("role") == "assistant" for m in dict_msgs):
        errs.append("example_missing_assistant_message")
    elif dict_msgs and dict_msgs[-1].get("role") != "assistant":
        errs.append("last_not_assistant")
    roles = [m.get("role") for m in dict_msgs]
    if any(a == b for a, b in zip(roles, roles[1:], strict=False)):
        errs.append("consecutive_same_role")
    return sorted(set(errs))


def _storable(rec: Any) -> list[str]:
    """What ingest would refuse in the rest of a chat record: its ``meta`` and ``task``."""
    if not isinstance(rec, dict):
        return []
    meta = {k: v for k, v in rec.items() if k != "messages"}
    errs = []
    task = meta.get("task")
    if task is not None and not isinstance(task, str):
        errs.append("bad_task")
    try:
        encode_meta(meta)
    except RowError as e:
        errs.append(e.kind or "unstorable_value")
    return errs


def _message_checks(messages: list[dict[str, Any]]) -> list[str]:
    errs = []
    if any(not m["content"].strip() for m in messages):
        errs.append("empty_content")
    if messages[-1]["role"] != "assistant":
        errs.append("last_not_assistant")
    roles = [m["role"] for m in messages]
    if any(a == b for a, b in zip(roles, roles[1:], strict=False)):
        errs.append("consecutive_same_role")
    return errs


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
                report.errors[kind].append(line)
                continue
            kinds = check_chat_record(rec)
            kinds.extend(_storable(rec))
            for k in kinds:
                report.errors[k].append(line)
            if isinstance(rec, dict) and isinstance(rec.get("messages"), list):
                msgs = [m for m in rec["messages"] if isinstance(m, dict)]
                _warn(report, line, msgs)
                if not kinds:
                    convs.append((line, msgs))
    else:
        for row in rows:
            report.examples += 1
            if isinstance(row, BadRow):
                report.errors["invalid_record"].append(row.line)
                continue
            for k in _message_checks(row.messages):
                report.errors[k].append(row.line)
            _warn(report, row.line, row.messages)
            convs.append((row.line, row.messages))
    report.errors = {k: v for k, v in report.errors.items() if v}
    report.messages_per_example = _stats([len(c) for _, c in convs])
    if count_tokens is not None and convs:
        lengths = [count_tokens(c) for _, c in convs]
        report.tokens = _stats(lengths)
        over = [line for (line, _), n in zip(convs, lengths, strict=True) if n > MAX_TOKENS_PER_EXAMPLE]
        if over:
            report.warnings["over_token_limit"] = over
        billed = sum(min(MAX_TOKENS_PER_EXAMPLE, n) for n in lengths)
        epochs = _epochs(len(convs))
        report.billing = {"billed_tokens_per_epoch": billed, "default_epochs": epochs, "billed_tokens": billed * epochs}
    report.warnings = {k: v for k, v in report.warnings.items() if v}
    return report


def _warn(report: ValidationReport, line: int, messages: list[dict[str, Any]]) -> None:
    roles = Counter(m.get("role") for m in messages)
    if not roles["system"]:
        report.warnings["missing_system"].append(line)
    if not roles["user"]:
        report.warnings["missing_user"].append(line)


def token_counter(model: str) -> Callable[[list[dict[str, Any]]], int]:
    """Counts tokens of a whole conversation rendered with the model's chat template."""
    from curator.models import load_tokenizer, render_chat

    tok = load_tokenizer(model)

    def count(messages: list[dict[str, Any]]) -> int:
        clean = [m for m in messages if isinstance(m.get("content"), str) and m.get("role") in ("system", "user", "assistant")]
        if not clean:
            return 0
        return len(tok(render_chat(tok, clean), add_special_tokens=False)["input_ids"])

    return count
