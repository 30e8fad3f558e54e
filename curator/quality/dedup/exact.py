"""Exact duplicates: equal texts after :func:`curator.quality.fold.fold`.

The key of a text is the BLAKE2b-128 digest of its fold (NFKC, casefold, apostrophes deleted,
every other punctuation character turned into a space, whitespace runs folded, stripped), so
``top-up``, ``top up`` and ``Top up!`` are one text. On BANKING77 this finds the 26 test texts
that equal a train text after folding (25 without the apostrophe rule; punctuation deletion
finds 11). Symbols (``$ + < =``)
are kept: ``a+b`` and ``a b`` stay apart.

All functions are pure over sequences of strings (no database), deterministic across processes.
:func:`exact_digests` gives the keys as raw 16-byte digests in one numpy array (``(n, 16)`` uint8:
16 bytes a row, against ~100 for a hex ``str``), folding ASCII texts a block at a time;
:func:`exact_pairs` groups them with a sort instead of a dict.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from functools import partial
from operator import methodcaller

import numpy as np

from curator.quality.dedup.columns import text_blocks
from curator.quality.fold import ascii_fold_table, fold

__all__ = ["DIGEST_BYTES", "digests_of_folds", "exact_digests", "exact_keys", "exact_pairs", "first_of", "key_of"]

#: Bytes of a key (BLAKE2b-128).
DIGEST_BYTES = 16
#: Texts folded and hashed together (one joined string of this many texts exists at a time).
DIGEST_BLOCK = 1 << 14

_BLAKE = partial(hashlib.blake2b, digest_size=DIGEST_BYTES)
_DIGEST = methodcaller("digest")


def key_of(text: str) -> str:
    """BLAKE2b-128 hex digest of :func:`curator.quality.fold.fold` (UTF-8): the exact-duplicate key."""
    return hashlib.blake2b(fold(text).encode("utf-8"), digest_size=DIGEST_BYTES).hexdigest()


def _ascii_folds(texts: list[str]) -> list[bytes]:
    """``fold(t).encode()`` of ASCII texts without NUL, folded as one joined buffer.

    ``lower`` and the translation (punctuation and whitespace to a space, the apostrophe deleted) are
    ``fold``'s, on the whole block; then, in numpy, every run of spaces between two words becomes one
    space and the runs at the ends of a text go, as ``" ".join(t.split())`` does.
    """
    table, delete = ascii_fold_table()
    buf = np.frombuffer("\x00".join(texts).lower().encode("ascii").translate(table, delete), dtype=np.uint8)
    space = buf == 0x20
    keep = ~space
    first = np.flatnonzero(space & np.concatenate(([True], ~space[:-1])))  # the first space of each run
    if first.size:
        after = np.flatnonzero(space & np.concatenate((~space[1:], [True]))) + 1  # the byte after each run
        inner = (first > 0) & (buf[np.maximum(first - 1, 0)] != 0) & (after < buf.size)
        inner &= buf[np.minimum(after, buf.size - 1)] != 0
        keep[first[inner]] = True
    return buf[keep].tobytes().split(b"\x00")


def _digest_block(texts: list[str]) -> bytes:
    """The 16-byte digests of ``texts``, concatenated."""
    fast = [t.isascii() and "\x00" not in t for t in texts]
    if all(fast):
        folds = _ascii_folds(texts)
    else:
        ascii_folds = iter(_ascii_folds([t for t, ok in zip(texts, fast, strict=True) if ok]) if any(fast) else [])
        folds = [next(ascii_folds) if ok else fold(t).encode("utf-8") for t, ok in zip(texts, fast, strict=True)]
    return digests_of_folds(folds)


def digests_of_folds(folds: Iterable[bytes]) -> bytes:
    """The 16-byte digests of already folded texts (UTF-8), concatenated: the keys' hash step alone."""
    return b"".join(map(_DIGEST, map(_BLAKE, folds)))  # C-level loops: one digest object per text


