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

from curator.embed import VIEWS, Encoder, encode, ensure_embeddings, example_text, load_embeddings
from curator.errors import CuratorError
from curator.models import DEFAULT_EMBEDDER
from curator.quality.dedup.engine import LOCAL, Engine
from curator.quality.dedup.exact import exact_pairs, key_of
from curator.quality.dedup.near import DEFAULT_THRESHOLD as NEAR_THRESHOLD
from curator.quality.dedup.near import near_pairs
from curator.quality.dedup.semantic import DEFAULT_THRESHOLD as SEMANTIC_THRESHOLD
from curator.quality.dedup.semantic import semantic_pairs
from curator.quality.dedup.unionfind import clusters
from curator.records import Example
from curator.workspace import Workspace

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
    """The active examples, one view's text each, with what the keeper rule needs."""

    ids: list[str]
    texts: list[str]
    origin: list[str]
    created: list[Any]
    split: list[str]
    pinned: list[bool]
    task: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.ids)


#: Rows per Arrow batch when :func:`load_pool` reads the workspace.
POOL_BATCH_ROWS = 1 << 16


def load_pool(
    con: duckdb.DuckDBPyConnection, on: str = "conversation", include_system: bool = False, *, splits: Sequence[str] | None = None
) -> Pool:
    """Active examples (optionally only those of ``splits``), ordered by ``created_at`` then id."""
    if on not in VIEWS:
        raise CuratorError(f"unknown view {on!r} (choose from {', '.join(VIEWS)})")
    where = ""
    if splits is not None:
        where = " AND coalesce(s.split, 'train') IN (" + ", ".join(f"'{s}'" for s in splits) + ")"
    reader = con.sql(
        f"""SELECT e.id, e.messages, e.origin, e.created_at, coalesce(s.split, 'train') AS split,
                   coalesce(s.pinned, false) AS pinned, e.task
            FROM examples e LEFT JOIN splits s ON s.example_id = e.id
            WHERE e.status = 'active'{where} ORDER BY e.created_at, e.id"""
    ).to_arrow_reader(POOL_BATCH_ROWS)
    pool = Pool(ids=[], texts=[], origin=[], created=[], split=[], pinned=[], task=[])
    # Streamed in Arrow batches: the rows as Python tuples (and the messages' JSON) never all exist at once;
    # the few distinct origins, splits and tasks are one string object each, not one per row.
    shared: dict[str, str] = {}
    for batch in reader:
        cols = batch.to_pydict()
        pool.ids.extend(cols["id"])
        pool.texts.extend(example_text(orjson.loads(m), on, include_system) for m in cols["messages"])
        pool.origin.extend(shared.setdefault(v, v) for v in cols["origin"])
        pool.created.extend(cols["created_at"])
        pool.split.extend(shared.setdefault(v, v) for v in cols["split"])
        pool.pinned.extend(bool(p) for p in cols["pinned"])
        pool.task.extend(shared.setdefault(v, v) for v in cols["task"])
    return pool


def keeper_rank(pool: Pool, i: int) -> tuple[Any, ...]:
    """Sort key of the keeper rule: split (test, eval, train), origin (seed, import, feedback, synthetic), time, id."""
    return (SPLIT_RANK.get(pool.split[i], 3), ORIGIN_RANK.get(pool.origin[i], 9), pool.created[i], pool.ids[i])


def _protected(pool: Pool, i: int) -> bool:
    return pool.pinned[i] and pool.split[i] in ("eval", "test")


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


