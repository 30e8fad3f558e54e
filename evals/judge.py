"""LLM-as-judge: rubric scores (1-5 with a rationale) and pairwise A-vs-B with position swapping.

Any provider spec works (``openai:MODEL``, ``anthropic:MODEL``, ``compatible:URL:MODEL``,
``local:NAME|PATH``; a local model is a weak judge, good for tests and offline smoke runs).
Requests go through the request runner generation uses (:mod:`curator.llm.runner`): the request
cache (the ``requests`` table, same keys), the spend cap (prices from ``prices.yaml``), retries,
rate limits and secret scrubbing.  Judging the same answer twice costs nothing the second time.
Judging is never on by default; it runs only when a judge is named.

* **Rubric** (:func:`judge_eval`): each prediction of an evaluation is graded against its reference
  and the rubric; the score is stored in ``eval_results.scores["judge"]`` (so ``compare`` treats it
  like any other metric) and the rationale in ``eval_results.meta``.
* **Pairwise** (:func:`judge_pairwise`): each example is judged twice, once with the run's answer
  as A and once as B.  The run wins an example only when both orders agree; any disagreement
  (position bias) counts as a tie.  The preference is the mean of +1 (run wins), 0 (tie), -1
  (baseline wins), with a paired bootstrap CI.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from curator.errors import BudgetExceededError, ProviderError
from curator.llm.limits import RetryPolicy
from curator.llm.providers import GenParams, Provider
from curator.llm.runner import Request, open_provider, run_requests
from curator.workspace import Workspace
from evals.runner import eval_rows, resolve_eval

__all__ = [
    "DEFAULT_RUBRIC",
    "JUDGE_RETRY",
    "Verdict",
    "judge_eval",
    "judge_pairwise",
    "make_judge",
    "pairwise_messages",
    "parse_rubric",
    "parse_winner",
    "rubric_messages",
]

DEFAULT_RUBRIC = """\
5: correct and complete; as useful as the reference; follows every instruction of the system prompt (format included).
4: correct, with a minor omission or a small format slip.
3: partly correct: right direction, but an important step is missing, vague or wrong.
2: mostly wrong, generic or off-format; would not solve the user's problem.
1: wrong, unsafe, or does not answer."""

_RUBRIC_SYSTEM = (
    "You are a strict, fair grader of an assistant's answers. Grade the candidate answer to the conversation "
    "against the reference answer and the rubric. Reply with one JSON object and nothing else: "
    '{"score": <integer 1-5>, "rationale": "<one or two sentences>"}'
)
_PAIRWISE_SYSTEM = (
    "You are a strict, fair judge. Two assistants answered the same conversation. Decide which answer is better "
    "for the user, using the reference answer as a guide to what a good answer contains. Do not prefer an answer "
    "for its position or its length. Reply with one JSON object and nothing else: "
    '{"winner": "A" | "B" | "tie", "rationale": "<one or two sentences>"}'
)


# -- prompts and parsing ---------------------------------------------------------------------------------------------
def _conversation_text(prompt: Sequence[dict[str, Any]]) -> str:
    return "\n\n".join(f"[{m['role']}]\n{m['content']}" for m in prompt)


def rubric_messages(
    prompt: Sequence[dict[str, Any]], reference: str, candidate: str, rubric: str = DEFAULT_RUBRIC
) -> list[dict[str, str]]:
    """The chat sent to the judge to grade one answer."""
    user = (
        f"Conversation:\n{_conversation_text(prompt)}\n\nReference answer:\n{reference}\n\n"
        f"Candidate answer:\n{candidate}\n\nRubric:\n{rubric}\n\nReply with the JSON object only."
    )
    return [{"role": "system", "content": _RUBRIC_SYSTEM}, {"role": "user", "content": user}]


def pairwise_messages(
    prompt: Sequence[dict[str, Any]], reference: str, answer_a: str, answer_b: str
) -> list[dict[str, str]]:
    """The chat sent to the judge to pick the better of two answers."""
    user = (
        f"Conversation:\n{_conversation_text(prompt)}\n\nReference answer:\n{reference}\n\n"
        f"Answer A:\n{answer_a}\n\nAnswer B:\n{answer_b}\n\nReply with the JSON object only."
    )
    return [{"role": "system", "content": _PAIRWISE_SYSTEM}, {"role": "user", "content": user}]


def _json_object(text: str) -> dict[str, Any] | None:
    for m in re.finditer(r"\{.*?\}", text, re.DOTALL):
        try:
            obj = json.loads(m.group(0))
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict):
            return obj
    return None


def parse_rubric(text: str) -> tuple[int | None, str]:
    """(score 1-5 or None when the reply has none, rationale) from a judge's reply."""
    obj = _json_object(text)
    if obj is not None and "score" in obj:
        try:
            score = int(float(obj["score"]))
        except (TypeError, ValueError):
            score = None
        if score is not None and 1 <= score <= 5:
            return score, str(obj.get("rationale", "")).strip()
    m = re.search(r"(?i)\bscore\b\W{0,5}([1-5])\b", text) or re.match(r"\s*([1-5])\b(?![.,]\d)", text)
    if m:
        return int(m.group(1)), text.strip()
    return None, text.strip()


