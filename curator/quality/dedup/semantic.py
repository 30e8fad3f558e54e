"""Semantic duplicates: pairs of embeddings with cosine similarity at or above a threshold.

Exact search (faiss ``IndexFlatIP.range_search``) up to :data:`EXACT_MAX` vectors; above that an
inverted-file index (``IndexIVFFlat``, ``4 * sqrt(n)`` lists trained with 10 k-means rounds on 20
sampled points per list, ``nprobe`` 8: :func:`index_params`) makes the all-pairs search much cheaper
at a small recall cost (true near-duplicates sit in the same or an adjacent cell). On 1M 384-d
vectors it found every pair at cosine >= 0.95 that the flat index found on 4,000 sampled queries, at
about 1/37 of the all-pairs time (extrapolated; ``benchmarks/scale.py --n 1000000 --stages recall``).
Queries go in blocks so a progress callback can follow the search. Pure: arrays in, arrays out.

faiss (``faiss-cpu``) is in the ``[embed]`` extra with the embedder; without it the search raises
:class:`curator.errors.MissingDependency` with the pip line. It never falls back to another
search: :func:`curator.quality.dedup.neighbors.cosine_pairs` (numpy, exact) is a separate core,
not a substitute picked on an ``ImportError``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from curator.errors import require
from curator.quality.dedup.neighbors import normalize_rows

__all__ = [
    "DEFAULT_THRESHOLD", "EXACT_MAX", "IVF_NPROBE", "MARGIN", "cosines", "index_params", "merge_blocks", "prepare",
    "query_blocks", "search_block", "semantic_index", "semantic_pairs",
]

DEFAULT_THRESHOLD = 0.95
#: Above this many vectors the search switches from exact to IVF (approximate).
EXACT_MAX = 50_000
#: IVF lists: this many times the square root of the number of vectors.
IVF_LISTS_PER_SQRT = 4.0
#: Lists searched per query.
IVF_NPROBE = 8
#: k-means training sample: this many vectors per list (at most all of them).
IVF_TRAIN_PER_LIST = 20
#: k-means rounds.
IVF_NITER = 10
_QUERY_BLOCK = 4096
#: faiss finds candidates down to ``threshold - MARGIN``; exact cosines then decide (float32 search error ~1e-6).
MARGIN = 1e-4


def index_params(n: int, nprobe: int | None = None, exact_max: int = EXACT_MAX) -> dict[str, Any]:
    """The index :func:`semantic_pairs` searches ``n`` vectors with: ``{"kind": "flat"}`` up to
    ``exact_max``, else ``{"kind": "ivf", "nlist", "nprobe", "train" (sample size), "niter"}``."""
    if n <= exact_max:
        return {"kind": "flat"}
    nlist = max(16, int(IVF_LISTS_PER_SQRT * np.sqrt(n)))
    return {"kind": "ivf", "nlist": nlist, "nprobe": nprobe or IVF_NPROBE,
            "train": min(n, nlist * IVF_TRAIN_PER_LIST), "niter": IVF_NITER}


def semantic_index(x: np.ndarray, exact: bool, nprobe: int | None = None) -> Any:  # a faiss SWIG index (untyped)
    """The faiss index :func:`semantic_pairs` searches: flat inner product, or IVF when not ``exact``
    (parameters: :func:`index_params`).

    ``x`` is L2-normalised float32. Needs faiss (callers check with :func:`curator.errors.require`).
    """
    import faiss

    d = x.shape[1]
    index: Any
    if exact:
        index = faiss.IndexFlatIP(d)
    else:
        p = index_params(x.shape[0], nprobe, exact_max=-1)
        quantizer = faiss.IndexFlatIP(d)
        index = faiss.IndexIVFFlat(quantizer, d, p["nlist"], faiss.METRIC_INNER_PRODUCT)
        index.cp.niter = p["niter"]  # coarse centroids only route queries; a few k-means rounds are plenty
        index.cp.min_points_per_centroid = 5
        rng = np.random.default_rng(0)
        train = x[np.sort(rng.choice(x.shape[0], size=min(x.shape[0], p["train"]), replace=False))]
        index.train(train)
        index.nprobe = p["nprobe"]
    index.add(x)
    return index


def query_blocks(n_queries: int) -> list[int]:
    """Start rows of the query blocks :func:`search_block` is called on (the same split on every engine)."""
    return list(range(0, n_queries, _QUERY_BLOCK))


def search_block(index: Any, q: np.ndarray, r0: int, threshold: float, self_mode: bool) -> tuple[np.ndarray, np.ndarray]:
    """Candidates of query rows ``q[r0:r0 + block]``: ``(query rows, vector rows)`` with a faiss cosine
    within :data:`MARGIN` of ``threshold`` or above (scored exactly by :func:`merge_blocks`)."""
    block = q[r0 : r0 + _QUERY_BLOCK]
    radius = float(np.float32(threshold) - np.float32(MARGIN))
    lims, _, idx = index.range_search(block, radius)
    ii = np.repeat(np.arange(block.shape[0], dtype=np.int64) + r0, np.diff(lims.astype(np.int64)))
    jj = idx.astype(np.int64)
    keep = jj >= 0
    if self_mode:
        keep &= jj != ii
    return ii[keep], jj[keep]


def cosines(q: np.ndarray, x: np.ndarray, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """``q[i] . x[j]`` per pair, summed in float64 and rounded to float32.

    The same number wherever it is computed: a BLAS or faiss float32 dot product can change in its last
    bit with the thread count or the block it is part of, which would move a pair across the threshold
    or change a stored score between engines.
    """
    out = np.empty(i.size, dtype=np.float32)
    for lo in range(0, i.size, 65_536):
        a = q[i[lo : lo + 65_536]].astype(np.float64)
        b = x[j[lo : lo + 65_536]].astype(np.float64)
        out[lo : lo + 65_536] = np.einsum("ij,ij->i", a, b)
    return out


def merge_blocks(
    found: list[tuple[np.ndarray, np.ndarray]], x: np.ndarray, q: np.ndarray, threshold: float, self_mode: bool
) -> tuple[np.ndarray, np.ndarray]:
    """The blocks' candidates (in block order) -> sorted ``(pairs, cosines)`` at or above ``threshold``.

    In self mode each pair once, ``i < j``. Cosines come from :func:`cosines` on the normalised rows.
    """
    if not found:
        return np.empty((0, 2), dtype=np.int64), np.empty(0, dtype=np.float32)
    i = np.concatenate([f[0] for f in found])
    j = np.concatenate([f[1] for f in found])
    if self_mode:
        n = np.int64(x.shape[0])
        code = np.unique(np.minimum(i, j) * n + np.maximum(i, j))
        i, j = code // n, code % n
    s = cosines(q, x, i, j)
    keep = s >= np.float32(threshold)
    i, j, s = i[keep], j[keep], s[keep]
    order = np.lexsort((j, i))
    return np.stack((i[order], j[order]), axis=1).astype(np.int64), s[order]


def prepare(
    vectors: np.ndarray, queries: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, bool]:
    """Normalised ``(vectors, queries, self_mode)`` as :func:`semantic_pairs` searches them."""
    x = normalize_rows(vectors) if len(vectors) else np.zeros((0, 1), dtype=np.float32)
    q = x if queries is None else (normalize_rows(queries) if len(queries) else np.zeros((0, x.shape[1]), np.float32))
    return x, q, queries is None


def semantic_pairs(
    vectors: np.ndarray,
    threshold: float = DEFAULT_THRESHOLD,
    *,
    queries: np.ndarray | None = None,
    exact_max: int = EXACT_MAX,
    nprobe: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Pairs with cosine ``>= threshold``.

    Without ``queries``: ``(i, j)`` with ``i < j`` inside ``vectors``. With ``queries``:
    ``(query_row, vector_row)``. Returns ``(pairs (m, 2) int64, scores (m,) float32)`` sorted.
    ``progress`` is told how many query rows were searched after each block. Needs faiss (the
    ``[embed]`` extra): :class:`curator.errors.MissingDependency` otherwise, even for empty input.
    The search is :func:`semantic_index`, then :func:`search_block` per block of
    :func:`query_blocks`, then :func:`merge_blocks`, which scores the candidates exactly
    (:func:`cosines`): the Ray engine runs the searches on its workers and the same merge.
    """
    require("faiss", "embed", "semantic duplicate search")
    x, q, self_mode = prepare(vectors, queries)
    if x.shape[0] == 0 or q.shape[0] == 0:
        if progress and q.shape[0]:
            progress(q.shape[0])
        return np.empty((0, 2), dtype=np.int64), np.empty(0, dtype=np.float32)
    index = semantic_index(x, x.shape[0] <= exact_max, nprobe)
    found = []
    for r0 in query_blocks(q.shape[0]):
        found.append(search_block(index, q, r0, threshold, self_mode))
        if progress:
            progress(min(_QUERY_BLOCK, q.shape[0] - r0))
    return merge_blocks(found, x, q, threshold, self_mode)
