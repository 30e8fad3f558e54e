"""The round report: one self-contained HTML page for the whole history of rounds.

Metric per round (line chart, round 0 = the base model), training and eval loss curves of each run,
dataset composition by origin per snapshot, newly fixed / newly broken test examples of each round,
and the lineage from data to model.
"""

from __future__ import annotations

import json
from html import escape
from pathlib import Path
from typing import Any

from curator.html.charts import line_chart, stacked_bars
from curator.loop.rounds import HEADLINE_METRICS, list_rounds
from curator.workspace import Workspace

__all__ = ["loss_history", "metrics_table", "write_round_report"]

_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:1180px;color:#111827;padding:0 16px}
h1{font-size:22px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid #e5e7eb;padding-bottom:4px}
table{border-collapse:collapse;margin:8px 0;font-size:13px}td,th{border:1px solid #e5e7eb;padding:4px 8px;
text-align:left;vertical-align:top}th{background:#f9fafb}.num{text-align:right;font-variant-numeric:tabular-nums}
.charts{display:flex;flex-wrap:wrap;gap:16px}.good{color:#15803d}.bad{color:#b91c1c}.muted{color:#6b7280}
pre{white-space:pre-wrap;margin:0;font-size:12px;max-width:360px}
"""


def loss_history(ws: Workspace, run_id: str) -> dict[str, list[tuple[float, float]]]:
    """(step, loss) and (step, eval_loss) points of a run, from ``runs/<id>/metrics.jsonl``."""
    path = ws.runs_dir / run_id / "metrics.jsonl"
    train: list[tuple[float, float]] = []
    ev: list[tuple[float, float]] = []
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            step = rec.get("step") or rec.get("global_step")
            if step is None:
                continue
            if isinstance(rec.get("loss"), int | float):
                train.append((float(step), float(rec["loss"])))
            if isinstance(rec.get("eval_loss"), int | float):
                ev.append((float(step), float(rec["eval_loss"])))
    return {"train loss": train, "eval loss": ev}


def metrics_table(rounds: list[dict[str, Any]], metrics: tuple[str, ...] = HEADLINE_METRICS) -> list[dict[str, Any]]:
    """Rows: base (round 0, from round 1's baseline) then each round, with the headline metrics."""
    rows: list[dict[str, Any]] = []
    if rounds and rounds[0].get("baseline_summary"):
        rows.append({"round": 0, "label": f"base ({rounds[0].get('baseline')})",
                     **{m: rounds[0]["baseline_summary"].get(m) for m in metrics}})
    for r in rounds:
        if r.get("summary"):
            rows.append({"round": r["round"], "label": f"round {r['round']} ({r['run_id']})",
                         **{m: r["summary"].get(m) for m in metrics}})
    return rows


def _fmt(v: Any) -> str:
    return f"{v:.3f}" if isinstance(v, int | float) else "-"


def _examples_table(items: list[dict[str, Any]], title: str) -> str:
    if not items:
        return f"<p class='muted'>{escape(title)}: none</p>"
    rows = []
    for it in items[:10]:
        rows.append(
            "<tr>" + "".join(
                f"<td><pre>{escape(str(it.get(k, ''))[:600])}</pre></td>"
                for k in ("prompt", "reference", "baseline_prediction", "run_prediction")
            ) + "</tr>"
        )
    return (f"<h3>{escape(title)} ({len(items)})</h3><table><tr><th>prompt</th><th>reference</th>"
            f"<th>before</th><th>after</th></tr>{''.join(rows)}</table>")


def write_round_report(ws: Workspace, path: str | Path | None = None) -> Path:
    """Write the report (default ``reports/rounds.html`` in the workspace) and return its path."""
    rounds = list_rounds(ws)
    out = Path(path) if path else ws.reports_dir / "rounds.html"
    out.parent.mkdir(parents=True, exist_ok=True)
    table = metrics_table(rounds)
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>curator rounds</title><style>{_CSS}</style>"
             "</head><body><h1>curator: rounds report</h1>"]
    if not rounds:
        parts.append("<p>No rounds yet: run <code>curator round</code>.</p></body></html>")
        out.write_text("".join(parts))
        return out

    # Headline table and verdicts.
    parts.append("<h2>Test metrics per round</h2><table><tr><th>round</th>"
                 + "".join(f"<th>{m}</th>" for m in HEADLINE_METRICS) + "</tr>")
    for row in table:
        parts.append(f"<tr><td>{escape(row['label'])}</td>"
                     + "".join(f"<td class='num'>{_fmt(row.get(m))}</td>" for m in HEADLINE_METRICS) + "</tr>")
    parts.append("</table>")
    for r in rounds:
        regs = (r.get("comparison") or {}).get("regressions") or []
        verdict = _verdict(r)
        parts.append(f"<p>Round {r['round']} vs {escape(str(r.get('baseline')))}: {verdict}"
                     + (f" <span class='bad'>Regressions beyond the CI: {escape(', '.join(map(str, regs)))}</span>"
                        if regs else "") + "</p>")

    charts = []
    series = {m: [(float(row["round"]), float(row[m])) for row in table if isinstance(row.get(m), int | float)]
              for m in ("rougeL", "key_phrase_rate", "bleu")}
    if "bleu" in series:
        series["bleu / 100"] = [(x, y / 100) for x, y in series.pop("bleu")]
    charts.append(line_chart(series, title="Test metrics per round (0 = base model)", x_label="round",
                             x_ticks=[(float(row["round"]), str(row["round"])) for row in table]))
    for r in rounds:
        if r.get("run_id"):
            charts.append(line_chart(loss_history(ws, r["run_id"]), title=f"Loss, round {r['round']} ({r['run_id']})",
                                     x_label="step"))
    comp = {}
    with ws.connect() as con:
        for r in rounds:
            if r.get("snapshot_id"):
                row = con.execute("SELECT counts FROM snapshots WHERE id = ?", [r["snapshot_id"]]).fetchall()
                if row and row[0][0]:
                    counts = json.loads(row[0][0])
                    comp[f"round {r['round']}"] = {k.split("/", 1)[1]: v for k, v in
                                                   counts.get("by_split_origin", {}).items() if k.startswith("train/")}
    charts.append(stacked_bars(comp, title="Train split by origin, per round snapshot"))
    parts.append("<h2>Charts</h2><div class='charts'>" + "".join(charts) + "</div>")

    parts.append("<h2>Newly fixed and newly broken test examples</h2>")
    for r in rounds:
        c = r.get("comparison") or {}
        parts.append(f"<h3>Round {r['round']}</h3>")
        parts.append(_examples_table(c.get("fixed") or c.get("newly_fixed") or [], "newly fixed"))
        parts.append(_examples_table(c.get("broken") or c.get("newly_broken") or [], "newly broken"))

    started = _base_runs(ws, [str(r.get("run_id")) for r in rounds])
    parts.append("<h2>Lineage</h2><table><tr><th>round</th><th>snapshot</th><th>train data by origin</th>"
                 "<th>run</th><th>trained from</th><th>evaluation</th><th>data produced</th></tr>")
    for r in rounds:
        origins = comp.get(f"round {r['round']}", {})
        batch = r.get("batch") or {}
        produced = ", ".join(f"{k} {v}" for k, v in batch.items() if isinstance(v, int | float))
        parts.append(
            f"<tr><td>{r['round']}</td><td>{escape(str(r.get('snapshot_id')))}</td>"
            f"<td>{escape(', '.join(f'{k} {v}' for k, v in sorted(origins.items())))}</td>"
            f"<td>{escape(str(r.get('run_id')))}</td><td>{escape(started.get(str(r.get('run_id')), 'base model'))}</td>"
            f"<td>{escape(str(r.get('eval_id')))}</td>"
            f"<td>{escape(produced)}</td></tr>")
    parts.append("</table></body></html>")
    out.write_text("".join(parts))
    return out


def _base_runs(ws: Workspace, run_ids: list[str]) -> dict[str, str]:
    """run id -> the run whose adapter it continued (``runs.meta.base_run``), for the runs that have one."""
    from trainer.runs import list_runs

    wanted = set(run_ids)
    return {r.id: r.meta["base_run"] for r in list_runs(ws) if r.id in wanted and r.meta.get("base_run")}


def _verdict(r: dict[str, Any]) -> str:
    s, b = r.get("summary") or {}, r.get("baseline_summary") or {}
    words = []
    for m in ("rougeL", "key_phrase_rate"):
        if isinstance(s.get(m), int | float) and isinstance(b.get(m), int | float):
            d = s[m] - b[m]
            cls = "good" if d > 0 else "bad" if d < 0 else "muted"
            words.append(f"<span class='{cls}'>{m} {d:+.3f}</span>")
    better = all(
        isinstance(s.get(m), int | float) and isinstance(b.get(m), int | float) and s[m] > b[m]
        for m in ("rougeL", "key_phrase_rate")
    )
    head = "better on ROUGE-L and key phrases" if better else "<b>not better on both ROUGE-L and key phrases</b>"
    return head + " (" + ", ".join(words) + ")"
