"""Feedback readers, one module per format, behind :func:`read_feedback`.

Formats: ``chat`` (rated chat logs), ``trace`` (Langfuse / LangSmith exports), ``oasst``
(Open-Assistant message trees), ``hh-rlhf`` (HH-RLHF transcripts and other
``chosen``/``rejected`` pairs) and ``serve`` (rated traces of ``curator serve``).  ``auto`` decides
from the keys of the first readable record.
JSON Lines or a JSON array, plain or gzip-compressed (``.gz``).
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Iterator
from itertools import chain
from pathlib import Path
from types import ModuleType
from typing import Any

from curator.data.readers.shapes import RowError, encode_meta
from curator.data.readers.textfile import check_file, iter_json_records, iter_raw_lines, loads_line
from curator.errors import InputError
from curator.feedback.events import Parsed, RatingRules
from curator.feedback.readers import chatlog, hhrlhf, oasst, served, traces

__all__ = ["FEEDBACK_FORMATS", "READERS", "FeedbackSource", "detect_format", "read_feedback"]

#: Record shapes in detection order (the more specific first).
READERS: dict[str, ModuleType] = {m.NAME: m for m in (served, oasst, hhrlhf, traces, chatlog)}
FEEDBACK_FORMATS = ("auto", "chat", "trace", "oasst", "hh-rlhf", "serve")
_GZIP_MAGIC = b"\x1f\x8b"


class FeedbackSource:
    """The file being read: its format and how positions are counted (``line`` or ``record``)."""

    def __init__(self, path: Path, fmt: str, unit: str) -> None:
        self.path, self.format, self.unit = path, fmt, unit

    def error(self, line: int | None, reason: str) -> InputError:
        return InputError(reason, self.path, line, self.unit)


def detect_format(record: Any) -> str | None:
    if not isinstance(record, dict):
        return None
    return next((name for name, mod in READERS.items() if mod.detect(record)), None)


def _is_gzip(path: Path) -> bool:
    with path.open("rb") as f:
        return f.read(2) == _GZIP_MAGIC


def _gzip_records(path: Path) -> Iterator[tuple[int, Any]]:
    """(line, record or RowError) of a gzip-compressed JSON Lines file, read a bounded line at a time."""
    try:
        with gzip.open(path, "rb") as f:
            for n, raw in iter_raw_lines(f):
                if isinstance(raw, RowError):
                    yield n, raw
                    continue
                if raw.isspace():
                    continue
                try:
                    yield n, loads_line(raw)
                except RowError as e:
                    yield n, e
    except (OSError, EOFError, zlib.error) as e:
        raise InputError(f"cannot read the gzip file: {e}", path) from None


def _records(path: Path) -> tuple[str, Iterator[tuple[int, Any]]]:
    if not path.exists():
        raise InputError("no such file", path)
    if path.is_file() and path.stat().st_size and _is_gzip(path):
        return "line", _gzip_records(path)
    check_file(path)
    from curator.data.readers.textfile import is_json_array

    return ("record" if is_json_array(path) else "line"), iter_json_records(path)


def read_feedback(
    path: str | Path, fmt: str = "auto", rules: RatingRules | None = None
) -> tuple[FeedbackSource, Iterator[tuple[int, Parsed | RowError]]]:
    """Open ``path``; returns (source, (position, parsed record or the RowError of a bad one)).

    File-level problems (missing, empty, binary, unknown format) raise :class:`InputError` at once.
    """
    p = Path(path)
    if fmt not in FEEDBACK_FORMATS:
        raise InputError(f"unknown feedback format {fmt!r} (choose from {', '.join(FEEDBACK_FORMATS)})", p)
    rules = rules or RatingRules()
    unit, records = _records(p)
    src = FeedbackSource(p, fmt, unit)
    first: list[tuple[int, Any]] = []
    for item in records:
        first.append(item)
        if not isinstance(item[1], RowError):
            break
    if not first:
        raise InputError("file has no records", p)
    line0, rec0 = first[-1]
    if isinstance(rec0, RowError):
        raise src.error(line0, str(rec0))
    if fmt == "auto":
        detected = detect_format(rec0)
        if detected is None:
            keys = sorted(rec0) if isinstance(rec0, dict) else type(rec0).__name__
            raise src.error(line0, f"cannot tell the feedback format from the first record (keys: {keys}); "
                                   f"pass --format ({', '.join(FEEDBACK_FORMATS[1:])}) and the field options")
        src.format = detected
    return src, _parse(READERS[src.format], chain(first, records), rules)


def _parse(mod: ModuleType, records: Iterator[tuple[int, Any]], rules: RatingRules) -> Iterator[tuple[int, Parsed | RowError]]:
    for line, rec in records:
        if isinstance(rec, RowError):
            yield line, rec
            continue
        if not isinstance(rec, dict):
            yield line, RowError(f"expected a JSON object, got {type(rec).__name__}")
            continue
        try:
            parsed = mod.convert(rec, rules)
            for event in parsed.events:
                if not isinstance(event.meta, dict):
                    raise RowError(f"metadata must be an object, got {type(event.meta).__name__}")
                encode_meta(event.meta)  # what cannot be stored is refused here, with its line
                for what, value in (("the trace id", event.trace_id), ("the model name", event.model),
                                    ("the event time", event.event_time), ("the task", event.task)):
                    if value is not None and not isinstance(value, str):
                        raise RowError(f"{what} must be a string, got {type(value).__name__}")
        except RowError as e:
            yield line, e
            continue
        except RecursionError:
            yield line, RowError("the record is nested too deeply")
            continue
        yield line, parsed
