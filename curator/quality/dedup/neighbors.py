"""Semantic near-duplicates: all pairs of embedding vectors with cosine >= a threshold.

Two interchangeable, pure cores over ``(n, d)`` float arrays:

* :func:`cosine_pairs` -- exact, numpy only: rows are L2-normalised and the similarity
  matrix is computed in ``block x block`` tiles (``block=4096``: 64 MiB of float32 per
  tile), so memory stays bounded for any ``n``; only the upper triangle is visited when
  comparing a set with itself.
* :func:`cosine_pairs_faiss` -- the same answer from faiss ``IndexFlatIP.range_search``
  (exact inner-product search; faiss reports all neighbours above a radius), or a capped
  top-``k`` variant.

Both return ``(pairs (m, 2) int64, scores (m,) float32)`` sorted by ``(i, j)``. Without
``queries`` a pair is ``(i, j)`` with ``i < j`` inside ``vectors``; with ``queries`` it is
``(query_row, vector_row)``. A pair is reported when its cosine is ``>= threshold``; zero
vectors have cosine 0 with everything. The two cores can disagree only on pairs within
float32 rounding (~1e-6) of the threshold.
"""

from __future__ import annotations

import numpy as np

from curator.errors import require

__all__ = ["cosine_pairs", "cosine_pairs_faiss", "normalize_rows"]


def normalize_rows(vectors: np.ndarray) -> np.ndarray:
    """Return a float32 C-contiguous copy of ``vectors`` with unit-length rows (zeros stay 0)."""
    x = np.array(vectors, dtype=np.float32, copy=True, order="C")
    if x.ndim != 2:
        raise ValueError(f"expected a 2-D array (n, d), got shape {x.shape}")
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    np.divide(x, norms, out=x, where=norms > 0)
    return x


def _sorted(
    rows: list[np.ndarray], cols: list[np.ndarray], vals: list[np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    if not rows:
        return np.empty((0, 2), dtype=np.int64), np.empty(0, dtype=np.float32)
    i = np.concatenate(rows).astype(np.int64)
    j = np.concatenate(cols).astype(np.int64)
    s = np.concatenate(vals).astype(np.float32)
    order = np.lexsort((j, i))
    return np.stack((i[order], j[order]), axis=1), s[order]


def cosine_pairs(
    vectors: np.ndarray, threshold: float, block: int = 4096, queries: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Exact pairs with cosine similarity ``>= threshold`` by blocked matrix multiplication.

    Without ``queries``: pairs ``(i, j)``, ``i < j``, within ``vectors`` (upper triangle only).
    With ``queries`` ``(q, d)``: pairs ``(query_row, vector_row)``, every query against every
    vector. Returns ``(pairs (m, 2) int64, scores (m,) float32)`` sorted by ``(i, j)``.
    """
    if block < 1:
        raise ValueError(f"block must be >= 1, got {block}")
    x = normalize_rows(vectors)
    self_mode = queries is None
    q = x if queries is None else normalize_rows(queries)
    if q.shape[1] != x.shape[1]:
        raise ValueError(f"dimension mismatch: queries {q.shape[1]} vs vectors {x.shape[1]}")
    thr = np.float32(threshold)
    rows: list[np.ndarray] = []
    cols: list[np.ndarray] = []
    vals: list[np.ndarray] = []
    for r0 in range(0, q.shape[0], block):
        qb = q[r0 : r0 + block]
        for c0 in range(r0 if self_mode else 0, x.shape[0], block):
            sims = qb @ x[c0 : c0 + block].T
            if self_mode and c0 == r0:
                sims[np.tril_indices(sims.shape[0], 0, sims.shape[1])] = -np.inf
            ii, jj = np.nonzero(sims >= thr)
            if ii.size:
                rows.append(ii + r0)
                cols.append(jj + c0)
                vals.append(sims[ii, jj])
    return _sorted(rows, cols, vals)


def cosine_pairs_faiss(
    vectors: np.ndarray,
    threshold: float,
    queries: np.ndarray | None = None,
    k: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Pairs with cosine ``>= threshold`` found with a faiss ``IndexFlatIP``.

    ``k=None`` (default) uses ``range_search``: every neighbour above the threshold, the same
    result as :func:`cosine_pairs`. An integer ``k`` uses top-``k`` ``search`` instead and
    keeps only hits above the threshold: each row contributes at most ``k`` neighbours (in
    self mode a pair is still reported if either row lists the other), which bounds the output
    for huge clusters of near-identical vectors at the cost of recall inside them.
    Same return format and pair orientation as :func:`cosine_pairs`. Needs faiss (the ``[embed]``
    extra; :class:`curator.errors.MissingDependency` otherwise).
    """
    faiss = require("faiss", "embed", "faiss cosine search")

    x = normalize_rows(vectors)
    self_mode = queries is None
    q = x if queries is None else normalize_rows(queries)
    if q.shape[1] != x.shape[1]:
        raise ValueError(f"dimension mismatch: queries {q.shape[1]} vs vectors {x.shape[1]}")
    if x.shape[0] == 0 or q.shape[0] == 0:
        return _sorted([], [], [])
    index = faiss.IndexFlatIP(x.shape[1])
    index.add(x)
    thr = np.float32(threshold)
    if k is None:
        # faiss keeps results strictly above the radius; step just below it, filter with >=.
        radius = float(np.nextafter(thr, np.float32(-np.inf)))
        lims, dist, idx = index.range_search(q, radius)
        ii = np.repeat(np.arange(q.shape[0]), np.diff(lims.astype(np.int64)))
        jj = idx.astype(np.int64)
    else:
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        kk = min(x.shape[0], k + 1 if self_mode else k)
        dist, idx = index.search(q, kk)
        ii = np.repeat(np.arange(q.shape[0]), kk)
        jj = idx.ravel().astype(np.int64)
        dist = dist.ravel()
    keep = (jj >= 0) & (dist >= thr)
    if self_mode:
        keep &= ii != jj
    ii, jj, dist = ii[keep], jj[keep], dist[keep]
    if self_mode:
        lo, hi = np.minimum(ii, jj), np.maximum(ii, jj)
        code, first = np.unique(lo * x.shape[0] + hi, return_index=True)
        ii, jj, dist = code // x.shape[0], code % x.shape[0], dist[first]
    return _sorted([ii], [jj], [dist])
