"""Filters a generated candidate must pass before it is stored; every rejection carries its reason.

Text filters look at one candidate (:func:`check_text`); set filters look at all candidates
together with what the workspace already holds (:func:`find_duplicates`, :func:`find_leaks`).
They only read the workspace (embeddings of stored examples are cached in ``embeddings``).

Rejection reasons (the ``reason`` column of ``synth_rejections``):

=====================  ===============================================================
``parse``              the reply held no question/answer pair, even after one repair try
``truncated``          the reply hit ``max_tokens`` (answer mode)
``empty`` / ``length`` the question or answer is empty, too short or too long
``refusal``            "As an AI...", "I'm sorry, but I can't..." (:func:`curator.quality.refusal.is_refusal`,
                       the detector the audit uses) and template leftovers
``duplicate-exact``    same question (after folding case, punctuation, spacing) as a stored
                       example or an earlier candidate
``duplicate-near``     word-shingle Jaccard of the questions >= ``near``
``duplicate-semantic`` cosine of the question embeddings >= ``semantic``
``leak-exact`` / ``leak-ngram`` / ``leak-semantic``
                       the same against eval and test examples (a paraphrased test item)
``judge``              the LLM judge scored it below the threshold (``judge-failed``: no score,
                       or not judged because the run stopped)
=====================  ===============================================================

Duplicates and leaks are judged on the *question* (the user turns), since a second answer to a
question already in the data is not a new example.  :func:`curator.quality.dedup.find_duplicates_of` and
:func:`curator.quality.leakage.find_leaks_of` do the work on the prompt view, with the one text fold
(:mod:`curator.quality.fold`) the audit and the feedback gates use.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from curator.quality.dedup import Match, find_duplicates_of
from curator.quality.leakage import find_leaks_of
from curator.quality.refusal import find_refusal
from curator.records import Example
from curator.workspace import Workspace

__all__ = [
    "FILTER_NAMES",
    "Candidate",
    "FilterConfig",
    "Rejection",
    "check_text",
    "find_duplicates",
    "find_leaks",
]

#: Filters that can be switched off (``--skip-filter NAME``).
FILTER_NAMES = ("length", "refusal", "exact", "near", "semantic", "leak")

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
    leak_semantic: float = 0.85  # the same against eval/test questions: leak
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
        phrase = find_refusal(answer) or find_refusal(question)
        if phrase:
            return Rejection("refusal", f"matches {phrase!r}")
        m = _LEFTOVER.search(question) or _LEFTOVER.search(answer)
        if m:
            return Rejection("refusal", f"template leftover {m.group(0).strip()!r}")
    return None


_PRIORITY = ("exact", "near", "ngram", "semantic")


def _from_matches(matches: list[Match], cands: list[Candidate], prefix: str) -> dict[int, Rejection]:
    """:class:`curator.quality.dedup.Match` objects -> one rejection per candidate (exact before near before semantic)."""
    best: dict[int, Match] = {}
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
            note = f"a {m.split} example" if m.split else "a stored example"
        what = "same question as" if m.kind == "exact" else f"similar ({m.kind} {m.score:.2f}) to"
        out[i] = Rejection(f"{prefix}-{m.kind}", f"{what} {note}", other, float(m.score))
    return out


def find_duplicates(ws: Workspace, cands: list[Candidate], cfg: FilterConfig) -> dict[int, Rejection]:
    """Candidates (by position in ``cands``, which is in request order) whose question duplicates a stored
    active example or an earlier candidate: :func:`curator.quality.dedup.find_duplicates_of` on the prompt view."""
    methods = [m for m in ("exact", "near", "semantic") if cfg.on(m)]
    if not cands or not methods:
        return {}
    matches = find_duplicates_of(ws, [c.example for c in cands], methods, on="prompt", near_threshold=cfg.near,
                                 semantic_threshold=cfg.semantic, model=cfg.embedder)
    return _from_matches(matches, cands, "duplicate")


def find_leaks(ws: Workspace, cands: list[Candidate], cfg: FilterConfig) -> dict[int, Rejection]:
    """Candidates whose question matches an eval or test example (exact, n-gram, semantic):
    :func:`curator.quality.leakage.find_leaks_of` on the prompt view."""
    if not cands or not cfg.on("leak"):
        return {}
    methods = ["exact", "ngram"] + (["semantic"] if cfg.on("semantic") else [])
    matches = find_leaks_of(ws, [c.example for c in cands], ("eval", "test"), methods, on="prompt",
                            semantic_threshold=cfg.leak_semantic, model=cfg.embedder)
    return _from_matches(matches, cands, "leak")
