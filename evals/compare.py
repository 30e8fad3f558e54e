"""The regression report: a run's evaluation against a baseline's, example by example.

Both evaluations are paired on example id (only examples scored in both count).  For each metric:

* the mean of each side and the mean paired delta ``run - baseline``;
* a paired bootstrap confidence interval of that delta: ``n_boot`` resamples of the paired examples
  (one shared set of resampled indices for every metric, seeded), percentile interval at
  ``confidence`` (95 % by default);
* a verdict.  A higher-is-better metric **regresses** when the upper bound of its CI is below 0 (the
  whole interval is a drop); it **improves** when the lower bound is above 0.  For lower-is-better
  metrics (``loss``) the signs flip.  ``length_ratio`` has no better direction: it is reported, never
  a regression.

Exact match also gets McNemar's test on the discordant pairs (``b`` = right before and wrong now,
``c`` = wrong before and right now): the exact two-sided binomial test when ``b + c < 25``, else the
chi-square test with continuity correction.  Examples that cross a pass criterion (``exact_match>=1``
by default; ``rougeL>=0.5`` is more useful for long answers) are listed as newly fixed or newly
broken with their prompt, reference and both predictions, and the largest per-example gains and
declines of the primary metric (``rougeL``) are listed whatever the criterion.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from curator.errors import CuratorError
from curator.output import table
from curator.workspace import Workspace
from evals.runner import EvalResult, EvalRow, eval_rows, resolve_eval

__all__ = [
    "DEFAULT_METRICS",
    "DIRECTION",
    "Comparison",
    "ExampleChange",
    "McNemar",
    "MetricDelta",
    "bootstrap_ci",
    "compare",
    "mcnemar",
    "parse_criterion",
    "render_text",
]

DEFAULT_METRICS: tuple[str, ...] = (
    "accuracy", "exact_match", "bleu", "rouge1", "rouge2", "rougeL", "key_phrase_rate", "length_ratio", "loss",
)
#: +1: higher is better; -1: lower is better; 0: no better direction (never a regression).
DIRECTION: dict[str, int] = {
    "accuracy": 1, "exact_match": 1, "bleu": 1, "rouge1": 1, "rouge2": 1, "rougeL": 1, "key_phrase_rate": 1,
    "length_ratio": 0, "loss": -1, "judge": 1,
}
PRIMARY_METRIC = "rougeL"
_CRITERION_RE = re.compile(r"^\s*(\w+)\s*(>=|>|<=|<)\s*([-+0-9.eE]+)\s*$")


# -- statistics ------------------------------------------------------------------------------------------------
def bootstrap_ci(
    diffs: np.ndarray, mask: np.ndarray, resamples: np.ndarray, confidence: float = 0.95
) -> tuple[float, float]:
    """Percentile CI of the masked mean of ``diffs`` over bootstrap ``resamples`` (rows of indices)."""
    d = np.where(mask, diffs, 0.0)[resamples]
    m = mask[resamples]
    counts = m.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = d.sum(axis=1) / counts
    means = means[counts > 0]
    if means.size == 0:
        return math.nan, math.nan
    alpha = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(means, [alpha, 1.0 - alpha])
    return float(lo), float(hi)


@dataclass
class McNemar:
    """McNemar's test on paired binary outcomes: ``broken`` (b) and ``fixed`` (c) discordant pairs."""

    metric: str
    broken: int
    fixed: int
    both_pass: int
    both_fail: int
    p_value: float
    method: str  # "exact binomial" | "chi-square (continuity corrected)" | "no discordant pairs"
    statistic: float | None = None


