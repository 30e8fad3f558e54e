"""Dedup on the workspace: find duplicate clusters, keep one copy, exclude the rest (undoably).

Three methods, run in this order, each on what the previous ones left active:

* ``exact``    -- equal :func:`curator.quality.fold.fold` text (case, punctuation, spaces);
* ``near``     -- MinHash LSH on word bigrams, verified Jaccard ``>= 0.8``;
* ``semantic`` -- embedding cosine ``>= 0.95`` (all-MiniLM-L6-v2 by default).

Which copy is kept (:func:`keeper_rank`): in every cluster the member with the smallest

1. split rank: test, then eval, then train -- a train copy of an eval/test example is leakage,
   so the train side goes, and eval/test sets never shrink in favour of train;
2. origin rank: seed, import, feedback, synthetic;
3. ``created_at`` (earlier first), then the example id.

Examples pinned to eval or test are never excluded. Nothing is deleted: each dropped example gets
``status='excluded'`` and an ``excluded_reason``, and a row in ``decisions`` (kind
``dedup_exact|dedup_near|dedup_semantic``, ``other_id`` = the kept copy, ``score``, ``reason``).
:func:`restore` undoes every live decision of a kind.

:func:`find_duplicates_of` checks *new* candidate examples against the stored active ones and
against each other, writing nothing (except cached embeddings of stored examples).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

import duckdb
import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from curator.embed import VIEWS, Encoder, encode, ensure_embeddings, example_text, load_embeddings
from curator.errors import CuratorError
from curator.models import DEFAULT_EMBEDDER
from curator.quality.dedup.columns import (
    HEX_DIGITS,
    Chain,
    CodeColumn,
    FixedStrColumn,
    HexColumn,
    StrColumn,
    take_list,
    unhex,
)
from curator.quality.dedup.engine import LOCAL, Engine
from curator.quality.dedup.exact import DIGEST_BYTES, exact_digests, exact_pairs, first_of
from curator.quality.dedup.near import DEFAULT_THRESHOLD as NEAR_THRESHOLD
from curator.quality.dedup.near import near_pairs
from curator.quality.dedup.semantic import DEFAULT_THRESHOLD as SEMANTIC_THRESHOLD
from curator.quality.dedup.semantic import semantic_pairs
from curator.quality.dedup.unionfind import clusters
from curator.records import Example
from curator.workspace import Workspace, capped_memory

__all__ = [
    "DEDUP_KINDS",
    "METHODS",
    "ORIGIN_RANK",
    "SPLIT_RANK",
    "DedupDecision",
    "DedupReport",
    "Match",
    "MethodResult",
    "Pool",
    "ProgressFactory",
    "dedup",
    "find_duplicates_of",
    "keeper_rank",
    "load_pool",
]

METHODS = ("exact", "near", "semantic")
DEDUP_KINDS = {m: f"dedup_{m}" for m in METHODS}
SPLIT_RANK = {"test": 0, "eval": 1, "train": 2}
ORIGIN_RANK = {"seed": 0, "import": 1, "feedback": 2, "synthetic": 3}
_LABEL = {"exact": "exact duplicate", "near": "near-duplicate", "semantic": "semantic duplicate"}
_SCORE = {"exact": "normalised text", "near": "Jaccard", "semantic": "cosine"}

#: ``progress(description, total)`` -> context manager whose value has ``advance(n)`` (see curator.output.progress).
ProgressFactory = Callable[[str, "int | None"], AbstractContextManager[Any]]


class _NoBar:
    def advance(self, n: int = 1) -> None:
        pass

    def update(self, **fields: Any) -> None:
        pass


@contextmanager
def no_progress(description: str, total: int | None = None) -> Iterator[_NoBar]:
    yield _NoBar()


@dataclass
class Match:
    """Candidate ``candidate`` (index into the list given) duplicates or leaks into ``other_id``.

    ``other_id`` is a stored example id, or ``"candidate:<j>"`` for an earlier candidate ``j``.
    ``kind`` is the method (``exact``, ``near``, ``semantic``; for leakage also ``ngram``);
    ``score`` its similarity (1.0 for exact).
    """

    candidate: int
    kind: str
    other_id: str
    score: float
    split: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Pool:
    """The active examples, one view's text each, with what the keeper rule needs.

    Every field is a read-only sequence with one item per example (``len``, ``pool.texts[i]``,
    iteration, slices as lists). :func:`load_pool` stores them compactly
    (:mod:`curator.quality.dedup.columns`): ids and texts as flat byte buffers read through one row
    order, split/origin/task as integer codes, ``created`` as ``datetime64[us]`` and ``pinned`` as
    bool numpy arrays; :func:`~curator.quality.dedup.columns.take_list` reads many rows at once. A
    pool built from plain lists works everywhere too.
    """

    ids: Sequence[str]
    texts: Sequence[str]
    origin: Sequence[str]
    created: Sequence[Any] | np.ndarray
    split: Sequence[str]
    pinned: Sequence[bool] | np.ndarray
    task: Sequence[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.ids)


#: Rows per Arrow batch when :func:`load_pool` reads the workspace.
POOL_BATCH_ROWS = 1 << 16
#: DuckDB's memory limit while :func:`load_pool` reads (when the connection's is higher): its reads are
#: plain scans and one join, and without it DuckDB keeps every block it has read cached up to its
#: limit (several GB at 10 M examples) until the connection closes.
LOAD_MEMORY_LIMIT = "256MB"
class _Codes:
    """Integer codes of the distinct strings of a column, in order of first appearance."""

    def __init__(self) -> None:
        self.code: dict[str, int] = {}

    def encode(self, array: pa.Array) -> np.ndarray:
        enc = array.dictionary_encode() if len(array) else None
        if enc is None:
            return np.empty(0, dtype=np.int32)
        lut = np.array([self.code.setdefault(v, len(self.code)) for v in enc.dictionary.to_pylist()] or [0],
                       dtype=np.int32)
        return lut[enc.indices.to_numpy(zero_copy_only=False)]

    def column(self, codes: np.ndarray) -> CodeColumn:
        return CodeColumn(codes.astype(np.int8 if len(self.code) <= 127 else np.int32), list(self.code))


class _TextBuffer:
    """Strings appended a batch at a time into one growing UTF-8 buffer: a ``large_string`` array at the end."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.ends: list[np.ndarray] = []
        self.n = 0

    def add(self, texts: pa.Array) -> None:
        arr = texts.cast(pa.large_string()) if not pa.types.is_large_string(texts.type) else texts
        off = np.frombuffer(arr.buffers()[1], dtype=np.int64)[arr.offset : arr.offset + len(arr) + 1]
        data = arr.buffers()[2]
        self.ends.append(off[1:] - off[0] + len(self.data))
        if data is not None and off[-1] > off[0]:
            self.data += memoryview(data)[int(off[0]) : int(off[-1])]
        self.n += len(arr)

    def array(self) -> pa.Array:
        offsets = np.concatenate([np.zeros(1, dtype=np.int64), *self.ends])
        self.ends = []
        return pa.LargeStringArray.from_buffers(self.n, pa.py_buffer(offsets), pa.py_buffer(self.data))


