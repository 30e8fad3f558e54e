"""A self-contained HTML regression report (inline CSS and SVG, no external URL).

This module turns a :class:`~evals.compare.Comparison` into rows and CI charts;
``curator/html/templates/eval_report.html`` lays them out.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from curator.html import render, write_page
from curator.html.charts import ci_bar
from evals.compare import PRIMARY_METRIC, Comparison, MetricDelta
from evals.human import format_win_rate

__all__ = ["render_html", "write_html"]

_DIGITS = {"bleu": 2}


def _metric_rows(deltas: list[MetricDelta]) -> list[dict[str, Any]]:
    return [{
        "metric": m.metric, "n": m.n, "baseline": m.baseline, "run": m.run, "delta": m.delta,
        "ci_low": m.ci_low, "ci_high": m.ci_high, "digits": _DIGITS.get(m.metric, 3),
        "cls": m.verdict if m.verdict in ("worse", "better") else "",
        "label": "REGRESSION" if m.regression else m.verdict,
        "chart": ci_bar(m.metric, m.delta, m.ci_low, m.ci_high, m.verdict),
    } for m in deltas]


def _human(cmp: Comparison) -> dict[str, Any] | None:
    """The human review rows (each side's mean rating) and the A/B win-rate line, or ``None`` without ratings."""
    if not cmp.human:
        return None
    sides = []
    for side in ("baseline", "run"):
        h = cmp.human.get(side)
        if h:
            corr = ", ".join(f"{k} {c['rho']:.3f} (n {c['n']})" for k, c in h["spearman"].items() if c["rho"] is not None)
            sides.append({"side": side, **h, "spearman": corr or "-"})
    return {"sides": sides, "win_rate": format_win_rate(cmp.human.get("win_rate"))}


def _context(cmp: Comparison) -> dict[str, Any]:
    return {
        "cmp": cmp, "r": cmp.run, "b": cmp.baseline, "pct": round(cmp.confidence * 100),
        "metrics": _metric_rows(cmp.metrics), "human": _human(cmp),
        "by_task": {task: _metric_rows(ds) for task, ds in cmp.by_task.items()},
        "changes": [(f"Newly fixed ({cmp.pass_criterion})", cmp.fixed),
                    (f"Newly broken ({cmp.pass_criterion})", cmp.broken),
                    (f"Largest {PRIMARY_METRIC} gains", cmp.gains),
                    (f"Largest {PRIMARY_METRIC} declines", cmp.declines)],
    }


def render_html(cmp: Comparison) -> str:
    """The whole report as one HTML string."""
    return render("eval_report.html", **_context(cmp))


def write_html(cmp: Comparison, path: str | Path) -> Path:
    """Write :func:`render_html` to ``path`` (parent folders created)."""
    return write_page(path, "eval_report.html", **_context(cmp))
