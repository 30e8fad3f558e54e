"""Read-only columns of a dedup :class:`~curator.quality.dedup.run.Pool`: compact storage, read as sequences.

A pool of 10 M examples held as Python lists costs several GB (one ``str`` object per id and text, one
``datetime`` per row); these columns keep the same rows in a few flat buffers and convert to Python
objects only what is read:

* :class:`StrColumn` -- UTF-8 strings in one Arrow ``large_string`` array (the texts);
* :class:`FixedStrColumn` -- strings as one numpy ``S<width>`` array (ids, when they are about equally long);
* :class:`HexColumn` -- lowercase hex strings of one length as their bytes (a sha256 id in 32 bytes, not 64);
* :class:`CodeColumn` -- a few distinct strings (split, origin, task) as integer codes.

Each is a :class:`collections.abc.Sequence` of ``str``: ``len``, ``col[i]``, iteration, and ``col[lo:hi]``
(a ``list``). ``StrColumn`` and ``FixedStrColumn`` may read their buffer through an ``index`` of rows, so
a reordered or filtered view costs one integer per row and no copy. :func:`take_list` reads many rows at
once (vectorised for these columns, a comprehension for any other sequence); iterating reads in blocks.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, overload

import numpy as np
import pyarrow as pa

__all__ = [
    "BLOCK_ROWS", "HEX_DIGITS", "Chain", "CodeColumn", "FixedStrColumn", "HexColumn", "StrColumn", "take_list",
    "text_blocks", "unhex",
]

#: Rows converted to Python objects at a time when a column is iterated.
BLOCK_ROWS = 1 << 16


def _rows(rows: Any) -> np.ndarray:
    out = np.ascontiguousarray(rows, dtype=np.int64)
    if out.ndim != 1:
        raise ValueError("rows must be one-dimensional")
    return out


class _Column(Sequence[str]):
    """The sequence protocol over ``_n`` rows, from ``_get(i)`` (one row) and ``_list(rows)`` (many)."""

    _n: int

    def __len__(self) -> int:
        return self._n

    def _get(self, i: int) -> str:  # pragma: no cover - abstract
        raise NotImplementedError

    def _list(self, rows: np.ndarray) -> list[str]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _range(self, lo: int, hi: int) -> list[str]:
        return self._list(np.arange(lo, hi, dtype=np.int64))

    @overload
    def __getitem__(self, i: int) -> str: ...

    @overload
    def __getitem__(self, i: slice) -> list[str]: ...

    def __getitem__(self, i: int | slice) -> str | list[str]:
        if isinstance(i, slice):
            lo, hi, step = i.indices(self._n)
            if step == 1:
                return self._range(lo, max(lo, hi))
            return self._list(np.arange(lo, hi, step, dtype=np.int64))
        i = int(i)
        if i < 0:
            i += self._n
        if not 0 <= i < self._n:
            raise IndexError("column index out of range")
        return self._get(i)

    def __iter__(self) -> Iterator[str]:
        for lo in range(0, self._n, BLOCK_ROWS):
            yield from self._range(lo, min(self._n, lo + BLOCK_ROWS))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._n} rows)"

    def to_list(self, rows: Any = None) -> list[str]:
        """All rows (or ``rows``, pool positions) as a list of ``str``."""
        return self._range(0, self._n) if rows is None else self._list(_rows(rows))


class StrColumn(_Column):
    """Strings in one Arrow string array, read through an optional ``index`` (row ``i`` is ``array[index[i]]``)."""

    def __init__(self, array: pa.Array, index: np.ndarray | None = None) -> None:
        if isinstance(array, pa.ChunkedArray):
            array = array.combine_chunks() if array.num_chunks != 1 else array.chunk(0)
        if not pa.types.is_large_string(array.type):
            array = array.cast(pa.large_string())
        if array.null_count:
            raise ValueError("a StrColumn holds no nulls")
        self.array = array
        self.rows = None if index is None else _rows(index)
        self._n = len(array) if self.rows is None else int(self.rows.size)
        offsets = np.frombuffer(array.buffers()[1], dtype=np.int64)[array.offset : array.offset + len(array) + 1]
        data = array.buffers()[2]
        self._offsets = memoryview(offsets.data)
        self._data = memoryview(data if data is not None else b"")
        self._rows_mv = None if self.rows is None else memoryview(self.rows.data)

    @classmethod
    def from_list(cls, texts: Sequence[str]) -> StrColumn:
        return cls(pa.array(list(texts), pa.large_string()))

    def _get(self, i: int) -> str:
        j = i if self._rows_mv is None else self._rows_mv[i]
        return str(self._data[self._offsets[j] : self._offsets[j + 1]], "utf-8")

    def _list(self, rows: np.ndarray) -> list[str]:
        if self.rows is not None:
            rows = self.rows[rows]
        out: list[str] = self.array.take(pa.array(rows, pa.int64())).to_pylist()
        return out

    def _range(self, lo: int, hi: int) -> list[str]:
        if self.rows is not None:
            return self._list(np.arange(lo, hi, dtype=np.int64))
        out: list[str] = self.array.slice(lo, hi - lo).to_pylist()
        return out

    def take(self, rows: Any) -> StrColumn:
        """A view of ``rows`` (positions in this column), sharing the buffer."""
        rows = _rows(rows)
        return StrColumn(self.array, rows if self.rows is None else self.rows[rows])

    def arrow(self, lo: int = 0, hi: int | None = None) -> pa.Array:
        """Rows ``lo:hi`` as an Arrow ``large_string`` array (a slice, or a gather through the index)."""
        hi = self._n if hi is None else hi
        if self.rows is None:
            return self.array.slice(lo, hi - lo)
        return self.array.take(pa.array(self.rows[lo:hi], pa.int64()))


class FixedStrColumn(_Column):
    """Strings as one numpy ``S<width>`` array of their UTF-8 bytes, read through an optional ``index``.

    For strings without NUL bytes (a NUL-padded ``S`` value drops trailing NULs), e.g. example ids.
    """

    def __init__(self, values: np.ndarray, index: np.ndarray | None = None) -> None:
        if values.dtype.kind != "S":
            raise ValueError("a FixedStrColumn holds an S<width> array")
        self.values = values
        self.rows = None if index is None else _rows(index)
        self._n = len(values) if self.rows is None else int(self.rows.size)
        self._rows_mv = None if self.rows is None else memoryview(self.rows.data)

    def _get(self, i: int) -> str:
        j = i if self._rows_mv is None else self._rows_mv[i]
        return bytes(self.values[j]).decode("utf-8")

    def _list(self, rows: np.ndarray) -> list[str]:
        if self.rows is not None:
            rows = self.rows[rows]
        return [b.decode("utf-8") for b in self.values[rows].tolist()]

    def _range(self, lo: int, hi: int) -> list[str]:
        if self.rows is not None:
            return self._list(np.arange(lo, hi, dtype=np.int64))
        return [b.decode("utf-8") for b in self.values[lo:hi].tolist()]

    def take(self, rows: Any) -> FixedStrColumn:
        rows = _rows(rows)
        return FixedStrColumn(self.values, rows if self.rows is None else self.rows[rows])


HEX_DIGITS = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)


def unhex(packed: np.ndarray) -> np.ndarray:
    """``(n, w)`` bytes -> ``(n, 2w)`` uint8 of their lowercase hex digits."""
    out = np.empty((packed.shape[0], 2 * packed.shape[1]), dtype=np.uint8)
    out[:, 0::2] = HEX_DIGITS[packed >> 4]
    out[:, 1::2] = HEX_DIGITS[packed & 15]
    return out


class HexColumn(_Column):
    """Lowercase hex strings of one even length, stored as their bytes: ``(n, length / 2)`` uint8, read
    through an optional ``index``. The bytes sort as the strings do."""

    def __init__(self, packed: np.ndarray, index: np.ndarray | None = None) -> None:
        if packed.dtype != np.uint8 or packed.ndim != 2:
            raise ValueError("a HexColumn holds an (n, bytes) uint8 array")
        self.packed = packed
        self.rows = None if index is None else _rows(index)
        self._n = len(packed) if self.rows is None else int(self.rows.size)
        self._rows_mv = None if self.rows is None else memoryview(self.rows.data)

    def _get(self, i: int) -> str:
        j = i if self._rows_mv is None else self._rows_mv[i]
        return self.packed[j].tobytes().hex()

    def _list(self, rows: np.ndarray) -> list[str]:
        if self.rows is not None:
            rows = self.rows[rows]
        digits = self.packed[rows].tobytes().hex()
        w = 2 * self.packed.shape[1]
        return [digits[i : i + w] for i in range(0, len(digits), w)] if w else [""] * rows.size

    def _range(self, lo: int, hi: int) -> list[str]:
        return self._list(np.arange(lo, hi, dtype=np.int64))

    def take(self, rows: Any) -> HexColumn:
        rows = _rows(rows)
        return HexColumn(self.packed, rows if self.rows is None else self.rows[rows])


class CodeColumn(_Column):
    """Strings of a small vocabulary: ``values[codes[i]]`` (one ``str`` object per distinct value)."""

    def __init__(self, codes: np.ndarray, values: Sequence[str]) -> None:
        self.codes = np.asarray(codes)
        self.values = tuple(values)
        self._n = int(self.codes.size)

    def _get(self, i: int) -> str:
        return self.values[int(self.codes[i])]

    def _list(self, rows: np.ndarray) -> list[str]:
        values = self.values
        return [values[c] for c in self.codes[rows].tolist()]

    def _range(self, lo: int, hi: int) -> list[str]:
        values = self.values
        return [values[c] for c in self.codes[lo:hi].tolist()]

    def take(self, rows: Any) -> CodeColumn:
        return CodeColumn(self.codes[_rows(rows)], self.values)

    def lookup(self, table: dict[str, int], default: int) -> np.ndarray:
        """``table.get(value, default)`` of every row, as an int64 array."""
        lut = np.array([table.get(v, default) for v in self.values] or [default], dtype=np.int64)
        return lut[self.codes]


class Chain(_Column):
    """Two sequences of ``str`` read as one (``a`` then ``b``), without copying either."""

    def __init__(self, a: Sequence[str], b: Sequence[str]) -> None:
        self.a, self.b = a, b
        self._na = len(a)
        self._n = self._na + len(b)

    def _get(self, i: int) -> str:
        return self.a[i] if i < self._na else self.b[i - self._na]

    def _list(self, rows: np.ndarray) -> list[str]:
        out: list[str] = [""] * rows.size
        first = rows < self._na
        pos_a, pos_b = np.flatnonzero(first), np.flatnonzero(~first)
        for p, t in zip(pos_a.tolist(), take_list(self.a, rows[pos_a]), strict=True):
            out[p] = t
        for p, t in zip(pos_b.tolist(), take_list(self.b, rows[pos_b] - self._na), strict=True):
            out[p] = t
        return out

    def _range(self, lo: int, hi: int) -> list[str]:
        na = self._na
        out = take_range(self.a, lo, min(hi, na)) if lo < na else []
        if hi > na:
            out += take_range(self.b, max(lo, na) - na, hi - na)
        return out


def take_range(texts: Sequence[str], lo: int, hi: int) -> list[str]:
    """``texts[lo:hi]`` as a list."""
    if hi <= lo:
        return []
    part = texts[lo:hi]
    return part if isinstance(part, list) else list(part)


def take_list(texts: Sequence[str], rows: Any) -> list[str]:
    """``[texts[i] for i in rows]``, vectorised for the columns of this module."""
    rows = _rows(rows)
    if isinstance(texts, _Column):
        return texts._list(rows) if rows.size else []
    return [texts[i] for i in rows.tolist()]


def text_blocks(texts: Sequence[str], size: int = BLOCK_ROWS) -> Iterator[tuple[int, list[str]]]:
    """``(lo, texts[lo:lo + size] as a list)`` for consecutive blocks: only one block of ``str`` at a time."""
    n = len(texts)
    for lo in range(0, n, max(1, size)):
        yield lo, take_range(texts, lo, min(n, lo + size))
