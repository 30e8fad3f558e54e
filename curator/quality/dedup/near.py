"""Near duplicates: MinHash + LSH over word bigrams, candidates verified by their true Jaccard.

A thin layer over :mod:`curator.quality.dedup.minhash` that fixes the defaults for instruction data:

* texts are folded with :func:`curator.quality.fold.fold` (inside the shingler, vectorised), so
  exact and near dedup agree on what a word is (``top-up`` is the two words ``top up``);
* word **bigrams** (``k = 2``): each edit destroys at most ``k`` shingles, and fine-tuning
  texts are short (median Alpaca example 47 words, 5 % under 13). One typo in a 12-word prompt
  leaves bigram Jaccard at 0.69-0.83 against 0.23-0.78 for word 5-grams; unigrams would be a
  bag of words, blind to order ("km to miles" == "miles to km");
* Jaccard **threshold 0.8**; 128 permutations;
* LSH band weights **(0.2, 0.8)** (false-positive vs false-negative area): every candidate
  is verified exactly, so a false candidate only costs one check, while a missed one is a
  duplicate kept. On ``benchmarks/dedup_near.py`` this raises recall at 0.8 from about 0.87 to
  0.96 for about 10 % more time.

Memory (:func:`near_pairs`): the texts are read :data:`KEY_ROWS` at a time and only their band keys are
kept (``bands x 8`` bytes a row, one array per band); the bands are grouped one after another, each
band's keys dropped once grouped, into one sorted array of candidate codes ``i * n + j``
(:func:`candidate_codes`, the pairs of :func:`~curator.quality.dedup.minhash.pairs_from_keys`); the
shingle sets are made again, at verification, for the rows that some candidate names, and the
candidates are verified :data:`VERIFY_PAIRS` at a time (:func:`verify_candidates`). So neither the
shingle sets nor the signatures of all rows, nor the candidates as an ``(m, 2)`` array, ever exist.
The texts may be any sequence of ``str`` (a :class:`~curator.quality.dedup.columns.StrColumn`
converts one block at a time).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from curator.quality.dedup.columns import take_list, text_blocks
from curator.quality.dedup.minhash import (
    DEFAULT_K,
    DEFAULT_MAX_BUCKET,
    band_codes,
    band_keys,
    band_params,
    shingle_batch,
    signatures_from_shingles,
    sorted_unique,
    verify_pairs_csr,
)

__all__ = [
    "DEFAULT_NUM_PERM", "DEFAULT_THRESHOLD", "DEFAULT_WEIGHTS", "NearShard", "concat_shards", "near_pairs", "near_shard",
    "near_bands", "near_keys", "subset_csr", "union_pairs", "verify_candidates", "candidate_codes",
]

DEFAULT_THRESHOLD = 0.8
DEFAULT_NUM_PERM = 128
DEFAULT_WEIGHTS = (0.2, 0.8)
#: Rows whose MinHash signatures exist at once in :func:`near_shard` (128 x 4 bytes each: 128 MB).
SIGNATURE_ROWS = 1 << 18
#: Rows :func:`near_keys` and :func:`verify_candidates` convert to ``str``, shingle and sign at a time (32 MB
#: of signatures).
KEY_ROWS = 1 << 16
#: Candidate pairs :func:`verify_candidates` checks at a time.
VERIFY_PAIRS = 1 << 20


def _no_phase(name: str) -> None:
    pass


@dataclass
class NearShard:
    """What the per-row steps give for a run of texts: CSR shingle sets and ``(n, bands)`` band keys."""

    flat: np.ndarray
    offsets: np.ndarray
    keys: np.ndarray

    def __len__(self) -> int:
        return self.offsets.size - 1


def near_bands(threshold: float, num_perm: int = DEFAULT_NUM_PERM,
               weights: tuple[float, float] = DEFAULT_WEIGHTS) -> tuple[int, int]:
    """``(bands, rows)`` of the LSH for a Jaccard ``threshold`` (a threshold of 1 bands as 0.99)."""
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"Jaccard threshold must be in (0, 1], got {threshold}")
    return band_params(min(threshold, 0.99), num_perm, weights)


def near_shard(texts: Sequence[str], *, k: int = DEFAULT_K, num_perm: int = DEFAULT_NUM_PERM, bands: int,
               rows: int, phase: Callable[[str], None] | None = None) -> NearShard:
    """Shingles, signatures and band keys of ``texts``: per row, so any split of a corpus gives the same rows."""
    phase = phase or _no_phase
    phase("shingles")
    flat, offsets = shingle_batch(texts, k)
    phase("signatures")
    # Signatures are only a step to the band keys: made SIGNATURE_ROWS rows at a time, they never all exist
    # at once (10M rows x 128 would be 5 GB; the keys are 0.7 GB).
    n = offsets.size - 1
    keys = np.empty((n, bands), dtype=np.uint64)
    for lo in range(0, n, SIGNATURE_ROWS):
        hi = min(n, lo + SIGNATURE_ROWS)
        a, b = int(offsets[lo]), int(offsets[hi])
        sigs = signatures_from_shingles(flat[a:b], offsets[lo : hi + 1] - a, num_perm)
        keys[lo:hi] = band_keys(sigs, bands, rows)
    return NearShard(flat, offsets, keys)


def concat_shards(shards: Sequence[NearShard]) -> NearShard:
    """Consecutive shards -> one (offsets shifted), as if the texts had been one batch."""
    if len(shards) == 1:
        return shards[0]
    sizes = [s.flat.size for s in shards]
    base = np.concatenate(([0], np.cumsum(sizes)[:-1])).astype(np.int64)
    offsets = np.concatenate([[0]] + [s.offsets[1:] + b for s, b in zip(shards, base, strict=True)]).astype(np.int64)
    return NearShard(np.concatenate([s.flat for s in shards]), offsets, np.concatenate([s.keys for s in shards]))


def union_pairs(parts: Sequence[np.ndarray], n: int) -> np.ndarray:
    """Unique ``(i, j)`` pairs of several :func:`pairs_from_keys` results, sorted: the pairs of all their columns.

    ``pairs_from_keys(keys)`` equals ``union_pairs([pairs_from_keys(keys[:, [c]]) for c in ...])``:
    every band is grouped on its own, so bands can be grouped on different workers.
    """
    parts = [p for p in parts if len(p)]
    if not parts:
        return np.empty((0, 2), dtype=np.int64)
    uniq = sorted_unique(np.concatenate([p[:, 0] * np.int64(n) + p[:, 1] for p in parts]))
    return np.stack((uniq // n, uniq % n), axis=1)


def subset_csr(flat: np.ndarray, offsets: np.ndarray, pairs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Only the sets that ``pairs`` name: ``(flat, offsets, pairs renumbered)``, for verifying elsewhere."""
    rows, local = np.unique(pairs, return_inverse=True)
    lens = offsets[rows + 1] - offsets[rows]
    sub_off = np.zeros(rows.size + 1, dtype=np.int64)
    np.cumsum(lens, out=sub_off[1:])
    idx = np.repeat(offsets[rows] - sub_off[:-1], lens) + np.arange(int(sub_off[-1]), dtype=np.int64)
    return flat[idx], sub_off, local.reshape(-1, 2).astype(np.int64)


