"""Human ratings of an evaluation's answers and blind A/B choices, summarised (what ``curator review`` records).

Reads the tables of migration ``m009_review``: ``human_ratings`` (one reviewer's 1-5 rating of one
answer of one evaluation) and ``human_choices`` (one reviewer's blind choice between two evaluations'
answers to one prompt, ``left`` / ``right`` / ``tie`` in the order of ``left_eval``, ``right_eval``).
Should a reviewer have rated the same answer (or chosen on the same pair and prompt) more than once,
only the latest row counts.

* :func:`summary`: the **unit is the answer** (example): each answer's rating is the mean of its
  reviewers' ratings, and the mean human rating is the mean over answers, with a Student-t 95 %
  interval (``mean +- t(0.975, n-1) * sd / sqrt(n)``, sample sd, clipped to the 1-5 scale; no
  interval for one answer).  For
  each automatic metric in the evaluation's ``scores``, the Spearman rank correlation (average ranks
  for ties) between the metric and the answer's human rating over the answers that have both; ``None``
  when fewer than 3 answers have both or either side is constant.
* :func:`agreement`: for every pair of reviewers who rated the same answers: how many they share, the
  exact agreement rate, the rate within one point, Cohen's kappa with **quadratic weights** over the
  five categories 1-5 (``None`` when the expected disagreement is 0, e.g. both gave one same value),
  and the Spearman correlation of their ratings.
* :func:`win_rate`: evaluation A against B over the choices made in either order; the unit is one
  reviewer's choice on one prompt.  ``win_rate = (wins + ties / 2) / n`` with a Wilson score 95 %
  interval on that proportion (ties counted as half a win, so the interval is approximate when there
  are ties).

Everything is numpy and the standard library (the t quantile comes from a continued-fraction
incomplete beta function).  Each function returns ``None`` when there is nothing to summarise, so
callers show a dash or ``null``.
"""

from __future__ import annotations

import itertools
import json
import math
from statistics import NormalDist
from typing import Any

import numpy as np

from curator.workspace import Workspace

__all__ = ["agreement", "format_summary", "format_win_rate", "spearman", "student_t_ppf", "summary", "weighted_kappa", "wilson", "win_rate"]

RATINGS = (1, 2, 3, 4, 5)

#: The latest rating of each (answer, reviewer).
_RATINGS_SQL = """
SELECT example_id, reviewer, rating FROM human_ratings WHERE eval_id = ?
QUALIFY row_number() OVER (PARTITION BY example_id, reviewer ORDER BY created_at DESC) = 1
ORDER BY example_id, reviewer
"""
#: The latest choice of each (ordered pair, prompt, reviewer) between the two evaluations, either order.
_CHOICES_SQL = """
SELECT left_eval, right_eval, choice FROM human_choices
WHERE (left_eval = ? AND right_eval = ?) OR (left_eval = ? AND right_eval = ?)
QUALIFY row_number() OVER (PARTITION BY left_eval, right_eval, example_id, reviewer ORDER BY created_at DESC) = 1
"""


# -- statistics --------------------------------------------------------------------------------------------------
def _ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks, ties given their average rank."""
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x), dtype=np.float64)
    sorted_x = x[order]
    i = 0
    while i < len(x):
        j = i
        while j + 1 < len(x) and sorted_x[j + 1] == sorted_x[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return ranks


def spearman(x: Any, y: Any) -> float | None:
    """Spearman's rho (Pearson correlation of average ranks); ``None`` for fewer than 3 pairs or a constant side."""
    a, b = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if len(a) != len(b):
        raise ValueError("spearman needs two sequences of the same length")
    if len(a) < 3 or np.all(a == a[0]) or np.all(b == b[0]):
        return None
    ra, rb = _ranks(a) - (len(a) + 1) / 2.0, _ranks(b) - (len(b) + 1) / 2.0
    return float(np.dot(ra, rb) / math.sqrt(float(np.dot(ra, ra)) * float(np.dot(rb, rb))))


def weighted_kappa(a: Any, b: Any, categories: tuple[int, ...] = RATINGS) -> float | None:
    """Cohen's kappa with quadratic weights ``((i - j) / (k - 1))**2``; ``None`` when the expected disagreement is 0."""
    k = len(categories)
    index = {c: i for i, c in enumerate(categories)}
    observed = np.zeros((k, k))
    for x, y in zip(a, b, strict=True):
        observed[index[int(x)], index[int(y)]] += 1
    n = observed.sum()
    if n == 0:
        return None
    observed /= n
    expected = np.outer(observed.sum(axis=1), observed.sum(axis=0))
    i, j = np.indices((k, k))
    weights = ((i - j) / (k - 1)) ** 2
    denom = float((weights * expected).sum())
    if denom == 0:
        return None
    return 1.0 - float((weights * observed).sum()) / denom


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the regularised incomplete beta function (modified Lentz)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 300):
        m2 = 2 * m
        for num in (m * (b - m) * x / ((qam + m2) * (a + m2)), -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))):
            d = 1.0 + num * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + num / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-15:
            break
    return h