def _resolve(pool: Pool, pairs: np.ndarray, scores: np.ndarray, method: str) -> tuple[list[DedupDecision], dict[int, int], int]:
    """Clusters of ``pairs`` (pool indices) -> decisions for every member but the keeper and the protected."""
    if not len(pairs):
        return [], {}, 0
    nodes, local = np.unique(pairs, return_inverse=True)
    local = local.reshape(-1, 2)
    best = np.zeros(nodes.size, dtype=np.float64)
    np.maximum.at(best, local[:, 0], scores)
    np.maximum.at(best, local[:, 1], scores)
    edge = {(int(a), int(b)): float(s) for (a, b), s in zip(pairs.tolist(), scores.tolist(), strict=True)}
    decisions: list[DedupDecision] = []
    sizes: dict[int, int] = {}
    comps = clusters(nodes.size, local)
    for comp in comps:
        members = [int(nodes[c]) for c in comp]
        sizes[len(members)] = sizes.get(len(members), 0) + 1
        keeper = min(members, key=lambda i: keeper_rank(pool, i))
        for m, c in zip(members, comp, strict=True):
            if m == keeper or _protected(pool, m):
                continue
            score = edge.get((min(m, keeper), max(m, keeper)), float(best[c]))
            what = _LABEL[method] if method == "exact" else f"{_LABEL[method]} ({_SCORE[method]} {score:.2f})"
            reason = f"{what} of {pool.ids[keeper][:12]}"
            if len(members) > 2:
                reason += f" (cluster of {len(members)})"
            if SPLIT_RANK.get(pool.split[keeper], 3) < SPLIT_RANK.get(pool.split[m], 3):
                reason += f"; {pool.split[m]} copy of a {pool.split[keeper]} example"
            decisions.append(DedupDecision(pool.ids[m], DEDUP_KINDS[method], pool.ids[keeper], round(score, 6), reason,
                                           method, len(members)))
    return decisions, sizes, len(comps)


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
    ws: Workspace, ids: list[str], *, model: str, on: str, include_system: bool, progress: ProgressFactory,
    encoder: Encoder | None = None,
) -> tuple[np.ndarray, int]:
    """Vectors of stored examples ``ids`` (computing the missing ones with ``encoder``, with a progress bar)."""
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
        texts = [pool.texts[i] for i in idx.tolist()]
        threshold: float | None = None
        if method == "exact":
            with progress("dedup exact", len(texts)) as bar:
                pairs, scores = exact_pairs(keys=engine.exact_keys(texts))
                bar.advance(len(texts))
        elif method == "near":
            threshold = near_threshold
            with progress("dedup near", len(texts)) as bar:
                pairs, scores = engine.near_pairs(texts, near_threshold, phase=lambda name: bar.update(note=name))
                bar.update(note=f"{len(pairs)} pairs")
                bar.advance(len(texts))
        else:
            threshold = semantic_threshold
            ids = [pool.ids[i] for i in idx.tolist()]
            vectors, report.embedded = embed_pool(ws, ids, model=model, on=on, include_system=include_system,
                                                   progress=progress, encoder=engine.encode)
            with progress("dedup semantic: searching neighbours", len(ids)) as bar:
                pairs, scores = engine.semantic_pairs(vectors, semantic_threshold, progress=bar.advance)
        pairs = idx[pairs] if len(pairs) else pairs.reshape(-1, 2)
        decisions, sizes, n_clusters = _resolve(pool, pairs, np.asarray(scores, dtype=np.float64), method)
        result = MethodResult(method, threshold, pairs=len(pairs), clusters=n_clusters, excluded=len(decisions),
                              cluster_sizes=sizes)
        pos = {eid: i for i, eid in enumerate(pool.ids)} if decisions else {}
        for d in decisions:
            alive[pos[d.example_id]] = False
        for d in decisions[:samples]:
            result.samples.append({
                "example_id": d.example_id, "kept_id": d.other_id, "score": d.score, "reason": d.reason,
                "example_text": clip(pool.texts[pos[d.example_id]]), "kept_text": clip(pool.texts[pos[d.other_id]]),
            })
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
        stored: dict[str, int] = {}
        for i, t in enumerate(pool.texts):
            stored.setdefault(key_of(t), i)
        seen: dict[str, int] = {}
        for j, t in enumerate(cand_texts):
            k = key_of(t)
            if k in stored:
                record_best(found, j, "exact", 1.0, pool.ids[stored[k]], 0)
            elif k in seen:
                record_best(found, j, "exact", 1.0, f"candidate:{seen[k]}", 1 + seen[k])
            seen.setdefault(k, j)
    if "near" in methods:
        pairs, scores = near_pairs(pool.texts + cand_texts, near_threshold, involving=n)
        for (a, b), s in zip(pairs.tolist(), scores.tolist(), strict=True):
            if a < n:
                record_best(found, b - n, "near", s, pool.ids[a], 0)
            else:
                record_best(found, b - n, "near", s, f"candidate:{a - n}", 1 + a - n)
    if "semantic" in methods:
        q = encode(cand_texts, model)
        if n:
            x, _ = embed_pool(ws, pool.ids, model=model, on=on, include_system=include_system, progress=no_progress)
            pairs, scores = semantic_pairs(x, semantic_threshold, queries=q)
            for (c, a), s in zip(pairs.tolist(), scores.tolist(), strict=True):
                record_best(found, c, "semantic", s, pool.ids[a], 0)
        pairs, scores = semantic_pairs(q, semantic_threshold)
        for (a, b), s in zip(pairs.tolist(), scores.tolist(), strict=True):
            record_best(found, b, "semantic", s, f"candidate:{a}", 1 + a)
    return collect_matches(found, METHODS)
