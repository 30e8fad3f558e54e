"""Opening input files safely: clear errors for what is not UTF-8 JSON/CSV text.

Every problem becomes an :class:`~curator.errors.InputError` naming the file and, where there
is one, the line.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from curator.data.readers.shapes import RowError
from curator.errors import InputError

__all__ = ["MAX_LINE_BYTES", "check_file", "is_json_array", "iter_json_records", "iter_lines"]

#: Longest line (or JSON record) accepted.  A fine-tuning example of several MB is almost always
#: a broken export (a whole file on one line, base64 blobs) and would blow up tokenisation later.
MAX_LINE_BYTES = 8 * 1024 * 1024
_SNIFF = 64 * 1024


def check_file(path: str | Path) -> Path:
    """The path exists, is a non-empty regular file, and is neither binary nor UTF-16."""
    p = Path(path)
    if not p.exists():
        raise InputError("no such file", p)
    if p.is_dir():
        raise InputError("is a directory, not a file (a Hugging Face dataset folder needs --format hf)", p)
    if not p.is_file():
        raise InputError("is not a regular file", p)
    try:
        with p.open("rb") as f:
            head = f.read(_SNIFF)
    except OSError as e:
        raise InputError(f"cannot read: {e.strerror}", p) from None
    if not head.strip():
        raise InputError("file is empty", p)
    if head.startswith((b"\xff\xfe", b"\xfe\xff")) or (len(head) > 3 and (head[1] == 0 or head[0] == 0) and b"\x00" in head[:4]):
        raise InputError("file is UTF-16 encoded; curator reads UTF-8 (convert it: iconv -f UTF-16 -t UTF-8)", p)
    nul = head.find(b"\x00")
    if nul >= 0:
        raise InputError(f"binary file (NUL byte at offset {nul}); expected UTF-8 JSON Lines, JSON or CSV", p)
    return p


def _decode(raw: bytes) -> str:
    if len(raw) > MAX_LINE_BYTES:
        raise RowError(f"line is {len(raw) / 1e6:.1f} MB, over the {MAX_LINE_BYTES // (1024 * 1024)} MiB limit per example")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise RowError(f"invalid UTF-8 (byte {e.start} of the line)") from None


def iter_lines(path: Path) -> Iterator[tuple[int, str | RowError]]:
    """(line number, text) for each line, decoded strictly as UTF-8; a UTF-8 BOM is dropped.

    A line that cannot be decoded (or is too long) comes back as a :class:`RowError` in place of its text.
    """
    with path.open("rb") as f:
        for n, raw in enumerate(f, 1):
            if n == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            try:
                yield n, _decode(raw)
            except RowError as e:
                yield n, e


def is_json_array(path: Path) -> bool:
    with path.open("rb") as f:
        head = f.read(_SNIFF).lstrip(b"\xef\xbb\xbf").lstrip()
    return head[:1] == b"["


def iter_json_records(path: Path) -> Iterator[tuple[int, Any]]:
    """(position, record) from a JSON Lines file (position = line) or a JSON array (position = record number).

    In JSON Lines a line that is not valid JSON comes back as a :class:`RowError` (the next line can
    still be read); in a JSON array a syntax error is fatal (:class:`InputError`).
    """
    if is_json_array(path):
        yield from _iter_json_array(path)
        return
    for n, text in iter_lines(path):
        if isinstance(text, RowError):
            yield n, text
            continue
        if not text.strip():
            continue
        try:
            yield n, orjson.loads(text)
        except orjson.JSONDecodeError:
            # orjson is strict (no NaN, no integers over 64 bits) and its messages are terse: the standard
            # library decides, and words the error.
            try:
                yield n, json.loads(text)
            except json.JSONDecodeError as e:
                yield n, RowError(f"invalid JSON: {e.msg} (column {e.colno})")


def _iter_json_array(path: Path) -> Iterator[tuple[int, Any]]:
    raw = path.read_bytes()
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise InputError("invalid UTF-8", path, line) from None
    dec = json.JSONDecoder()
    pos = text.index("[") + 1
    line = text.count("\n", 0, pos) + 1
    n = len(text)

    def skip_ws(i: int) -> int:
        while i < n and text[i] in " \t\r\n":
            i += 1
        return i

    pos = skip_ws(pos)
    if pos < n and text[pos] == "]":
        raise InputError("file is an empty JSON array", path, line)
    record = 0
    while True:
        pos = skip_ws(pos)
        record += 1
        try:
            obj, end = dec.raw_decode(text, pos)
        except json.JSONDecodeError as e:
            raise InputError(f"invalid JSON: {e.msg} (column {e.colno})", path, e.lineno) from None
        if end - pos > MAX_LINE_BYTES:
            raise InputError(f"over the {MAX_LINE_BYTES // (1024 * 1024)} MiB limit per example", path, record, "record")
        yield record, obj
        pos = skip_ws(end)
        if pos >= n:
            raise InputError("invalid JSON: unterminated array", path, text.count("\n") + 1)
        if text[pos] == ",":
            pos += 1
            continue
        if text[pos] == "]":
            return
        raise InputError(f"invalid JSON: expected ',' or ']' but found {text[pos]!r}", path, text.count("\n", 0, pos) + 1)
