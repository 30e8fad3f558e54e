"""Exact duplicates: equal texts after :func:`curator.quality.fold.fold`.

The key of a text is the BLAKE2b-128 digest of its fold (NFKC, casefold, apostrophes deleted,
every other punctuation character turned into a space, whitespace runs folded, stripped), so
``top-up``, ``top up`` and ``Top up!`` are one text. On BANKING77 this finds the 26 test texts
that equal a train text after folding (25 without the apostrophe rule; punctuation deletion
finds 11). Symbols (``$ + < =``)
are kept: ``a+b`` and ``a b`` stay apart.

All functions are pure over lists of strings (no database), deterministic across processes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

from curator.quality.fold import fold

__all__ = ["exact_keys", "exact_pairs", "key_of"]


def key_of(text: str) -> str:
    """BLAKE2b-128 hex digest of :func:`curator.quality.fold.fold` (UTF-8): the exact-duplicate key."""
    return hashlib.blake2b(fold(text).encode("utf-8"), digest_size=16).hexdigest()


def exact_keys(texts: Sequence[str]) -> list[str]:
    """:func:`key_of` of every text."""
    return [key_of(t) for t in texts]


def exact_pairs(texts: Sequence[str] | None = None, keys: Sequence[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Pairs ``(first, i)`` linking every later text to the first text with the same key.

    Give ``texts`` or precomputed ``keys``. Returns ``(pairs (m, 2) int64 with first < i,
    scores (m,) float64, all 1.0)``; the pairs form one star per group, enough for union-find.
    """
    if keys is None:
        if texts is None:
            raise ValueError("give texts or keys")
        keys = exact_keys(texts)
    first: dict[str, int] = {}
    rows: list[tuple[int, int]] = []
    for i, k in enumerate(keys):
        j = first.setdefault(k, i)
        if j != i:
            rows.append((j, i))
    pairs = np.array(rows, dtype=np.int64).reshape(-1, 2)
    return pairs, np.ones(pairs.shape[0], dtype=np.float64)