def mcnemar(before: Sequence[bool], after: Sequence[bool], metric: str = "exact_match") -> McNemar:
    """McNemar's test: exact two-sided binomial when ``b + c < 25``, else chi-square with continuity correction."""
    b = sum(1 for x, y in zip(before, after, strict=True) if x and not y)
    c = sum(1 for x, y in zip(before, after, strict=True) if not x and y)
    both = sum(1 for x, y in zip(before, after, strict=True) if x and y)
    neither = len(before) - b - c - both
    n = b + c
    if n == 0:
        return McNemar(metric, b, c, both, neither, 1.0, "no discordant pairs")
    if n < 25:
        k = min(b, c)
        tail = sum(math.comb(n, i) for i in range(k + 1)) / 2.0**n
        return McNemar(metric, b, c, both, neither, min(1.0, 2.0 * tail), "exact binomial")
    stat = (abs(b - c) - 1.0) ** 2 / n
    return McNemar(metric, b, c, both, neither, math.erfc(math.sqrt(stat / 2.0)),
                   "chi-square (continuity corrected)", stat)


def parse_criterion(text: str) -> tuple[str, str, float]:
    """``"rougeL>=0.5"`` -> ``("rougeL", ">=", 0.5)``."""
    m = _CRITERION_RE.match(text)
    if not m:
        raise CuratorError(f"bad pass criterion {text!r}: write METRIC>=VALUE, e.g. exact_match>=1 or rougeL>=0.5")
    return m.group(1), m.group(2), float(m.group(3))


def _passes(value: float | None, op: str, threshold: float) -> bool:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return False
    return {">=": value >= threshold, ">": value > threshold, "<=": value <= threshold, "<": value < threshold}[op]


# -- the comparison ----------------------------------------------------------------------------------------------
@dataclass
class MetricDelta:
    """One metric: both means over the paired examples, the mean delta and its bootstrap CI, the verdict."""

    metric: str
    n: int
    baseline: float | None
    run: float | None
    delta: float | None
    ci_low: float | None
    ci_high: float | None
    direction: int
    verdict: str  # "better" | "worse" | "no clear change" | "changed" | "n/a"

    @property
    def regression(self) -> bool:
        return self.verdict == "worse"


@dataclass
class ExampleChange:
    """One example whose outcome changed: what was asked, the reference and both predictions."""

    example_id: str
    task: str
    prompt: str
    reference: str
    baseline_prediction: str
    run_prediction: str
    baseline_score: float | None
    run_score: float | None


@dataclass
class Comparison:
    """Everything ``curator compare`` reports; ``to_dict()`` is its ``--json`` form."""

    run: dict[str, Any]
    baseline: dict[str, Any]
    n_paired: int
    only_in_run: int
    only_in_baseline: int
    confidence: float
    n_boot: int
    seed: int
    metrics: list[MetricDelta]
    by_task: dict[str, list[MetricDelta]]
    mcnemar: McNemar
    pass_criterion: str
    pass_test: McNemar
    fixed: list[ExampleChange]
    broken: list[ExampleChange]
    gains: list[ExampleChange]
    declines: list[ExampleChange]
    corpus: dict[str, dict[str, float | None]]
    warnings: list[str] = field(default_factory=list)
    judge: dict[str, Any] | None = None
    #: ``{"run": summary, "baseline": summary, "win_rate": win_rate}`` of :mod:`evals.human`; ``None`` without any.
    human: dict[str, Any] | None = None

    @property
    def regressions(self) -> list[str]:
        """Metrics whose whole CI lies on the worse side of 0 (and the pairwise judge, when it ran)."""
        out = [m.metric for m in self.metrics if m.regression]
        if self.judge and self.judge.get("verdict") == "worse":
            out.append("judge_pairwise")
        return out

    def metric(self, name: str) -> MetricDelta:
        for m in self.metrics:
            if m.metric == name:
                return m
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for m, raw in zip(self.metrics, d["metrics"], strict=True):
            raw["regression"] = m.regression
        d["regressions"] = self.regressions
        return _clean(d)


def _clean(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_clean(v) for v in x]
    return x


