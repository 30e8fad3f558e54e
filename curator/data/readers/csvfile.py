"""CSV (and TSV) files: one example per row, columns mapped to system / user / assistant.

Obvious headers are mapped automatically (``instruction``/``response``, ``text``/``category``,
``question``/``answer``, ``prompt``/``completion``, ...); anything else takes
``--prompt-column`` / ``--response-column`` (and optionally ``--system-column``, ``--task-column``).
Other columns are kept in ``meta``.

The delimiter is ``--delimiter`` (:func:`parse_delimiter`: one character, or ``tab`` / ``\t``,
``comma``, ``semicolon``, ``pipe``) when given; a ``.tsv`` file is tab-separated; any other file
(``.csv``, ``.txt``, no extension) is sniffed (:func:`sniff_delimiter`).
"""

from __future__ import annotations

import csv
import io
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from curator.data.readers.shapes import RowError, check_messages
from curator.data.readers.textfile import MAX_LINE_BYTES, iter_raw_lines
from curator.errors import InputError

NAME = "csv"
__all__ = ["DELIMITERS", "NAME", "CsvMapping", "iter_csv", "parse_delimiter", "sniff_delimiter"]

#: What sniffing chooses from, in csv.Sniffer's order of preference.
DELIMITERS = (",", "\t", ";", "|")
_NAMES = {"tab": "\t", "\\t": "\t", "comma": ",", "semicolon": ";", "pipe": "|"}
#: How much of the file sniffing reads, and how many of its lines it looks at.
_SNIFF_BYTES = 64 * 1024
_SNIFF_LINES = 200
#: The share of the first lines a delimiter must split into as many columns as the header.
_AGREEMENT = 0.9

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


def _show(d: str) -> str:
    return "tab" if d == "\t" else repr(d)


def parse_delimiter(value: str) -> str:
    """``--delimiter``: one character, or ``tab`` (also ``\\t`` as typed in a shell), ``comma``, ``semicolon``, ``pipe``."""
    d = _NAMES.get(value.lower(), value)
    if len(d) != 1 or d in "\"\r\n":
        raise InputError(f"--delimiter {value!r}: give one character (',', ';', '|'), or tab (also written \\t)")
    return d


def _sample(path: Path) -> tuple[str, bool]:
    """The file's first bytes up to a line end, decoded leniently (the reader decodes strictly), and whether cut."""
    with path.open("rb") as f:
        raw = f.read(_SNIFF_BYTES + 1)
    cut = len(raw) > _SNIFF_BYTES
    if cut:
        raw = raw[: raw.rfind(b"\n") + 1] or raw[:_SNIFF_BYTES]
    return raw.decode("utf-8", errors="replace").lstrip("\ufeff"), cut


def _columns(sample: str, delimiter: str, cut: bool) -> tuple[int, float]:
    """(columns of the header, share of the following lines with as many) when split by ``delimiter``."""
    rows = []
    try:
        for row in itertools.islice(csv.reader(io.StringIO(sample, newline=""), delimiter=delimiter), _SNIFF_LINES):
            if row and any(c.strip() for c in row):
                rows.append(len(row))
    except csv.Error:
        return 0, 0.0
    if cut and len(rows) > 1:
        rows.pop()  # the last row may be cut short
    if not rows:
        return 0, 0.0
    width, rest = rows[0], rows[1:]
    return width, (sum(1 for n in rest if n == width) / len(rest)) if rest else 1.0


def sniff_delimiter(path: Path) -> str:
    """The delimiter of a CSV/TSV file, from its first lines, whatever its extension.

    ``csv.Sniffer`` guesses among :data:`DELIMITERS`, and the guess is checked against the first
    lines.  A delimiter *fits* when it splits the header into two or more columns and at least 90 %
    of the next lines into as many.  When exactly one of the four fits, it is the delimiter (also when
    the sniffer guessed otherwise or gave up).  When none fits (a short file with a ragged row), the
    sniffer's guess is taken if it splits the header, else the only one that does; the rows that
    disagree are then reported one by one.  Several that fit, or several that split the header with
    no guess among them, or none at all, are refused with a message asking for ``--delimiter``.
    """
    sample, cut = _sample(path)
    try:
        guess: str | None = csv.Sniffer().sniff(sample, delimiters="".join(DELIMITERS)).delimiter
    except csv.Error:
        guess = None
    found = {d: _columns(sample, d, cut) for d in DELIMITERS}
    splitting = [d for d in DELIMITERS if found[d][0] >= 2]
    fits = [d for d in splitting if found[d][1] >= _AGREEMENT]
    if len(fits) == 1:
        return fits[0]
    if not fits:
        if guess in splitting:
            return guess
        if len(splitting) == 1:
            return splitting[0]
    if fits or splitting:
        both = ", ".join(f"{_show(d)} ({found[d][0]} columns)" for d in fits or splitting)
        alike = "each split the header and the first lines alike" if fits else "each split the header"
        raise InputError(f"cannot tell the delimiter: {both} {alike}; pass --delimiter", path, 1)
    raise InputError("cannot tell the delimiter: none of ',', tab, ';', '|' splits the header into two or more "
                     "columns (a one-column file, or another delimiter?); pass --delimiter", path, 1)


def iter_csv(path: Path, mapping: CsvMapping) -> Iterator[tuple[int, Any]]:
    """(line, (messages, meta) | RowError) per data row; the line is where the row starts."""
    csv.field_size_limit(MAX_LINE_BYTES)
    if mapping.delimiter:
        delimiter = parse_delimiter(mapping.delimiter)
    elif path.suffix.lower() == ".tsv":
        delimiter = "\t"
    else:
        delimiter = sniff_delimiter(path)
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
