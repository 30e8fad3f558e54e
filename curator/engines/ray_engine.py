"""The Ray engine: the quality cores on shards, in Ray tasks and actors, on one machine or a cluster.

Every step runs the same pure function as :data:`curator.quality.dedup.engine.LOCAL`, on a split that
cannot change its answer:

* per row (fold, exact keys, shingles, signatures, band keys): the texts go to the workers as Arrow
  string shards (``ray.put``), :func:`curator.quality.dedup.near.near_shard` and friends run on each,
  and the driver concatenates the shards in order;
* per band (candidate pairs): each LSH band is grouped by
  :func:`curator.quality.dedup.minhash.pairs_from_keys` in its own task, and the pairs are united
  (:func:`curator.quality.dedup.near.union_pairs`);
* per pair (verification): blocks of candidate pairs travel with only the shingle sets they name
  (:func:`curator.quality.dedup.near.subset_csr`) to :func:`~curator.quality.dedup.minhash.verify_pairs_csr`;
* per query block (semantic search): the driver builds the faiss index once, serialises it, and tasks
  run :func:`curator.quality.dedup.semantic.search_block` on the same 4,096-row blocks as the local search;
* per other text (n-gram leakage): the train n-grams are shingled in shards and indexed once
  (:func:`curator.quality.leakage.ngram_index`); tasks check blocks of eval/test texts against it;
* embeddings: one actor per GPU (or per CPU core without GPUs) loads the embedder once and encodes the
  chunks of :func:`curator.embed.encode_plan`, streamed through an actor pool in order.

What stays on the driver: reading the workspace (DuckDB is an embedded, single-file database), the
exact-key grouping, the union of pairs, clustering, keepers and the one write transaction.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from curator.embed import encode_chunk, encode_plan
from curator.errors import CuratorError, require
from curator.quality.dedup.columns import StrColumn
from curator.quality.dedup.engine import LOCAL, Pairs
from curator.quality.dedup.exact import exact_digests, exact_keys
from curator.quality.dedup.minhash import DEFAULT_K, pairs_from_keys, shingle_batch, verify_pairs_csr
from curator.quality.dedup.near import (
    DEFAULT_NUM_PERM,
    DEFAULT_WEIGHTS,
    NearShard,
    concat_shards,
    near_bands,
    near_shard,
    subset_csr,
    union_pairs,
)
from curator.quality.dedup.semantic import (
    EXACT_MAX,
    merge_blocks,
    prepare,
    query_blocks,
    search_block,
    semantic_index,
)
from curator.quality.fold import fold
from curator.quality.leakage import (
    DEFAULT_NGRAM,
    SHORT_NGRAM,
    join_leak_pairs,
    ngram_index,
    ngram_leak_pairs,
    ngram_sizes,
)

__all__ = ["DEFAULT_SHARD_ROWS", "MIN_SHARD_ROWS", "RayEngine"]

#: Most texts per shard; a run is cut into at least two shards per CPU of the cluster when it is large enough.
DEFAULT_SHARD_ROWS = 50_000
#: Fewest texts per shard (smaller runs use fewer shards: a task costs milliseconds).
MIN_SHARD_ROWS = 2_000
_VERIFY_PAIRS = 200_000  # candidate pairs per verification task


class _ArrowTexts(Sequence[str]):
    """An Arrow string array read as a sequence of ``str`` (one value converted at a time)."""

    def __init__(self, array: pa.Array) -> None:
        self.array = array

    def __len__(self) -> int:
        return len(self.array)

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return self.array[i].to_pylist()
        return self.array[i].as_py()


# -- what the workers run (module level, so Ray ships them by reference to this module) --------------------------
def _fold_task(texts: pa.Array) -> pa.Array:
    return pa.array([fold(t) for t in texts.to_pylist()], pa.large_string())


def _keys_task(texts: pa.Array) -> list[str]:
    return exact_keys(texts.to_pylist())


def _digests_task(texts: pa.Array) -> np.ndarray:
    return exact_digests(texts.to_pylist())


def _near_task(texts: pa.Array, k: int, num_perm: int, bands: int, rows: int) -> NearShard:
    return near_shard(texts.to_pylist(), k=k, num_perm=num_perm, bands=bands, rows=rows)


def _band_task(keys: np.ndarray) -> np.ndarray:
    return pairs_from_keys(keys)


def _verify_task(flat: np.ndarray, offsets: np.ndarray, pairs: np.ndarray, threshold: float) -> Pairs:
    return verify_pairs_csr(flat, offsets, pairs, threshold)


def _shingle_task(texts: pa.Array, n: int) -> tuple[np.ndarray, np.ndarray]:
    return shingle_batch(texts.to_pylist(), n)


def _ngram_task(train: pa.Array, other: pa.Array, index: dict[int, Any], params: dict[str, Any]) -> Pairs:
    return ngram_leak_pairs(_ArrowTexts(train), other.to_pylist(), folded=True, index=index, **params)


def _search_task(index_bytes: np.ndarray, q: np.ndarray, starts: list[int], threshold: float,
                 self_mode: bool) -> list[tuple[np.ndarray, np.ndarray]]:
    import faiss

    index = faiss.deserialize_index(index_bytes)
    return [search_block(index, q, r0, threshold, self_mode) for r0 in starts]


class _Encoder:
    """An embedding actor: one model copy, loaded once, encoding the chunks it is sent."""

    def __init__(self, model: str, batch_size: int) -> None:
        from curator.embed import load_embedder

        self.model, self.batch_size = model, batch_size
        load_embedder(model)

    def encode(self, texts: pa.Array) -> np.ndarray:
        return encode_chunk(texts.to_pylist(), self.model, batch_size=self.batch_size)


def _no_phase(name: str) -> None:
    pass


def _arrow(texts: Sequence[str], lo: int, hi: int) -> pa.Array:
    """``texts[lo:hi]`` as an Arrow ``large_string`` array (straight from the buffer for a pool column)."""
    if isinstance(texts, StrColumn):
        return texts.arrow(lo, hi)
    return pa.array(list(texts[lo:hi]), pa.large_string())


class RayEngine:
    """The steps of :class:`curator.quality.dedup.engine.Engine` on Ray (see the module docstring).

    ``address`` (or ``RAY_ADDRESS``): a running cluster to connect to; without one, a local Ray instance
    is started on this machine with ``num_cpus`` cores (all by default, no dashboard, only on 127.0.0.1)
    and shut down by :meth:`close`. A Ray already initialised in this process is used as it is.
    """

    name = "ray"

    def __init__(self, address: str | None = None, *, num_cpus: int | None = None,
                 shard_rows: int = DEFAULT_SHARD_ROWS, embed_actors: int | None = None) -> None:
        self.address = address or os.environ.get("RAY_ADDRESS") or None
        if not self.address:
            # A local instance stays on the loopback address (set before ray is imported), and its workers
            # run at the command's priority: Ray's default niceness of 15 starves them on a shared machine.
            os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
            os.environ.setdefault("RAY_worker_niceness", "0")
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        require("ray", "ray", "the Ray engine (--engine ray)")
        self.num_cpus = num_cpus
        self.shard_rows = max(1, shard_rows)
        self.embed_actors = embed_actors
        self._started = False
        self._remote: dict[str, Any] = {}

    # -- lifecycle ------------------------------------------------------------------------------------------------
    def _ray(self) -> Any:
        import ray

        if not ray.is_initialized():
            try:
                if self.address:
                    ray.init(address=self.address, log_to_driver=False, logging_level=logging.WARNING)
                else:
                    # "local": a new instance even when `ray start` left a cluster address on this machine
                    ray.init(address="local", num_cpus=self.num_cpus, include_dashboard=False, log_to_driver=False,
                             logging_level=logging.WARNING)
            except ConnectionError as e:
                raise CuratorError(f"cannot connect to the Ray cluster at {self.address}: {e}") from e
            self._started = True
        return ray

    def start(self) -> None:
        """Connect to the cluster, or start the local instance, now rather than at the first step."""
        self._ray()

    def close(self) -> None:
        """Shut Ray down if this engine started it."""
        import ray

        if self._started:
            ray.shutdown()
            self._started = False

    def cpus(self) -> int:
        """CPUs of the cluster (at least 1)."""
        return max(1, int(self._ray().cluster_resources().get("CPU", 1)))

    def _task(self, fn: Callable[..., Any]) -> Any:
        remote = self._remote.get(fn.__name__)
        if remote is None:
            remote = self._remote[fn.__name__] = self._ray().remote(num_cpus=1)(fn)
        return remote

    def _ranges(self, n: int) -> list[tuple[int, int]]:
        """Consecutive row ranges: about two per CPU, within [MIN_SHARD_ROWS, shard_rows] rows each."""
        if n == 0:
            return []
        size = min(self.shard_rows, max(MIN_SHARD_ROWS, math.ceil(n / (2 * self.cpus()))))
        return [(lo, min(n, lo + size)) for lo in range(0, n, size)]

    def _shards(self, texts: Sequence[str]) -> list[tuple[int, int, Any]]:
        """``(lo, hi, object ref of an Arrow string array)`` per range of :meth:`_ranges`."""
        ray = self._ray()
        return [(lo, hi, ray.put(_arrow(texts, lo, hi))) for lo, hi in self._ranges(len(texts))]

    # -- the steps ------------------------------------------------------------------------------------------------
    def fold(self, texts: Sequence[str]) -> list[str]:
        ray = self._ray()
        refs = [self._task(_fold_task).remote(ref) for _, _, ref in self._shards(texts)]
        return [t for part in ray.get(refs) for t in part.to_pylist()]

    def exact_keys(self, texts: Sequence[str]) -> list[str]:
        ray = self._ray()
        refs = [self._task(_keys_task).remote(ref) for _, _, ref in self._shards(texts)]
        return [k for part in ray.get(refs) for k in part]

    def exact_digests(self, texts: Sequence[str]) -> np.ndarray:
        ray = self._ray()
        refs = [self._task(_digests_task).remote(ref) for _, _, ref in self._shards(texts)]
        parts = ray.get(refs)
        return np.concatenate(parts) if parts else exact_digests([])

    def near_pairs(self, texts: Sequence[str], threshold: float, *, involving: int | None = None,
                   phase: Callable[[str], None] | None = None) -> Pairs:
        phase = phase or _no_phase
        bands, rows = near_bands(threshold, DEFAULT_NUM_PERM, DEFAULT_WEIGHTS)
        n = len(texts)
        if n < 2:
            return np.empty((0, 2), dtype=np.int64), np.empty(0, dtype=np.float64)
        ray = self._ray()
        shards = self._shards(texts)
        phase(f"shingles and signatures on {len(shards)} shards")
        refs = [self._task(_near_task).remote(ref, DEFAULT_K, DEFAULT_NUM_PERM, bands, rows) for _, _, ref in shards]
        whole = concat_shards(ray.get(refs))
        phase(f"banding ({bands} bands)")
        band_refs = [self._task(_band_task).remote(np.ascontiguousarray(whole.keys[:, [c]])) for c in range(bands)]
        cands = union_pairs(ray.get(band_refs), n)
        if involving is not None:
            cands = cands[cands[:, 1] >= involving]
        phase(f"verification of {len(cands)} candidate pairs")
        found: list[Any] = []
        for lo in range(0, len(cands), _VERIFY_PAIRS):
            block = cands[lo : lo + _VERIFY_PAIRS]
            flat, offsets, local = subset_csr(whole.flat, whole.offsets, block)
            found.append((np.unique(block), self._task(_verify_task).remote(flat, offsets, local, threshold)))
        pairs_out, scores_out = [np.empty((0, 2), dtype=np.int64)], [np.empty(0, dtype=np.float64)]
        for rows_of, ref in found:
            kept, scores = ray.get(ref)
            pairs_out.append(rows_of[kept].reshape(-1, 2))
            scores_out.append(scores)
        pairs, scores = np.concatenate(pairs_out).astype(np.int64), np.concatenate(scores_out)
        keep = scores >= threshold
        return pairs[keep], scores[keep]

    def ngram_leak_pairs(self, train: Sequence[str], other: Sequence[str], **params: Any) -> Pairs:
        ngram_leak_pairs([], [], folded=True, **params)  # checks the parameters on the driver
        if not len(train) or not len(other):
            return ngram_leak_pairs(train, other, folded=True, **params)
        ray = self._ray()
        train_shards = self._shards(train)
        index: dict[int, Any] = {}
        for n in ngram_sizes(params.get("ngram", DEFAULT_NGRAM), params.get("short_ngram", SHORT_NGRAM)):
            parts = ray.get([self._task(_shingle_task).remote(ref, n) for _, _, ref in train_shards])
            whole = concat_shards([NearShard(f, o, np.empty((len(o) - 1, 0), np.uint64)) for f, o in parts])
            index[n] = ngram_index(train, n, shingles=(whole.flat, whole.offsets))
        train_ref = ray.put(pa.array(list(train), pa.large_string()))
        index_ref = ray.put(index)
        refs = [(lo, self._task(_ngram_task).remote(train_ref, ref, index_ref, params))
                for lo, _, ref in self._shards(other)]
        parts = []
        for lo, ref in refs:
            p, s = ray.get(ref)
            parts.append((p + np.array([lo, 0], dtype=p.dtype), s))  # shard rows -> rows of ``other``
        return join_leak_pairs(parts)

    def semantic_pairs(self, vectors: np.ndarray, threshold: float, *, queries: np.ndarray | None = None,
                       progress: Callable[[int], None] | None = None) -> Pairs:
        faiss = require("faiss", "embed", "semantic duplicate search")
        x, q, self_mode = prepare(vectors, queries)
        if x.shape[0] == 0 or q.shape[0] == 0:
            return LOCAL.semantic_pairs(vectors, threshold, queries=queries, progress=progress)
        ray = self._ray()
        index = semantic_index(x, x.shape[0] <= EXACT_MAX)
        index_ref = ray.put(faiss.serialize_index(index))
        q_ref = ray.put(q)
        starts = query_blocks(q.shape[0])
        per_task = max(1, math.ceil(len(starts) / (2 * self.cpus())))
        groups = [starts[i : i + per_task] for i in range(0, len(starts), per_task)]
        refs = [self._task(_search_task).remote(index_ref, q_ref, g, threshold, self_mode) for g in groups]
        found = []
        for i, (g, ref) in enumerate(zip(groups, refs, strict=True)):
            found.extend(ray.get(ref))
            if progress:
                progress((groups[i + 1][0] if i + 1 < len(groups) else q.shape[0]) - g[0])
        return merge_blocks(found, x, q, threshold, self_mode)

    def _encoder_pool(self, model: str, batch_size: int, chunks: int) -> list[Any]:
        ray = self._ray()
        gpus = int(ray.cluster_resources().get("GPU", 0))
        count = self.embed_actors or (gpus or self.cpus())
        options = {"num_gpus": 1, "num_cpus": 1} if gpus else {"num_cpus": 1}
        actor = ray.remote(**options)(_Encoder)
        return [actor.remote(model, batch_size) for _ in range(max(1, min(count, chunks)))]

    def encode(self, texts: Sequence[str], model: str, *, batch_size: int = 64,
               progress: Callable[[int], None] | None = None) -> np.ndarray:
        """Embeddings from a pool of :class:`_Encoder` actors, which are stopped afterwards.

        Actors hold their CPU or GPU while they live: kept, they would leave no CPU for the search tasks.
        """
        texts = list(texts)
        if not texts:
            return LOCAL.encode(texts, model, batch_size=batch_size)
        from ray.util import ActorPool

        ray = self._ray()
        plan = encode_plan(texts, batch_size)
        actors = self._encoder_pool(model, batch_size, len(plan))
        try:
            pool = ActorPool(actors)
            chunks = [ray.put(pa.array([texts[i] for i in idx], pa.large_string())) for idx in plan]
            out: np.ndarray | None = None
            for idx, vecs in zip(plan, pool.map(lambda actor, ref: actor.encode.remote(ref), chunks), strict=True):
                if out is None:
                    out = np.empty((len(texts), vecs.shape[1]), dtype=np.float32)
                out[idx] = vecs
                if progress:
                    progress(len(idx))
        finally:
            for a in actors:
                ray.kill(a)
        assert out is not None
        return out