def _verdict(direction: int, delta: float, lo: float, hi: float) -> str:
    if any(math.isnan(v) for v in (delta, lo, hi)):
        return "n/a"
    if direction == 0:
        return "changed" if (lo > 0 or hi < 0) else "no clear change"
    if (hi < 0 and direction > 0) or (lo > 0 and direction < 0):
        return "worse"
    if (lo > 0 and direction > 0) or (hi < 0 and direction < 0):
        return "better"
    return "no clear change"


def _deltas(
    metrics: Sequence[str], base: list[EvalRow], run: list[EvalRow], n_boot: int, seed: int, confidence: float
) -> list[MetricDelta]:
    n = len(base)
    rng = np.random.default_rng(seed)
    resamples = rng.integers(0, n, size=(n_boot, n)) if n else np.zeros((0, 0), dtype=np.int64)
    out = []
    for name in metrics:
        a = np.array([_num(r.scores.get(name)) for r in base], dtype=np.float64)
        b = np.array([_num(r.scores.get(name)) for r in run], dtype=np.float64)
        mask = ~(np.isnan(a) | np.isnan(b))
        k = int(mask.sum())
        direction = DIRECTION.get(name, 1)
        if k == 0:
            out.append(MetricDelta(name, 0, None, None, None, None, None, direction, "n/a"))
            continue
        diffs = np.where(mask, b - a, 0.0)
        delta = float(diffs[mask].mean())
        lo, hi = bootstrap_ci(diffs, mask, resamples, confidence) if n_boot > 0 else (math.nan, math.nan)
        out.append(MetricDelta(name, k, float(a[mask].mean()), float(b[mask].mean()), delta, lo, hi, direction,
                               _verdict(direction, delta, lo, hi)))
    return out


def _num(v: Any) -> float:
    if v is None or isinstance(v, str):
        return math.nan
    return float(v)


def _example_texts(ws: Workspace, ids: list[str]) -> dict[str, tuple[str, str, str]]:
    """id -> (task, prompt (last user turn), reference (last assistant turn)) from the examples table."""
    if not ids:
        return {}
    with ws.connect() as con:
        rows = con.execute(
            "SELECT id, task, messages::VARCHAR FROM examples WHERE list_contains(?::VARCHAR[], id)", [ids]
        ).fetchall()
    out: dict[str, tuple[str, str, str]] = {}
    for eid, task, msgs in rows:
        messages = json.loads(msgs)
        last_a = max((i for i, m in enumerate(messages) if m["role"] == "assistant"), default=len(messages))
        users = [m["content"] for m in messages[:last_a] if m["role"] == "user"]
        ref = messages[last_a]["content"] if last_a < len(messages) else ""
        out[eid] = (task, users[-1] if users else "", ref)
    return out


