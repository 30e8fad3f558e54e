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

How the local search scales (``find_leakage`` without an engine, and the gate): no text is held. The
eval/test side is kept as numpy arrays (exact keys as 16-byte digests, each text's n-gram hashes as ids
into a sorted vocabulary) and the ids as an Arrow array. The train examples are read from the workspace
once, in blocks of ``2**16`` rows: each block's exact pairs are looked up, and its n-grams that some
eval/test text has are counted (the :data:`MAX_DF` boilerplate rule needs every train text's) and written,
as (row, vocabulary id) pairs, to a spill file in the workspace's ``tmp`` folder; the n-gram pairs are then
found block by block from that file. The candidates come from a prefix filter: an eval/test text of
``s`` distinct n-grams needs ``k`` shared countable ones (``k / s >= coverage``), so a train text that
leaks shares one of its ``m - k + 1`` rarest countable n-grams (``m`` of them in all); the candidates'
shared n-grams are counted in full and checked on the words (both texts read again by id), as before,
so the pairs are those of :func:`ngram_leak_pairs` exactly. DuckDB's memory is capped at
:data:`DUCKDB_MEMORY` meanwhile (it keeps the blocks it read).

:func:`fix_leakage_until_clean` keeps the eval/test side between its passes: after a fix, a pass checks
(by a fingerprint of the active examples and the splits) that the workspace changed by the exclusion of
the last report's train examples only, and then re-checks only what those exclusions can change: no
exact pair can appear, and an n-gram pair only where an n-gram went from boilerplate to under the
cutoff (checked on the spill file); when none did, the pass reads no train text at all. Anything else
runs a full pass. Engines other than the local one (Ray) load every example, as before.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextvars import ContextVar
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import orjson
import pyarrow as pa

from curator.embed import VIEWS, encode, example_text
from curator.errors import CuratorError
from curator.models import DEFAULT_EMBEDDER
from curator.quality.dedup.engine import LOCAL, Engine, LocalEngine
from curator.quality.dedup.exact import digests_of_folds, key_of
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
from curator.workspace import Workspace, capped_memory

__all__ = [
    "BLOCK_ROWS",
    "DEFAULT_COVERAGE",
    "DEFAULT_NGRAM",
    "DEFAULT_SEMANTIC",
    "DUCKDB_MEMORY",
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
    :func:`ngram_index`) saves indexing the train texts again for each part. Without ``index`` the train
    texts are read in blocks against the other texts' n-grams (:class:`_NgramSide`, what
    :func:`find_leakage` streams the workspace through); the pairs and scores are the same.
    """
    if ngram < 1 or short_ngram < 1:
        raise CuratorError("n-gram sizes must be >= 1")
    check_threshold("n-gram coverage", coverage)
    train = train_texts if folded else [fold(t) for t in train_texts]
    other = list(other_texts) if folded else [fold(t) for t in other_texts]
    if index is None:  # the train texts in blocks against the other texts' n-grams (as find_leakage does)
        side = _NgramSide(ngram=ngram, short_ngram=short_ngram, coverage=coverage, max_df=max_df, min_words=min_words)
        side.add(other, 0)
        side.finish()
        if not side.groups or not len(train):
            return _EMPTY
        blocks = [(lo, list(train[lo : lo + BLOCK_ROWS])) for lo in range(0, len(train), BLOCK_ROWS)]
        for _, block in blocks:
            side.count(side.shingles(block))
        side.prepare()
        found: list[tuple[int, int, float]] = []
        for lo, block in blocks:
            for n, o, t in side.match(side.shingles(block)):
                ot = list(zip(o.tolist(), t.tolist(), strict=True))
                scores = side.verify(n, [(oo, other[oo], block[tt]) for oo, tt in ot])
                found += [(oo, lo + tt, sc) for (oo, tt), sc in zip(ot, scores, strict=True) if sc is not None]
        if not found:
            return _EMPTY
        return join_leak_pairs([(np.array([(o, t) for o, t, _ in found], dtype=np.int64),
                                 np.array([sc for _, _, sc in found], dtype=np.float64))])
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


#: Train texts per block when the train side is streamed (a block's shingles and candidates are what it holds).
BLOCK_ROWS = 1 << 16
#: Candidate (other, train) n-gram lookups per counting step (bounds its temporaries).
_COUNT_CHUNK = 1 << 22


@dataclass
class _Group:
    """The other texts checked with ``n``-grams: their rows, distinct n-grams (as vocabulary ids, CSR) and,
    once :meth:`_NgramSide.prepare` ran, the prefix index and the countable n-grams."""

    n: int
    rows: np.ndarray  # other rows (int64)
    off: np.ndarray  # CSR offsets into vid (int64)
    vid: np.ndarray  # vocabulary id of every distinct n-gram, per row ascending (int32)
    size: np.ndarray  # distinct n-grams per row: the coverage's denominator (int64)
    need: np.ndarray  # fewest shared countable n-grams that reach the coverage (int64)
    pstart: np.ndarray = field(default_factory=lambda: np.zeros(1, np.int32))  # prefix postings by vocabulary id
    po: np.ndarray = field(default_factory=lambda: np.empty(0, np.int32))  # their group rows
    cv: np.ndarray = field(default_factory=lambda: np.empty(0, np.int32))  # countable n-grams of rows that can leak
    coff: np.ndarray = field(default_factory=lambda: np.zeros(1, np.int64))  # CSR offsets into cv


def _needed(size: np.ndarray, coverage: float) -> np.ndarray:
    """Per row: the smallest ``k >= 1`` with ``k / max(size, 1) >= coverage`` (the test of :func:`_coverage_pairs`)."""
    s = np.maximum(size, 1)
    k = np.maximum(np.ceil(coverage * s).astype(np.int64), 1)
    for _ in range(4):  # float rounding: settle on the exact threshold of the division test
        down = (k > 1) & ((k - 1) / s >= coverage)
        k[down] -= 1
        up = k / s < coverage
        k[up] += 1
    return k


class _NgramSide:
    """The eval/test side of the n-gram rule, against which train texts are checked block by block.

    Every other text of enough words gets its distinct n-grams (``ngram``-grams for long texts,
    ``short_ngram``-grams for shorter ones, as :func:`ngram_leak_pairs`), held as ids into one sorted
    vocabulary of hashes per n (:meth:`add` the other texts in blocks, then :meth:`finish`). :meth:`count` adds a train block's document frequencies (every train text
    must be counted before matching: n-grams in more than ``max_df`` train texts are boilerplate);
    :meth:`prepare` then builds the prefix index (per other text, its ``m - need + 1`` rarest countable
    n-grams: a train text sharing ``need`` countable n-grams shares one of them) and :meth:`match` finds a
    block's pairs: candidates from the prefix index, their shared countable n-grams counted in full (the
    approximate coverage of :func:`_coverage_pairs`); :meth:`verify` checks those on the words. The other
    texts themselves are not kept.
    """

    def __init__(self, *, ngram: int, short_ngram: int, coverage: float, max_df: int, min_words: int) -> None:
        self.ngram, self.short_ngram, self.min_words = ngram, short_ngram, min_words
        self.coverage, self.max_df = coverage, max_df
        self._parts: list[tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]] = [([], [], []), ([], [], [])]
        self.groups: list[_Group] = []
        self.vocab: dict[int, np.ndarray] = {}
        #: Train document frequency of every vocabulary n-gram (train texts counted so far).
        self.df: dict[int, np.ndarray] = {}

    def add(self, folded: Sequence[str], first_row: int) -> None:
        """Other texts (folded), rows ``first_row`` on; then :meth:`finish`."""
        nwords = np.fromiter((t.count(" ") + 1 if t else 0 for t in folded), dtype=np.int64, count=len(folded))
        long_ = nwords >= 2 * self.ngram
        for (rows_l, flats, sizes), n, sel in zip(self._parts, (self.ngram, self.short_ngram),
                                                 (long_, (nwords >= self.min_words) & ~long_), strict=True):
            rows = np.flatnonzero(sel)
            if rows.size:
                flat, off = shingle_batch([folded[i] for i in rows.tolist()], n)
                rows_l.append(rows + first_row)
                flats.append(flat)
                sizes.append(np.diff(off))

    def finish(self) -> None:
        """The groups and vocabularies of the other texts added."""
        flats = []
        for (rows_l, fl, sizes), n in zip(self._parts, (self.ngram, self.short_ngram), strict=True):
            if rows_l:
                size = np.concatenate(sizes)
                off = np.zeros(size.size + 1, dtype=np.int64)
                np.cumsum(size, out=off[1:])
                self.groups.append(_Group(n, np.concatenate(rows_l), off, np.empty(0, np.int32), size,
                                          _needed(size, self.coverage)))
                flats.append(np.concatenate(fl))
        self._parts = []
        for n in dict.fromkeys(g.n for g in self.groups):
            self.vocab[n] = np.unique(np.concatenate([f for g, f in zip(self.groups, flats, strict=True) if g.n == n]))
        for g, f in zip(self.groups, flats, strict=True):
            g.vid = np.searchsorted(self.vocab[g.n], f).astype(np.int32)
        self.df = {n: np.zeros(v.size, dtype=np.int32) for n, v in self.vocab.items()}

    def shingles(self, texts: Sequence[str]) -> Hits:
        """Per n: (block row, vocabulary id) of the folded ``texts``' n-grams that an other text has,
        ordered by row, then id."""
        out: Hits = {}
        rows_of = np.arange(len(texts), dtype=np.int32)
        for n, vocab in self.vocab.items():
            flat, off = shingle_batch(texts, n)
            order = np.argsort(flat)  # sorted keys: the binary searches walk the vocabulary in order
            v = np.empty(flat.size, dtype=np.int64)
            v[order] = np.searchsorted(vocab, flat[order])
            v[v == vocab.size] = 0
            hit = vocab[v] == flat
            rows, v = np.repeat(rows_of, np.diff(off))[hit], v[hit]
            key = rows.astype(np.int64) * vocab.size + v
            if key.size > 1 and bool((key[1:] < key[:-1]).any()):
                order = np.argsort(key, kind="stable")
                rows, v = rows[order], v[order]
            out[n] = (rows, v.astype(np.int32))
        return out

    def count(self, hits: Hits, sign: int = 1) -> None:
        """Add (``sign=-1``: take away) a block's train texts to the document frequencies."""
        for n, (_, v) in hits.items():
            self.df[n] += sign * np.bincount(v, minlength=self.df[n].size).astype(np.int32)

    def prepare(self) -> None:
        """The prefix index and countable n-grams of every group, for the document frequencies counted."""
        for g in self.groups:
            df = self.df[g.n]
            d = df[g.vid]
            countable = (d >= 1) & (d <= self.max_df)
            nrows = g.rows.size
            entry_row = np.repeat(np.arange(nrows, dtype=np.int32), g.size)
            m = np.bincount(entry_row[countable], minlength=nrows)
            can = m >= g.need  # rows that can reach the coverage at all
            sel = countable & can[entry_row]
            er, ed, ev = entry_row[sel], d[sel], g.vid[sel]
            del d, countable, entry_row, sel
            g.cv = ev
            g.coff = np.zeros(nrows + 1, dtype=np.int64)
            np.cumsum(np.where(can, m, 0), out=g.coff[1:])
            order = np.lexsort((ev, ed, er))  # per row, rarest first
            er, ev = er[order], ev[order]
            rank = np.arange(er.size, dtype=np.int64) - g.coff[er]
            keep = rank < (m - g.need + 1)[er]
            pv, po = ev[keep], er[keep]
            del er, ev, rank, keep
            order = np.argsort(pv, kind="stable")
            g.po = po[order]
            # the prefix rows of vocabulary id v are po[pstart[v]:pstart[v + 1]]
            g.pstart = np.searchsorted(pv[order], np.arange(df.size + 1)).astype(np.int64 if pv.size >> 31 else np.int32)

    def match(self, hits: Hits, only: dict[int, np.ndarray] | None = None) -> list[tuple[int, np.ndarray, np.ndarray]]:
        """(n, other rows, block rows) of the block's pairs whose shared countable n-grams reach the coverage
        (what :meth:`verify` then checks on the words); ``only`` (by n, sorted vocabulary ids): check only
        the train texts that have one of those n-grams."""
        out = []
        for g in self.groups:
            rows, v = hits[g.n]
            if only is not None:
                rel = only.get(g.n, np.empty(0, np.int32))
                if not rel.size:
                    continue
                p = np.searchsorted(rel, v)
                p[p == rel.size] = 0
                picked = np.zeros(int(rows[-1]) + 1 if rows.size else 0, dtype=bool)
                picked[rows[rel[p] == v]] = True
                keep_rows = picked[rows]
                rows, v = rows[keep_rows], v[keep_rows]
            if not rows.size or g.pstart.size < 2:
                continue
            lo = g.pstart[v].astype(np.int64)
            cnt = g.pstart[v + 1] - lo
            nz = cnt > 0
            lo, cnt, tr = lo[nz], cnt[nz], rows[nz]
            total = int(cnt.sum())
            if total == 0:
                continue
            start = np.cumsum(cnt) - cnt
            pos = np.repeat(lo - start, cnt) + np.arange(total, dtype=np.int64)
            nr = np.int64(g.rows.size)
            code = np.unique(np.repeat(tr.astype(np.int64), cnt) * nr + g.po[pos])  # by train row: local lookups
            del lo, cnt, tr, pos
            t, o = code // nr, code % nr
            vsize = np.int64(self.vocab[g.n].size)
            tkey = rows.astype(np.int64) * vsize + v
            shared = np.zeros(o.size, dtype=np.int64)
            lens = g.coff[o + 1] - g.coff[o]
            ends = np.cumsum(lens)
            a = 0
            while a < o.size:  # the candidates' countable n-grams looked up in the block, in chunks
                base = int(ends[a - 1]) if a else 0
                b = max(a + 1, int(np.searchsorted(ends, base + _COUNT_CHUNK, "right")))
                ln = lens[a:b]
                pair = np.repeat(np.arange(b - a, dtype=np.int64), ln)
                first = np.cumsum(ln) - ln
                idx = np.repeat(g.coff[o[a:b]] - first, ln) + np.arange(int(ln.sum()), dtype=np.int64)
                q = t[a:b][pair] * vsize + g.cv[idx]
                p = np.searchsorted(tkey, q)
                p[p == tkey.size] = 0
                shared[a:b] = np.bincount(pair[tkey[p] == q], minlength=b - a)
                a = b
            keep = shared / np.maximum(g.size[o], 1) >= self.coverage
            if keep.any():
                out.append((g.n, g.rows[o[keep]], t[keep]))
        return out

    def verify(self, n: int, pairs: Sequence[tuple[int, str, str]]) -> list[float | None]:
        """The exact coverage of each (other row, its folded text, folded train text) on the words: the share
        of the other text's distinct word n-grams in the train text, or None under the threshold."""
        cache: dict[int, set[tuple[str, ...]]] = {}
        out: list[float | None] = []
        for o, other, train in pairs:
            grams = cache.get(o)
            if grams is None:
                grams = cache[o] = _ngrams(other.split(), n)
            share = len(grams & _ngrams(train.split(), n)) / len(grams) if grams else 0.0
            out.append(share if grams and share >= self.coverage else None)
        return out


