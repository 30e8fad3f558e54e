"""Input readers, one module per format, behind one entry point: :func:`read_rows`.

Formats: ``chat`` (OpenAI chat JSONL), ``alpaca``, ``selfinstruct``, ``sharegpt``, ``dolly``
(record shapes in JSON Lines, JSON arrays, Parquet or HF datasets), ``csv`` (CSV/TSV with column
mapping; the delimiter is sniffed) and ``hf`` (a ``save_to_disk`` folder or a Parquet file).  ``auto``
looks at the file extension (``.csv``, ``.tsv``, and a ``.txt`` that does not start like JSON, are
tables) and then at the keys of the first record.

Rows come out as :class:`Row` (normalisable messages + meta) or :class:`BadRow` (line and reason),
so the caller decides whether one bad row rejects the whole file or is skipped.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path
from types import ModuleType
from typing import Any

from curator.data.readers import alpaca, chat, dolly, selfinstruct, sharegpt
from curator.data.readers.csvfile import CsvMapping, iter_csv
from curator.data.readers.hf import is_dataset_dir, iter_hf
from curator.data.readers.shapes import RowError
from curator.data.readers.textfile import check_file, is_json_array, iter_json_records
from curator.errors import InputError

__all__ = ["FORMATS", "BadRow", "CsvMapping", "Row", "Source", "detect_shape", "read_rows"]

#: Record shapes, in detection order (the more specific first).
SHAPES: dict[str, ModuleType] = {m.NAME: m for m in (chat, sharegpt, selfinstruct, dolly, alpaca)}
FORMATS = ("auto", *SHAPES, "csv", "hf")


@dataclass
class Row:
    line: int
    messages: list[dict[str, Any]]
    meta: dict[str, Any] = field(default_factory=dict)
    split: str | None = None


@dataclass
class BadRow:
    line: int
    reason: str


@dataclass
class Source:
    """What :func:`read_rows` opened: the format and how positions are counted (line, record, row)."""

    path: Path
    format: str
    unit: str = "line"

    def error(self, line: int | None, reason: str) -> InputError:
        return InputError(reason, self.path, line, self.unit)


def detect_shape(record: Any) -> str | None:
    if not isinstance(record, dict):
        return None
    for name, mod in SHAPES.items():
        if mod.detect(record):
            return name
    return None


def _records(path: Path, fmt: str, hf_split: str | None) -> tuple[str, str, Iterator[tuple[int, Any, str | None]]]:
    """The physical reading: JSON(L) or HF/Parquet records, with the container kind and position unit."""
    if fmt == "hf" or path.suffix.lower() == ".parquet" or (fmt == "auto" and path.is_dir() and is_dataset_dir(path)):
        return "hf", "row", iter_hf(path, hf_split)
    check_file(path)
    unit = "record" if is_json_array(path) else "line"
    return "json", unit, ((n, rec, None) for n, rec in iter_json_records(path))


def read_rows(
    path: str | Path,
    fmt: str = "auto",
    csv_mapping: CsvMapping | None = None,
    hf_split: str | None = None,
) -> tuple[Source, Iterator[Row | BadRow]]:
    """Open ``path`` and return (source, rows).  File-level problems raise :class:`InputError` now."""
    p = Path(path)
    if fmt not in FORMATS:
        raise InputError(f"unknown format {fmt!r} (choose from {', '.join(FORMATS)})", p)
    if not p.exists():
        raise InputError("no such file", p)
    if fmt == "csv" or (fmt == "auto" and (p.suffix.lower() in (".csv", ".tsv") or _text_table(p))):
        check_file(p)
        return Source(p, "csv"), _csv_rows(p, csv_mapping or CsvMapping())
    container, unit, records = _records(p, fmt, hf_split)
    src = Source(p, "", unit)
    # Peek at the first readable record to settle the shape.
    first: list[tuple[int, Any, str | None]] = []
    for item in records:
        first.append(item)
        if not isinstance(item[1], RowError):
            break
    if not first:
        raise InputError("file has no records", p)
    line0, rec0, _ = first[-1]
    if isinstance(rec0, RowError):
        raise src.error(line0, str(rec0))
    shape = fmt if fmt in SHAPES else detect_shape(rec0)
    if shape is None:
        keys = sorted(rec0) if isinstance(rec0, dict) else type(rec0).__name__
        raise src.error(
            line0, f"cannot tell the format from the first record (keys: {keys}); pass --format ({', '.join(SHAPES)})"
        )
    src.format = shape if container == "json" else f"hf/{shape}"
    return src, _shape_rows(SHAPES[shape], chain(first, records))


def _text_table(path: Path) -> bool:
    """A ``.txt`` file that does not start like JSON: a CSV/TSV table (its delimiter is sniffed)."""
    if path.suffix.lower() != ".txt" or not path.is_file():
        return False
    with path.open("rb") as f:
        head = f.read(4096).lstrip(b"\xef\xbb\xbf").lstrip()
    return bool(head) and head[:1] not in (b"{", b"[")


def _shape_rows(mod: ModuleType, records: Iterator[tuple[int, Any, str | None]]) -> Iterator[Row | BadRow]:
    for line, rec, split in records:
        if isinstance(rec, RowError):
            yield BadRow(line, str(rec))
            continue
        if not isinstance(rec, dict):
            yield BadRow(line, f"expected a JSON object, got {type(rec).__name__}")
            continue
        try:
            converted = mod.convert(rec)
        except RowError as e:
            yield BadRow(line, str(e))
            continue
        for messages, meta in converted:
            yield Row(line, messages, meta, split)


def _csv_rows(path: Path, mapping: CsvMapping) -> Iterator[Row | BadRow]:
    for line, item in iter_csv(path, mapping):
        if isinstance(item, RowError):
            yield BadRow(line, str(item))
        else:
            yield Row(line, item[0], item[1])
