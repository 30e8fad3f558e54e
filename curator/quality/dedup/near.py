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
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from curator.quality.dedup.minhash import (
    DEFAULT_K,
    band_params,
    candidate_pairs,
    shingle_batch,
    signatures_from_shingles,
    verify_pairs_csr,
)

__all__ = ["DEFAULT_NUM_PERM", "DEFAULT_THRESHOLD", "DEFAULT_WEIGHTS", "near_pairs"]

DEFAULT_THRESHOLD = 0.8
DEFAULT_NUM_PERM = 128
DEFAULT_WEIGHTS = (0.2, 0.8)


def _no_phase(name: str) -> None:
    pass


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
    told the name of each step as it begins (shingles, signatures, banding, verification).
    """
    phase = phase or _no_phase
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"Jaccard threshold must be in (0, 1], got {threshold}")
    if len(texts) < 2:
        return np.empty((0, 2), dtype=np.int64), np.empty(0, dtype=np.float64)
    lsh_threshold = min(threshold, 0.99)
    phase("shingles")
    flat, offsets = shingle_batch(texts, k)
    phase("signatures")
    sigs = signatures_from_shingles(flat, offsets, num_perm)
    phase("banding")
    bands, rows = band_params(lsh_threshold, num_perm, weights)
    cands = candidate_pairs(sigs, bands, rows)
    if involving is not None:
        cands = cands[cands[:, 1] >= involving]
    phase(f"verification of {len(cands)} candidate pairs")
    pairs, scores = verify_pairs_csr(flat, offsets, cands, threshold)
    keep = scores >= threshold
    return pairs[keep], scores[keep]