def _id_array(ids: Sequence[str]) -> np.ndarray:
    """Example ids as one fixed-width bytes array (``np.isin`` tests membership without Python loops): UTF-8
    and a closing ``\\x01`` each, since numpy drops trailing NUL bytes."""
    return np.array([(i + "\x01").encode("utf-8") for i in ids], dtype=bytes) if len(ids) else np.empty(0, dtype="S1")


def _id_of(raw: bytes) -> str:
    return raw.decode("utf-8")[:-1]


#: Per n-gram size: (block rows, vocabulary ids) of a block's n-grams found on the eval/test side.
Hits = dict[int, tuple[np.ndarray, np.ndarray]]


class _Spill:
    """Each scanned train block's ids and n-gram hits, in a file of the workspace's tmp folder: the second
    scan and the later passes of :func:`fix_leakage_until_clean` read them instead of the workspace."""

    def __init__(self, folder: Path) -> None:
        prefix = f"curator-leakage-{os.getpid()}-"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            self.path = Path(tempfile.mkdtemp(prefix=prefix, dir=folder))
        except OSError:  # a read-only workspace folder: the system's temporary folder
            self.path = Path(tempfile.mkdtemp(prefix=prefix))
        self.file = (self.path / "blocks").open("w+b")
        self.blocks: list[tuple[int, list[tuple[int, str, int]]]] = []  # (rows, [(offset, dtype, count)])
        self.sizes: tuple[int, ...] = ()  # the n-gram sizes of the hits, in the order written
        self._cleanup = weakref.finalize(self, _remove_spill, self.file, self.path)

    def add(self, ids: list[str], hits: Hits) -> None:
        arrays: list[np.ndarray] = [_id_array(ids)]
        self.sizes = tuple(sorted(hits))
        for n in self.sizes:
            arrays.extend(hits[n])
        self.file.seek(0, os.SEEK_END)
        parts = []
        for a in arrays:
            parts.append((self.file.tell(), a.dtype.str, a.size))
            self.file.write(np.ascontiguousarray(a).tobytes())
        self.blocks.append((len(ids), parts))

    def __iter__(self) -> Iterator[tuple[np.ndarray, Hits]]:
        """(ids as :func:`_id_array`, hits) of every block, in the order added."""
        self.file.flush()
        for _, parts in self.blocks:
            arrays = []
            for off, dt, c in parts:
                self.file.seek(off)
                arrays.append(np.fromfile(self.file, dtype=np.dtype(dt), count=c))
            yield arrays[0], {n: (arrays[1 + 2 * i], arrays[2 + 2 * i]) for i, n in enumerate(self.sizes)}

    def close(self) -> None:
        self._cleanup()


