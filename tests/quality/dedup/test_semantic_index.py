"""The semantic search's index choice: flat up to ``EXACT_MAX`` vectors, IVF above, and the IVF's recall."""

from __future__ import annotations

import math

import numpy as np
import pytest

from curator.quality.dedup.semantic import (
    EXACT_MAX,
    IVF_NPROBE,
    index_params,
    semantic_index,
    semantic_pairs,
)

faiss = pytest.importorskip("faiss")


def _clustered(n: int, d: int, seed: int) -> tuple[np.ndarray, set[tuple[int, int]]]:
    """Unit vectors around 200 sources (cosine ~0.85 to theirs, ~0.72 to each other: not duplicates), 2 % of
    them replaced by a noisy copy of another row at a cosine drawn from [0.93, 0.99]; the planted pairs."""
    rng = np.random.default_rng(seed)
    src = rng.standard_normal((200, d)).astype(np.float32)
    src /= np.linalg.norm(src, axis=1, keepdims=True)
    x = src[rng.integers(0, 200, n)] + rng.standard_normal((n, d)).astype(np.float32) * math.sqrt((1 / 0.85**2 - 1) / d)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    planted = rng.choice(n, n // 50, replace=False)
    other = (planted + 1 + rng.integers(0, n - 1, planted.size)) % n
    tau = np.sqrt((1 / rng.uniform(0.93, 0.99, planted.size) ** 2 - 1) / d).astype(np.float32)[:, None]
    y = x[other] + rng.standard_normal((planted.size, d)).astype(np.float32) * tau
    x[planted] = y / np.linalg.norm(y, axis=1, keepdims=True)
    return x, {(min(a, b), max(a, b)) for a, b in zip(planted.tolist(), other.tolist(), strict=True)}


def test_flat_up_to_the_threshold_and_ivf_above() -> None:
    assert index_params(EXACT_MAX) == {"kind": "flat"}
    above = index_params(EXACT_MAX + 1)
    assert above["kind"] == "ivf" and above["nprobe"] == IVF_NPROBE == 8
    million = index_params(1_000_000)
    assert million == {"kind": "ivf", "nlist": 4000, "nprobe": 8, "train": 80_000, "niter": 10}
    assert index_params(10_000_000)["nlist"] == int(4 * math.sqrt(10_000_000))
    assert index_params(1_000_000, nprobe=16)["nprobe"] == 16
    small = index_params(2_000, exact_max=0)  # forced IVF on few vectors: the sample is all of them
    assert small["kind"] == "ivf" and small["train"] == 2_000


def test_semantic_index_builds_what_index_params_says() -> None:
    x, _ = _clustered(6_000, 32, seed=1)
    flat = semantic_index(x, True)
    assert isinstance(flat, faiss.IndexFlatIP) and flat.ntotal == 6_000
    ivf = semantic_index(x, False)
    want = index_params(6_000, exact_max=0)
    assert isinstance(ivf, faiss.IndexIVFFlat) and ivf.ntotal == 6_000
    assert (ivf.nlist, ivf.nprobe) == (want["nlist"], want["nprobe"])
    assert semantic_index(x, False, nprobe=3).nprobe == 3


def test_ivf_finds_what_the_flat_index_finds_on_clustered_vectors() -> None:
    """Above the threshold the pairs are a subset of the exact ones, with the same scores, at recall >= 0.95."""
    x, planted = _clustered(20_000, 64, seed=2)
    exact_pairs, exact_scores = semantic_pairs(x, 0.95, exact_max=len(x))
    ivf_pairs, ivf_scores = semantic_pairs(x, 0.95, exact_max=0)
    exact = dict(zip(map(tuple, exact_pairs.tolist()), exact_scores.tolist(), strict=True))
    ivf = dict(zip(map(tuple, ivf_pairs.tolist()), ivf_scores.tolist(), strict=True))
    assert len(set(exact) & planted) > 150  # most pairs are planted ones (some of those fall under 0.95)
    assert set(ivf) <= set(exact)
    assert all(ivf[p] == exact[p] for p in ivf)  # scores are exact cosines whichever index found the pair
    assert len(ivf) >= 0.95 * len(exact)
    queries = x[:500] + 0.01
    q_exact = semantic_pairs(x, 0.95, queries=queries, exact_max=len(x))[0]
    q_ivf = semantic_pairs(x, 0.95, queries=queries, exact_max=0)[0]
    common = {tuple(p) for p in q_ivf.tolist()} & {tuple(p) for p in q_exact.tolist()}
    assert len(common) == len(q_ivf) >= 0.95 * len(q_exact)
