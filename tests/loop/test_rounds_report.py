"""Round history and the HTML round report, from recorded rounds (no model needed)."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from curator.cli import main
from curator.html.charts import line_chart, stacked_bars
from curator.loop.report import loss_history, metrics_table, write_round_report
from curator.loop.rounds import _next_round, _set_round, list_rounds
from curator.workspace import Workspace


def _record(ws, n: int, rouge: float, base: float, run: str) -> None:
    _set_round(ws, n, task="support", snapshot_id=f"snap{n}", run_id=run, eval_id=f"ev{n}", status="done", eval={
        "summary": {"rougeL": rouge, "key_phrase_rate": 0.2 * n, "bleu": 10.0 * n, "exact_match": 0.0},
        "baseline": "base" if n == 1 else f"run{n - 1}",
        "baseline_summary": {"rougeL": base, "key_phrase_rate": 0.2 * (n - 1), "bleu": 10.0 * (n - 1),
                             "exact_match": 0.0},
        "comparison": {"regressions": [] if rouge > base else ["rougeL"], "fixed": [
            {"prompt": "Why <b>?", "reference": "ref", "baseline_prediction": "old", "run_prediction": "new"}]},
    }, batch={"added": 3})


def test_history_table_and_report(ws, tmp_path: Path) -> None:
    assert _next_round(ws) == (1, False)
    _record(ws, 1, 0.40, 0.10, "run1")
    _set_round(ws, 2, status="trained")
    assert _next_round(ws) == (2, True)  # an unfinished round is resumed, not skipped
    _record(ws, 2, 0.35, 0.40, "run2")
    rows = list_rounds(ws)
    assert [r["round"] for r in rows] == [1, 2] and rows[1]["baseline"] == "run1"
    table = metrics_table(rows)
    assert [r["round"] for r in table] == [0, 1, 2] and table[0]["rougeL"] == 0.10
    run_dir = ws.runs_dir / "run1"
    run_dir.mkdir(parents=True)
    (run_dir / "metrics.jsonl").write_text(
        "\n".join(json.dumps(d) for d in [{"step": 5, "loss": 2.0}, {"step": 10, "loss": 1.5, "eval_loss": 1.8}]))
    assert loss_history(ws, "run1") == {"train loss": [(5.0, 2.0), (10.0, 1.5)], "eval loss": [(10.0, 1.8)]}
    out = write_round_report(ws, tmp_path / "r.html")
    html = out.read_text()
    assert html.count("<svg") >= 3 and "http" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "Why &lt;b&gt;?" in html  # example text is escaped
    assert "Round 2 vs run1: <b>not better on both ROUGE-L and key phrases</b>" in html
    assert "Regressions beyond the CI: rougeL" in html
    r = CliRunner().invoke(main, ["rounds", "list"])
    assert r.exit_code == 0 and "0.350 (-0.050)" in r.output


def test_empty_history(ws: Workspace) -> None:
    r = CliRunner().invoke(main, ["rounds", "list"])
    assert r.exit_code == 1 and "no workspace at" in r.output  # a read command creates nothing
    with ws.connect():
        pass
    r = CliRunner().invoke(main, ["rounds", "list"])
    assert r.exit_code == 0 and "no rounds yet" in r.output


def test_svg_charts_handle_empty_and_data() -> None:
    assert "no data" in line_chart({}, title="t")
    svg = line_chart({"a": [(0, 1.0), (1, 2.0)]}, title="t <x>")
    assert svg.startswith("<svg") and "t &lt;x&gt;" in svg and "polyline" in svg
    bars = stacked_bars({"r1": {"seed": 3, "synthetic": 2}}, title="b")
    assert bars.count("<rect") >= 4 and ">5<" in bars


def test_chart_axes_use_round_ticks() -> None:
    from curator.html.charts import bar_chart, histogram, nice_ticks

    assert nice_ticks(0, 300, 4) == [0, 100, 200, 300]
    assert nice_ticks(0, 350, 4) == [0, 100, 200, 300, 400]
    assert nice_ticks(0.12, 0.41) == [0.1, 0.2, 0.3, 0.4, 0.5]
    # Audit charts: a tallest bar of 300 gets gridlines at 0, 100, 200, 300 (it was 0, 125, 250, 375, 500).
    svg = bar_chart({"a": 300, "b": 120}, title="t")
    assert all(f">{v}</text>" in svg for v in ("0", "100", "200", "300")) and ">125<" not in svg
    hist = histogram({"edges": [0, 10, 20], "counts": [7, 3], "overflow": 0}, "h", "#000", "tokens")
    assert ">8</text>" in hist and ">2</text>" in hist
