"""Where the heavy steps of dedup, leakage and the audit run: this process, or an engine such as Ray.

:func:`curator.quality.dedup.dedup`, :func:`curator.quality.leakage.find_leakage` and
:func:`curator.quality.audit.audit` read the workspace, hand the texts (or vectors) to an
:class:`Engine` for the pair finding and embedding, and resolve and write the decisions themselves,
so every engine's decisions go through the same code. :data:`LOCAL` runs the pure cores in this
process; ``curator.engines`` has the Ray engine, which runs the same cores on shards
(``curator dedup --engine ray``). An engine's answers must equal :data:`LOCAL`'s, row for row.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np

from curator.embed import encode
from curator.quality.dedup.exact import exact_digests, exact_keys
from curator.quality.dedup.near import near_pairs
from curator.quality.dedup.semantic import semantic_pairs
from curator.quality.fold import fold

__all__ = ["LOCAL", "Engine", "LocalEngine", "Pairs"]

Pairs = tuple[np.ndarray, np.ndarray]


class Engine(Protocol):
    """The steps an engine runs; each returns what the pure core of the same name returns.

    An engine may also have ``exact_digests(texts) -> (n, 16) uint8`` (:func:`curator.quality.dedup.exact.exact_digests`):
    dedup then takes the exact keys as raw digests instead of hex strings (16 bytes a row, not ~100).
    The texts an engine is given may be any sequence of ``str`` (a pool column converts as it is read).
    """

    name: str

    def fold(self, texts: Sequence[str]) -> list[str]:
        """:func:`curator.quality.fold.fold` of every text."""
        ...

    def exact_keys(self, texts: Sequence[str]) -> list[str]:
        """:func:`curator.quality.dedup.exact.exact_keys`."""
        ...

    def near_pairs(self, texts: Sequence[str], threshold: float, *, involving: int | None = None,
                   phase: Callable[[str], None] | None = None) -> Pairs:
        """:func:`curator.quality.dedup.near.near_pairs`."""
        ...

    def semantic_pairs(self, vectors: np.ndarray, threshold: float, *, queries: np.ndarray | None = None,
                       progress: Callable[[int], None] | None = None) -> Pairs:
        """:func:`curator.quality.dedup.semantic.semantic_pairs`."""
        ...

    def ngram_leak_pairs(self, train: Sequence[str], other: Sequence[str], **params: Any) -> Pairs:
        """:func:`curator.quality.leakage.ngram_leak_pairs` on folded texts."""
        ...

    def encode(self, texts: Sequence[str], model: str, *, batch_size: int = 64,
               progress: Callable[[int], None] | None = None) -> np.ndarray:
        """:func:`curator.embed.encode`."""
        ...


class LocalEngine:
    """The cores in this process (the default)."""

    name = "local"

    def fold(self, texts: Sequence[str]) -> list[str]:
        return [fold(t) for t in texts]

    def exact_keys(self, texts: Sequence[str]) -> list[str]:
        return exact_keys(texts)

    def exact_digests(self, texts: Sequence[str]) -> np.ndarray:
        return exact_digests(texts)

    def near_pairs(self, texts: Sequence[str], threshold: float, *, involving: int | None = None,
                   phase: Callable[[str], None] | None = None) -> Pairs:
        return near_pairs(texts, threshold, involving=involving, phase=phase)

    def semantic_pairs(self, vectors: np.ndarray, threshold: float, *, queries: np.ndarray | None = None,
                       progress: Callable[[int], None] | None = None) -> Pairs:
        return semantic_pairs(vectors, threshold, queries=queries, progress=progress)

    def ngram_leak_pairs(self, train: Sequence[str], other: Sequence[str], **params: Any) -> Pairs:
        from curator.quality.leakage import ngram_leak_pairs  # leakage builds on dedup: import at call time

        return ngram_leak_pairs(train, other, folded=True, **params)

    def encode(self, texts: Sequence[str], model: str, *, batch_size: int = 64,
               progress: Callable[[int], None] | None = None) -> np.ndarray:
        return encode(texts, model, batch_size=batch_size, progress=progress)


#: The default engine.
LOCAL: Engine = LocalEngine()