def _band_columns(texts: Sequence[str], *, k: int, num_perm: int, bands: int, rows: int) -> list[np.ndarray]:
    """The band keys of ``texts`` as one uint64 array per band, made :data:`KEY_ROWS` rows at a time."""
    n = len(texts)
    columns = [np.empty(n, dtype=np.uint64) for _ in range(bands)]
    for lo, block in text_blocks(texts, KEY_ROWS):
        flat, offsets = shingle_batch(block, k)
        keys = band_keys(signatures_from_shingles(flat, offsets, num_perm), bands, rows)
        for c, column in enumerate(columns):
            column[lo : lo + len(block)] = keys[:, c]
    return columns


def near_keys(texts: Sequence[str], *, k: int = DEFAULT_K, num_perm: int = DEFAULT_NUM_PERM, bands: int,
              rows: int) -> np.ndarray:
    """The band keys of :func:`near_shard` (``(n, bands)`` uint64), without keeping the shingle sets.

    The texts are read, shingled and signed :data:`KEY_ROWS` rows at a time.
    """
    columns = _band_columns(texts, k=k, num_perm=num_perm, bands=bands, rows=rows)
    return np.stack(columns, axis=1) if columns else np.empty((len(texts), 0), dtype=np.uint64)


def candidate_codes(columns: list[np.ndarray], max_bucket: int = DEFAULT_MAX_BUCKET) -> np.ndarray:
    """Sorted unique codes ``i * n + j`` of the pairs of :func:`~curator.quality.dedup.minhash.pairs_from_keys`.

    ``columns`` holds one key array per band (``n`` rows each) and is emptied as the bands are grouped,
    so each band's keys go as its pairs come; the codes are merged band by band.
    """
    codes = np.empty(0, dtype=np.int64)
    while columns:
        band = band_codes(columns.pop(0), max_bucket)
        if band.size:
            merged = np.concatenate((codes, band))
            del codes, band
            codes = sorted_unique(merged, in_place=True)
            del merged
    return codes


