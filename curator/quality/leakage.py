"""Leakage between splits: train examples that overlap an eval or test example.

Three methods, each comparing every active train example with every active eval/test example
(on one view of the example, the whole conversation by default, system prompts left out):

* ``exact``    -- equal :func:`curator.quality.fold.fold` text (case, punctuation and whitespace
  folded): ``"Is there an auto top-up option?"`` == ``"is there an auto top up option"``.
* ``ngram``    -- *coverage*: the share of the eval/test text's word n-grams (words of the same
  fold) that occur in one train text, flagged at ``>= 0.8``. Texts of at least 26 words use
  13-grams (GPT-3's contamination n-gram); shorter texts (13 to 25 words) use 8-grams, since one
  13-gram would be most of the text; shorter ones are left to the exact rule. GPT-3 flags any
  single shared 13-gram; fine-tuning sets share long instruction templates ("Rewrite the
  sentence ... concise"), so a coverage share is asked instead. N-grams found in more than
  1,000 train texts count as boilerplate and are ignored.
* ``semantic`` -- embedding cosine ``>= 0.95`` (paraphrases).

Matching whole examples rather than instructions alone avoids false alarms on generic
instructions whose inputs differ ("Answer the following question." + two different questions).

:func:`fix_leakage` excludes the *train* copy (decision kinds ``leakage_exact|leakage_ngram|
leakage_semantic``, ``other_id`` = the eval/test example); eval and test never change;
:func:`fix_leakage_until_clean` repeats find and fix until nothing is found (``curator leakage --fix``).
:func:`leakage_gate` is what ``create_snapshot`` calls: it refuses a leaking snapshot (exact and
n-gram checks) unless ``allow_leakage``. :func:`find_leaks_of` checks new candidate examples against eval/test.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

from curator.embed import encode, example_text
from curator.errors import CuratorError
from curator.models import DEFAULT_EMBEDDER
from curator.quality.dedup.engine import LOCAL, Engine
from curator.quality.dedup.exact import key_of
from curator.quality.dedup.minhash import shingle_batch
from curator.quality.dedup.run import (
    Match,
    Pool,
    ProgressFactory,
    check_methods,
    check_threshold,
    clip,
    collect_matches,
    embed_pool,
    load_pool,
    no_progress,
    record_best,
    write_exclusions,
)
from curator.quality.dedup.semantic import semantic_pairs
from curator.quality.fold import fold
from curator.records import Example
from curator.workspace import Workspace

__all__ = [
    "DEFAULT_COVERAGE",
    "DEFAULT_NGRAM",
    "DEFAULT_SEMANTIC",
    "GATE_METHODS",
    "MAX_DF",
    "LEAK_KINDS",
    "LEAK_METHODS",
    "SHORT_NGRAM",
    "LeakPair",
    "LeakageReport",
    "NgramIndex",
    "exact_leak_pairs",
    "exact_leak_pairs_from_keys",
    "find_leakage",
    "find_leaks_of",
    "fix_leakage",
    "fix_leakage_until_clean",
    "join_leak_pairs",
    "leakage_gate",
    "ngram_index",
    "ngram_leak_pairs",
    "ngram_sizes",
]

LEAK_METHODS = ("exact", "ngram", "semantic")
GATE_METHODS = ("exact", "ngram")
LEAK_KINDS = {m: f"leakage_{m}" for m in LEAK_METHODS}
DEFAULT_NGRAM = 13
SHORT_NGRAM = 8
DEFAULT_COVERAGE = 0.8
MIN_WORDS = 13
DEFAULT_SEMANTIC = 0.95
MAX_DF = 1000
_EMPTY = (np.empty((0, 2), dtype=np.int64), np.empty(0, dtype=np.float64))


# -- pure cores ---------------------------------------------------------------------------------------------------
def exact_leak_pairs(train_texts: Sequence[str], other_texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Pairs ``(other_row, train_row)`` with equal folded text; scores 1.0."""
    return exact_leak_pairs_from_keys([key_of(t) for t in train_texts], [key_of(t) for t in other_texts])