def parse_winner(text: str) -> tuple[str | None, str]:
    """("A" | "B" | "tie" | None, rationale) from a judge's reply."""
    obj = _json_object(text)
    if obj is not None and "winner" in obj:
        w = str(obj["winner"]).strip().strip("\"'").lower()
        if w in ("a", "b", "tie"):
            return ("tie" if w == "tie" else w.upper()), str(obj.get("rationale", "")).strip()
    m = re.search(r"(?i)\bwinner\b\W{0,5}(A|B|tie)\b", text) or re.match(r"\s*(?:answer\s+)?(A|B)\b", text)
    if m:
        w = m.group(1)
        return ("tie" if w.lower() == "tie" else w.upper()), text.strip()
    if re.search(r"(?i)\b(tie|equally good|both are equal)\b", text):
        return "tie", text.strip()
    return None, text.strip()


# -- requests through the shared runner (curator.llm.runner) -----------------------------------------------------------
#: Judge requests: 4 tries, waits of about 1, 2, 4 s (or the server's Retry-After).
JUDGE_RETRY = RetryPolicy(max_attempts=4, base_delay=1.0, max_delay=8.0)


def make_judge(spec: str, **kw: Any) -> Provider:
    """The provider a spec names, ``local:`` included (:func:`curator.llm.runner.open_provider`).

    A ``local:`` judge without torch / transformers raises :class:`~curator.errors.MissingDependency`.
    """
    return open_provider(spec, **kw)


def _judge_spec(judge: str | Provider) -> str:
    return judge.spec if isinstance(judge, Provider) else judge.strip()


def _ask(
    ws: Workspace,
    judge: str | Provider,
    chats: Sequence[list[dict[str, Any]]],
    params: GenParams,
    *,
    job: str,
    concurrency: int,
    budget_usd: float | None,
    log: Callable[[str], None] | None,
) -> list[str]:
    """The reply text of each chat, through the shared runner: from the ``requests`` cache, else from the judge.

    With a ``budget_usd`` cap, a request whose worst-case cost could cross it is not sent:
    :class:`~curator.errors.BudgetExceededError` is raised after the requests in flight finish (their
    replies are cached, so a rerun with a bigger budget continues where this one stopped).  A request
    still failing after its retries raises :class:`~curator.errors.ProviderError` (the others are cached).
    """
    res = run_requests(ws, judge, [Request(list(c), params) for c in chats], job=job, budget_usd=budget_usd,
                       retry=JUDGE_RETRY, concurrency=max(1, concurrency),
                       log=(lambda m: log(f"judge {m}")) if log is not None else None)
    spec, st = _judge_spec(judge), res.stats
    if st.failed:
        raise ProviderError(f"judge {spec}: {st.failed} request(s) failed after retries; last error: {st.last_error}")
    missing = sum(1 for r in res.responses if r is None)
    if missing:
        raise BudgetExceededError(
            f"judge budget ${budget_usd or 0:.4f} reached after ${res.budget.spent_this_run:.4f}: "
            f"{missing} request(s) not sent (the others are cached)")
    return [r.text for r in res.responses if r is not None]


