"""Hugging Face datasets: a ``save_to_disk`` folder or a Parquet file.

Rows are plain records, so the record shapes of the JSON readers (chat, sharegpt, alpaca, ...)
apply to them; the "line" of a row is its 1-based row number.  Values JSON has no type for are
handled when the row's ``meta`` is stored (:func:`~curator.data.readers.shapes.encode_meta`):
decimals keep their digits as a string, binary values are refused with the row number.

Curator's own exports (``snapshot export --format parquet`` / ``--format hf``, the layout of
:mod:`curator.data.exchange`) are recognised by their columns and read back as the chat records they
came from: messages (with their weights), task and meta; the split comes from the Parquet ``split``
column or the ``datasets`` split name (``validation`` is curator's ``eval``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from curator.data.exchange import from_export_record, is_export_layout
from curator.data.readers.shapes import RowError
from curator.errors import InputError, require

NAME = "hf"
__all__ = ["NAME", "is_dataset_dir", "iter_hf"]


def is_dataset_dir(path: Path) -> bool:
    return path.is_dir() and any((path / f).exists() for f in ("dataset_info.json", "state.json", "dataset_dict.json"))


def _unwrapped(rec: Any) -> Any:
    try:
        return from_export_record(rec)
    except ValueError as e:
        return RowError(str(e))


def _iter_parquet(path: Path, split: str | None) -> Iterator[tuple[int, Any, str | None]]:
    if split:
        raise InputError(f"--hf-split {split!r} given, but a Parquet file has no splits", path)
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as e:  # noqa: BLE001 - pyarrow raises many types for a bad file
        raise InputError(f"cannot read Parquet: {e}", path) from None
    if not is_export_layout(table.column_names):
        for i, rec in enumerate(table.to_pylist(), 1):
            yield i, rec, None
        return
    for i, rec in enumerate(table.to_pylist(), 1):
        yield i, _unwrapped(rec), rec.get("split")


def iter_hf(path: Path, split: str | None = None) -> Iterator[tuple[int, Any, str | None]]:
    """(row number, record or :class:`RowError`, dataset split name or None)."""
    if path.is_file() and path.suffix.lower() == ".parquet":
        yield from _iter_parquet(path, split)
        return
    if not is_dataset_dir(path):
        raise InputError("not a Hugging Face dataset folder (no dataset_info.json / dataset_dict.json)", path)
    require("datasets", "hf", "reading a Hugging Face datasets folder")
    from datasets import Dataset, DatasetDict, load_from_disk

    try:
        ds = load_from_disk(str(path))
    except Exception as e:  # noqa: BLE001
        raise InputError(f"cannot load dataset: {e}", path) from None
    parts: list[tuple[str | None, Dataset]]
    if isinstance(ds, DatasetDict):
        if split and split not in ds:
            raise InputError(f"no split {split!r} (--hf-split) in this dataset; it has {', '.join(ds.keys())}", path)
        names = [split] if split else list(ds.keys())
        parts = [(n, ds[n]) for n in names]
    else:
        if split:
            raise InputError(f"--hf-split {split!r} given, but this is a single dataset without splits", path)
        parts = [(None, ds)]
    for name, part in parts:
        if not is_export_layout(part.column_names):
            for i, rec in enumerate(part, 1):
                yield i, rec, name
            continue
        # Ours: read the Arrow rows, so ``meta`` stays its exact JSON text (``datasets`` decodes JSON with
        # a parser that refuses integers over 64 bits).
        i = 0
        for batch in part.with_format("arrow").iter(batch_size=1000):
            for rec in batch.to_pylist():
                i += 1
                yield i, _unwrapped(rec), name