_NIBBLE = np.full(256, 255, dtype=np.uint8)
_NIBBLE[HEX_DIGITS] = np.arange(16, dtype=np.uint8)


class _IdBuffer:
    """The ids, added a batch at a time: packed hex bytes while every id is lowercase hex of the one (even)
    width (as example ids, sha256, are), else one numpy ``S<width>`` array, else (long or NUL ids) Arrow
    chunks. The first two sort in numpy as the strings do."""

    def __init__(self, capacity: int, width: int) -> None:
        self.width, self.capacity = width, capacity
        self.hex: np.ndarray | None = None
        self.fixed: np.ndarray | None = None
        if 0 < width <= 256:
            if width % 2 == 0:
                self.hex = np.zeros((capacity, width // 2), dtype=np.uint8)
            else:
                self.fixed = np.zeros((capacity, width), dtype=np.uint8)
        self.total = 0
        self.n = 0
        self.chunks: list[pa.Array] = []

    def add(self, ids: pa.Array) -> None:
        arr = ids.cast(pa.large_string()) if not pa.types.is_large_string(ids.type) else ids
        off = np.frombuffer(arr.buffers()[1], dtype=np.int64)[arr.offset : arr.offset + len(arr) + 1]
        self.total += int(off[-1] - off[0])
        k = len(arr)
        data = np.frombuffer(arr.buffers()[2] or b"", dtype=np.uint8)[int(off[0]) : int(off[-1])]
        lens = np.diff(off)
        if self.hex is not None and k:
            nibbles = _NIBBLE[data] if int(lens.min()) == int(lens.max()) == self.width else None
            if nibbles is not None and not (nibbles == 255).any():
                pairs = nibbles.reshape(k, self.width // 2, 2)
                self.hex[self.n : self.n + k] = (pairs[:, :, 0] << 4) | pairs[:, :, 1]
                self.n += k
                return
            self._dehex()
        if self.fixed is not None and k:
            if (data == 0).any() or int(lens.max()) > self.width:
                self._unfix()  # a NUL would be lost as S padding
            elif int(lens.min()) == self.width:
                self.fixed[self.n : self.n + k] = data.reshape(-1, self.width)
            else:
                at = np.repeat(np.arange(self.n, self.n + k, dtype=np.int64) * self.width - (off[:-1] - off[0]),
                               lens) + np.arange(data.size, dtype=np.int64)
                self.fixed.reshape(-1)[at] = data
        if self.hex is None and self.fixed is None:
            self.chunks.append(arr)
        self.n += k
        if self.fixed is not None and self.n * self.width > 3 * self.total + (1 << 24):
            self._unfix()  # a few long ids: the padding would cost more than the strings

    def _dehex(self) -> None:
        """From now on, the fixed-width array: the ids so far are written out as hex digits."""
        if self.hex is not None:
            self.fixed = np.zeros((self.capacity, self.width), dtype=np.uint8)
            self.fixed[: self.n] = unhex(self.hex[: self.n])
            self.hex = None

    def _unfix(self) -> None:
        """From now on, Arrow chunks: the ids so far leave the fixed-width array for one."""
        self._dehex()
        if self.fixed is not None:
            so_far = self.fixed[: self.n].view(f"S{self.width}").reshape(-1)
            self.chunks = [pa.array(so_far.tolist(), pa.binary()).cast(pa.large_string())] if self.n else []
            self.fixed = None

    def column(self, created: np.ndarray) -> tuple[HexColumn | FixedStrColumn | StrColumn, np.ndarray]:
        """The ids in pool order, and the order (pool row -> row added): by ``created``, then id."""
        for values in (self.hex, self.fixed):
            if values is not None:
                keys = values[: self.n].view(f"S{values.shape[1]}").reshape(-1)
                order = np.argsort(keys, kind="stable")
                order = order[np.argsort(created[order], kind="stable")]
                if values is self.hex:
                    return HexColumn(values[: self.n], order), order
                return FixedStrColumn(keys, order), order
        arr = pa.concat_arrays(self.chunks) if self.chunks else pa.array([], pa.large_string())
        self.chunks = []
        table = pa.table({"c": pa.array(created.astype(np.int64)), "id": arr})
        order = pc.sort_indices(table, [("c", "ascending"), ("id", "ascending")]).to_numpy().astype(np.int64)
        return StrColumn(arr, order), order


def load_pool(
    con: duckdb.DuckDBPyConnection, on: str = "conversation", include_system: bool = False, *,
    splits: Sequence[str] | None = None, memory_limit: str | None = LOAD_MEMORY_LIMIT,
) -> Pool:
    """Active examples (optionally only those of ``splits``), ordered by ``created_at`` then id.

    Memory: three plain reads (sizes; the split of each example; ids, times, origins, tasks and messages)
    streamed in Arrow batches, with DuckDB capped at ``memory_limit`` meanwhile (:data:`LOAD_MEMORY_LIMIT`;
    ``None`` leaves the connection's limit). The texts are made one batch at a time into one UTF-8
    buffer; the order by time and id is a numpy sort of the ids, read through a row index, so neither
    texts nor ids are ever copied into order. See :class:`Pool` for the columns.
    """
    if on not in VIEWS:
        raise CuratorError(f"unknown view {on!r} (choose from {', '.join(VIEWS)})")
    try:
        with capped_memory(con, memory_limit):
            return _read_pool(con, on, include_system, splits)
    except duckdb.OutOfMemoryException:
        if memory_limit is None:
            raise
    return _read_pool(con, on, include_system, splits)  # the cap was too tight for this machine's threads


def _read_pool(con: duckdb.DuckDBPyConnection, on: str, include_system: bool, splits: Sequence[str] | None) -> Pool:
    n_active, max_rowid, width = con.execute(
        "SELECT count(*), coalesce(max(rowid), -1), coalesce(max(strlen(id)), 0) FROM examples WHERE status = 'active'"
    ).fetchall()[0]
    # The split of every active example, by rowid (an example without a splits row is train, not pinned).
    split_codes = _Codes()
    train = split_codes.code.setdefault("train", 0)
    split_of = np.full(int(max_rowid) + 1, train, dtype=np.int32)
    pinned_of = np.zeros(int(max_rowid) + 1, dtype=bool)
    reader = con.sql(
        """SELECT e.rowid AS r, s.split, s.pinned FROM examples e JOIN splits s ON s.example_id = e.id
           WHERE e.status = 'active'"""
    ).to_arrow_reader(POOL_BATCH_ROWS)
    for batch in reader:
        r = batch.column("r").to_numpy()
        split_of[r] = split_codes.encode(batch.column("split"))
        pinned_of[r] = batch.column("pinned").fill_null(False).to_numpy(zero_copy_only=False)
    wanted = None
    if splits is not None:
        wanted = np.zeros(len(split_codes.code) + len(splits), dtype=bool)
        for s in splits:
            wanted[split_codes.code.setdefault(s, len(split_codes.code))] = True
    origin_codes, task_codes = _Codes(), _Codes()
    ids = _IdBuffer(int(n_active), int(width))
    texts = _TextBuffer()
    created: list[np.ndarray] = []
    origin: list[np.ndarray] = []
    task: list[np.ndarray] = []
    split: list[np.ndarray] = []
    pinned: list[np.ndarray] = []
    reader = con.sql(
        "SELECT rowid AS r, id, created_at, origin, task, messages FROM examples WHERE status = 'active'"
    ).to_arrow_reader(POOL_BATCH_ROWS)
    for batch in reader:
        r = batch.column("r").to_numpy()
        codes = split_of[r]
        if wanted is not None:
            keep = wanted[codes]
            if not keep.all():
                batch, r, codes = batch.filter(pa.array(keep)), r[keep], codes[keep]
            if not len(r):
                continue
        ids.add(batch.column("id"))
        texts.add(pa.array([example_text(orjson.loads(m), on, include_system)
                            for m in batch.column("messages").to_pylist()], pa.large_string()))
        created.append(batch.column("created_at").to_numpy(zero_copy_only=False).astype("datetime64[us]"))
        origin.append(origin_codes.encode(batch.column("origin")))
        task.append(task_codes.encode(batch.column("task")))
        split.append(codes)
        pinned.append(pinned_of[r])
    del split_of, pinned_of
    when = np.concatenate(created) if created else np.empty(0, dtype="datetime64[us]")
    id_column, order = ids.column(when.astype(np.int64))
    del ids

    def ordered(parts: list[np.ndarray], dtype: Any) -> np.ndarray:
        return (np.concatenate(parts) if parts else np.empty(0, dtype=dtype))[order]

    return Pool(
        ids=id_column,
        texts=StrColumn(texts.array(), order),
        origin=origin_codes.column(ordered(origin, np.int32)),
        created=when[order],
        split=split_codes.column(ordered(split, np.int32)),
        pinned=ordered(pinned, bool),
        task=task_codes.column(ordered(task, np.int32)),
    )


def keeper_rank(pool: Pool, i: int) -> tuple[Any, ...]:
    """Sort key of the keeper rule: split (test, eval, train), origin (seed, import, feedback, synthetic), time, id."""
    return (SPLIT_RANK.get(pool.split[i], 3), ORIGIN_RANK.get(pool.origin[i], 9), pool.created[i], pool.ids[i])


def _protected(pool: Pool, i: int) -> bool:
    return bool(pool.pinned[i]) and pool.split[i] in ("eval", "test")


@dataclass
class DedupDecision:
    example_id: str
    kind: str
    other_id: str
    score: float
    reason: str
    method: str
    cluster_size: int


@dataclass
class MethodResult:
    method: str
    threshold: float | None
    pairs: int = 0
    clusters: int = 0
    excluded: int = 0
    cluster_sizes: dict[int, int] = field(default_factory=dict)
    samples: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["cluster_sizes"] = {str(k): v for k, v in sorted(self.cluster_sizes.items())}
        return d


@dataclass
class DedupReport:
    """What :func:`dedup` found (and, unless ``dry_run``, excluded)."""

    on: str
    dry_run: bool
    examples: int
    methods: list[MethodResult] = field(default_factory=list)
    decisions: list[DedupDecision] = field(default_factory=list)
    embedded: int = 0
    written: int = 0

    @property
    def excluded(self) -> int:
        return len(self.decisions)

    def to_dict(self) -> dict[str, Any]:
        return {
            "on": self.on, "dry_run": self.dry_run, "examples": self.examples, "excluded": self.excluded,
            "written": self.written, "embedded": self.embedded,
            "by_method": {m.method: m.to_dict() for m in self.methods},
        }


def clip(text: str, n: int = 300) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def _node_keys(pool: Pool, nodes: np.ndarray) -> tuple[list[Any], ...]:
    """For pool rows ``nodes``: (split, keeper-rank key, id, protected) lists, read a column at a time."""
    split = take_list(pool.split, nodes)
    origin = take_list(pool.origin, nodes)
    ids = take_list(pool.ids, nodes)
    if isinstance(pool.created, np.ndarray):
        created: list[Any] = pool.created[nodes].astype("datetime64[us]").astype(np.int64).tolist()
    else:
        created = [pool.created[i] for i in nodes.tolist()]
    pinned = np.asarray(pool.pinned)[nodes].tolist() if isinstance(pool.pinned, np.ndarray) else [
        pool.pinned[i] for i in nodes.tolist()]
    rank = [(SPLIT_RANK.get(s, 3), ORIGIN_RANK.get(o, 9), c, e)
            for s, o, c, e in zip(split, origin, created, ids, strict=True)]
    protected = [bool(p) and s in ("eval", "test") for p, s in zip(pinned, split, strict=True)]
    return split, rank, ids, protected


def _resolve(pool: Pool, pairs: np.ndarray, scores: np.ndarray, method: str
             ) -> tuple[list[DedupDecision], dict[int, int], int, np.ndarray, np.ndarray]:
    """Clusters of ``pairs`` (pool indices) -> decisions for every member but the keeper and the protected.

    Also returns the pool rows of the decisions' examples and of their keepers (aligned with the decisions).
    The keeper is the member of smallest :func:`keeper_rank` (the same key, read for the members only).
    """
    none = np.empty(0, dtype=np.int64)
    if not len(pairs):
        return [], {}, 0, none, none
    nodes, local = np.unique(pairs, return_inverse=True)
    local = local.reshape(-1, 2)
    best = np.zeros(nodes.size, dtype=np.float64)
    np.maximum.at(best, local[:, 0], scores)
    np.maximum.at(best, local[:, 1], scores)
    # The score of an edge (a, b), a < b, by a sorted code: the last pair given wins, as a dict would keep it.
    n = np.int64(len(pool))
    codes = pairs[:, 0].astype(np.int64) * n + pairs[:, 1]
    by_code = np.argsort(codes, kind="stable")
    codes = codes[by_code]
    edge_scores = np.asarray(scores, dtype=np.float64)[by_code]
    split, rank, ids, protected = _node_keys(pool, nodes)
    members: list[int] = []
    keepers: list[int] = []
    sizes_of: list[int] = []
    sizes: dict[int, int] = {}
    comps = clusters(nodes.size, local)
    for comp in comps:
        size = len(comp)
        sizes[size] = sizes.get(size, 0) + 1
        keeper = min(comp, key=rank.__getitem__)
        for c in comp:
            if c != keeper and not protected[c]:
                members.append(c)
                keepers.append(keeper)
                sizes_of.append(size)
    mem, kee = np.array(members, dtype=np.int64), np.array(keepers, dtype=np.int64)
    dropped, kept = nodes[mem], nodes[kee]
    # The score of the edge (member, keeper) when there is one, else the member's best edge.
    want = np.minimum(dropped, kept) * n + np.maximum(dropped, kept)
    at = np.searchsorted(codes, want, side="right") - 1
    found = (at >= 0) & (codes[np.maximum(at, 0)] == want) if codes.size else np.zeros(want.size, dtype=bool)
    member_scores = np.where(found, edge_scores[np.maximum(at, 0)] if codes.size else 0.0, best[mem])
    decisions: list[DedupDecision] = []
    for c, k, size, score in zip(members, keepers, sizes_of, member_scores.tolist(), strict=True):
        what = _LABEL[method] if method == "exact" else f"{_LABEL[method]} ({_SCORE[method]} {score:.2f})"
        reason = f"{what} of {ids[k][:12]}"
        if size > 2:
            reason += f" (cluster of {size})"
        if SPLIT_RANK.get(split[k], 3) < SPLIT_RANK.get(split[c], 3):
            reason += f"; {split[c]} copy of a {split[k]} example"
        decisions.append(DedupDecision(ids[c], DEDUP_KINDS[method], ids[k], round(score, 6), reason, method, size))
    return decisions, sizes, len(comps), dropped, kept


def _digests(engine: Engine, texts: Sequence[str]) -> np.ndarray:
    """The exact keys of ``texts`` as ``(n, 16)`` digests, from the engine's digests or its hex keys."""
    digester = getattr(engine, "exact_digests", None)
    if digester is not None:
        return np.asarray(digester(texts), dtype=np.uint8).reshape(-1, DIGEST_BYTES)
    keys = engine.exact_keys(texts)
    return np.frombuffer(b"".join(bytes.fromhex(k) for k in keys), dtype=np.uint8).reshape(-1, DIGEST_BYTES)


def _rows_of(column: Sequence[str], idx: np.ndarray) -> Sequence[str]:
    """Rows ``idx`` of a pool column: a view for the columns of :mod:`~curator.quality.dedup.columns`, else a list."""
    if isinstance(column, (StrColumn, FixedStrColumn, HexColumn, CodeColumn)):
        return column.take(idx)
    return take_list(column, idx)


def check_threshold(name: str, value: float) -> None:
    if not 0.0 < value <= 1.0:
        raise CuratorError(f"{name} threshold must be in (0, 1], got {value}")


def check_methods(methods: Sequence[str], allowed: Sequence[str]) -> list[str]:
    out = list(dict.fromkeys(methods))
    bad = [m for m in out if m not in allowed]
    if bad or not out:
        raise CuratorError(f"unknown method {', '.join(bad) or '(none)'} (choose from {', '.join(allowed)})")
    return out


def embed_pool(
    ws: Workspace, ids: Sequence[str], *, model: str, on: str, include_system: bool, progress: ProgressFactory,
    encoder: Encoder | None = None,
) -> tuple[np.ndarray, int]:
    """Vectors of stored examples ``ids`` (computing the missing ones with ``encoder``, with a progress bar)."""
    ids = ids if isinstance(ids, list) else take_list(ids, np.arange(len(ids)))
    state: dict[str, Any] = {}
    with progress("embedding", None) as bar:
        def total(n: int) -> None:
            state["n"] = n
            bar.update(total=n)

        computed = ensure_embeddings(ws, ids, model=model, on=on, include_system=include_system,
                                     progress=bar.advance, total=total, encoder=encoder)
    return load_embeddings(ws, ids, model=model, on=on, include_system=include_system), computed


def dedup(
    ws: Workspace,
    methods: Sequence[str] = METHODS,
    *,
    on: str = "conversation",
    include_system: bool = False,
    near_threshold: float = NEAR_THRESHOLD,
    semantic_threshold: float = SEMANTIC_THRESHOLD,
    model: str = DEFAULT_EMBEDDER,
    dry_run: bool = False,
    samples: int = 5,
    progress: ProgressFactory | None = None,
    engine: Engine | None = None,
) -> DedupReport:
    """Find duplicates among the active examples and (unless ``dry_run``) exclude all but one copy.

    Methods run in the order exact, near, semantic, each on the examples the previous left. The
    whole write is one transaction. Semantic dedup computes (and caches) embeddings even in a
    dry run. ``engine`` runs the keys, pairs and embeddings (:data:`~curator.quality.dedup.engine.LOCAL`
    by default; the Ray engine of ``curator.engines`` gives the same pairs); the clusters, keepers and
    the write are done here for every engine.
    """
    import time

    methods = check_methods(methods, METHODS)
    methods = [m for m in METHODS if m in methods]
    check_threshold("near-duplicate (Jaccard)", near_threshold)
    check_threshold("semantic (cosine)", semantic_threshold)
    progress = progress or no_progress
    engine = engine or LOCAL
    with ws.connect() as con:
        pool = load_pool(con, on, include_system)
    report = DedupReport(on=on, dry_run=dry_run, examples=len(pool))
    alive = np.ones(len(pool), dtype=bool)
    for method in methods:
        t0 = time.perf_counter()
        idx = np.flatnonzero(alive)
        threshold: float | None = None
        if method == "exact":
            with progress("dedup exact", idx.size) as bar:
                pairs, scores = exact_pairs(digests=_digests(engine, _rows_of(pool.texts, idx)))
                bar.advance(idx.size)
        elif method == "near":
            threshold = near_threshold
            with progress("dedup near", idx.size) as bar:
                pairs, scores = engine.near_pairs(_rows_of(pool.texts, idx), near_threshold,
                                                  phase=lambda name: bar.update(note=name))
                bar.update(note=f"{len(pairs)} pairs")
                bar.advance(idx.size)
        else:
            threshold = semantic_threshold
            ids = take_list(pool.ids, idx)
            vectors, report.embedded = embed_pool(ws, ids, model=model, on=on, include_system=include_system,
                                                   progress=progress, encoder=engine.encode)
            del ids
            with progress("dedup semantic: searching neighbours", idx.size) as bar:
                pairs, scores = engine.semantic_pairs(vectors, semantic_threshold, progress=bar.advance)
            del vectors
        pairs = idx[pairs] if len(pairs) else pairs.reshape(-1, 2)
        decisions, sizes, n_clusters, dropped, kept = _resolve(pool, pairs, np.asarray(scores, dtype=np.float64),
                                                               method)
        result = MethodResult(method, threshold, pairs=len(pairs), clusters=n_clusters, excluded=len(decisions),
                              cluster_sizes=sizes)
        alive[dropped] = False
        for d, a, b in zip(decisions[:samples], dropped[:samples].tolist(), kept[:samples].tolist(), strict=False):
            result.samples.append({
                "example_id": d.example_id, "kept_id": d.other_id, "score": d.score, "reason": d.reason,
                "example_text": clip(pool.texts[a]), "kept_text": clip(pool.texts[b]),
            })
        del pairs, scores
        result.seconds = round(time.perf_counter() - t0, 3)
        report.methods.append(result)
        report.decisions.extend(decisions)
    if not dry_run and report.decisions:
        report.written = _write_decisions(ws, report.decisions)
    return report


def _write_decisions(ws: Workspace, decisions: Sequence[DedupDecision]) -> int:
    """Exclude the examples (still active) and record the decisions, all in one transaction."""
    table = pa.table({
        "example_id": [d.example_id for d in decisions],
        "kind": [d.kind for d in decisions],
        "other_id": [d.other_id for d in decisions],
        "score": pa.array([d.score for d in decisions], pa.float64()),
        "reason": [d.reason for d in decisions],
    })
    return write_exclusions(ws, table)


def write_exclusions(ws: Workspace, table: pa.Table) -> int:
    """Exclude ``table``'s examples that are still active and record one decision each (one transaction).

    ``table`` has columns example_id, kind, other_id, score, reason. Returns how many were excluded.
    """
    with ws.transaction() as con:
        con.register("_dec", table)
        try:
            con.execute(
                """CREATE OR REPLACE TEMP TABLE _go AS
                   SELECT d.* FROM (SELECT DISTINCT ON (example_id) * FROM _dec ORDER BY example_id) d
                   JOIN examples e ON e.id = d.example_id WHERE e.status = 'active'"""
            )
            con.execute(
                """UPDATE examples SET status = 'excluded', excluded_reason = g.kind || ': ' || g.reason
                   FROM _go g WHERE examples.id = g.example_id"""
            )
            con.execute(
                """INSERT INTO decisions (example_id, kind, other_id, score, reason)
                   SELECT example_id, kind, other_id, score, reason FROM _go"""
            )
            n = con.execute("SELECT count(*) FROM _go").fetchall()[0][0]
            con.execute("DROP TABLE _go")
        finally:
            con.unregister("_dec")
    return int(n)


# -- candidates (generation, feedback) -----------------------------------------------------------------------------
def record_best(found: dict[tuple[int, str], tuple[float, int, str, str | None]], cand: int, kind: str, score: float,
          other: str, order: int, split: str | None = None) -> None:
    """Keep the best match per (candidate, kind): highest score, then stored before candidates, then first."""
    cur = found.get((cand, kind))
    if cur is None or (score, -order) > (cur[0], -cur[1]):
        found[(cand, kind)] = (score, order, other, split)


def collect_matches(found: dict[tuple[int, str], tuple[float, int, str, str | None]], kinds: Sequence[str]) -> list[Match]:
    rank = {k: i for i, k in enumerate(kinds)}
    out = [Match(c, k, other, round(float(s), 6), split) for (c, k), (s, _, other, split) in found.items()]
    out.sort(key=lambda m: (m.candidate, rank.get(m.kind, 9)))
    return out


def find_duplicates_of(
    ws: Workspace,
    candidates: Sequence[Example],
    methods: Sequence[str] = METHODS,
    *,
    on: str = "conversation",
    include_system: bool = False,
    near_threshold: float = NEAR_THRESHOLD,
    semantic_threshold: float = SEMANTIC_THRESHOLD,
    model: str = DEFAULT_EMBEDDER,
) -> list[Match]:
    """Which candidates duplicate a stored active example or an earlier candidate.

    At most one :class:`Match` per (candidate, method): the best-scoring other, a stored example
    (``other_id`` its id) before an earlier candidate (``other_id = "candidate:<j>"``, ``j < i``).
    Keep candidate ``i`` only when no match names it. Writes no decisions and changes no
    example; the ``semantic`` method computes and caches missing embeddings of stored examples
    (call it outside a transaction), and embeds the candidates in memory.
    """
    methods = check_methods(methods, METHODS)
    check_threshold("near-duplicate (Jaccard)", near_threshold)
    check_threshold("semantic (cosine)", semantic_threshold)
    if not candidates:
        return []
    cand_texts = [example_text(c.messages, on, include_system) for c in candidates]
    with ws.connect() as con:
        pool = load_pool(con, on, include_system)
    n = len(pool)
    found: dict[tuple[int, str], tuple[float, int, str, str | None]] = {}
    if "exact" in methods:
        cand_digests = exact_digests(cand_texts)
        stored = first_of(exact_digests(pool.texts), cand_digests)
        earlier = exact_pairs(digests=cand_digests)[0]  # (first candidate with the key, later candidate)
        first_cand = dict(zip(earlier[:, 1].tolist(), earlier[:, 0].tolist(), strict=True))
        for j, i in enumerate(stored.tolist()):
            if i >= 0:
                record_best(found, j, "exact", 1.0, pool.ids[i], 0)
            elif j in first_cand:
                record_best(found, j, "exact", 1.0, f"candidate:{first_cand[j]}", 1 + first_cand[j])
    if "near" in methods:
        pairs, scores = near_pairs(Chain(pool.texts, cand_texts), near_threshold, involving=n)
        for (a, b), s in zip(pairs.tolist(), scores.tolist(), strict=True):
            if a < n:
                record_best(found, b - n, "near", s, pool.ids[a], 0)
            else:
                record_best(found, b - n, "near", s, f"candidate:{a - n}", 1 + a - n)
    if "semantic" in methods:
        q = encode(cand_texts, model)
        if n:
            x, _ = embed_pool(ws, take_list(pool.ids, np.arange(n)), model=model, on=on,
                              include_system=include_system, progress=no_progress)
            pairs, scores = semantic_pairs(x, semantic_threshold, queries=q)
            for (c, a), s in zip(pairs.tolist(), scores.tolist(), strict=True):
                record_best(found, c, "semantic", s, pool.ids[a], 0)
        pairs, scores = semantic_pairs(q, semantic_threshold)
        for (a, b), s in zip(pairs.tolist(), scores.tolist(), strict=True):
            record_best(found, b, "semantic", s, f"candidate:{a}", 1 + a)
    return collect_matches(found, METHODS)