def verify_candidates(texts: Sequence[str], cands: np.ndarray, threshold: float, *,
                      k: int = DEFAULT_K) -> tuple[np.ndarray, np.ndarray]:
    """:func:`~curator.quality.dedup.minhash.verify_pairs_csr` of candidate pairs of ``texts``.

    ``cands`` is an ``(m, 2)`` array of row pairs, or a 1-D array of codes ``i * len(texts) + j``
    (:func:`candidate_codes`). Only the rows the pairs name are shingled (a block at a time), into one
    compact CSR, and the pairs are checked :data:`VERIFY_PAIRS` at a time; they come back, as an
    ``(m, 2)`` array, in their order with their exact Jaccard, those ``>= threshold`` only.
    """
    n = len(texts)
    cands = np.asarray(cands, dtype=np.int64)
    coded = cands.ndim == 1
    if not coded:
        cands = cands.reshape(-1, 2)
    if not len(cands):
        return np.empty((0, 2), dtype=np.int64), np.empty(0, dtype=np.float64)

    def rows_of(lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
        part = cands[lo:hi]
        return (part // n, part % n) if coded else (part[:, 0], part[:, 1])

    used = np.zeros(n, dtype=bool)
    for lo in range(0, len(cands), VERIFY_PAIRS):
        a, b = rows_of(lo, lo + VERIFY_PAIRS)
        used[a] = True
        used[b] = True
    needed = np.flatnonzero(used)
    local_of = np.cumsum(used, dtype=np.int64 if needed.size >= 2**31 else np.int32) - 1
    del used
    flats: list[np.ndarray] = []
    sizes: list[np.ndarray] = []
    for lo in range(0, needed.size, KEY_ROWS):
        flat, offsets = shingle_batch(take_list(texts, needed[lo : lo + KEY_ROWS]), k)
        flats.append(flat)
        sizes.append(np.diff(offsets))
    offsets = np.zeros(needed.size + 1, dtype=np.int64)
    np.cumsum(np.concatenate(sizes), out=offsets[1:])
    flat = np.concatenate(flats)
    del flats, sizes
    kept: list[np.ndarray] = []
    scores: list[np.ndarray] = []
    for lo in range(0, len(cands), VERIFY_PAIRS):
        a, b = rows_of(lo, lo + VERIFY_PAIRS)
        local = np.stack((local_of[a], local_of[b]), axis=1).astype(np.int64)
        pairs, s = verify_pairs_csr(flat, offsets, local, threshold)
        kept.append(needed[pairs].reshape(-1, 2))
        scores.append(s)
    return np.concatenate(kept), np.concatenate(scores)


def near_pairs(
    texts: Sequence[str],
    threshold: float = DEFAULT_THRESHOLD,
    *,
    k: int = DEFAULT_K,
    num_perm: int = DEFAULT_NUM_PERM,
    weights: tuple[float, float] = DEFAULT_WEIGHTS,
    involving: int | None = None,
    phase: Callable[[str], None] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Pairs ``(i, j)``, ``i < j``, whose word ``k``-shingle Jaccard is ``>= threshold``.

    Returns ``(pairs (m, 2) int64, exact Jaccard scores (m,) float64)``. The shingler folds the
    texts (:func:`curator.quality.fold.fold`). ``involving=n`` keeps only pairs whose second row
    is ``>= n`` (new texts appended after ``n`` stored ones), before verification. ``phase`` is
    told the name of each step as it begins (shingles and signatures, banding, verification).
    The steps are :func:`near_keys` (per row: :func:`near_shard` without the sets),
    :func:`candidate_codes` (per band: :func:`curator.quality.dedup.minhash.pairs_from_keys`) and
    :func:`verify_candidates` (per pair): the Ray engine runs the same on shards, bands and blocks of pairs.
    """
    phase = phase or _no_phase
    bands, rows = near_bands(threshold, num_perm, weights)
    if len(texts) < 2:
        return np.empty((0, 2), dtype=np.int64), np.empty(0, dtype=np.float64)
    phase("shingles and signatures")
    columns = _band_columns(texts, k=k, num_perm=num_perm, bands=bands, rows=rows)
    phase("banding")
    codes = candidate_codes(columns)
    if involving is not None:
        codes = codes[codes % len(texts) >= involving]
    phase(f"verification of {len(codes)} candidate pairs")
    pairs, scores = verify_candidates(texts, codes, threshold, k=k)
    keep = scores >= threshold
    return pairs[keep], scores[keep]