def exact_leak_pairs_from_keys(train_keys: Sequence[str], other_keys: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """:func:`exact_leak_pairs` from precomputed :func:`curator.quality.dedup.exact.key_of` keys."""
    by_key: dict[str, list[int]] = {}
    for i, k in enumerate(train_keys):
        by_key.setdefault(k, []).append(i)
    rows = [(o, t) for o, k in enumerate(other_keys) for t in by_key.get(k, ())]
    pairs = np.array(rows, dtype=np.int64).reshape(-1, 2)
    return pairs, np.ones(len(pairs), dtype=np.float64)


def _ngrams(words: list[str], n: int) -> set[tuple[str, ...]]:
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


#: The train side of an n-gram check: every train n-gram hash, sorted, and the train row it came from.
NgramIndex = tuple[np.ndarray, np.ndarray]


def ngram_index(train: Sequence[str], n: int, shingles: tuple[np.ndarray, np.ndarray] | None = None) -> NgramIndex:
    """The :data:`NgramIndex` of folded ``train`` texts for ``n``-grams.

    ``shingles`` is their ``shingle_batch(train, n)`` when already computed (the Ray engine computes it
    in shards: per row, so the concatenation is the same).
    """
    tf, toff = shingles if shingles is not None else shingle_batch(train, n)
    trow = np.repeat(np.arange(len(train), dtype=np.int64), np.diff(toff))
    order = np.argsort(tf, kind="stable")
    return tf[order], trow[order]


def ngram_sizes(ngram: int = DEFAULT_NGRAM, short_ngram: int = SHORT_NGRAM) -> tuple[int, ...]:
    """The n-gram sizes :func:`ngram_leak_pairs` indexes the train texts for."""
    return tuple(dict.fromkeys((ngram, short_ngram)))


def _coverage_pairs(
    train: Sequence[str], other: list[str], n: int, coverage: float, max_df: int, index: NgramIndex | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(other_row, train_row) pairs whose shared distinct n-grams cover ``>= coverage`` of the other text's."""
    if not len(train) or not other:
        return _EMPTY
    th, tr = index if index is not None else ngram_index(train, n)
    of, ooff = shingle_batch(other, n)
    lo = np.searchsorted(th, of, "left")
    hi = np.searchsorted(th, of, "right")
    cnt = hi - lo
    cnt[cnt > max_df] = 0
    total = int(cnt.sum())
    if total == 0:
        return _EMPTY
    orow = np.repeat(np.arange(len(other), dtype=np.int64), np.diff(ooff))
    start = np.cumsum(cnt) - cnt
    pos = np.repeat(lo, cnt) + (np.arange(total) - np.repeat(start, cnt))
    n_train = np.int64(len(train))
    code, counts = np.unique(np.repeat(orow, cnt) * n_train + tr[pos], return_counts=True)
    o_idx, t_idx = code // n_train, code % n_train
    denom = np.diff(ooff)[o_idx]
    approx = counts / np.maximum(denom, 1)
    keep = approx >= coverage
    o_idx, t_idx = o_idx[keep], t_idx[keep]
    # Shingle hashes are 32-bit: recount the flagged pairs on the words themselves.
    rows, scores = [], []
    cache: dict[int, set[tuple[str, ...]]] = {}
    for o, t in zip(o_idx.tolist(), t_idx.tolist(), strict=True):
        grams = cache.get(o)
        if grams is None:
            grams = cache[o] = _ngrams(other[o].split(), n)
        if not grams:
            continue
        share = len(grams & _ngrams(train[t].split(), n)) / len(grams)
        if share >= coverage:
            rows.append((o, t))
            scores.append(share)
    if not rows:
        return _EMPTY
    return np.array(rows, dtype=np.int64), np.array(scores, dtype=np.float64)


def ngram_leak_pairs(
    train_texts: Sequence[str],
    other_texts: Sequence[str],
    *,
    ngram: int = DEFAULT_NGRAM,
    short_ngram: int = SHORT_NGRAM,
    coverage: float = DEFAULT_COVERAGE,
    max_df: int = MAX_DF,
    min_words: int = MIN_WORDS,
    folded: bool = False,
    index: dict[int, NgramIndex] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Pairs ``(other_row, train_row)`` whose n-gram coverage of the other text is ``>= coverage``.

    Other texts of ``>= 2 * ngram`` words use ``ngram``-grams; of ``min_words`` to
    ``2 * ngram - 1`` words, ``short_ngram``-grams; shorter ones are skipped (exact rule only).
    Scores are the exact coverage (share of the other text's distinct n-grams). Each other text is
    checked on its own, so the other texts can be split across workers; ``index`` (by n, from
    :func:`ngram_index`) saves indexing the train texts again for each part.
    """
    if ngram < 1 or short_ngram < 1:
        raise CuratorError("n-gram sizes must be >= 1")
    check_threshold("n-gram coverage", coverage)
    train = train_texts if folded else [fold(t) for t in train_texts]
    other = list(other_texts) if folded else [fold(t) for t in other_texts]
    nwords = np.array([t.count(" ") + 1 if t else 0 for t in other], dtype=np.int64)
    parts = []
    long_ = nwords >= 2 * ngram
    for n, sel in ((ngram, long_), (short_ngram, (nwords >= min_words) & ~long_)):
        idx = np.flatnonzero(sel)
        if not idx.size:
            continue
        p, s = _coverage_pairs(train, [other[i] for i in idx.tolist()], n, coverage, max_df,
                               index.get(n) if index else None)
        p[:, 0] = idx[p[:, 0]]
        parts.append((p, s))
    return join_leak_pairs(parts)


def join_leak_pairs(parts: Sequence[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Parts of (other_row, train_row) pairs and their scores, joined and ordered by (other row, train row)."""
    parts = [(p, s) for p, s in parts if len(p)]
    if not parts:
        return _EMPTY
    pairs, scores = np.concatenate([p for p, _ in parts]), np.concatenate([s for _, s in parts])
    order = np.lexsort((pairs[:, 1], pairs[:, 0]))
    return pairs[order], scores[order]


# -- reports ------------------------------------------------------------------------------------------------------
@dataclass
class LeakPair:
    """One train example overlapping one eval/test example."""

    train_id: str
    other_id: str
    other_split: str
    method: str
    score: float
    train_text: str
    other_text: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class LeakageReport:
    on: str
    methods: list[str]
    train: int
    compared: dict[str, int]
    pairs: list[LeakPair] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    embedded: int = 0
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def by_method(self) -> dict[str, int]:
        out = dict.fromkeys(self.methods, 0)
        for p in self.pairs:
            out[p.method] = out.get(p.method, 0) + 1
        return out

    @property
    def train_ids(self) -> list[str]:
        return sorted({p.train_id for p in self.pairs})

    def to_dict(self, limit: int | None = None) -> dict[str, Any]:
        pairs = self.pairs if limit is None else self.pairs[:limit]
        return {
            "on": self.on, "methods": self.methods, "train": self.train, "compared": self.compared,
            "leaking_pairs": len(self.pairs), "by_method": self.by_method,
            "train_examples_leaking": len(self.train_ids), "params": self.params, "embedded": self.embedded,
            "seconds": self.seconds, "pairs": [p.to_dict() for p in pairs],
        }


_STRENGTH = {"exact": 0, "ngram": 1, "semantic": 2}


def _find(
    ws: Workspace,
    pool: Pool,
    methods: Sequence[str],
    *,
    splits: Sequence[str],
    ngram: int,
    short_ngram: int,
    coverage: float,
    semantic_threshold: float,
    model: str,
    on: str,
    include_system: bool,
    progress: ProgressFactory,
    report: LeakageReport,
    engine: Engine = LOCAL,
) -> dict[tuple[int, int], tuple[str, float]]:
    """(train pool row, other pool row) -> (strongest method, score)."""
    tr = [i for i, s in enumerate(pool.split) if s == "train"]
    ot = [i for i, s in enumerate(pool.split) if s in splits]
    found: dict[tuple[int, int], tuple[str, float]] = {}
    if not tr or not ot:
        return found
    folded_tr = engine.fold([pool.texts[i] for i in tr]) if ("exact" in methods or "ngram" in methods) else []
    folded_ot = engine.fold([pool.texts[i] for i in ot]) if folded_tr else []
    for method in sorted(methods, key=_STRENGTH.__getitem__):
        t0 = time.perf_counter()
        if method == "exact":
            with progress("leakage exact", len(ot)) as bar:
                pairs, scores = exact_leak_pairs_from_keys(engine.exact_keys(folded_tr), engine.exact_keys(folded_ot))
                bar.advance(len(ot))
        elif method == "ngram":
            with progress("leakage ngram", len(ot)) as bar:
                pairs, scores = engine.ngram_leak_pairs(folded_tr, folded_ot, ngram=ngram, short_ngram=short_ngram,
                                                        coverage=coverage)
                bar.advance(len(ot))
        else:
            ids = [pool.ids[i] for i in tr + ot]
            vecs, report.embedded = embed_pool(ws, ids, model=model, on=on, include_system=include_system,
                                                progress=progress, encoder=engine.encode)
            with progress("leakage semantic: searching neighbours", len(ot)) as bar:
                pairs, scores = engine.semantic_pairs(vecs[: len(tr)], semantic_threshold, queries=vecs[len(tr):],
                                                      progress=bar.advance)
        for (o, t), s in zip(pairs.tolist(), scores.tolist(), strict=True):
            found.setdefault((tr[t], ot[o]), (method, float(s)))
        report.seconds[method] = round(time.perf_counter() - t0, 3)
    return found


def find_leakage(
    ws: Workspace,
    methods: Sequence[str] = LEAK_METHODS,
    *,
    on: str = "conversation",
    include_system: bool = False,
    splits: Sequence[str] = ("eval", "test"),
    ngram: int = DEFAULT_NGRAM,
    short_ngram: int = SHORT_NGRAM,
    coverage: float = DEFAULT_COVERAGE,
    semantic_threshold: float = DEFAULT_SEMANTIC,
    model: str = DEFAULT_EMBEDDER,
    progress: ProgressFactory | None = None,
    engine: Engine | None = None,
) -> LeakageReport:
    """Every (train, eval/test) pair of active examples that overlaps, with its strongest method and score.

    A pair found by several methods is reported once, by the first of exact, ngram, semantic.
    Pairs are sorted by method, then score (highest first). ``engine`` runs the folds, keys, n-gram
    and neighbour searches and the embeddings (this process by default; see
    :mod:`curator.quality.dedup.engine`).
    """
    methods = check_methods(methods, LEAK_METHODS)
    check_threshold("semantic (cosine)", semantic_threshold)
    bad = [s for s in splits if s not in ("eval", "test")]
    if bad or not splits:
        raise CuratorError(f"leakage compares train with eval and/or test, not {', '.join(bad) or 'nothing'}")
    with ws.connect() as con:
        pool = load_pool(con, on, include_system)
    report = LeakageReport(
        on=on, methods=list(methods), train=sum(s == "train" for s in pool.split),
        compared={s: sum(x == s for x in pool.split) for s in splits},
        params={"ngram": ngram, "short_ngram": short_ngram, "coverage": coverage,
                "semantic_threshold": semantic_threshold, "model": model, "include_system": include_system},
    )
    found = _find(ws, pool, methods, splits=splits, ngram=ngram, short_ngram=short_ngram, coverage=coverage,
                  semantic_threshold=semantic_threshold, model=model, on=on, include_system=include_system,
                  progress=progress or no_progress, report=report, engine=engine or LOCAL)
    for (t, o), (method, score) in found.items():
        report.pairs.append(LeakPair(pool.ids[t], pool.ids[o], pool.split[o], method, round(score, 6),
                                     clip(pool.texts[t]), clip(pool.texts[o])))
    report.pairs.sort(key=lambda p: (_STRENGTH[p.method], -p.score, p.other_id, p.train_id))
    return report


def fix_leakage(ws: Workspace, report: LeakageReport | None = None, **kwargs: Any) -> int:
    """Exclude the train copy of every leaking pair (``report``, or a fresh :func:`find_leakage` with ``kwargs``).

    One decision per train example, from its strongest pair. Returns how many were excluded.
    """
    if report is None:
        report = find_leakage(ws, **kwargs)
    first: dict[str, LeakPair] = {}
    for p in report.pairs:
        first.setdefault(p.train_id, p)
    if not first:
        return 0
    rows = list(first.values())
    table = pa.table({
        "example_id": [p.train_id for p in rows],
        "kind": [LEAK_KINDS[p.method] for p in rows],
        "other_id": [p.other_id for p in rows],
        "score": pa.array([p.score for p in rows], pa.float64()),
        "reason": [f"{p.method} match (score {p.score:.2f}) with {p.other_split} example {p.other_id[:12]}"
                   for p in rows],
    })
    return write_exclusions(ws, table)


def fix_leakage_until_clean(ws: Workspace, find: Callable[[], LeakageReport],
                            max_passes: int = 5) -> tuple[LeakageReport, int, list[int]]:
    """:func:`fix_leakage` of ``find()``'s report, then ``find()`` again until it finds no pair.

    One pass is usually enough; a second finds pairs when the first pass's exclusions brought
    n-grams that more than :data:`MAX_DF` train texts shared (ignored as boilerplate) under that
    cutoff, so that they count again (seen at 1M templated examples: 2 pairs after 8,733).  Returns
    (the first report, train examples excluded in all, pairs found per pass, the clean pass's 0 included).
    """
    first: LeakageReport | None = None
    excluded, passes = 0, []
    for _ in range(max(1, max_passes)):
        report = find()
        first = first or report
        passes.append(len(report.pairs))
        if not report.pairs:
            break
        excluded += fix_leakage(ws, report)
    assert first is not None
    return first, excluded, passes


def leakage_gate(con: duckdb.DuckDBPyConnection, ws: Workspace) -> str | None:
    """Snapshot gate: a refusal message when train overlaps eval/test by the exact or n-gram checks."""
    with ws.connect():
        pool = load_pool(con, "conversation")
    report = LeakageReport(on="conversation", methods=list(GATE_METHODS), train=0, compared={})
    found = _find(ws, pool, GATE_METHODS, splits=("eval", "test"), ngram=DEFAULT_NGRAM, short_ngram=SHORT_NGRAM,
                  coverage=DEFAULT_COVERAGE, semantic_threshold=DEFAULT_SEMANTIC, model=DEFAULT_EMBEDDER,
                  on="conversation", include_system=False, progress=no_progress, report=report)
    if not found:
        return None
    counts = dict.fromkeys(GATE_METHODS, 0)
    for method, _ in found.values():
        counts[method] += 1
    detail = ", ".join(f"{n} {'n-gram' if m == 'ngram' else m}" for m, n in counts.items())
    return (
        f"train overlaps eval/test: {len(found)} leaking pair{'s' if len(found) != 1 else ''} ({detail}); "
        "run `curator leakage` to see them, `curator leakage --fix` to exclude the train copies, "
        "or pass --allow-leakage"
    )


def find_leaks_of(
    ws: Workspace,
    candidates: Sequence[Example],
    splits: Sequence[str] = ("eval", "test"),
    methods: Sequence[str] = LEAK_METHODS,
    *,
    on: str = "conversation",
    include_system: bool = False,
    ngram: int = DEFAULT_NGRAM,
    short_ngram: int = SHORT_NGRAM,
    coverage: float = DEFAULT_COVERAGE,
    semantic_threshold: float = DEFAULT_SEMANTIC,
    model: str = DEFAULT_EMBEDDER,
) -> list[Match]:
    """Which candidates (future train examples) overlap an active eval/test example.

    At most one :class:`~curator.quality.dedup.Match` per (candidate, method): the best-scoring eval/test
    example (``other_id``, ``split`` set). Writes nothing but cached embeddings of stored examples.
    """
    methods = check_methods(methods, LEAK_METHODS)
    if not candidates:
        return []
    with ws.connect() as con:
        pool = load_pool(con, on, include_system, splits=splits)
    if not len(pool):
        return []
    cand = [fold(example_text(c.messages, on, include_system)) for c in candidates]
    other = [fold(t) for t in pool.texts]
    found: dict[tuple[int, str], tuple[float, int, str, str | None]] = {}
    for method in methods:
        if method == "exact":
            pairs, scores = exact_leak_pairs(cand, other)
        elif method == "ngram":
            pairs, scores = ngram_leak_pairs(cand, other, ngram=ngram, short_ngram=short_ngram, coverage=coverage,
                                             folded=True)
        else:
            x, _ = embed_pool(ws, pool.ids, model=model, on=on, include_system=include_system, progress=no_progress)
            q = encode([example_text(c.messages, on, include_system) for c in candidates], model)
            pairs, scores = semantic_pairs(x, semantic_threshold, queries=q)
            pairs = pairs[:, ::-1]  # -> (other row, candidate row)
        for (o, c), s in zip(pairs.tolist(), scores.tolist(), strict=True):
            record_best(found, c, method, s, pool.ids[o], 0, pool.split[o])
    return collect_matches(found, LEAK_METHODS)

