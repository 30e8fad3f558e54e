"""A self-contained HTML regression report (inline CSS and SVG, no external URL)."""

from __future__ import annotations

import html
import math
from pathlib import Path

from evals.compare import PRIMARY_METRIC, Comparison, ExampleChange, MetricDelta

__all__ = ["render_html", "write_html"]

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2rem;color:#1b1f24;max-width:1100px}
h1{font-size:1.4rem}h2{font-size:1.15rem;margin-top:2rem}
table{border-collapse:collapse;margin:.5rem 0}th,td{padding:.3rem .6rem;border-bottom:1px solid #ddd;text-align:right}
th:first-child,td:first-child{text-align:left}.worse{color:#b3261e;font-weight:600}.better{color:#1a7f37;font-weight:600}
.muted{color:#666}.ex{border:1px solid #ddd;border-radius:6px;padding:.6rem;margin:.6rem 0}
.ex pre{white-space:pre-wrap;margin:.2rem 0 .5rem;background:#f6f8fa;padding:.4rem;border-radius:4px}
.warn{background:#fff8c5;padding:.4rem .6rem;border-radius:4px}
"""


def _f(v: float | None, signed: bool = False, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return f"{v:+.{digits}f}" if signed else f"{v:.{digits}f}"


def _ci_svg(m: MetricDelta, width: int = 220, height: int = 18) -> str:
    """The CI as a bar around its point estimate, with a dashed line at 0; scale from the CI and the delta."""
    if m.ci_low is None or m.ci_high is None or m.delta is None:
        return ""
    lo, hi = min(m.ci_low, 0.0), max(m.ci_high, 0.0)
    span = (hi - lo) or 1.0
    pad = 8

    def x(v: float) -> float:
        return pad + (v - lo) / span * (width - 2 * pad)

    color = {"worse": "#b3261e", "better": "#1a7f37"}.get(m.verdict, "#57606a")
    return (
        f'<svg width="{width}" height="{height}" role="img" aria-label="CI of {html.escape(m.metric)}">'
        f'<line x1="{x(0):.1f}" y1="1" x2="{x(0):.1f}" y2="{height - 1}" stroke="#999" stroke-dasharray="2,2"/>'
        f'<line x1="{x(m.ci_low):.1f}" y1="{height / 2}" x2="{x(m.ci_high):.1f}" y2="{height / 2}" '
        f'stroke="{color}" stroke-width="3"/>'
        f'<circle cx="{x(m.delta):.1f}" cy="{height / 2}" r="4" fill="{color}"/></svg>'
    )


def _metric_table(deltas: list[MetricDelta], pct: int) -> str:
    digits = {"bleu": 2}
    rows = []
    for m in deltas:
        d = digits.get(m.metric, 3)
        cls = m.verdict if m.verdict in ("worse", "better") else ""
        label = "REGRESSION" if m.regression else m.verdict
        rows.append(
            f"<tr><td>{html.escape(m.metric)}</td><td>{m.n}</td><td>{_f(m.baseline, digits=d)}</td>"
            f"<td>{_f(m.run, digits=d)}</td><td>{_f(m.delta, True, d)}</td>"
            f"<td>[{_f(m.ci_low, True, d)}, {_f(m.ci_high, True, d)}]</td><td>{_ci_svg(m)}</td>"
            f'<td class="{cls}">{html.escape(label)}</td></tr>'
        )
    return (f"<table><tr><th>metric</th><th>n</th><th>baseline</th><th>run</th><th>delta</th><th>{pct}% CI</th>"
            "<th>CI (dashed: 0)</th><th>verdict</th></tr>" + "".join(rows) + "</table>")


def _changes(title: str, items: list[ExampleChange]) -> str:
    out = [f"<h2>{html.escape(title)} ({len(items)})</h2>"]
    if not items:
        out.append('<p class="muted">none</p>')
    for ch in items:
        out.append(
            f'<div class="ex"><b>{html.escape(ch.example_id[:16])}</b> <span class="muted">[{html.escape(ch.task)}]'
            f" score {_f(ch.baseline_score)} &rarr; {_f(ch.run_score)}</span>"
            f"<div>prompt</div><pre>{html.escape(ch.prompt)}</pre><div>reference</div><pre>{html.escape(ch.reference)}</pre>"
            f"<div>baseline</div><pre>{html.escape(ch.baseline_prediction)}</pre>"
            f"<div>run</div><pre>{html.escape(ch.run_prediction)}</pre></div>"
        )
    return "".join(out)


def render_html(cmp: Comparison) -> str:
    """The whole report as one HTML string."""
    r, b = cmp.run, cmp.baseline
    pct = round(cmp.confidence * 100)
    e = html.escape
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>curator: {e(str(r['run_id']))} vs {e(str(b['run_id']))}</title><style>{_CSS}</style></head><body>",
        f"<h1>Run {e(str(r['run_id']))} vs baseline {e(str(b['run_id']))}</h1>",
        f"<p>evaluations {e(r['eval_id'])} vs {e(b['eval_id'])}; snapshot {e(str(r['snapshot_id']))}, split "
        f"{e(str(r['split']))}; {cmp.n_paired} paired examples; {cmp.n_boot} paired bootstrap resamples "
        f"(seed {cmp.seed}); {pct}% CI of run &minus; baseline. A metric regresses when its whole CI is on the "
        "worse side of 0.</p>",
    ]
    for w in cmp.warnings:
        parts.append(f'<p class="warn">warning: {e(w)}</p>')
    regs = cmp.regressions
    parts.append(f"<p><b>Regressions:</b> <span class='{'worse' if regs else 'better'}'>"
                 f"{e(', '.join(regs)) if regs else 'none'}</span></p>")
    parts.append("<h2>Metrics</h2>" + _metric_table(cmp.metrics, pct))
    corpus = "".join(
        f"<tr><td>{e(k)}</td><td>{_f(v.get('baseline'))}</td><td>{_f(v.get('run'))}</td></tr>"
        for k, v in cmp.corpus.items()
    )
    parts.append("<h2>Corpus</h2><table><tr><th></th><th>baseline</th><th>run</th></tr>" + corpus + "</table>")
    t = cmp.mcnemar
    parts.append(f"<h2>McNemar</h2><p>exact_match: fixed {t.fixed}, broken {t.broken}, both right {t.both_pass}, "
                 f"both wrong {t.both_fail}; p = {t.p_value:.4g} ({e(t.method)})</p>")
    if cmp.pass_criterion != "exact_match>=1":
        p = cmp.pass_test
        parts.append(f"<p>{e(cmp.pass_criterion)}: fixed {p.fixed}, broken {p.broken}; p = {p.p_value:.4g} "
                     f"({e(p.method)})</p>")
    if cmp.judge:
        j = cmp.judge
        parts.append(
            f"<h2>Judge (pairwise, both orders)</h2><p>{e(str(j['judge']))}: run wins {j['run_wins']}, baseline wins "
            f"{j['baseline_wins']}, ties {j['ties']} (orders disagreed: {j['inconsistent']}, unparsed {j['unparsed']});"
            f" preference {_f(j['preference'], True)} [{_f(j['ci_low'], True)}, {_f(j['ci_high'], True)}] "
            f"{e(str(j['verdict']))}</p>"
        )
    for task, ds in cmp.by_task.items():
        parts.append(f"<h2>Task {e(task)}</h2>" + _metric_table(ds, pct))
    parts.append(_changes(f"Newly fixed ({cmp.pass_criterion})", cmp.fixed))
    parts.append(_changes(f"Newly broken ({cmp.pass_criterion})", cmp.broken))
    parts.append(_changes(f"Largest {PRIMARY_METRIC} gains", cmp.gains))
    parts.append(_changes(f"Largest {PRIMARY_METRIC} declines", cmp.declines))
    parts.append("</body></html>\n")
    return "".join(parts)


def write_html(cmp: Comparison, path: str | Path) -> Path:
    """Write :func:`render_html` to ``path`` (parent folders created)."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_html(cmp), encoding="utf-8")
    return out
