"""Semantic duplicates: pairs of embeddings with cosine similarity at or above a threshold.

Exact search (faiss ``IndexFlatIP.range_search``) up to :data:`EXACT_MAX` vectors; above that an
inverted-file index (``IndexIVFFlat``, about ``2 * sqrt(n)`` lists trained with 10 k-means rounds
on 30 points per list, ``nprobe`` 8) makes the all-pairs search near-linear at a small recall cost
(true near-duplicates sit in the same or an adjacent cell). Queries go in blocks so a progress
callback can follow the search. Pure: arrays in, arrays out.

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

__all__ = ["DEFAULT_THRESHOLD", "EXACT_MAX", "semantic_pairs"]

DEFAULT_THRESHOLD = 0.95
#: Above this many vectors the search switches from exact to IVF (approximate).
EXACT_MAX = 50_000
_QUERY_BLOCK = 4096


def _index(x: np.ndarray, exact: bool, nprobe: int) -> Any:  # a faiss SWIG index (untyped)
    import faiss  # present: semantic_pairs required it

    d = x.shape[1]
    index: Any
    if exact:
        index = faiss.IndexFlatIP(d)
    else:
        nlist = max(16, int(2 * np.sqrt(x.shape[0])))
        quantizer = faiss.IndexFlatIP(d)
        index = faiss.IndexIVFFlat(quantizer, d, nlist, faiss.METRIC_INNER_PRODUCT)
        index.cp.niter = 10  # coarse centroids only route queries; 10 k-means rounds are plenty
        index.cp.min_points_per_centroid = 5
        rng = np.random.default_rng(0)
        train = x[np.sort(rng.choice(x.shape[0], size=min(x.shape[0], nlist * 30), replace=False))]
        index.train(train)
        index.nprobe = nprobe
    index.add(x)
    return index


def semantic_pairs(
    vectors: np.ndarray,
    threshold: float = DEFAULT_THRESHOLD,
    *,
    queries: np.ndarray | None = None,
    exact_max: int = EXACT_MAX,
    nprobe: int = 8,
    progress: Callable[[int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Pairs with cosine ``>= threshold``.

    Without ``queries``: ``(i, j)`` with ``i < j`` inside ``vectors``. With ``queries``:
    ``(query_row, vector_row)``. Returns ``(pairs (m, 2) int64, scores (m,) float32)`` sorted.
    ``progress`` is told how many query rows were searched after each block. Needs faiss (the
    ``[embed]`` extra): :class:`curator.errors.MissingDependency` otherwise, even for empty input.
    """
    require("faiss", "embed", "semantic duplicate search")
    x = normalize_rows(vectors) if len(vectors) else np.zeros((0, 1), dtype=np.float32)
    q = x if queries is None else (normalize_rows(queries) if len(queries) else np.zeros((0, x.shape[1]), np.float32))
    if x.shape[0] == 0 or q.shape[0] == 0:
        if progress and q.shape[0]:
            progress(q.shape[0])
        return np.empty((0, 2), dtype=np.int64), np.empty(0, dtype=np.float32)
    self_mode = queries is None
    index = _index(x, x.shape[0] <= exact_max, nprobe)
    radius = float(np.nextafter(np.float32(threshold), np.float32(-np.inf)))
    rows: list[np.ndarray] = []
    cols: list[np.ndarray] = []
    vals: list[np.ndarray] = []
    for r0 in range(0, q.shape[0], _QUERY_BLOCK):
        block = q[r0 : r0 + _QUERY_BLOCK]
        lims, dist, idx = index.range_search(block, radius)
        ii = np.repeat(np.arange(block.shape[0], dtype=np.int64) + r0, np.diff(lims.astype(np.int64)))
        jj = idx.astype(np.int64)
        keep = (jj >= 0) & (dist >= np.float32(threshold))
        if self_mode:
            keep &= jj != ii
        rows.append(ii[keep])
        cols.append(jj[keep])
        vals.append(dist[keep].astype(np.float32))
        if progress:
            progress(block.shape[0])
    i = np.concatenate(rows)
    j = np.concatenate(cols)
    s = np.concatenate(vals)
    if self_mode:
        lo, hi = np.minimum(i, j), np.maximum(i, j)
        n = np.int64(x.shape[0])
        code, first = np.unique(lo * n + hi, return_index=True)
        i, j, s = code // n, code % n, s[first]
    order = np.lexsort((j, i))
    return np.stack((i[order], j[order]), axis=1).astype(np.int64), s[order]