def _remove_spill(file: Any, path: Path) -> None:
    file.close()
    shutil.rmtree(path, ignore_errors=True)


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


# -- the local search: eval/test in memory, train streamed -------------------------------------------------------
#: Active train examples (no split row, or split ``train``; a workspace has one split row per example),
#: in no particular order: the pairs do not depend on it. The anti-join's build side is the eval/test rows only.
_TRAIN_SQL = """SELECT e.id, e.messages FROM examples e
    LEFT JOIN (SELECT example_id FROM splits WHERE split <> 'train') s ON s.example_id = e.id
    WHERE e.status = 'active' AND s.example_id IS NULL"""


def _other_sql(splits: Sequence[str], columns: str = "e.id, e.messages, s.split") -> str:
    names = ", ".join(f"'{s}'" for s in splits)
    return f"""SELECT {columns} FROM examples e JOIN splits s ON s.example_id = e.id
               WHERE e.status = 'active' AND s.split IN ({names})"""


def _exact_keys(folded: Sequence[str]) -> np.ndarray:
    """The :func:`key_of` digests of already folded texts, as an ``S16`` array for sorted lookups (folding
    again only what is not ASCII: fold is the identity on folded ASCII)."""
    folds = (t.encode("ascii") if t.isascii() else fold(t).encode("utf-8") for t in folded)
    return np.frombuffer(digests_of_folds(folds), dtype="S16")


