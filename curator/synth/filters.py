"""Filters a generated candidate must pass before it is stored; every rejection carries its reason.

Text filters look at one candidate (:func:`check_text`); set filters look at all candidates
together with what the workspace already holds (:func:`find_duplicates`, :func:`find_leaks`).
They only read the workspace (embeddings of stored examples are cached in ``embeddings``).

Rejection reasons (the ``reason`` column of ``synth_rejections``):

=====================  ===============================================================
``parse``              the reply held no question/answer pair, even after one repair try
``truncated``          the reply hit ``max_tokens`` (answer mode)
``empty`` / ``length`` the question or answer is empty, too short or too long
``refusal``            "As an AI...", "I'm sorry, but I can't..." and template leftovers
``duplicate-exact``    same question (after folding case, punctuation, spacing) as a stored
                       example or an earlier candidate
``duplicate-near``     word-shingle Jaccard of the questions >= ``near``
``duplicate-semantic`` cosine of the question embeddings >= ``semantic``
``leak-exact`` / ``leak-ngram`` / ``leak-semantic``
                       the same against eval and test examples (a paraphrased test item);
                       ``leak-near`` from the cores instead of ``leak-ngram``
``judge``              the LLM judge scored it below the threshold (``judge-failed``: no score,
                       or not judged because the run stopped)
=====================  ===============================================================

Duplicates and leaks are judged on the *question* (the user turns), since a second answer to a
question already in the data is not a new example.  :func:`curator.quality.dedup.find_duplicates_of` and
:func:`curator.quality.leakage.find_leaks_of` do the work on the prompt view; when they are not there,
:func:`find_duplicates_cores` / :func:`find_leaks_cores` do the same on the cores of
``curator.quality.dedup`` (exact keys, MinHash, cosine pairs).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from curator.quality.dedup.minhash import near_duplicate_pairs
from curator.quality.dedup.neighbors import cosine_pairs
from curator.quality.dedup.normalize import exact_key
from curator.records import Example
from curator.workspace import Workspace

__all__ = [
    "FILTER_NAMES",
    "Candidate",
    "FilterConfig",
    "Rejection",
    "check_text",
    "find_duplicates",
    "find_duplicates_cores",
    "find_leaks",
    "find_leaks_cores",
]

#: Filters that can be switched off (``--skip-filter NAME``).
FILTER_NAMES = ("length", "refusal", "exact", "near", "semantic", "leak")

_REFUSAL = re.compile(
    r"\bas an ai\b|\bas a language model\b|\bi(?:'m| am) (?:sorry|afraid)\b|\bi apologi[sz]e\b"
    r"|\bi (?:cannot|can't|can not|won't|am unable to|'m unable to) (?:help|assist|provide|comply|do that|answer)"
    r"|\bi(?:'m| am) (?:unable|not able) to (?:help|assist|provide)",
    re.IGNORECASE,
)
_LEFTOVER = re.compile(
    r"<\s*(?:the )?new (?:user )?question\s*>|<\s*the assistant'?s answer\s*>|\{\{\s*\w+\s*\}\}"
    r"|^\s*(?:\.\.\.|question|answer|n/?a|none)\s*[.:]?\s*$",
    re.IGNORECASE,
)


@dataclass
class FilterConfig:
    """Bounds and thresholds; ``skip`` names filters to switch off (see :data:`FILTER_NAMES`)."""

    min_question_chars: int = 10
    max_question_chars: int = 4000
    min_answer_chars: int = 10
    max_answer_chars: int = 8000
    near: float = 0.7  # word-bigram Jaccard of questions: duplicate
    semantic: float = 0.9  # cosine of question embeddings: duplicate
    leak_near: float = 0.5  # the same against eval/test questions: leak
    leak_semantic: float = 0.85
    embedder: str = "local:all-minilm-l6-v2"
    skip: frozenset[str] = field(default_factory=frozenset)

    def on(self, name: str) -> bool:
        return name not in self.skip


@dataclass
class Candidate:
    """A parsed, not yet accepted example and where it came from."""

    index: int  # stable order: request index (earlier wins a duplicate pair)
    example: Example
    request_key: str
    weakness_id: str | None = None
    question: str = ""
    answer: str = ""


@dataclass
class Rejection:
    reason: str
    detail: str = ""
    other_id: str | None = None
    score: float | None = None
    request_key: str | None = None
    candidate: dict[str, Any] | None = None
    weakness_id: str | None = None


def check_text(question: str, answer: str, finish_reason: str, cfg: FilterConfig) -> Rejection | None:
    """Truncation, emptiness, length bounds, refusals and template leftovers; None when it passes."""
    if finish_reason == "length":
        return Rejection("truncated", "the reply hit max_tokens")
    if not question.strip() or not answer.strip():
        return Rejection("empty", "empty question" if not question.strip() else "empty answer")
    if cfg.on("length"):
        for what, text, lo, hi in (("question", question, cfg.min_question_chars, cfg.max_question_chars),
                                   ("answer", answer, cfg.min_answer_chars, cfg.max_answer_chars)):
            if len(text) < lo:
                return Rejection("length", f"{what} has {len(text)} characters, under {lo}")
            if len(text) > hi:
                return Rejection("length", f"{what} has {len(text)} characters, over {hi}")
    if cfg.on("refusal"):
        m = _REFUSAL.search(answer) or _REFUSAL.search(question)
        if m:
            return Rejection("refusal", f"matches {m.group(0)!r}")
        m = _LEFTOVER.search(question) or _LEFTOVER.search(answer)
        if m:
            return Rejection("refusal", f"template leftover {m.group(0).strip()!r}")
    return None


def _prompt_text(messages: list[dict[str, Any]]) -> str:
    return "\n".join(m["content"] for m in messages if m["role"] == "user")


def _stored(ws: Workspace, where: str, params: list[Any]) -> tuple[list[str], list[str]]:
    """(ids, question texts) of stored examples matching ``where``."""
    with ws.connect() as con:
        rows = con.execute(f"SELECT e.id, e.messages FROM examples e WHERE {where} ORDER BY e.id", params).fetchall()
    return [r[0] for r in rows], [_prompt_text(orjson.loads(r[1])) for r in rows]


def _embed_stored(ws: Workspace, ids: list[str], cfg: FilterConfig) -> np.ndarray:
    """Question embeddings of stored examples, computed once and cached in the workspace."""
    from curator.embed import ensure_embeddings, load_embeddings

    ensure_embeddings(ws, ids, model=cfg.embedder, on="prompt")
    return load_embeddings(ws, ids, model=cfg.embedder, on="prompt")


def _check_against(
    ws: Workspace,
    cands: list[Candidate],
    ids: list[str],
    texts: list[str],
    *,
    prefix: str,
    near: float,
    semantic: float,
    use_exact: bool,
    use_near: bool,
    use_semantic: bool,
    within: bool,
    cfg: FilterConfig,
) -> dict[int, Rejection]:
    """Candidates that match a stored example (``ids``/``texts``), or, with ``within``, an earlier candidate."""
    out: dict[int, Rejection] = {}
    order = sorted(range(len(cands)), key=lambda i: cands[i].index)
    ctexts = [_prompt_text(c.example.messages) for c in cands]

    def reject(i: int, reason: str, other: str, score: float | None, note: str) -> None:
        if i not in out:
            out[i] = Rejection(f"{prefix}-{reason}", note, other, score)

    if use_exact:
        stored = {}
        for eid, t in zip(ids, texts, strict=True):
            stored.setdefault(exact_key(t), eid)
        seen: dict[str, int] = {}
        for i in order:
            k = exact_key(ctexts[i])
            if k in stored:
                reject(i, "exact", stored[k], 1.0, "same question as a stored example")
            elif within and k in seen:
                reject(i, "exact", cands[seen[k]].example.id, 1.0, "same question as another new example")
            else:
                seen.setdefault(k, i)
    live = [i for i in order if i not in out]
    rank = {i: r for r, i in enumerate(order)}
    if use_near and live:
        all_texts = texts + [ctexts[i] for i in live]
        pairs, scores = near_duplicate_pairs(all_texts, threshold=near, weights=(0.2, 0.8))
        _apply_pairs(pairs, scores, len(texts), live, ids, cands, rank, within, "near", reject)
    live = [i for i in order if i not in out]
    if use_semantic and live:
        from curator.embed import encode

        cvecs = encode([ctexts[i] for i in live], cfg.embedder)
        svecs = _embed_stored(ws, ids, cfg) if ids else np.zeros((0, cvecs.shape[1]), np.float32)
        vecs = np.concatenate([svecs, cvecs]) if len(svecs) else cvecs
        pairs, scores = cosine_pairs(vecs, semantic)
        _apply_pairs(pairs, scores, len(ids), live, ids, cands, rank, within, "semantic", reject)
    return out


def _apply_pairs(
    pairs: np.ndarray, scores: np.ndarray, n_stored: int, live: list[int], ids: list[str], cands: list[Candidate],
    rank: dict[int, int], within: bool, kind: str, reject: Any,
) -> None:
    """Turn pairs over ``stored + live candidates`` into rejections (the later candidate of a new pair goes)."""
    hits: list[tuple[int, int, str, float, str]] = []  # (candidate, sort key, other id, score, note)
    for (a, b), s in zip(pairs.tolist(), scores.tolist(), strict=True):
        if a >= n_stored and b >= n_stored:
            if not within:
                continue
            ca, cb = live[a - n_stored], live[b - n_stored]
            first, second = (ca, cb) if rank[ca] < rank[cb] else (cb, ca)
            hits.append((second, rank[first], cands[first].example.id, s, "similar to another new example"))
        elif b >= n_stored:  # a stored, b a candidate
            hits.append((live[b - n_stored], -1, ids[a], s, "similar to a stored example"))
        elif a >= n_stored:
            hits.append((live[a - n_stored], -1, ids[b], s, "similar to a stored example"))
    # Stored matches first, then earlier candidates: a candidate rejected only because of a candidate
    # that is itself rejected keeps a stable reason either way.
    for cand, _, other, s, note in sorted(hits, key=lambda h: (rank[h[0]], h[1], -h[3])):
        reject(cand, kind, other, float(s), f"{note} ({kind} {s:.2f})")


_PRIORITY = ("exact", "near", "ngram", "semantic")


def _from_matches(matches: list[Any], cands: list[Candidate], prefix: str) -> dict[int, Rejection]:
    """``curator.quality.dedup.Match`` objects -> one rejection per candidate (exact before near before semantic)."""
    best: dict[int, Any] = {}
    for m in matches:
        cur = best.get(m.candidate)
        if cur is None or _PRIORITY.index(m.kind) < _PRIORITY.index(cur.kind):
            best[m.candidate] = m
    out: dict[int, Rejection] = {}
    for i, m in best.items():
        other = m.other_id
        if other.startswith("candidate:"):
            other, note = cands[int(other.split(":", 1)[1])].example.id, "another new example"
        else:
            note = f"a {m.split} example" if getattr(m, "split", None) else "a stored example"
        what = "same question as" if m.kind == "exact" else f"similar ({m.kind} {m.score:.2f}) to"
        out[i] = Rejection(f"{prefix}-{m.kind}", f"{what} {note}", other, float(m.score))
    return out


def _quality(module: str, name: str) -> Any:
    """The quality engineer's candidate check when it is there (None: use the cores here)."""
    import importlib

    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        return None


