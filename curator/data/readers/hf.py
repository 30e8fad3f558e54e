"""Hugging Face datasets: a ``save_to_disk`` folder or a Parquet file.

Rows are plain records, so the record shapes of the JSON readers (chat, sharegpt, alpaca, ...)
apply to them; the "line" of a row is its 1-based row number.  Values JSON has no type for are
handled when the row's ``meta`` is stored (:func:`~curator.data.readers.shapes.encode_meta`):
decimals keep their digits as a string, binary values are refused with the row number.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from curator.errors import InputError, require

NAME = "hf"
__all__ = ["NAME", "is_dataset_dir", "iter_hf"]


def is_dataset_dir(path: Path) -> bool:
    return path.is_dir() and any((path / f).exists() for f in ("dataset_info.json", "state.json", "dataset_dict.json"))


def iter_hf(path: Path, split: str | None = None) -> Iterator[tuple[int, Any, str | None]]:
    """(row number, record, dataset split name or None)."""
    if path.is_file() and path.suffix.lower() == ".parquet":
        if split:
            raise InputError(f"--hf-split {split!r} given, but a Parquet file has no splits", path)
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(path)
        except Exception as e:  # noqa: BLE001 - pyarrow raises many types for a bad file
            raise InputError(f"cannot read Parquet: {e}", path) from None
        for i, rec in enumerate(table.to_pylist(), 1):
            yield i, rec, None
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
        for i, rec in enumerate(part, 1):
            yield i, rec, name
