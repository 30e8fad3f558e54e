"""CSV (and TSV) files: one example per row, columns mapped to system / user / assistant.

Obvious headers are mapped automatically (``instruction``/``response``, ``text``/``category``,
``question``/``answer``, ``prompt``/``completion``, ...); anything else takes
``--prompt-column`` / ``--response-column`` (and optionally ``--system-column``, ``--task-column``).
Other columns are kept in ``meta``.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from curator.data.readers.shapes import RowError, check_messages
from curator.data.readers.textfile import MAX_LINE_BYTES, iter_raw_lines
from curator.errors import InputError

NAME = "csv"
__all__ = ["NAME", "CsvMapping", "iter_csv"]

PROMPT_NAMES = ("instruction", "prompt", "question", "query", "input", "text", "user", "utterance")
RESPONSE_NAMES = ("response", "output", "answer", "completion", "assistant", "category", "label", "intent")
SYSTEM_NAMES = ("system", "system_prompt")


@dataclass
class CsvMapping:
    prompt: str | None = None
    response: str | None = None
    system: str | None = None
    task: str | None = None
    delimiter: str | None = None


def _pick(header: list[str], wanted: tuple[str, ...]) -> str | None:
    lower = {h.strip().lower(): h for h in header}
    for w in wanted:
        if w in lower:
            return lower[w]
    return None


def _lines(path: Path) -> Iterator[str]:
    """The file's lines, decoded strictly, read at most :data:`MAX_LINE_BYTES` at a time.

    A NUL byte, invalid UTF-8 or a line over the limit stops the file with its line number (the CSV
    parser cannot resynchronise after them).
    """
    with path.open("rb") as f:
        for n, raw in iter_raw_lines(f):
            if isinstance(raw, RowError):
                raise InputError(str(raw), path, n)
            nul = raw.find(b"\x00")
            if nul >= 0:
                raise InputError(f"NUL byte at byte {nul + 1} of the line (is this a binary file?)", path, n)
            try:
                yield raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise InputError(f"invalid UTF-8 (byte {e.start} of the line)", path, n) from None


def iter_csv(path: Path, mapping: CsvMapping) -> Iterator[tuple[int, Any]]:
    """(line, (messages, meta) | RowError) per data row; the line is where the row starts."""
    csv.field_size_limit(MAX_LINE_BYTES)
    delimiter = mapping.delimiter or ("\t" if path.suffix.lower() == ".tsv" else ",")
    reader = csv.reader(_lines(path), delimiter=delimiter)
    try:
        header = next(reader)
    except StopIteration:
        raise InputError("file is empty", path) from None
    except csv.Error as e:
        raise InputError(f"CSV header: {e}", path, 1) from None
    header = [h.strip() for h in header]
    prompt = mapping.prompt or _pick(header, PROMPT_NAMES)
    response = mapping.response or _pick(header, RESPONSE_NAMES)
    system = mapping.system or _pick(header, SYSTEM_NAMES)
    for option, col in (("--prompt-column", prompt), ("--response-column", response)):
        if col is None:
            raise InputError(
                f"cannot tell which column holds the {option.split('-')[2]}; header is {header}: pass {option}", path, 1
            )
    assert prompt is not None and response is not None  # for the type checker: the loop above raised otherwise
    for option, col in (
        ("--prompt-column", prompt), ("--response-column", response),
        ("--system-column", mapping.system), ("--task-column", mapping.task),
    ):
        if col is not None and col not in header:
            raise InputError(f"column {col!r} ({option}) not found; header is {header}", path, 1)
    idx = {h: i for i, h in enumerate(header)}
    used = {prompt, response, system, mapping.task}
    start = reader.line_num + 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            reason = str(e)
            if "field limit" in reason:
                reason = f"a field is over the {MAX_LINE_BYTES // (1024 * 1024)} MiB limit (an unclosed quote?)"
            raise InputError(f"CSV: {reason}", path, start) from None
        line, start = start, reader.line_num + 1
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) != len(header):
            yield line, RowError(f"row has {len(row)} fields, header has {len(header)}")
            continue
        messages = []
        if system and row[idx[system]].strip():
            messages.append({"role": "system", "content": row[idx[system]]})
        messages.append({"role": "user", "content": row[idx[prompt]]})
        messages.append({"role": "assistant", "content": row[idx[response]]})
        try:
            check_messages(messages)
        except RowError as e:
            yield line, RowError(f"{e} (columns {prompt!r} -> user, {response!r} -> assistant)")
            continue
        meta: dict[str, Any] = {h: row[i] for h, i in idx.items() if h not in used and row[i] != ""}
        if mapping.task:
            meta["task"] = row[idx[mapping.task]]
        yield line, (messages, meta)
