"""Dataset dedup: exact (folded text), near-duplicate (MinHash LSH) and semantic (embeddings).

Pure cores over lists and arrays (:mod:`.exact`, :mod:`.minhash`, :mod:`.near`, :mod:`.neighbors`,
:mod:`.semantic`, :mod:`.unionfind`; texts folded by :func:`curator.quality.fold.fold`) and the workspace layer
(:mod:`.run`, whose pool of active examples is held in the compact columns of :mod:`.columns`):
:func:`dedup` and :func:`find_duplicates_of`
(:func:`curator.quality.decisions.restore` undoes them). :mod:`.engine` says where the cores run (this
process, or Ray through ``curator.engines``).
"""

from curator.quality.dedup.exact import exact_pairs, key_of
from curator.quality.dedup.near import near_pairs
from curator.quality.dedup.run import (
    DEDUP_KINDS,
    METHODS,
    DedupReport,
    Match,
    dedup,
    find_duplicates_of,
    keeper_rank,
)
from curator.quality.dedup.semantic import semantic_pairs

__all__ = [
    "DEDUP_KINDS",
    "METHODS",
    "DedupReport",
    "Match",
    "dedup",
    "exact_pairs",
    "find_duplicates_of",
    "keeper_rank",
    "key_of",
    "near_pairs",
    "semantic_pairs",
]
