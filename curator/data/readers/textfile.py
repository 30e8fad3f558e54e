"""Opening input files safely: clear errors for what is not UTF-8 JSON/CSV text.

Every problem becomes an :class:`~curator.errors.InputError` naming the file and, where there
is one, the line; a problem of one line is a :class:`~curator.data.readers.shapes.RowError`.

Reading is bounded: a line is read at most :data:`MAX_LINE_BYTES` at a time, so a file without
newlines (or a gzip bomb) costs no more memory than one line over the limit.  JSON is parsed by
orjson; only a line orjson refuses (or one that may hold an integer over 64 bits, which orjson
would turn into a float) goes through the standard library, which decides and words the error:
NaN/Infinity, lone surrogates, NUL bytes and nesting too deep for the parser are refused there, so
the fast path pays nothing for them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import orjson

from curator.data.readers.shapes import RowError
from curator.errors import InputError

__all__ = [
    "MAX_LINE_BYTES", "check_file", "check_text", "is_json_array", "iter_json_records", "iter_lines",
    "iter_raw_lines", "loads_line", "too_long",
]

#: Longest line (or JSON record) accepted.  A fine-tuning example of several MB is almost always
#: a broken export (a whole file on one line, base64 blobs) and would blow up tokenisation later.
MAX_LINE_BYTES = 8 * 1024 * 1024
_SNIFF = 64 * 1024
_SKIP_CHUNK = 1024 * 1024
#: ``raw.translate(_DIGITS)`` maps digits to ``0`` and every other byte to ``x``: a run of 19 zeros
#: then means a number token (or a digit run in a string) that may not fit 64 bits.
_DIGITS = bytes(48 if 48 <= i <= 57 else 120 for i in range(256))
_LONG_DIGITS = b"0" * 19


def too_long() -> RowError:
    return RowError(f"line is over the {MAX_LINE_BYTES // (1024 * 1024)} MiB limit per example", kind="line_too_long")


def check_file(path: str | Path) -> Path:
    """The path exists, is a non-empty regular file, and is neither binary nor UTF-16.

    A NUL byte in text that is otherwise UTF-8 is left to the line readers (they name its line);
    a head that is not UTF-8 and holds NUL bytes is a binary file.
    """
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
    if head.startswith((b"\xff\xfe", b"\xfe\xff")) or _looks_utf16(head):
        raise InputError("file is UTF-16 encoded; curator reads UTF-8 (convert it: iconv -f UTF-16 -t UTF-8)", p)
    nul = head.find(b"\x00")
    if nul >= 0:
        try:
            head[: len(head) - 4 if len(head) == _SNIFF else len(head)].decode("utf-8")
        except UnicodeDecodeError:
            raise InputError(f"binary file (NUL byte at offset {nul}); expected UTF-8 JSON Lines, JSON or CSV", p) from None
    return p


def _looks_utf16(head: bytes) -> bool:
    """UTF-16 without a byte order mark: text in the Latin range has a NUL in every other byte, on one side.

    Binary data has NUL bytes too, but not in that pattern (a file of bytes 0..255 is binary, not UTF-16).
    """
    sample = head[: min(len(head), 512) // 2 * 2]
    if len(sample) < 4:
        return False
    even, odd = sample[0::2], sample[1::2]
    for nuls, other in ((even, odd), (odd, even)):
        if nuls.count(0) >= 0.9 * len(nuls) and other.count(0) <= 0.1 * len(other):
            return True
    return False


class _Lines(Protocol):
    """What the line reader needs of a file: a plain binary file or a ``gzip.GzipFile``."""

    def readline(self, size: int = -1, /) -> bytes: ...

    def tell(self) -> int: ...


def _skip_rest(f: _Lines) -> None:
    """Read past the end of the current line, a chunk at a time (nothing of it is kept)."""
    while True:
        chunk = f.readline(_SKIP_CHUNK)
        if not chunk or chunk.endswith(b"\n"):
            return


def iter_raw_lines(f: _Lines, first_line: int = 1, size: int | None = None) -> Iterator[tuple[int, bytes | RowError]]:
    """(line number, raw bytes with the newline) from the current position of ``f``: ``size`` bytes, or to the end.

    A line over :data:`MAX_LINE_BYTES` comes back as a :class:`RowError`; it is skipped (not read into
    memory) only when the caller asks for the next line.  A UTF-8 BOM at the start of the file is dropped.
    """
    n = first_line - 1
    left = size
    limit = MAX_LINE_BYTES + 1
    bom = first_line == 1
    while left is None or left > 0:
        raw = f.readline(limit)
        if not raw:
            return
        n += 1
        if left is not None:
            left -= len(raw)
        if len(raw) == limit and not raw.endswith(b"\n"):
            yield n, too_long()
            before = f.tell() if left is not None else 0
            _skip_rest(f)
            if left is not None:
                left -= f.tell() - before
            continue
        if bom:
            bom = False
            if raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
        yield n, raw


def iter_lines(path: Path) -> Iterator[tuple[int, str | RowError]]:
    """(line number, text) for each line, decoded strictly as UTF-8; a UTF-8 BOM is dropped.

    A line that cannot be decoded (or is too long) comes back as a :class:`RowError` in place of its text.
    """
    with path.open("rb") as f:
        for n, raw in iter_raw_lines(f):
            if isinstance(raw, RowError):
                yield n, raw
                continue
            try:
                yield n, raw.decode("utf-8")
            except UnicodeDecodeError as e:
                yield n, RowError(f"invalid UTF-8 (byte {e.start} of the line)", kind="bad_utf8")


class _Constant(ValueError):
    pass


def _no_constant(name: str) -> Any:
    raise _Constant(name)


_DECODER = json.JSONDecoder(parse_constant=_no_constant)


def loads_line(raw: bytes) -> Any:
    """One JSON value from one line (bytes); every problem is a :class:`RowError`."""
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return _slow_loads(raw)
    if _LONG_DIGITS in raw.translate(_DIGITS):
        return _slow_loads(raw)  # orjson turns integers over 64 bits into floats; the standard library keeps them
    return obj


def _slow_loads(raw: bytes) -> Any:
    nul = raw.find(b"\x00")
    if nul >= 0:
        raise RowError(f"NUL byte at byte {nul + 1} of the line (not valid in JSON; a NUL character in a string is "
                       "written \\u0000)", kind="nul_byte")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise RowError(f"invalid UTF-8 (byte {e.start} of the line)", kind="bad_utf8") from None
    try:
        obj = _DECODER.decode(text)
    except json.JSONDecodeError as e:
        raise RowError(f"invalid JSON: {e.msg} (column {e.colno})", kind="json_error") from None
    except _Constant as e:
        raise RowError(f"invalid JSON: {e} is not a JSON number (write null, or the value as a string)",
                       kind="json_error") from None
    except RecursionError:
        raise RowError("JSON nested too deeply (over about 1,000 levels)", kind="nesting_too_deep") from None
    check_text(obj)
    return obj


def check_text(obj: Any) -> None:
    """Refuse lone surrogates (``"\\ud800"``: not Unicode text, cannot be stored as UTF-8) in any string or key.

    Iterative, so any depth is fine.  Only values parsed by the standard library need it: orjson and
    strict UTF-8 decoding never produce a lone surrogate.
    """
    stack = [obj]
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            _check_str(v)
        elif isinstance(v, dict):
            for k, x in v.items():
                if isinstance(k, str):
                    _check_str(k, key=True)
                stack.append(x)
        elif isinstance(v, list):
            stack.extend(v)


def _check_str(s: str, key: bool = False) -> None:
    try:
        s.encode("utf-8")
    except UnicodeEncodeError as e:
        what = f"field name {s[:40]!r}" if key else "a string"
        raise RowError(f"{what} holds a lone surrogate {s[e.start]!r} (not valid Unicode text)",
                       kind="invalid_unicode") from None


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
    with path.open("rb") as f:
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


def _iter_json_array(path: Path) -> Iterator[tuple[int, Any]]:
    raw = path.read_bytes()
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    nul = raw.find(b"\x00")
    if nul >= 0:
        raise InputError("NUL byte (not valid in JSON; a NUL character in a string is written \\u0000)", path,
                         raw[:nul].count(b"\n") + 1)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise InputError("invalid UTF-8", path, line) from None
    # A lone surrogate can only come from a \uD800-\uDFFF escape: walk records only when there is one.
    surrogates = "\\ud" in text or "\\uD" in text
    del raw
    dec = _DECODER
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
        except _Constant as e:
            raise InputError(f"invalid JSON: {e} is not a JSON number (write null, or the value as a string)",
                             path, record, "record") from None
        except RecursionError:
            raise InputError("JSON nested too deeply (over about 1,000 levels)", path, record, "record") from None
        if end - pos > MAX_LINE_BYTES:
            raise InputError(f"over the {MAX_LINE_BYTES // (1024 * 1024)} MiB limit per example", path, record, "record")
        if surrogates:
            try:
                check_text(obj)
            except RowError as e:
                raise InputError(str(e), path, record, "record") from None
        yield record, obj
        pos = skip_ws(end)
        if pos >= n:
            raise InputError("invalid JSON: unterminated array", path, text.count("\n") + 1)
        if text[pos] == ",":
            pos += 1
            continue
        if text[pos] == "]":
            after = skip_ws(pos + 1)
            if after < n:
                raise InputError(f"invalid JSON: text after the closing ']' of the array: {text[after:after + 20]!r}",
                                 path, text.count("\n", 0, after) + 1)
            return
        raise InputError(f"invalid JSON: expected ',' or ']' but found {text[pos]!r}", path, text.count("\n", 0, pos) + 1)
