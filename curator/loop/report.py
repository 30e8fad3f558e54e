"""The round report: one self-contained HTML page for the whole history of rounds.

Metric per round (line chart, round 0 = the base model), training and eval loss curves of each run,
dataset composition by origin per snapshot, newly fixed / newly broken test examples of each round,
the human ratings of each round's test and dev answers (``curator review``; the section is left out
when there are none), and the lineage from data to model.  This module gathers the data; ``curator/html/templates/round_report.html``
lays it out.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from curator.html import write_page
from curator.html.charts import line_chart, stacked_bars
from curator.loop.rounds import HEADLINE_METRICS, list_rounds
from curator.workspace import Workspace

__all__ = ["loss_history", "metrics_table", "write_round_report"]


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


def _examples(items: list[dict[str, Any]]) -> dict[str, Any]:
    """The first 10 changed examples of a list (texts cut at 600 characters) and how many there are."""
    keys = ("prompt", "reference", "baseline_prediction", "run_prediction")
    return {"n": len(items), "rows": [[str(it.get(k, ""))[:600] for k in keys] for it in items[:10]]}


def _composition(ws: Workspace, rounds: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """``round N`` -> train examples by origin, from each round's snapshot."""
    comp = {}
    with ws.connect() as con:
        for r in rounds:
            if r.get("snapshot_id"):
                row = con.execute("SELECT counts FROM snapshots WHERE id = ?", [r["snapshot_id"]]).fetchall()
                if row and row[0][0]:
                    counts = json.loads(row[0][0])
                    comp[f"round {r['round']}"] = {k.split("/", 1)[1]: v for k, v in
                                                   counts.get("by_split_origin", {}).items() if k.startswith("train/")}
    return comp


def _charts(ws: Workspace, rounds: list[dict[str, Any]], table: list[dict[str, Any]],
            comp: dict[str, dict[str, int]]) -> list[Any]:
    series = {m: [(float(row["round"]), float(row[m])) for row in table if isinstance(row.get(m), int | float)]
              for m in ("accuracy", "rougeL", "key_phrase_rate", "bleu")}
    if not series["accuracy"]:  # label tasks only
        del series["accuracy"]
    if "bleu" in series:
        series["bleu / 100"] = [(x, y / 100) for x, y in series.pop("bleu")]
    charts = [line_chart(series, title="Test metrics per round (0 = base model)", x_label="round",
                         x_ticks=[(float(row["round"]), str(row["round"])) for row in table])]
    for r in rounds:
        if r.get("run_id"):
            charts.append(line_chart(loss_history(ws, r["run_id"]), title=f"Loss, round {r['round']} ({r['run_id']})",
                                     x_label="step"))
    charts.append(stacked_bars(comp, title="Train split by origin, per round snapshot"))
    return charts


def write_round_report(ws: Workspace, path: str | Path | None = None) -> Path:
    """Write the report (default ``reports/rounds.html`` in the workspace) and return its path."""
    rounds = list_rounds(ws)
    out = Path(path) if path else ws.reports_dir / "rounds.html"
    if not rounds:
        return write_page(out, "round_report.html", rounds=[])
    table = metrics_table(rounds)
    # The label metrics only when some round has them (label tasks), the others always.
    shown = tuple(m for m in HEADLINE_METRICS if m not in ("accuracy", "macro_f1")
                  or any(isinstance(row.get(m), int | float) for row in table))
    comp = _composition(ws, rounds)
    started = _base_runs(ws, [str(r.get("run_id")) for r in rounds])
    cut = _time_cut(ws, [str(r.get("run_id")) for r in rounds])
    views = []
    previous: dict[str, int] = {}
    for r in rounds:
        now = comp.get(f"round {r['round']}", {})
        added = {k: v - previous.get(k, 0) for k, v in sorted(now.items()) if v != previous.get(k, 0)}
        previous = now
        c = r.get("comparison") or {}
        batch = r.get("batch") or {}
        views.append({
            "round": r["round"], "task": r.get("task"), "baseline": str(r.get("baseline")), "verdict": _verdict(r),
            "regressions": [str(x) for x in c.get("regressions") or []],
            "fixed": _examples(c.get("fixed") or c.get("newly_fixed") or []),
            "broken": _examples(c.get("broken") or c.get("newly_broken") or []),
            "snapshot_id": str(r.get("snapshot_id")), "run_id": str(r.get("run_id")), "eval_id": str(r.get("eval_id")),
            "origins": ", ".join(f"{k} {v}" for k, v in sorted(comp.get(f"round {r['round']}", {}).items())),
            "trained_from": started.get(str(r.get("run_id")), "base model"),
            "added": ", ".join(f"{k} {v:+d}" for k, v in added.items()),
            "produced": ", ".join(f"{k} {v}" for k, v in batch.items() if isinstance(v, int | float)),
            "promotion": (r.get("promotion") or {}).get("reason", ""), "promoted": bool(r.get("promoted")),
            "champion": str(r.get("champion") or ""), "time_cut": cut.get(str(r.get("run_id"))),
            "weak_from": (batch.get("weaknesses_from") or {}).get("split", ""),
            "weak_why": (batch.get("weaknesses_from") or {}).get("why", ""),
            "weak_labels": [(k, v.get("errors"), v.get("n"), ", ".join(f"{p or 'no label'} {c}" for p, c in
                                                                       (v.get("confused_with") or {}).items()))
                            for k, v in (batch.get("weak_labels") or {}).items()],
            "by_task": _task_rows(r, shown),
            "labels": _label_rows(r),
            "baselines": [(mode, (b.get("summary") or {})) for mode, b in (r.get("baselines") or {}).items()],
            "human": _human(r),
        })
    return write_page(out, "round_report.html", rounds=views, metrics=shown, table=table,
                      charts=_charts(ws, rounds, table, comp))