def compare(
    ws: Workspace,
    run: str,
    baseline: str = "base",
    *,
    metrics: Sequence[str] | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
    pass_criterion: str = "exact_match>=1",
    top: int = 5,
    judge: str | None = None,
    judge_options: dict[str, Any] | None = None,
    log: Callable[[str], None] | None = None,
) -> Comparison:
    """Compare ``run`` with ``baseline`` (each an evaluation id or a run id, ``base`` included).

    A run id picks its latest evaluation; the baseline's is picked on the same snapshot and split.
    ``metrics`` defaults to :data:`DEFAULT_METRICS` (``accuracy`` only when the run has label scores, plus
    ``judge`` when both sides have rubric scores).
    ``judge`` (a provider spec) adds a pairwise A-vs-B judgement with position swapping.
    """
    if not 0 < confidence < 1:
        raise CuratorError("confidence must be between 0 and 1")
    if n_boot < 0:
        raise CuratorError("n_boot must be >= 0")
    crit_metric, crit_op, crit_value = parse_criterion(pass_criterion)
    ev_run = resolve_eval(ws, run)
    ev_base = resolve_eval(ws, baseline, snapshot_id=ev_run.snapshot_id, split=ev_run.split)
    if ev_run.id == ev_base.id:
        raise CuratorError(f"{run!r} and {baseline!r} are the same evaluation ({ev_run.id})")
    rows_run = {r.example_id: r for r in eval_rows(ws, ev_run.id)}
    rows_base = {r.example_id: r for r in eval_rows(ws, ev_base.id)}
    ids = sorted(set(rows_run) & set(rows_base))
    if not ids:
        raise CuratorError(f"evaluations {ev_run.id} and {ev_base.id} share no example: nothing to compare")
    warnings = _warnings(ev_run, ev_base, len(rows_run) - len(ids), len(rows_base) - len(ids))
    paired_run = [rows_run[i] for i in ids]
    paired_base = [rows_base[i] for i in ids]
    if metrics is None:
        metrics = list(DEFAULT_METRICS)
        if not any(r.scores.get("accuracy") is not None for r in paired_run):  # label tasks only
            metrics.remove("accuracy")
        if all("judge" in r.scores for r in paired_run + paired_base):
            metrics.append("judge")
    metrics = list(metrics)
    texts = _example_texts(ws, ids)
    task_of = {i: texts.get(i, ("?", "", ""))[0] for i in ids}

    overall = _deltas(metrics, paired_base, paired_run, n_boot, seed, confidence)
    by_task: dict[str, list[MetricDelta]] = {}
    for task in sorted(set(task_of.values())):
        sel = [k for k, i in enumerate(ids) if task_of[i] == task]
        by_task[task] = _deltas(metrics, [paired_base[k] for k in sel], [paired_run[k] for k in sel],
                                n_boot, seed, confidence)

    def em(r: EvalRow) -> bool:
        return _passes(r.scores.get("exact_match"), ">=", 1.0)

    def ok(r: EvalRow) -> bool:
        return _passes(r.scores.get(crit_metric), crit_op, crit_value)

    em_test = mcnemar([em(r) for r in paired_base], [em(r) for r in paired_run], "exact_match")
    pass_test = mcnemar([ok(r) for r in paired_base], [ok(r) for r in paired_run], pass_criterion)

    def change(i: str, metric: str) -> ExampleChange:
        task, prompt, ref = texts.get(i, ("?", "", ""))
        return ExampleChange(i, task, prompt, ref, rows_base[i].prediction, rows_run[i].prediction,
                             rows_base[i].scores.get(metric), rows_run[i].scores.get(metric))

    fixed = [change(i, crit_metric) for i in ids if not ok(rows_base[i]) and ok(rows_run[i])]
    broken = [change(i, crit_metric) for i in ids if ok(rows_base[i]) and not ok(rows_run[i])]
    deltas = []
    for i in ids:
        a, b = _num(rows_base[i].scores.get(PRIMARY_METRIC)), _num(rows_run[i].scores.get(PRIMARY_METRIC))
        if not (math.isnan(a) or math.isnan(b)) and a != b:
            deltas.append((b - a, i))
    deltas.sort()
    declines = [change(i, PRIMARY_METRIC) for d, i in deltas[:top] if d < 0]
    gains = [change(i, PRIMARY_METRIC) for d, i in reversed(deltas[-top:]) if d > 0] if top else []

    corpus = {
        key: {"baseline": ev_base.summary.get("overall", {}).get(key), "run": ev_run.summary.get("overall", {}).get(key)}
        for key in ("eval_loss", "perplexity", "mean_output_tokens")
    }
    cmp = Comparison(
        run=_eval_info(ev_run), baseline=_eval_info(ev_base), n_paired=len(ids),
        only_in_run=len(rows_run) - len(ids), only_in_baseline=len(rows_base) - len(ids), confidence=confidence,
        n_boot=n_boot, seed=seed, metrics=overall, by_task=by_task, mcnemar=em_test, pass_criterion=pass_criterion,
        pass_test=pass_test, fixed=fixed, broken=broken, gains=gains, declines=declines, corpus=corpus,
        warnings=warnings, human=_human(ws, ev_run.id, ev_base.id, confidence),
    )
    if judge:
        from evals.judge import judge_pairwise

        cmp.judge = judge_pairwise(ws, ev_run.id, ev_base.id, judge, ids=ids, n_boot=n_boot, seed=seed,
                                   confidence=confidence, log=log, **(judge_options or {}))
    return cmp