# -- rubric grading of one evaluation ---------------------------------------------------------------------------------
def _prompts(ws: Workspace, ids: Sequence[str]) -> dict[str, tuple[list[dict[str, Any]], str]]:
    """id -> (prompt messages, reference) from the examples table."""
    if not ids:
        return {}
    with ws.connect() as con:
        rows = con.execute(
            "SELECT id, messages::VARCHAR FROM examples WHERE list_contains(?::VARCHAR[], id)", [list(ids)]
        ).fetchall()
    out = {}
    for eid, msgs in rows:
        messages = json.loads(msgs)
        last = max((i for i, m in enumerate(messages) if m["role"] == "assistant"), default=None)
        if last is not None:
            out[eid] = ([{"role": m["role"], "content": m["content"]} for m in messages[:last]],
                        messages[last]["content"])
    return out


def judge_eval(
    ws: Workspace,
    eval_ref: str,
    judge: str | Provider,
    *,
    rubric: str = DEFAULT_RUBRIC,
    max_tokens: int = 256,
    concurrency: int = 4,
    budget_usd: float | None = None,
    limit: int | None = None,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Grade every prediction of an evaluation 1-5 against its reference; store and return the summary.

    The summary (also stored under ``summary["judge"]`` of the evaluation) has ``judge``, ``n``,
    ``mean``, ``unparsed`` and the score ``distribution``.
    """
    ev = resolve_eval(ws, eval_ref)
    spec = _judge_spec(judge)
    rows = eval_rows(ws, ev.id)[: limit or None]
    prompts = _prompts(ws, [r.example_id for r in rows])
    rows = [r for r in rows if r.example_id in prompts]
    params = GenParams(max_tokens=max_tokens, temperature=0.0, seed=0)
    chats = [rubric_messages(prompts[r.example_id][0], prompts[r.example_id][1], r.prediction, rubric) for r in rows]
    replies = _ask(ws, judge, chats, params, job=f"judge:rubric:{ev.id}", concurrency=concurrency,
                   budget_usd=budget_usd, log=log)
    scores: list[int | None] = []
    with ws.transaction() as con:
        for r, reply in zip(rows, replies, strict=True):
            score, rationale = parse_rubric(reply)
            scores.append(score)
            new_scores = {**r.scores, "judge": score}
            new_meta = {**r.meta, "judge": spec, "judge_rationale": rationale[:2000]}
            con.execute(
                "UPDATE eval_results SET scores = ?, meta = ? WHERE eval_id = ? AND example_id = ?",
                [json.dumps(new_scores), json.dumps(new_meta), ev.id, r.example_id],
            )
        got = [s for s in scores if s is not None]
        summary = {
            "judge": spec, "rubric": rubric, "n": len(got), "unparsed": len(scores) - len(got),
            "mean": (sum(got) / len(got)) if got else None,
            "distribution": {str(k): got.count(k) for k in range(1, 6)},
        }
        new_summary = {**ev.summary, "judge": summary}
        con.execute("UPDATE evals SET summary = ? WHERE id = ?", [json.dumps(new_summary), ev.id])
    return summary


# -- pairwise with position swapping ----------------------------------------------------------------------------------
@dataclass
class Verdict:
    """One example judged in both orders: ``run_first`` (run = A) and ``run_second`` (run = B)."""

    example_id: str
    run_first: str | None  # "run" | "baseline" | "tie" | None (unparsed)
    run_second: str | None
    outcome: int | None  # +1 run wins, 0 tie (or orders disagree), -1 baseline wins, None unparsed
    consistent: bool
    rationale: str


def _side(winner: str | None, run_is: str) -> str | None:
    if winner is None:
        return None
    if winner == "tie":
        return "tie"
    return "run" if winner == run_is else "baseline"


def judge_pairwise(
    ws: Workspace,
    run_eval: str,
    baseline_eval: str,
    judge: str | Provider,
    *,
    ids: Sequence[str] | None = None,
    max_tokens: int = 256,
    concurrency: int = 4,
    budget_usd: float | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Pairwise A-vs-B judgement of two evaluations' predictions, each example in both orders.

    Returns ``judge``, ``n``, ``run_wins``, ``baseline_wins``, ``ties``, ``inconsistent`` (orders
    disagreed), ``unparsed``, ``preference`` (mean of +1/0/-1) with ``ci_low``/``ci_high`` and a
    ``verdict`` ("better", "worse", "no clear change"), and the per-example ``examples``.
    """
    ev_a, ev_b = resolve_eval(ws, run_eval), resolve_eval(ws, baseline_eval)
    spec = _judge_spec(judge)
    rows_a = {r.example_id: r for r in eval_rows(ws, ev_a.id)}
    rows_b = {r.example_id: r for r in eval_rows(ws, ev_b.id)}
    shared = sorted(set(rows_a) & set(rows_b) & set(ids if ids is not None else rows_a))
    prompts = _prompts(ws, shared)
    shared = [i for i in shared if i in prompts]
    chats = []
    for i in shared:
        prompt, ref = prompts[i]
        chats.append(pairwise_messages(prompt, ref, rows_a[i].prediction, rows_b[i].prediction))  # run is A
        chats.append(pairwise_messages(prompt, ref, rows_b[i].prediction, rows_a[i].prediction))  # run is B
    params = GenParams(max_tokens=max_tokens, temperature=0.0, seed=0)
    replies = _ask(ws, judge, chats, params, job=f"judge:pairwise:{ev_a.id}:{ev_b.id}",
                   concurrency=concurrency, budget_usd=budget_usd, log=log)
    verdicts: list[Verdict] = []
    for k, i in enumerate(shared):
        w1, r1 = parse_winner(replies[2 * k])
        w2, r2 = parse_winner(replies[2 * k + 1])
        s1, s2 = _side(w1, "A"), _side(w2, "B")
        if s1 is None or s2 is None:
            verdicts.append(Verdict(i, s1, s2, None, False, r1 or r2))
            continue
        consistent = s1 == s2
        outcome = {"run": 1, "baseline": -1, "tie": 0}[s1] if consistent else 0
        verdicts.append(Verdict(i, s1, s2, outcome, consistent, r1 if consistent else f"A-first: {r1} | B-first: {r2}"))
    judged = [v for v in verdicts if v.outcome is not None]
    values = np.array([v.outcome for v in judged], dtype=np.float64)
    pref = float(values.mean()) if values.size else math.nan
    lo = hi = math.nan
    if values.size and n_boot > 0:
        rng = np.random.default_rng(seed)
        means = values[rng.integers(0, values.size, size=(n_boot, values.size))].mean(axis=1)
        alpha = (1 - confidence) / 2
        lo, hi = (float(x) for x in np.quantile(means, [alpha, 1 - alpha]))
    verdict = "n/a" if math.isnan(lo) else ("worse" if hi < 0 else "better" if lo > 0 else "no clear change")
    return {
        "judge": spec, "n": len(judged), "run_wins": sum(v.outcome == 1 for v in judged),
        "baseline_wins": sum(v.outcome == -1 for v in judged), "ties": sum(v.outcome == 0 for v in judged),
        "inconsistent": sum(not v.consistent for v in judged), "unparsed": len(verdicts) - len(judged),
        "preference": None if math.isnan(pref) else pref, "ci_low": None if math.isnan(lo) else lo,
        "ci_high": None if math.isnan(hi) else hi, "verdict": verdict,
        "examples": [v.__dict__ for v in verdicts],
    }