def _time_cut(ws: Workspace, run_ids: list[str]) -> dict[str, int]:
    """run id -> the step at which the wall-clock safety cap cut its training, for the runs it cut."""
    from trainer.runs import list_runs

    wanted = set(run_ids)
    return {r.id: int(r.metrics["stopped_by_time_budget_at_step"]) for r in list_runs(ws)
            if r.id in wanted and (r.metrics or {}).get("stopped_by_time_budget_at_step")}


def _base_runs(ws: Workspace, run_ids: list[str]) -> dict[str, str]:
    """run id -> the run whose adapter it continued (``runs.meta.base_run``), for the runs that have one."""
    from trainer.runs import list_runs

    wanted = set(run_ids)
    return {r.id: r.meta["base_run"] for r in list_runs(ws) if r.id in wanted and r.meta.get("base_run")}


def _task_rows(r: dict[str, Any], metrics: tuple[str, ...]) -> list[list[Any]]:
    """Per task of the round's test evaluation: [task, n, (baseline, run) per metric]."""
    rows = []
    for task, v in (r.get("by_task") or {}).items():
        run, base = v.get("run") or {}, v.get("baseline") or {}
        rows.append([task, v.get("n"), [(base.get(m), run.get(m)) for m in metrics]])
    return rows


def _label_rows(r: dict[str, Any]) -> list[tuple[str, list[list[Any]]]]:
    """Per label task: (task, [[label, precision, recall, f1, support], ...]) of the round's run on test."""
    out = []
    for task, v in (r.get("by_task") or {}).items():
        labels = (v.get("run") or {}).get("labels") or {}
        if labels:
            out.append((task, [[lab, d.get("precision"), d.get("recall"), d.get("f1"), d.get("support")]
                               for lab, d in sorted(labels.items())]))
    return out


def _human(r: dict[str, Any]) -> list[dict[str, Any]]:
    """The round's human ratings (test, then dev evaluation) as table rows; empty without ratings."""
    rows = []
    for split, key, eval_key in (("test", "human", "eval_id"), ("dev", "human_dev", "dev_eval_id")):
        h = r.get(key)
        if h:
            corr = ", ".join(f"{m} {c['rho']:.3f} (n {c['n']})" for m, c in h["spearman"].items() if c["rho"] is not None)
            pairs = (h.get("agreement") or {}).get("pairs", [])
            agree = "; ".join(f"{p['a']}/{p['b']} n {p['n']}: exact {p['exact']:.2f}, kappa "
                              + ("-" if p["kappa_quadratic"] is None else f"{p['kappa_quadratic']:.2f}") for p in pairs)
            rows.append({"split": split, "eval_id": str(r.get(eval_key)), "mean": h["mean"], "ci_low": h["ci_low"],
                         "ci_high": h["ci_high"], "n": h["n"], "n_ratings": h["n_ratings"],
                         "reviewers": ", ".join(f"{k} {v}" for k, v in h["reviewers"].items()),
                         "spearman": corr or "-", "agreement": agree or "-"})
    return rows


def _verdict(r: dict[str, Any]) -> dict[str, Any]:
    """Whether the round beat its baseline on both ROUGE-L and key phrases, and the two deltas."""
    s, b = r.get("summary") or {}, r.get("baseline_summary") or {}
    deltas = [{"metric": m, "delta": s[m] - b[m]} for m in ("rougeL", "key_phrase_rate")
              if isinstance(s.get(m), int | float) and isinstance(b.get(m), int | float)]
    better = all(
        isinstance(s.get(m), int | float) and isinstance(b.get(m), int | float) and s[m] > b[m]
        for m in ("rougeL", "key_phrase_rate")
    )
    return {"better": better, "deltas": deltas}