def exact_digests(texts: Sequence[str]) -> np.ndarray:
    """:func:`key_of` of every text as raw bytes: ``(len(texts), 16)`` uint8 (row ``i`` is ``bytes.fromhex(key_of(t))``).

    Any sequence of ``str``; it is read :data:`DIGEST_BLOCK` texts at a time.
    """
    out = np.empty((len(texts), DIGEST_BYTES), dtype=np.uint8)
    for lo, block in text_blocks(texts, DIGEST_BLOCK):
        out[lo : lo + len(block)] = np.frombuffer(_digest_block(block), dtype=np.uint8).reshape(-1, DIGEST_BYTES)
    return out


def exact_keys(texts: Sequence[str]) -> list[str]:
    """:func:`key_of` of every text."""
    return [bytes(d).hex() for d in exact_digests(texts)]


def _digest_words(digests: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A digest array as two uint64 words per row (equal rows <=> equal word pairs)."""
    d = np.ascontiguousarray(digests, dtype=np.uint8).reshape(-1, DIGEST_BYTES)
    words = d.view(np.uint64)
    return words[:, 0], words[:, 1]


def _group_order(digests: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(order, starts)``: rows sorted by digest, ties by row; ``starts`` marks the first row of each digest."""
    hi, lo = _digest_words(digests)
    order = np.argsort(hi, kind="stable")
    shi, slo = hi[order], lo[order]
    if shi.size > 1 and bool(((shi[1:] == shi[:-1]) & (slo[1:] != slo[:-1])).any()):
        order = np.lexsort((np.arange(hi.size), lo, hi))  # a 64-bit tie with a different second half
        shi, slo = hi[order], lo[order]
    starts = np.ones(order.size, dtype=bool)
    if order.size > 1:
        starts[1:] = (shi[1:] != shi[:-1]) | (slo[1:] != slo[:-1])
    return order, starts


def exact_pairs(texts: Sequence[str] | None = None, keys: Sequence[str] | None = None, *,
                digests: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Pairs ``(first, i)`` linking every later text to the first text with the same key.

    Give ``texts``, precomputed ``keys`` (:func:`exact_keys`, or any strings) or ``digests``
    (:func:`exact_digests`). Returns ``(pairs (m, 2) int64 with first < i, sorted by i,
    scores (m,) float64, all 1.0)``; the pairs form one star per group, enough for union-find.
    """
    if digests is None and keys is not None:
        first: dict[str, int] = {}
        rows: list[tuple[int, int]] = []
        for i, k in enumerate(keys):
            j = first.setdefault(k, i)
            if j != i:
                rows.append((j, i))
        pairs = np.array(rows, dtype=np.int64).reshape(-1, 2)
        return pairs, np.ones(pairs.shape[0], dtype=np.float64)
    if digests is None:
        if texts is None:
            raise ValueError("give texts, keys or digests")
        digests = exact_digests(texts)
    order, starts = _group_order(digests)
    head = order[np.maximum.accumulate(np.where(starts, np.arange(order.size), 0))]  # first row of each row's group
    later = ~starts
    pairs = np.stack((head[later], order[later]), axis=1).astype(np.int64)
    pairs = pairs[np.argsort(pairs[:, 1], kind="stable")]
    return pairs, np.ones(pairs.shape[0], dtype=np.float64)


def first_of(stored: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """For each digest of ``queries``, the first row of ``stored`` with that digest, or -1."""
    out = np.full(len(queries), -1, dtype=np.int64)
    if not len(stored) or not len(queries):
        return out
    order, starts = _group_order(stored)
    firsts = order[starts]
    shi, slo = _digest_words(stored[firsts])
    qhi, qlo = _digest_words(queries)
    by = np.lexsort((slo, shi))
    shi, slo, firsts = shi[by], slo[by], firsts[by]
    at = np.searchsorted(shi, qhi, side="left")
    for i in range(len(queries)):  # candidates are few: queries are new examples
        j = int(at[i])
        while j < shi.size and shi[j] == qhi[i]:
            if slo[j] == qlo[i]:
                out[i] = firsts[j]
                break
            j += 1
    return out