def find_duplicates(ws: Workspace, cands: list[Candidate], cfg: FilterConfig) -> dict[int, Rejection]:
    """Candidates (by position in ``cands``, which is in request order) whose question duplicates a stored
    active example or an earlier candidate.

    Uses :func:`curator.quality.dedup.find_duplicates_of` on the prompt view when it is importable, else
    :func:`find_duplicates_cores`.
    """
    methods = [m for m in ("exact", "near", "semantic") if cfg.on(m)]
    if not cands or not methods:
        return {}
    fn = _quality("curator.quality.dedup", "find_duplicates_of")
    if fn is None:
        return find_duplicates_cores(ws, cands, cfg)
    matches = fn(ws, [c.example for c in cands], methods, on="prompt", near_threshold=cfg.near,
                 semantic_threshold=cfg.semantic, model=cfg.embedder)
    return _from_matches(matches, cands, "duplicate")


def find_leaks(ws: Workspace, cands: list[Candidate], cfg: FilterConfig) -> dict[int, Rejection]:
    """Candidates whose question matches an eval or test example (exact, n-gram or near, semantic).

    Uses :func:`curator.quality.leakage.find_leaks_of` on the prompt view when it is importable, else
    :func:`find_leaks_cores`.
    """
    if not cands or not cfg.on("leak"):
        return {}
    fn = _quality("curator.quality.leakage", "find_leaks_of")
    if fn is None:
        return find_leaks_cores(ws, cands, cfg)
    methods = ["exact", "ngram"] + (["semantic"] if cfg.on("semantic") else [])
    matches = fn(ws, [c.example for c in cands], ("eval", "test"), methods, on="prompt",
                 semantic_threshold=cfg.leak_semantic, model=cfg.embedder)
    return _from_matches(matches, cands, "leak")