def _betainc(a: float, b: float, x: float) -> float:
    """The regularised incomplete beta function I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    ln = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(ln) * _betacf(a, b, x) / a
    return 1.0 - math.exp(ln) * _betacf(b, a, 1.0 - x) / b


def _t_cdf(t: float, df: float) -> float:
    tail = 0.5 * _betainc(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t >= 0 else tail


def student_t_ppf(q: float, df: float) -> float:
    """The ``q`` quantile of Student's t with ``df`` degrees of freedom (bisection on the CDF)."""
    if not 0.0 < q < 1.0 or df <= 0:
        raise ValueError("student_t_ppf needs 0 < q < 1 and df > 0")
    if q < 0.5:
        return -student_t_ppf(1.0 - q, df)
    lo, hi = 0.0, 1.0
    while _t_cdf(hi, df) < q:
        hi *= 2.0
    for _ in range(200):
        mid = (lo + hi) / 2.0
        if _t_cdf(mid, df) < q:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-12:
            break
    return (lo + hi) / 2.0


def wilson(successes: float, n: int, confidence: float = 0.95) -> tuple[float | None, float | None]:
    """Wilson score interval of the proportion ``successes / n`` (``successes`` may count ties as halves)."""
    if n <= 0:
        return None, None
    z = NormalDist().inv_cdf(0.5 + confidence / 2.0)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def _mean_ci(values: np.ndarray, confidence: float) -> tuple[float | None, float | None]:
    n = len(values)
    if n < 2:
        return None, None
    sd = float(values.std(ddof=1))
    half = student_t_ppf(0.5 + confidence / 2.0, n - 1) * sd / math.sqrt(n)
    mean = float(values.mean())
    return max(float(RATINGS[0]), mean - half), min(float(RATINGS[-1]), mean + half)


# -- the workspace's ratings -------------------------------------------------------------------------------------
def _ratings(ws: Workspace, eval_id: str) -> list[tuple[str, str, int]]:
    with ws.connect() as con:
        return [(str(e), str(r), int(v)) for e, r, v in con.execute(_RATINGS_SQL, [eval_id]).fetchall()]


def _scores(ws: Workspace, eval_id: str) -> dict[str, dict[str, Any]]:
    with ws.connect() as con:
        rows = con.execute("SELECT example_id, scores::VARCHAR FROM eval_results WHERE eval_id = ?",
                           [eval_id]).fetchall()
    return {str(e): (json.loads(s) if s else {}) for e, s in rows}


def agreement(ws: Workspace, eval_id: str) -> dict[str, Any] | None:
    """Inter-reviewer agreement on ``eval_id``: ``{"reviewers", "pairs": [{a, b, n, exact, within_1, kappa_quadratic,
    spearman}]}`` for every pair of reviewers who rated at least one same answer; ``None`` when no pair did."""
    return _agreement(_ratings(ws, eval_id))


def _agreement(ratings: list[tuple[str, str, int]]) -> dict[str, Any] | None:
    by_reviewer: dict[str, dict[str, int]] = {}
    for ex, reviewer, rating in ratings:
        by_reviewer.setdefault(reviewer, {})[ex] = rating
    pairs = []
    for a, b in itertools.combinations(sorted(by_reviewer), 2):
        shared = sorted(set(by_reviewer[a]) & set(by_reviewer[b]))
        if not shared:
            continue
        x = np.array([by_reviewer[a][e] for e in shared], dtype=np.float64)
        y = np.array([by_reviewer[b][e] for e in shared], dtype=np.float64)
        pairs.append({
            "a": a, "b": b, "n": len(shared), "exact": float(np.mean(x == y)),
            "within_1": float(np.mean(np.abs(x - y) <= 1)), "kappa_quadratic": weighted_kappa(x, y),
            "spearman": spearman(x, y),
        })
    if not pairs:
        return None
    return {"reviewers": sorted(by_reviewer), "pairs": pairs}


