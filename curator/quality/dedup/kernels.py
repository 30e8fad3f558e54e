"""Compiled loops (numba) for the near-duplicate shingler and MinHash signatures.

:mod:`curator.quality.dedup.minhash` computes word hashes, shingles and signatures with whole-array
numpy operations; this module computes the very same numbers with one loop per text, compiled by
numba and spread over the CPU cores. The numpy code has to materialise every intermediate (a
position array per byte, a window array per shingle, a sort of all shingles of a batch, a
``(texts, num_perm)`` product per shingle position); a loop keeps a text in cache from its code
points to its sorted shingle set, and a signature row in registers while it takes the minimum over
the set, which is what makes the difference on large batches (``benchmarks/dedup_near.py``).

The two paths give identical results, bit for bit (``tests/quality/dedup/test_kernels.py`` checks
both on hostile text: non-ASCII, empty texts, NULs, words over 256 bytes). numba is a dependency
of curator but is only imported here, lazily, and only for batches of at least
:data:`MIN_TEXTS` texts: its import (about half a second) and, on the first run after an install,
its compilation (cached in ``__pycache__``) would cost more than they save on small batches.
Without numba (a platform it does not support yet), the numpy path does everything.
"""

from __future__ import annotations

import os
import unicodedata
from collections.abc import Sequence
from functools import cache
from typing import Any

import numpy as np

__all__ = ["MIN_TEXTS", "available", "band_keys", "gather_sets", "nfkc_join", "nul_join", "serves", "shingles", "signatures"]

#: Batches of fewer texts than this stay on the numpy path (``CURATOR_NUMBA=0`` turns the compiled path off).
MIN_TEXTS = 4096


@cache
def _load() -> Any:
    """The compiled functions, or None when numba cannot be imported (or ``CURATOR_NUMBA=0``)."""
    if os.environ.get("CURATOR_NUMBA", "1") == "0":
        return None
    try:
        from curator.quality.dedup import compiled
    except ImportError:  # numba missing, or built for another numpy
        return None
    return compiled


def available() -> bool:
    """Whether the compiled path can run here."""
    return _load() is not None


def serves(n: int) -> bool:
    """Whether a batch of ``n`` texts (or rows) takes the compiled path: :data:`MIN_TEXTS` or more, and numba here."""
    return n >= MIN_TEXTS and available()


def nfkc_join(texts: Sequence[str]) -> str:
    """The texts in NFKC joined by NUL (a NUL inside a text becomes a space), what :func:`shingles` takes.

    Only the texts that are not ASCII and not already in NFKC are normalised: NFKC never joins or moves
    characters across a NUL, so this equals normalising the joined text, at a fraction of the cost.
    """
    if any(not t.isascii() and not unicodedata.is_normalized("NFKC", t) for t in texts):
        texts = [t if t.isascii() or unicodedata.is_normalized("NFKC", t) else unicodedata.normalize("NFKC", t)
                 for t in texts]
    return nul_join(texts)


def nul_join(texts: Sequence[str]) -> str:
    """The texts joined by NUL; a NUL inside a text becomes a space (as in :func:`curator.quality.fold.fold`)."""
    joined = "\x00".join(texts)
    if joined.count("\x00") != len(texts) - 1:
        joined = "\x00".join(t.replace("\x00", " ") for t in texts)
    return joined


def shingles(joined: str, n_texts: int, classes: np.ndarray, table: np.ndarray, constants: np.ndarray, k: int
             ) -> tuple[np.ndarray, np.ndarray]:
    """CSR shingle sets ``(flat uint32, offsets int64)`` of ``n_texts`` texts in NFKC joined by NUL
    (:func:`nfkc_join`).

    The same sets as ``minhash._shingles_from_words(*minhash._word_hashes(minhash._fold_join(texts)), k)``:
    the folding (casefold in Python, then the per-code-point ``classes``) and the word hashing (``table``,
    ``constants`` = ``[PRIME, EMPTY_SEED, M1, M2]``) happen here in one pass over the code points.
    """
    kern = _load()
    if joined.isascii():
        cps = np.frombuffer(joined.encode("ascii"), dtype=np.uint8)
    else:
        cps = np.frombuffer(joined.casefold().encode("utf-32-le"), dtype=np.uint32)
    bounds = np.empty(n_texts + 1, dtype=np.int64)
    bounds[0], bounds[-1] = 0, cps.size
    bounds[1:-1] = np.flatnonzero(cps == 0)
    # Room per text for its words and its shingles: a text of c characters has at most (c + 1) // 2 words.
    slot_off = np.zeros(n_texts + 1, dtype=np.int64)
    np.cumsum((np.diff(bounds) + 1) // 2 + 1, out=slot_off[1:])
    hashes = np.empty(int(slot_off[-1]), dtype=np.uint64)
    spare = np.empty(int(slot_off[-1]), dtype=np.uint32)
    sizes = kern.text_shingles(cps, bounds, slot_off, classes, table, constants, np.uint64(k), hashes, spare)
    del hashes
    offsets = np.zeros(n_texts + 1, dtype=np.int64)
    np.cumsum(sizes, out=offsets[1:])
    flat = np.empty(int(offsets[-1]), dtype=np.uint32)
    kern.compact(spare, slot_off, offsets, flat)
    return flat, offsets


def signatures(flat: np.ndarray, offsets: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``sig[i, p] = min over x in set i of (a[p] * x + b[p]) mod 2^32`` (all ones for an empty set)."""
    return _load().signatures(np.ascontiguousarray(flat, dtype=np.uint32), np.asarray(offsets, dtype=np.int64),
                              a.astype(np.uint64), b.astype(np.uint64))


def band_keys(sigs: np.ndarray, bands: int, rows: int, seeds: np.ndarray, constants: np.ndarray) -> np.ndarray:
    """``minhash.band_keys`` of ``sigs``: ``seeds`` holds each band's starting hash, ``constants`` as in :func:`shingles`."""
    return _load().band_keys(np.ascontiguousarray(sigs), bands, rows, seeds, constants[0], constants[2], constants[3])


def gather_sets(flat: np.ndarray, starts: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """The sets ``flat[starts[i]:starts[i] + size_i]`` back to back, ``size_i = offsets[i + 1] - offsets[i]``."""
    out = np.empty(int(offsets[-1]), dtype=flat.dtype)
    _load().compact(flat, starts, offsets, out)
    return out