def _rows(con: duckdb.DuckDBPyConnection, sql: str, on: str,
          include_system: bool) -> Iterator[tuple[pa.RecordBatch, list[str]]]:
    """(the Arrow batch, texts of the view) per batch of ``sql`` (id, messages, ...)."""
    for batch in con.sql(sql).to_arrow_reader(BLOCK_ROWS):
        yield batch, [example_text(orjson.loads(m), on, include_system) for m in batch.column(1).to_pylist()]


#: DuckDB's memory while leakage reads the workspace (never raised above the workspace's own limit): DuckDB
#: keeps the table blocks it read in that memory, and a scan reads every text (~170 MB a million examples).
DUCKDB_MEMORY = "256MB"
def _count(con: duckdb.DuckDBPyConnection, sql: str) -> int:
    return int(con.execute(f"SELECT count(*) FROM ({sql})").fetchall()[0][0])


def _with_ids(con: duckdb.DuckDBPyConnection, ids: Sequence[str], sql: str) -> list[tuple[Any, ...]]:
    """``sql`` (reading table ``_leak_ids(id)``) run with ``ids`` registered as that table."""
    con.register("_leak_ids", pa.table({"id": pa.array(list(ids), pa.string())}))
    try:
        return con.execute(sql).fetchall()
    finally:
        con.unregister("_leak_ids")