def _human(ws: Workspace, run_eval: str, base_eval: str, confidence: float) -> dict[str, Any] | None:
    """Both evaluations' human ratings and the human A/B win rate of the run, or ``None`` when there is none."""
    from evals.human import summary, win_rate

    out = {"run": summary(ws, run_eval, confidence=confidence), "baseline": summary(ws, base_eval, confidence=confidence),
           "win_rate": win_rate(ws, run_eval, base_eval, confidence=confidence)}
    return out if any(out.values()) else None


def _eval_info(ev: EvalResult) -> dict[str, Any]:
    return {"eval_id": ev.id, "run_id": ev.run_id, "snapshot_id": ev.snapshot_id, "split": ev.split,
            "base_model": ev.params.get("base_model"), "max_new_tokens": ev.params.get("max_new_tokens")}


def _warnings(a: EvalResult, b: EvalResult, only_a: int, only_b: int) -> list[str]:
    out = []
    if a.snapshot_id != b.snapshot_id:
        out.append(f"different snapshots ({a.snapshot_id} vs {b.snapshot_id}): only shared examples are compared")
    if a.split != b.split:
        out.append(f"different splits ({a.split} vs {b.split})")
    for key in ("max_new_tokens", "temperature", "seed", "limit", "scorer_version"):
        if a.params.get(key) != b.params.get(key):
            out.append(f"different {key}: {a.params.get(key)} (run) vs {b.params.get(key)} (baseline)")
    if a.params.get("base_model_fingerprint") != b.params.get("base_model_fingerprint"):
        out.append(f"different base models: {a.params.get('base_model')} vs {b.params.get('base_model')}")
    if only_a or only_b:
        out.append(f"{only_a} example(s) only in the run's evaluation and {only_b} only in the baseline's are left out")
    return out


# -- the terminal report -------------------------------------------------------------------------------------------
def _fmt(v: float | None, metric: str, signed: bool = False) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    digits = 2 if metric in ("bleu", "perplexity") else 3
    return f"{v:+.{digits}f}" if signed else f"{v:.{digits}f}"


def _short(text: str, n: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 3] + "..."


def _metric_rows(deltas: Sequence[MetricDelta]) -> list[list[str]]:
    rows = []
    for m in deltas:
        ci = "-" if m.ci_low is None else f"[{_fmt(m.ci_low, m.metric, True)}, {_fmt(m.ci_high, m.metric, True)}]"
        verdict = "REGRESSION" if m.regression else m.verdict
        rows.append([m.metric, str(m.n), _fmt(m.baseline, m.metric), _fmt(m.run, m.metric),
                     _fmt(m.delta, m.metric, True), ci, verdict])
    return rows


