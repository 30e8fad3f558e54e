"""The HTML kit: stored text shows up escaped in every report, and a template refuses an undefined name."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import pytest
from helpers import chat, write_jsonl

SCRIPT = "<script>alert(1)</script>"
BREAKOUT = '"><img src=x onerror=alert(1)>'
TASK = 'task"><img src=x onerror=alert(2)><script>alert(2)</script>'
RUN = "run<script>alert(3)</script>"


def _assert_escaped(page: str, *texts: str) -> None:
    """No injected tag survives, and each stored text is on the page as text (escaped)."""
    assert "<script" not in page.lower() and "<img" not in page.lower()
    for text in texts:
        assert text not in page
        assert text in html.unescape(page), f"{text!r} is not shown on the page"


def _audit_page(ws: Any, tmp_path: Path) -> str:
    from curator.data.ingest import ingest_file
    from curator.quality.audit import audit
    from curator.quality.audit_report import render_html

    essay = " ".join(f"word{i}" for i in range(60))
    rows = [chat(f"Question {i} about plants, {SCRIPT}?", f"{essay} {i}.") for i in range(4)]
    rows += [chat(f"question 0 about plants, {SCRIPT}", f"{essay} 0."),  # a duplicate of the first
             chat(f"Tell me {BREAKOUT}", f"As an AI language model, I cannot {SCRIPT}."),  # a refusal
             chat(f"Summarise {BREAKOUT}", "Ok.")]  # a very short answer
    ingest_file(ws, write_jsonl(tmp_path / "a.jsonl", rows), task=TASK, split="train")
    ingest_file(ws, write_jsonl(tmp_path / "t.jsonl", [chat(f"Question 1 about plants, {SCRIPT}?", f"{essay} 1.")]),
                task=TASK, split="test")
    page = render_html(audit(ws), tmp_path / "audit.html", failed=[f"leakage>0 ({SCRIPT})"],
                       title=f"Audit {BREAKOUT}").read_text(encoding="utf-8")
    return page


def _round_page(ws: Any, tmp_path: Path) -> str:
    from curator.loop.report import write_round_report
    from curator.loop.rounds import _set_round

    fixed = [{"prompt": f"Why {SCRIPT}?", "reference": BREAKOUT, "baseline_prediction": SCRIPT,
              "run_prediction": BREAKOUT}]
    for n, (rouge, base) in enumerate([(0.4, 0.1), (0.3, 0.4)], start=1):
        _set_round(ws, n, task=TASK, snapshot_id=f"snap{n}{BREAKOUT}", run_id=f"{RUN}{n}", eval_id=f"ev{n}{SCRIPT}",
                   status="done", batch={"added": 3}, eval={
                       "summary": {"rougeL": rouge, "key_phrase_rate": 0.2 * n, "bleu": 10.0 * n, "exact_match": 0.0},
                       "baseline": "base" if n == 1 else f"{RUN}{n - 1}",
                       "baseline_summary": {"rougeL": base, "key_phrase_rate": 0.2 * (n - 1), "bleu": 10.0 * (n - 1),
                                            "exact_match": 0.0},
                       "comparison": {"regressions": [] if rouge > base else [f"rougeL{SCRIPT}"], "fixed": fixed,
                                      "broken": fixed}})
    page = write_round_report(ws, tmp_path / "rounds.html").read_text(encoding="utf-8")
    return page


def _eval_page(ws: Any, tmp_path: Path) -> str:
    from curator.data.ingest import ingest_file
    from curator.snapshots import create_snapshot, read_split
    from evals.compare import compare
    from evals.report import render_html

    rows = [chat(f"Question {i}: {SCRIPT}", f"Answer {i}: {BREAKOUT}") for i in range(4)]
    ingest_file(ws, write_jsonl(tmp_path / "test.jsonl", rows), task=TASK, split="test")
    ingest_file(ws, write_jsonl(tmp_path / "train.jsonl", [chat(f"Train {i}?", f"Yes {i}.") for i in range(4)]),
                task="support", split="train")
    snap = create_snapshot(ws, name="s1").id
    ids = sorted(r["id"] for r in read_split(ws, snap, "test"))
    params = {"max_new_tokens": 8, "temperature": 0.0, "seed": 0, "limit": None, "scorer_version": 1,
              "base_model": "tiny", "base_model_fingerprint": "tiny"}
    with ws.connect() as con:
        for eid, run, em in (("evbase", "base", 1.0), ("evrun", RUN, 0.0)):
            con.execute("INSERT INTO evals (id, run_id, snapshot_id, split, params, summary, status) "
                        "VALUES (?, ?, ?, 'test', ?, ?, 'complete')",
                        [eid, run, snap, json.dumps(params), json.dumps({"overall": {"n": len(ids)}})])
            for k, ex in enumerate(ids):
                scores = {"exact_match": em, "rougeL": 0.9 - 0.5 * (1 - em) - 0.01 * k, "key_phrase_rate": 0.5,
                          "bleu": 40.0, "loss": 1.0}
                con.execute("INSERT INTO eval_results (eval_id, run_id, example_id, prediction, scores, meta) "
                            "VALUES (?, ?, ?, ?, ?, ?)",
                            [eid, run, ex, f"{run} says {SCRIPT} {BREAKOUT}", json.dumps(scores), "{}"])
    page = render_html(compare(ws, RUN, "base", n_boot=200))
    return page


def test_audit_report_escapes_stored_text(ws: Any, tmp_path: Path) -> None:
    page = _audit_page(ws, tmp_path)
    _assert_escaped(page, SCRIPT, BREAKOUT, TASK)
    assert page.startswith("<!DOCTYPE html>") and "Failed rules:" in page


def test_round_report_escapes_stored_text(ws: Any, tmp_path: Path) -> None:
    page = _round_page(ws, tmp_path)
    _assert_escaped(page, SCRIPT, BREAKOUT, TASK, f"{RUN}1", f"snap1{BREAKOUT}")
    assert page.count("<svg") >= 3


def test_eval_report_escapes_stored_text(ws: Any, tmp_path: Path) -> None:
    page = _eval_page(ws, tmp_path)
    _assert_escaped(page, SCRIPT, BREAKOUT, TASK, RUN)
    assert page.startswith("<!doctype html>") and "REGRESSION" in page


def test_charts_escape_the_text_they_embed() -> None:
    from markupsafe import Markup

    from curator.html.charts import bar_chart, ci_bar, histogram, line_chart, stacked_bars, stacked_rows

    charts = [
        line_chart({RUN: [(0, 1.0), (1, 2.0)]}, title=TASK, x_label=SCRIPT, y_label=BREAKOUT,
                   x_ticks=[(0.0, SCRIPT), (1.0, BREAKOUT)]),
        line_chart({}, title=TASK),
        stacked_bars({RUN: {TASK: 3, SCRIPT: 2}}, title=BREAKOUT),
        stacked_bars({}, title=TASK),
        histogram({"edges": [0, 10, 20], "counts": [7, 3], "overflow": 1}, TASK, BREAKOUT, SCRIPT),
        histogram({}, TASK, "#000", SCRIPT),
        stacked_rows({RUN: {TASK: 3, SCRIPT: 40}}, BREAKOUT),
        bar_chart({TASK: 3, SCRIPT: 1}, BREAKOUT, color=BREAKOUT, xlabel=SCRIPT),
        bar_chart({}, TASK),
        ci_bar(TASK, -0.1, -0.2, 0.05, "worse"),
    ]
    for svg in charts:
        assert isinstance(svg, Markup)  # a template puts it in as markup ...
        assert "<script" not in svg and "<img" not in svg and BREAKOUT not in svg  # ... which is safe
    assert TASK in html.unescape(charts[0]) and RUN in html.unescape(charts[0])


def test_templates_escape_and_refuse_undefined_names() -> None:
    from jinja2 import UndefinedError
    from markupsafe import escape

    from curator.html import environment, render

    env = environment()
    assert env is environment()  # built once
    page = env.from_string('{% import "_macros.html" as m %}{{ m.table(["a", "b", "c"], rows, text_cols=[2]) }}'
                           "{{ m.chat(turns) }}{{ m.metric_cell(none_value) }}{{ m.metric_cell(0.12345, 2, true) }}")
    out = page.render(rows=[[SCRIPT, 0.5, BREAKOUT], [1234, "f" * 64, None]], none_value=None,
                      turns=[{"role": "user", "content": SCRIPT}, {"role": BREAKOUT, "content": None}])
    assert "<script" not in out and "<img" not in out and SCRIPT in html.unescape(out)
    assert '<td class="num">1,234</td>' in out and f'<code title="{"f" * 64}">{"f" * 16}</code>' in out
    assert f'<td class="txt">{escape(BREAKOUT)}</td>' in out and '<td class="txt"></td>' in out
    assert '<td class="num">-</td>' in out and '<td class="num">+0.12</td>' in out
    assert '<div class="turn user"><div class="role">user</div>' in out
    assert '<p class="muted">none</p>' in env.from_string('{% import "_macros.html" as m %}{{ m.table([], []) }}').render()
    with pytest.raises(UndefinedError):
        render("round_report.html")  # `rounds` is not given
    with pytest.raises(UndefinedError):
        env.from_string("{{ missing }}").render()
    with pytest.raises(UndefinedError):
        env.from_string("{{ row.nope }}").render(row={"label": "x"})


def test_the_pages_share_one_base(tmp_path: Path) -> None:
    from curator.html import render, write_page

    out = write_page(tmp_path / "sub" / "r.html", "round_report.html", rounds=[])
    page = out.read_text(encoding="utf-8")
    assert page == render("round_report.html", rounds=[]) and "No rounds yet" in page
    assert "<style>" in page and "curator-loop" in page and page.rstrip().endswith("</html>")