def _texts_of(con: duckdb.DuckDBPyConnection, ids: Sequence[str], on: str, include_system: bool) -> dict[str, str]:
    rows = _with_ids(con, sorted(set(ids)), "SELECT id, messages FROM examples WHERE id IN (SELECT id FROM _leak_ids)")
    return {i: example_text(orjson.loads(m), on, include_system) for i, m in rows}


Fingerprint = tuple[int, int, int, int]
_NgramParams = dict[str, Any]


def _fingerprint(con: duckdb.DuckDBPyConnection) -> Fingerprint:
    """(active examples, XOR of their (id, messages) hashes, split rows, XOR of their hashes)."""
    a = con.execute("SELECT count(*), coalesce(bit_xor(hash(id, messages)), 0) FROM examples "
                    "WHERE status = 'active'").fetchall()[0]
    b = con.execute("SELECT count(*), coalesce(bit_xor(hash(example_id, split, pinned)), 0) FROM splits").fetchall()[0]
    return int(a[0]), int(a[1]), int(b[0]), int(b[1])


@dataclass
class _Others:
    """The eval/test side of a search: ids (Arrow), splits, exact keys (sorted) and the n-gram side."""

    ids: pa.Array
    split: np.ndarray  # index into names, per row
    names: list[str]
    keys: np.ndarray  # sorted 16-byte digests
    key_rows: np.ndarray  # the other row of each
    ngram: _NgramSide | None

    def id(self, row: int) -> str:
        return str(self.ids[row].as_py())


@dataclass
class _Carry:
    """What a pass of :func:`fix_leakage_until_clean` leaves to the next: its parameters, the workspace's
    fingerprint it ran on, its eval/test side (with the n-gram document frequencies) and the train ids it
    reported (the ones the fix excludes)."""

    key: tuple[Any, ...]
    fingerprint: Fingerprint
    others: _Others
    leaked: list[str]
    spill: _Spill | None  # the train side's n-gram hits (of the train examples of the first pass)
    gone: set[str]  # train ids of the spill already excluded (their n-grams taken off the frequencies)

    def close(self) -> None:
        if self.spill is not None:
            self.spill.close()


@dataclass
class _Session:
    carry: _Carry | None = None


_SESSION: ContextVar[_Session | None] = ContextVar("curator_leakage_session", default=None)