def summary(ws: Workspace, eval_id: str, *, confidence: float = 0.95) -> dict[str, Any] | None:
    """The human ratings of ``eval_id``, or ``None`` when it has none.

    ``{"eval_id", "n" (answers rated), "n_ratings", "mean", "ci_low", "ci_high", "confidence", "ci_method",
    "reviewers": {name: ratings}, "distribution": {"1".."5": answers' ratings}, "spearman": {metric: {"rho", "n"}},
    "agreement": agreement(...)}``.
    """
    ratings = _ratings(ws, eval_id)
    if not ratings:
        return None
    per_answer: dict[str, list[int]] = {}
    reviewers: dict[str, int] = {}
    for ex, reviewer, rating in ratings:
        per_answer.setdefault(ex, []).append(rating)
        reviewers[reviewer] = reviewers.get(reviewer, 0) + 1
    ids = sorted(per_answer)
    human = np.array([float(np.mean(per_answer[e])) for e in ids])
    lo, hi = _mean_ci(human, confidence)
    scores = _scores(ws, eval_id)
    metrics = sorted({k for e in ids for k, v in scores.get(e, {}).items()
                      if isinstance(v, int | float) and not isinstance(v, bool)})
    corr: dict[str, dict[str, Any]] = {}
    for metric in metrics:
        pairs = [(h, float(scores[e][metric])) for h, e in zip(human, ids, strict=True)
                 if isinstance(scores.get(e, {}).get(metric), int | float)
                 and math.isfinite(float(scores[e][metric]))]
        corr[metric] = {"rho": spearman([p[0] for p in pairs], [p[1] for p in pairs]) if pairs else None,
                        "n": len(pairs)}
    distribution = {str(r): 0 for r in RATINGS}
    for _, _, rating in ratings:
        distribution[str(rating)] = distribution.get(str(rating), 0) + 1
    return {
        "eval_id": eval_id, "n": len(ids), "n_ratings": len(ratings), "mean": float(human.mean()),
        "ci_low": lo, "ci_high": hi, "confidence": confidence,
        "ci_method": "student t over answers (each answer: the mean of its reviewers' ratings)",
        "reviewers": dict(sorted(reviewers.items())), "distribution": distribution, "spearman": corr,
        "agreement": _agreement(ratings),
    }


def win_rate(ws: Workspace, eval_a: str, eval_b: str, *, confidence: float = 0.95) -> dict[str, Any] | None:
    """How often people preferred ``eval_a``'s answer to ``eval_b``'s (choices made in either order), or ``None``.

    ``{"a", "b", "n", "wins", "losses", "ties", "win_rate", "ci_low", "ci_high", "confidence", "ci_method"}``
    with ``win_rate = (wins + ties / 2) / n``.
    """
    with ws.connect() as con:
        rows = con.execute(_CHOICES_SQL, [eval_a, eval_b, eval_b, eval_a]).fetchall()
    wins = losses = ties = 0
    for left, _right, choice in rows:
        if choice == "tie":
            ties += 1
        elif (choice == "left") == (left == eval_a):
            wins += 1
        else:
            losses += 1
    n = wins + losses + ties
    if n == 0:
        return None
    rate = (wins + ties / 2.0) / n
    lo, hi = wilson(wins + ties / 2.0, n, confidence)
    return {"a": eval_a, "b": eval_b, "n": n, "wins": wins, "losses": losses, "ties": ties, "win_rate": rate,
            "ci_low": lo, "ci_high": hi, "confidence": confidence,
            "ci_method": "wilson score (ties as half a win)"}


# -- text ---------------------------------------------------------------------------------------------------------
def _f(v: float | None, digits: int = 2) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def format_summary(h: dict[str, Any] | None) -> str:
    """One block of text for a terminal: ``-`` lines are left out; ``""`` when there are no ratings."""
    if not h:
        return ""
    pct = round(h["confidence"] * 100)
    ci = f" [{_f(h['ci_low'])}, {_f(h['ci_high'])}] ({pct}% t CI)" if h["ci_low"] is not None else ""
    who = ", ".join(f"{k} {v}" for k, v in h["reviewers"].items())
    lines = [f"human rating: mean {_f(h['mean'])}{ci} over {h['n']} answer(s), {h['n_ratings']} rating(s) by {who}"]
    corr = [f"{m} {_f(c['rho'], 3)} (n {c['n']})" for m, c in h["spearman"].items() if c["rho"] is not None]
    if corr:
        lines.append("  Spearman with the human rating: " + ", ".join(corr))
    for p in (h.get("agreement") or {}).get("pairs", []):
        lines.append(f"  agreement {p['a']} / {p['b']}: {p['n']} shared, exact {_f(p['exact'])}, within 1 "
                     f"{_f(p['within_1'])}, quadratic-weighted kappa {_f(p['kappa_quadratic'])}")
    return "\n".join(lines)


def format_win_rate(w: dict[str, Any] | None, a: str = "run", b: str = "baseline") -> str:
    """``human A/B: run wins 5, baseline wins 2, ties 1 (n 8): win rate 0.69 [0.36, 0.89] (95% Wilson CI)``."""
    if not w:
        return ""
    pct = round(w["confidence"] * 100)
    return (f"human A/B: {a} wins {w['wins']}, {b} wins {w['losses']}, ties {w['ties']} (n {w['n']}): win rate "
            f"{_f(w['win_rate'])} [{_f(w['ci_low'])}, {_f(w['ci_high'])}] ({pct}% Wilson CI, ties as half)")

