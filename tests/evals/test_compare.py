"""The regression report on hand-made evaluations: statistics, verdicts, lists, outputs."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from curator.errors import CuratorError
from evals.compare import bootstrap_ci, compare, mcnemar, parse_criterion, render_text
from evals.report import render_html


def _scores(**kw: Any) -> dict[str, Any]:
    base = {"exact_match": 0.0, "bleu": 10.0, "rouge1": 0.3, "rouge2": 0.1, "rougeL": 0.3, "key_phrase_rate": 0.5,
            "length_ratio": 1.0, "loss": 2.0}
    return {**base, **kw}


def test_mcnemar_exact_and_chi_square() -> None:
    t = mcnemar([True] * 1 + [False] * 9 + [True] * 5, [False] * 1 + [True] * 9 + [True] * 5)
    assert (t.broken, t.fixed, t.both_pass, t.both_fail) == (1, 9, 5, 0)
    assert t.method == "exact binomial"
    assert t.p_value == pytest.approx(2 * (1 + 10) / 1024)  # 2 * P(X <= 1), X ~ Bin(10, 1/2)
    assert mcnemar([True, False], [True, False]).p_value == 1.0
    assert mcnemar([True] * 3, [False] * 3).p_value == pytest.approx(0.25)
    big = mcnemar([True] * 10 + [False] * 30, [False] * 10 + [True] * 30)
    assert big.method.startswith("chi-square") and big.statistic == pytest.approx(19**2 / 40)
    assert big.p_value == pytest.approx(0.0026631, rel=1e-4)  # chi2.sf(9.025, df=1)


def test_bootstrap_ci_is_seeded_and_close_to_the_normal_interval() -> None:
    rng = np.random.default_rng(1)
    d = rng.normal(0.3, 1.0, size=400)
    mask = np.ones_like(d, dtype=bool)
    res = np.random.default_rng(0).integers(0, d.size, size=(2000, d.size))
    lo, hi = bootstrap_ci(d, mask, res)
    half = 1.96 * d.std(ddof=1) / math.sqrt(d.size)
    assert lo == pytest.approx(d.mean() - half, abs=0.25 * half)
    assert hi == pytest.approx(d.mean() + half, abs=0.25 * half)
    assert bootstrap_ci(d, mask, res) == (lo, hi)
    masked = mask.copy()
    masked[:200] = False  # masked entries do not count
    lo2, hi2 = bootstrap_ci(d, masked, res)
    assert lo2 < d[200:].mean() < hi2


def test_parse_criterion() -> None:
    assert parse_criterion("rougeL>=0.5") == ("rougeL", ">=", 0.5)
    assert parse_criterion(" loss < 2 ") == ("loss", "<", 2.0)
    with pytest.raises(CuratorError, match="bad pass criterion"):
        parse_criterion("rougeL is good")


def test_clear_improvement_and_lists(make_eval: Callable[..., str], test_ids: list[str]) -> None:
    base = make_eval("base", {i: _scores() for i in test_ids})
    run_scores = {i: _scores(rougeL=0.6, bleu=25.0, loss=1.5, length_ratio=1.2) for i in test_ids}
    run_scores[test_ids[0]] = _scores(exact_match=1.0, rougeL=1.0, bleu=100.0, loss=0.5)
    run = make_eval("run1", run_scores, predictions={test_ids[0]: "the exact answer"})
    cmp = compare(_ws_of(make_eval), "run1", "base", pass_criterion="rougeL>=0.5")
    assert cmp.run["eval_id"] == run and cmp.baseline["eval_id"] == base and cmp.n_paired == 6
    r = cmp.metric("rougeL")
    assert r.delta == pytest.approx((0.3 * 5 + 0.7) / 6) and r.verdict == "better" and r.ci_low > 0
    assert cmp.metric("loss").verdict == "better" and cmp.metric("loss").direction == -1
    assert cmp.metric("length_ratio").verdict in ("changed", "no clear change")
    assert not cmp.regressions
    assert (cmp.mcnemar.fixed, cmp.mcnemar.broken) == (1, 0)
    assert len(cmp.fixed) == 6 and not cmp.broken  # every example crossed rougeL >= 0.5
    first = next(c for c in cmp.fixed if c.example_id == test_ids[0])
    assert first.run_prediction == "the exact answer" and first.baseline_prediction == "prediction of base"
    assert first.prompt and first.reference and first.task in ("support", "billing")
    assert set(cmp.by_task) == {"support", "billing"}
    assert {m.n for m in cmp.by_task["billing"]} == {2}
    d = cmp.to_dict()
    json.dumps(d, allow_nan=False)
    assert d["regressions"] == [] and d["metrics"][0]["metric"] == "exact_match" and "regression" in d["metrics"][0]
    text = render_text(cmp)
    assert "rougeL" in text and "regressions (CI entirely on the worse side of 0): none" in text


def _ws_of(make_eval: Callable[..., str]) -> Any:
    from curator.workspace import Workspace

    return Workspace()


def test_regression_needs_the_whole_ci_below_zero(make_eval: Callable[..., str], test_ids: list[str]) -> None:
    ws = _ws_of(make_eval)
    make_eval("base", {i: _scores() for i in test_ids})
    make_eval("worse", {i: _scores(rougeL=0.1, key_phrase_rate=0.0, loss=3.0) for i in test_ids})
    cmp = compare(ws, "worse", "base")
    assert cmp.regressions == ["rougeL", "key_phrase_rate", "loss"]
    assert cmp.metric("rougeL").ci_high < 0
    mixed = {i: _scores(rougeL=0.3 + (0.2 if k % 2 else -0.2)) for k, i in enumerate(test_ids)}
    make_eval("mixed", mixed)
    cmp2 = compare(ws, "mixed", "base")
    r = cmp2.metric("rougeL")
    assert r.ci_low < 0 < r.ci_high and r.verdict == "no clear change" and not cmp2.regressions


def test_identical_runs_and_seeded_output(make_eval: Callable[..., str], test_ids: list[str]) -> None:
    ws = _ws_of(make_eval)
    rng = np.random.default_rng(3)
    make_eval("base", {i: _scores(rougeL=float(rng.random())) for i in test_ids})
    make_eval("r2", {i: _scores(rougeL=float(rng.random())) for i in test_ids})
    a, b = compare(ws, "r2", "base", seed=7).to_dict(), compare(ws, "r2", "base", seed=7).to_dict()
    assert a == b
    c = compare(ws, "r2", "base", seed=8).to_dict()
    assert a["metrics"][4]["delta"] == c["metrics"][4]["delta"]  # only the CI depends on the seed


def test_warnings_unpaired_and_errors(make_eval: Callable[..., str], test_ids: list[str]) -> None:
    ws = _ws_of(make_eval)
    make_eval("base", {i: _scores() for i in test_ids[:4]})
    make_eval("r3", {i: _scores() for i in test_ids[2:]}, params={"max_new_tokens": 64})
    cmp = compare(ws, "r3", "base")
    assert cmp.n_paired == 2 and cmp.only_in_run == 2 and cmp.only_in_baseline == 2
    assert any("max_new_tokens" in w for w in cmp.warnings) and any("left out" in w for w in cmp.warnings)
    with pytest.raises(CuratorError, match="no evaluation of 'nope'"):
        compare(ws, "nope", "base")
    with pytest.raises(CuratorError, match="same evaluation"):
        compare(ws, "base", "base")
    make_eval("r4", {"not-an-example": _scores()})
    with pytest.raises(CuratorError, match="share no example"):
        compare(ws, "r4", "base")


def test_html_report_is_self_contained(make_eval: Callable[..., str], test_ids: list[str]) -> None:
    ws = _ws_of(make_eval)
    make_eval("base", {i: _scores(exact_match=1.0) for i in test_ids}, predictions={test_ids[0]: "<b>bold</b>"})
    make_eval("r5", {i: _scores(rougeL=0.1) for i in test_ids})
    page = render_html(compare(ws, "r5", "base"))
    assert page.startswith("<!doctype html>") and "<svg" in page and "REGRESSION" in page
    assert "http://" not in page and "https://" not in page and "<link" not in page and "<script" not in page
    assert "&lt;b&gt;bold&lt;/b&gt;" in page  # predictions are escaped
    assert "Newly broken (exact_match&gt;=1) (6)" in page
