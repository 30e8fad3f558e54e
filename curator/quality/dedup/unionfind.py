"""Union-find over row indices: turns duplicate pairs into clusters and picks a keeper.

Pure and array-friendly: :func:`clusters` takes ``n`` and an ``(m, 2)`` pair array (from
:mod:`curator.quality.dedup.minhash` or :mod:`curator.quality.dedup.neighbors`), so it can run on any batch
or on pairs gathered from a scale-out backend.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

__all__ = ["UnionFind", "choose_keeper", "clusters"]


class UnionFind:
    """Disjoint sets over ``0..n-1`` with path compression and union by rank."""

    def __init__(self, n: int) -> None:
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        self.parent: list[int] = list(range(n))
        self.rank: list[int] = [0] * n

    def __len__(self) -> int:
        return len(self.parent)

    def find(self, x: int) -> int:
        """Return the representative of ``x``'s set (compressing the path to it)."""
        parent = self.parent
        root = x
        while parent[root] != root:
            root = parent[root]
        while parent[x] != root:
            parent[x], x = root, parent[x]
        return root

    def union(self, a: int, b: int) -> int:
        """Merge the sets of ``a`` and ``b``; return the new representative."""
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return ra
        if self.rank[ra] < self.rank[rb]:
            ra, rb = rb, ra
        self.parent[rb] = ra
        if self.rank[ra] == self.rank[rb]:
            self.rank[ra] += 1
        return ra

    def union_pairs(self, pairs: np.ndarray | Iterable[tuple[int, int]]) -> None:
        """Union every ``(a, b)`` in ``pairs``."""
        rows: Iterable[Sequence[int]] = pairs.reshape(-1, 2).tolist() if isinstance(pairs, np.ndarray) else pairs
        for a, b in rows:
            self.union(a, b)

    def connected(self, a: int, b: int) -> bool:
        """Whether ``a`` and ``b`` are in the same set."""
        return self.find(a) == self.find(b)

    def groups(self) -> list[list[int]]:
        """All sets, each sorted ascending, ordered by their smallest member."""
        by_root: dict[int, list[int]] = {}
        for x in range(len(self.parent)):
            by_root.setdefault(self.find(x), []).append(x)
        return list(by_root.values())


def clusters(
    n: int, pairs: np.ndarray | Iterable[tuple[int, int]], include_singletons: bool = False
) -> list[list[int]]:
    """Connected components of the graph on ``0..n-1`` with edges ``pairs``.

    Returns components with at least two members (all components when
    ``include_singletons``), each sorted ascending, ordered by smallest member.
    """
    uf = UnionFind(n)
    uf.union_pairs(pairs)
    groups = uf.groups()
    if include_singletons:
        return groups
    return [g for g in groups if len(g) > 1]


def choose_keeper(cluster: Sequence[int], priority_key: Callable[[int], Any]) -> int:
    """Pick the member of ``cluster`` with the smallest ``(priority_key(i), i)``.

    Deterministic: ties on the key fall back to the smallest index. Example: keep the
    earliest ingested row with ``priority_key=lambda i: created_at[i]``, or the longest
    answer with ``lambda i: -len(texts[i])``.
    """
    if not cluster:
        raise ValueError("cannot choose a keeper from an empty cluster")
    return min(cluster, key=lambda i: (priority_key(i), i))