def _only_leaked_excluded(con: duckdb.DuckDBPyConnection, carry: _Carry, now: Fingerprint) -> bool:
    """Whether the workspace is the carry's, less exactly the train examples it reported (now excluded)."""
    n0, h0, s0, t0 = carry.fingerprint
    n1, h1, s1, t1 = now
    if (s1, t1) != (s0, t0) or n1 != n0 - len(carry.leaked):
        return False
    if not carry.leaked:
        return h1 == h0
    rows = _with_ids(con, carry.leaked, "SELECT count(*), coalesce(bit_xor(hash(id, messages)), 0), "
                     "count(*) FILTER (WHERE status = 'active') FROM examples WHERE id IN (SELECT id FROM _leak_ids)")
    found, h, active = (int(x) for x in rows[0])
    return found == len(carry.leaked) and active == 0 and h1 == h0 ^ h


def _load_others(con: duckdb.DuckDBPyConnection, splits: Sequence[str], on: str, include_system: bool,
                 exact: bool, ngram: _NgramParams | None, clock: _Clock) -> _Others:
    """The eval/test side, read in blocks: no text is kept (the word check reads the few it needs again)."""
    ids: list[pa.Array] = []
    codes: list[np.ndarray] = []
    names: dict[str, int] = {}
    keys: list[np.ndarray] = []
    side = _NgramSide(**ngram) if ngram is not None else None
    row = 0
    for batch, texts in _rows(con, _other_sql(splits), on, include_system):
        folded = [fold(t) for t in texts]
        ids.append(batch.column(0))
        codes.append(np.array([names.setdefault(x, len(names)) for x in batch.column(2).to_pylist()], dtype=np.int8))
        clock.lap("read")
        if exact:
            keys.append(_exact_keys(folded))
            clock.lap("exact")
        if side is not None:
            side.add(folded, row)
            clock.lap("ngram")
        row += len(folded)
    key = np.concatenate(keys) if keys else np.empty(0, dtype="S16")
    order = np.argsort(key, kind="stable")
    clock.lap("exact")
    if side is not None:
        side.finish()
        clock.lap("ngram")
    id_array = pa.concat_arrays(ids) if ids else pa.array([], pa.string())
    return _Others(id_array, np.concatenate(codes) if codes else np.empty(0, np.int8), list(names), key[order], order,
                   side)


def _local_find(
    ws: Workspace,
    con: duckdb.DuckDBPyConnection,
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
    session: _Session | None = None,
) -> dict[tuple[str, str], tuple[str, float]]:
    """(train id, other id) -> (strongest method, score), the train examples streamed (see the module doc).

    Sets ``report.train``, ``report.compared`` and ``report.seconds`` (per method, and ``read``: reading,
    parsing and folding the texts). With a ``session`` (a :func:`fix_leakage_until_clean` loop) a pass
    after a fix re-checks only what the fix can change.
    """
    clock = _Clock()
    params: _NgramParams = {"ngram": ngram, "short_ngram": short_ngram, "coverage": coverage, "max_df": MAX_DF,
                            "min_words": MIN_WORDS}
    key = (str(ws.path), on, include_system, tuple(splits), tuple(sorted(methods)), tuple(sorted(params.items())))
    carry = None
    if session is not None:
        fingerprint = _fingerprint(con)
        carry, session.carry = session.carry, None
        if carry is not None and (carry.key != key or not _only_leaked_excluded(con, carry, fingerprint)):
            carry.close()
            carry = None
    work = _Work(spill=carry.spill if carry is not None else None)
    try:
        found = _search(ws, con, methods, carry, work, splits=splits, params=params,
                        semantic_threshold=semantic_threshold, model=model, on=on, include_system=include_system,
                        progress=progress, report=report, clock=clock)
    except BaseException:
        if work.spill is not None:
            work.spill.close()
        raise
    report.seconds = {m: round(clock.seconds.get(m, 0.0), 3) for m in sorted(methods, key=_STRENGTH.__getitem__)}
    report.seconds["read"] = round(clock.seconds.get("read", 0.0), 3)
    if session is not None and work.others is not None:
        gone = (carry.gone | set(carry.leaked)) if carry is not None else set()
        session.carry = _Carry(key, fingerprint, work.others, sorted({t for t, _ in found}), work.spill, gone)
    elif work.spill is not None:
        work.spill.close()
    return found


@dataclass
class _Work:
    """What a search leaves behind for the next pass: the eval/test side and the spill of the train side."""

    others: _Others | None = None
    spill: _Spill | None = None