def render_text(cmp: Comparison, *, show: int = 3) -> str:
    """The terminal report: metric table with CIs, McNemar, per-task deltas, changed examples."""
    r, b = cmp.run, cmp.baseline
    pct = round(cmp.confidence * 100)
    lines = [
        f"run {r['run_id']} (eval {r['eval_id']}) vs baseline {b['run_id']} (eval {b['eval_id']})",
        f"snapshot {r['snapshot_id']}, split {r['split']}: {cmp.n_paired} paired examples, "
        f"{cmp.n_boot} paired bootstrap resamples, {pct}% CI of (run - baseline)",
        "",
        table(["metric", "n", "baseline", "run", "delta", f"{pct}% CI", "verdict"], _metric_rows(cmp.metrics)),
        "",
    ]
    corpus = []
    for key in ("eval_loss", "perplexity", "mean_output_tokens"):
        c = cmp.corpus.get(key, {})
        if c.get("baseline") is not None or c.get("run") is not None:
            corpus.append(f"{key} {_fmt(c.get('baseline'), key)} -> {_fmt(c.get('run'), key)}")
    if corpus:
        lines += ["corpus: " + "; ".join(corpus), ""]
    t = cmp.mcnemar
    lines.append(f"McNemar (exact_match): fixed {t.fixed}, broken {t.broken}, p = {t.p_value:.4g} ({t.method})")
    if cmp.pass_criterion != "exact_match>=1":
        p = cmp.pass_test
        lines.append(f"McNemar ({cmp.pass_criterion}): fixed {p.fixed}, broken {p.broken}, "
                     f"p = {p.p_value:.4g} ({p.method})")
    if cmp.judge:
        j = cmp.judge
        lines.append(
            f"judge {j['judge']} (pairwise, both orders): run wins {j['run_wins']}, baseline wins "
            f"{j['baseline_wins']}, ties {j['ties']} (inconsistent across orders: {j['inconsistent']}); "
            f"preference {_fmt(j['preference'], 'x', True)} [{_fmt(j['ci_low'], 'x', True)}, "
            f"{_fmt(j['ci_high'], 'x', True)}] {j['verdict']}"
        )
    if cmp.human:
        from evals.human import format_summary, format_win_rate

        for side in ("baseline", "run"):
            text = format_summary(cmp.human.get(side))
            lines += [f"{side} {text}"] if text else []
        text = format_win_rate(cmp.human.get("win_rate"))
        lines += [text] if text else []
    if len(cmp.by_task) > 1:
        lines += ["", "per task (delta [CI]):"]
        names = [m.metric for m in cmp.metrics if m.metric in ("accuracy", "rougeL", "bleu", "key_phrase_rate", "loss")]
        rows = []
        for task, ds in cmp.by_task.items():
            row = [task, str(max((d.n for d in ds), default=0))]
            for d in ds:
                if d.metric in names:
                    mark = " !" if d.regression else ""
                    row.append(f"{_fmt(d.delta, d.metric, True)} [{_fmt(d.ci_low, d.metric, True)}, "
                               f"{_fmt(d.ci_high, d.metric, True)}]{mark}")
            rows.append(row)
        lines.append(table(["task", "n", *names], rows))
    for title, items in ((f"newly fixed ({cmp.pass_criterion})", cmp.fixed),
                         (f"newly broken ({cmp.pass_criterion})", cmp.broken)):
        lines += ["", f"{title}: {len(items)}"]
        for ch in items[:show]:
            lines += _change_lines(ch)
    if not cmp.fixed and not cmp.broken:
        for title, items in ((f"largest {PRIMARY_METRIC} gains", cmp.gains),
                             (f"largest {PRIMARY_METRIC} declines", cmp.declines)):
            lines += ["", f"{title}: {len(items)}"]
            for ch in items[:show]:
                lines += _change_lines(ch)
    for w in cmp.warnings:
        lines.append(f"warning: {w}")
    regs = cmp.regressions
    lines += ["", "regressions (CI entirely on the worse side of 0): " + (", ".join(regs) if regs else "none")]
    return "\n".join(lines)


def _change_lines(ch: ExampleChange) -> list[str]:
    return [
        f"  - {ch.example_id[:12]} [{ch.task}] score {_fmt(ch.baseline_score, 'x')} -> {_fmt(ch.run_score, 'x')}",
        f"    prompt:    {_short(ch.prompt, 100)}",
        f"    reference: {_short(ch.reference, 100)}",
        f"    baseline:  {_short(ch.baseline_prediction, 100)}",
        f"    run:       {_short(ch.run_prediction, 100)}",
    ]