def find_duplicates_cores(ws: Workspace, cands: list[Candidate], cfg: FilterConfig) -> dict[int, Rejection]:
    """:func:`find_duplicates` on the dedup cores: exact against every active example, near and
    semantic against the active examples of the candidates' tasks."""
    if not cands:
        return {}
    out: dict[int, Rejection] = {}
    if cfg.on("exact"):
        ids, texts = _stored(ws, "e.status = 'active'", [])
        out.update(_check_against(ws, cands, ids, texts, prefix="duplicate", near=cfg.near, semantic=cfg.semantic,
                                  use_exact=True, use_near=False, use_semantic=False, within=True, cfg=cfg))
    rest = [i for i in range(len(cands)) if i not in out]
    if rest and (cfg.on("near") or cfg.on("semantic")):
        tasks = sorted({cands[i].example.task for i in rest})
        marks = ",".join("?" * len(tasks))
        ids, texts = _stored(ws, f"e.status = 'active' AND e.task IN ({marks})", tasks)
        sub = [cands[i] for i in rest]
        found = _check_against(ws, sub, ids, texts, prefix="duplicate", near=cfg.near, semantic=cfg.semantic,
                               use_exact=False, use_near=cfg.on("near"), use_semantic=cfg.on("semantic"), within=True,
                               cfg=cfg)
        out.update({rest[j]: r for j, r in found.items()})
    return out


def find_leaks_cores(ws: Workspace, cands: list[Candidate], cfg: FilterConfig) -> dict[int, Rejection]:
    """:func:`find_leaks` on the dedup cores (exact, word-bigram Jaccard, cosine) against eval/test examples."""
    if not cands or not cfg.on("leak"):
        return {}
    ids, texts = _stored(ws, "e.id IN (SELECT example_id FROM splits WHERE split IN ('eval', 'test'))", [])
    if not ids:
        return {}
    return _check_against(ws, cands, ids, texts, prefix="leak", near=cfg.leak_near, semantic=cfg.leak_semantic,
                          use_exact=True, use_near=True, use_semantic=cfg.on("semantic"), within=False, cfg=cfg)