def _search(
    ws: Workspace,
    con: duckdb.DuckDBPyConnection,
    methods: Sequence[str],
    carry: _Carry | None,
    work: _Work,
    *,
    splits: Sequence[str],
    params: _NgramParams,
    semantic_threshold: float,
    model: str,
    on: str,
    include_system: bool,
    progress: ProgressFactory,
    report: LeakageReport,
    clock: _Clock,
) -> dict[tuple[str, str], tuple[str, float]]:
    """The body of :func:`_local_find`; leaves the eval/test side and the train side's spill in ``work``."""
    n_train = _count(con, _TRAIN_SQL)
    others = carry.others if carry is not None else _load_others(
        con, splits, on, include_system, "exact" in methods, params if "ngram" in methods else None, clock)
    report.train = n_train
    counts = np.bincount(others.split, minlength=len(others.names))
    report.compared = {s: int(counts[others.names.index(s)]) if s in others.names else 0 for s in splits}
    work.others = others
    spill = work.spill
    found: dict[tuple[str, str], tuple[str, float]] = {}
    if not n_train or not len(others.ids):
        return found
    clock.lap("read")
    side = others.ngram if others.ngram is not None and others.ngram.groups else None
    cands: list[tuple[int, np.ndarray, list[str]]] = []  # (n, other rows, train ids) passing the n-gram count
    if carry is None:
        exact = "exact" in methods
        if side is not None:
            spill = work.spill = _Spill(ws.tmp_dir)
        what = " and ".join(m for m, on_ in (("exact", exact), ("ngram", side is not None)) if on_)
        if what:
            with progress(f"leakage {what}: reading train", n_train) as bar:
                for batch, texts in _rows(con, _TRAIN_SQL, on, include_system):
                    ids = batch.column(0).to_pylist()
                    folded = [fold(x) for x in texts]
                    clock.lap("read")
                    if exact:
                        bk = _exact_keys(folded)
                        first = np.searchsorted(others.keys, bk, "left")
                        last = np.searchsorted(others.keys, bk, "right")
                        for r in np.flatnonzero(last > first).tolist():
                            for o in others.key_rows[first[r] : last[r]].tolist():
                                found.setdefault((ids[r], others.id(o)), ("exact", 1.0))
                        clock.lap("exact")
                    if side is not None and spill is not None:
                        hits = side.shingles(folded)
                        side.count(hits)
                        spill.add(ids, hits)
                        clock.lap("ngram")
                    bar.advance(len(ids))
        if side is not None and spill is not None:
            side.prepare()
            with progress("leakage ngram", n_train) as bar:
                for ids, hits in spill:
                    for n, o, t in side.match(hits):
                        cands.append((n, o, [_id_of(x) for x in ids[t].tolist()]))
                    bar.advance(len(ids))
            clock.lap("ngram")
    elif side is not None and spill is not None:
        # after the fix: no exact pair can appear (every train text kept was checked), and an n-gram pair only
        # where an n-gram the excluded train texts had went under the boilerplate cutoff
        leaked = set(carry.leaked) - carry.gone
        leaked_ids = _id_array(sorted(leaked))
        before = {n: df.copy() for n, df in side.df.items()}
        for ids, hits in spill:
            drop = np.isin(ids, leaked_ids)
            if drop.any():
                side.count({n: (r[drop[r]], v[drop[r]]) for n, (r, v) in hits.items()}, sign=-1)
        only = {n: np.flatnonzero((before[n] > side.max_df) & (side.df[n] <= side.max_df)).astype(np.int32)
                for n in before}
        del before
        if any(v.size for v in only.values()):
            side.prepare()
            gone = _id_array(sorted(carry.gone | leaked))
            with progress("leakage ngram (what the exclusions changed)", n_train) as bar:
                for ids, hits in spill:
                    keep = ~np.isin(ids, gone)
                    if not keep.all():
                        hits = {n: (r[keep[r]], v[keep[r]]) for n, (r, v) in hits.items()}
                    for n, o, t in side.match(hits, only):
                        cands.append((n, o, [_id_of(x) for x in ids[t].tolist()]))
                    bar.advance(len(ids))
        clock.lap("ngram")
    if cands and side is not None:  # the word check, on the candidates' texts read again
        oids = [[others.id(o) for o in rows.tolist()] for _, rows, _ in cands]
        folded_of = {i: fold(t) for i, t in _texts_of(
            con, [i for _, _, ids in cands for i in ids] + [i for ids in oids for i in ids], on, include_system).items()}
        clock.lap("read")
        for (n, rows, ids), other_ids in zip(cands, oids, strict=True):
            scores = side.verify(n, [(o, folded_of[oi], folded_of[ti])
                                     for o, oi, ti in zip(rows.tolist(), other_ids, ids, strict=True)])
            for oi, ti, sc in zip(other_ids, ids, scores, strict=True):
                if sc is not None:
                    found.setdefault((ti, oi), ("ngram", sc))
        clock.lap("ngram")
    if "semantic" in methods:
        # the vectors in the pool's order (created_at, id): the neighbour index is built in that order
        order = con.execute(
            """SELECT e.id, coalesce(s.split, 'train') FROM examples e LEFT JOIN splits s ON s.example_id = e.id
               WHERE e.status = 'active' ORDER BY e.created_at, e.id""").fetchall()
        tr = [i for i, sp in order if sp == "train"]
        ot = [i for i, sp in order if sp in splits]
        del order
        vecs, report.embedded = embed_pool(ws, tr + ot, model=model, on=on, include_system=include_system,
                                           progress=progress, encoder=LOCAL.encode)
        with progress("leakage semantic: searching neighbours", len(ot)) as bar:
            sem_pairs, sem_scores = semantic_pairs(vecs[: len(tr)], semantic_threshold, queries=vecs[len(tr):],
                                                   progress=bar.advance)
        for (o, r), sc in zip(sem_pairs.tolist(), sem_scores.tolist(), strict=True):
            found.setdefault((tr[r], ot[o]), ("semantic", float(sc)))
        clock.lap("semantic")
    return found


class _Clock:
    """Seconds per phase: :meth:`lap` charges the time since the last lap to ``phase``."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.last = time.perf_counter()

    def lap(self, phase: str) -> None:
        now = time.perf_counter()
        self.seconds[phase] = self.seconds.get(phase, 0.0) + now - self.last
        self.last = now


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
    report = LeakageReport(
        on=on, methods=list(methods), train=0, compared={},
        params={"ngram": ngram, "short_ngram": short_ngram, "coverage": coverage,
                "semantic_threshold": semantic_threshold, "model": model, "include_system": include_system},
    )
    if engine is None or type(engine) is LocalEngine:
        if on not in VIEWS:
            raise CuratorError(f"unknown view {on!r} (choose from {', '.join(VIEWS)})")
        with ws.connect() as con, capped_memory(con, DUCKDB_MEMORY):
            found = _local_find(ws, con, methods, splits=splits, ngram=ngram, short_ngram=short_ngram,
                                coverage=coverage, semantic_threshold=semantic_threshold, model=model, on=on,
                                include_system=include_system, progress=progress or no_progress, report=report,
                                session=_SESSION.get())
            texts = _texts_of(con, [i for pair in found for i in pair], on, include_system) if found else {}
            split_of = dict(_with_ids(con, sorted({o for _, o in found}), "SELECT example_id, split FROM splits "
                                      "WHERE example_id IN (SELECT id FROM _leak_ids)")) if found else {}
        for (t, o), (method, score) in found.items():
            report.pairs.append(LeakPair(t, o, split_of[o], method, round(score, 6), clip(texts[t]), clip(texts[o])))
    else:
        with ws.connect() as con:
            pool = load_pool(con, on, include_system)
        report.train = sum(s == "train" for s in pool.split)
        report.compared = {s: sum(x == s for x in pool.split) for s in splits}
        pool_found = _find(ws, pool, methods, splits=splits, ngram=ngram, short_ngram=short_ngram, coverage=coverage,
                           semantic_threshold=semantic_threshold, model=model, on=on, include_system=include_system,
                           progress=progress or no_progress, report=report, engine=engine)
        for (ti, oi), (method, score) in pool_found.items():
            report.pairs.append(LeakPair(pool.ids[ti], pool.ids[oi], pool.split[oi], method, round(score, 6),
                                         clip(pool.texts[ti]), clip(pool.texts[oi])))
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

    While it runs, a local :func:`find_leakage` (as ``find`` calls it) keeps its eval/test side and train
    spill from one pass to the next and re-checks only what the exclusions can change, when the workspace
    changed by exactly those exclusions (see the module doc); the reports are those of full passes.
    """
    first: LeakageReport | None = None
    excluded, passes = 0, []
    session = _Session()  # lets a local find_leakage carry its eval/test side to the next pass
    token = _SESSION.set(session)
    try:
        for _ in range(max(1, max_passes)):
            report = find()
            first = first or report
            passes.append(len(report.pairs))
            if not report.pairs:
                break
            excluded += fix_leakage(ws, report)
    finally:
        _SESSION.reset(token)
        if session.carry is not None:
            session.carry.close()
    assert first is not None
    return first, excluded, passes


def leakage_gate(con: duckdb.DuckDBPyConnection, ws: Workspace) -> str | None:
    """Snapshot gate: a refusal message when train overlaps eval/test by the exact or n-gram checks."""
    report = LeakageReport(on="conversation", methods=list(GATE_METHODS), train=0, compared={})
    with ws.connect(), capped_memory(con, DUCKDB_MEMORY):
        found = _local_find(ws, con, GATE_METHODS, splits=("eval", "test"), ngram=DEFAULT_NGRAM,
                            short_ngram=SHORT_NGRAM, coverage=DEFAULT_COVERAGE, semantic_threshold=DEFAULT_SEMANTIC,
                            model=DEFAULT_EMBEDDER, on="conversation", include_system=False, progress=no_progress,
                            report=report)
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

