"""Human ratings and A/B choices (evals.human): statistics against hand-computed values, and where they show up."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from curator.cli import main
from evals.human import agreement, spearman, student_t_ppf, summary, weighted_kappa, wilson, win_rate


def _run(*args: str) -> Any:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


# -- statistics --------------------------------------------------------------------------------------------------
def test_spearman_by_hand() -> None:
    # no ties: d = (0, 1, 1, 0), rho = 1 - 6 * 2 / (4 * 15) = 0.8
    assert spearman([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(0.8)
    # ties get average ranks: x ranks (1, 2.5, 2.5, 4); rho = 4.5 / sqrt(4.5 * 5)
    assert spearman([1, 2, 2, 3], [1, 2, 3, 4]) == pytest.approx(4.5 / (4.5 * 5) ** 0.5)
    assert spearman([3, 2, 1], [1, 2, 3]) == pytest.approx(-1.0)
    assert spearman([1, 2], [2, 1]) is None          # fewer than 3 pairs
    assert spearman([1, 2, 3], [5, 5, 5]) is None    # a constant side


def test_spearman_matches_scipy() -> None:
    stats = pytest.importorskip("scipy.stats")
    x = [1, 2, 2, 3, 5, 4, 4, 1]
    y = [0.1, 0.3, 0.2, 0.2, 0.9, 0.5, 0.7, 0.0]
    assert spearman(x, y) == pytest.approx(stats.spearmanr(x, y).statistic, abs=1e-12)


def test_weighted_kappa_by_hand() -> None:
    assert weighted_kappa([1, 2, 3], [1, 2, 3]) == pytest.approx(1.0)
    # opposite corners: observed weighted disagreement 1, expected 0.5 -> 1 - 1 / 0.5
    assert weighted_kappa([1, 5], [5, 1]) == pytest.approx(-1.0)
    assert weighted_kappa([4, 4], [4, 4]) is None    # no expected disagreement
    metrics = pytest.importorskip("sklearn.metrics")
    a, b = [1, 2, 3, 4, 5, 3, 2], [1, 3, 3, 5, 4, 3, 1]
    assert weighted_kappa(a, b) == pytest.approx(
        metrics.cohen_kappa_score(a, b, weights="quadratic", labels=[1, 2, 3, 4, 5]))


def test_t_quantile_and_wilson_by_hand() -> None:
    # t tables: t(0.975; 1) = 12.706, t(0.975; 4) = 2.776, t(0.975; 10) = 2.228, t(0.95; 3) = 2.353
    for q, df, want in ((0.975, 1, 12.7062), (0.975, 4, 2.7764), (0.975, 10, 2.2281), (0.95, 3, 2.3534)):
        assert student_t_ppf(q, df) == pytest.approx(want, abs=1e-4)
    assert student_t_ppf(0.025, 4) == pytest.approx(-2.7764, abs=1e-4)
    # 7 of 10: the Wilson 95 % interval is [0.3968, 0.8922]
    lo, hi = wilson(7, 10)
    assert (lo, hi) == (pytest.approx(0.39678, abs=1e-5), pytest.approx(0.89221, abs=1e-5))
    assert wilson(0, 0) == (None, None)
    stats = pytest.importorskip("scipy.stats")
    assert student_t_ppf(0.975, 7) == pytest.approx(stats.t.ppf(0.975, 7), abs=1e-9)


# -- a workspace with ratings ----------------------------------------------------------------------------------
def _rate(ws: Any, eval_id: str, rows: list[tuple[str, str, int, str]]) -> None:
    """rows: (example_id, reviewer, rating, created_at)."""
    with ws.transaction() as con:
        for ex, reviewer, rating, at in rows:
            con.execute("INSERT INTO human_ratings (eval_id, example_id, reviewer, rating, created_at) "
                        "VALUES (?, ?, ?, ?, ?)", [eval_id, ex, reviewer, rating, at])


def _choose(ws: Any, rows: list[tuple[str, str, str, str, str, str]]) -> None:
    """rows: (left_eval, right_eval, example_id, reviewer, choice, created_at)."""
    with ws.transaction() as con:
        for row in rows:
            con.execute("INSERT INTO human_choices (left_eval, right_eval, example_id, reviewer, choice, created_at) "
                        "VALUES (?, ?, ?, ?, ?, ?)", list(row))


@pytest.fixture
def rated(make_eval: Callable[..., str], test_ids: list[str], snap_ws: Any) -> dict[str, Any]:
    """Two evaluations; A's first four answers rated by alice (all) and bob (two), and A/B choices in both orders."""
    ex = test_ids[:4]
    rouge, em = [0.9, 0.5, 0.6, 0.1], [1.0, 0.0, 0.0, 0.0]
    a = make_eval("runa", {i: {"rougeL": r, "exact_match": e, "length_ratio": 1.0}
                           for i, r, e in zip(ex, rouge, em, strict=True)})
    b = make_eval("runb", {i: {"rougeL": 0.3, "exact_match": 0.0} for i in test_ids})
    t0, t1 = "2026-12-01 10:00:00", "2026-12-01 11:00:00"
    _rate(snap_ws, a, [(ex[0], "alice", 5, t0), (ex[1], "alice", 4, t0), (ex[2], "alice", 2, t0),
                       (ex[3], "alice", 3, t0), (ex[3], "alice", 1, t1),  # re-rated: the later 1 counts
                       (ex[0], "bob", 4, t0), (ex[1], "bob", 4, t0)])
    _choose(snap_ws, [(a, b, ex[0], "alice", "left", t0), (a, b, ex[1], "alice", "left", t0),
                      (a, b, ex[2], "alice", "left", t0), (a, b, ex[3], "alice", "left", t0),
                      (a, b, ex[3], "alice", "right", t1),  # changed her mind: the later choice counts
                      (b, a, ex[0], "bob", "right", t0),    # shown the other way round: still a win for A
                      (b, a, ex[1], "bob", "tie", t0)])
    return {"a": a, "b": b, "ex": ex}


def test_summary_by_hand(rated: dict[str, Any], snap_ws: Any, make_eval: Callable[..., str],
                         test_ids: list[str]) -> None:
    h = summary(snap_ws, rated["a"])
    assert h is not None
    # per answer: (5 + 4) / 2, (4 + 4) / 2, 2, 1 -> mean 2.875, sd sqrt(8.1875 / 3), t(0.975; 3) = 3.18245:
    # 2.875 +- 2.6287 = [0.246, 5.504], clipped to the 1-5 scale
    assert (h["n"], h["n_ratings"]) == (4, 6)
    assert h["mean"] == pytest.approx(2.875)
    assert (h["ci_low"], h["ci_high"]) == (1.0, 5.0)
    assert h["reviewers"] == {"alice": 4, "bob": 2}
    assert h["distribution"] == {"1": 1, "2": 1, "3": 0, "4": 3, "5": 1}
    # human (4.5, 4, 2, 1) vs rougeL (0.9, 0.5, 0.6, 0.1): d = (0, 1, 1, 0) -> 0.8
    assert h["spearman"]["rougeL"] == {"rho": pytest.approx(0.8), "n": 4}
    # vs exact_match (1, 0, 0, 0): ranks (4, 2, 2, 2) -> 3 / sqrt(5 * 3)
    assert h["spearman"]["exact_match"]["rho"] == pytest.approx(3 / 15 ** 0.5)
    assert h["spearman"]["length_ratio"] == {"rho": None, "n": 4}  # constant metric
    assert summary(snap_ws, rated["b"]) is None
    # six answers rated 3, 4, 4, 3, 4, 5: mean 23/6, sd sqrt(2.8333 / 5), t(0.975; 5) = 2.570582
    c = make_eval("runc", {i: {"rougeL": 0.5} for i in test_ids})
    _rate(snap_ws, c, [(i, "carol", r, "2026-12-01 10:00:00") for i, r in zip(test_ids, [3, 4, 4, 3, 4, 5], strict=True)])
    hc = summary(snap_ws, c)
    assert hc is not None and hc["mean"] == pytest.approx(23 / 6)
    half = 2.570582 * (17 / 6 / 5) ** 0.5 / 6 ** 0.5
    assert (hc["ci_low"], hc["ci_high"]) == (pytest.approx(23 / 6 - half, abs=1e-5), pytest.approx(23 / 6 + half, abs=1e-5))
    assert hc["ci_low"] == pytest.approx(3.0434, abs=1e-4) and hc["ci_high"] == pytest.approx(4.6233, abs=1e-4)
    assert hc["spearman"]["rougeL"] == {"rho": None, "n": 6} and hc["agreement"] is None


def test_agreement_by_hand(rated: dict[str, Any], snap_ws: Any) -> None:
    ag = agreement(snap_ws, rated["a"])
    assert ag is not None and ag["reviewers"] == ["alice", "bob"]
    (pair,) = ag["pairs"]
    # shared: (5, 4) and (4, 4): one exact, both within 1; kappa 1 - (0.5/16) / (0.5/16) = 0; bob is constant
    assert (pair["a"], pair["b"], pair["n"], pair["exact"], pair["within_1"]) == ("alice", "bob", 2, 0.5, 1.0)
    assert pair["kappa_quadratic"] == pytest.approx(0.0)
    assert pair["spearman"] is None
    assert agreement(snap_ws, rated["b"]) is None


def test_win_rate_in_either_order(rated: dict[str, Any], snap_ws: Any) -> None:
    w = win_rate(snap_ws, rated["a"], rated["b"])
    assert w is not None
    assert (w["wins"], w["losses"], w["ties"], w["n"]) == (4, 1, 1, 6)
    assert w["win_rate"] == pytest.approx(4.5 / 6)
    # Wilson 95 % of 4.5 / 6: centre (0.75 + z^2/12) / (1 + z^2/6), half z sqrt(0.75*0.25/6 + z^2/144) / (1 + z^2/6)
    z2 = 1.959963985 ** 2
    centre = (0.75 + z2 / 12) / (1 + z2 / 6)
    half = 1.959963985 * (0.75 * 0.25 / 6 + z2 / 144) ** 0.5 / (1 + z2 / 6)
    assert (w["ci_low"], w["ci_high"]) == (pytest.approx(centre - half), pytest.approx(centre + half))
    assert w["ci_low"] == pytest.approx(0.3648, abs=1e-4) and w["ci_high"] == pytest.approx(0.9400, abs=1e-4)
    back = win_rate(snap_ws, rated["b"], rated["a"])
    assert back is not None and (back["wins"], back["losses"], back["ties"]) == (1, 4, 1)
    assert back["win_rate"] == pytest.approx(1.5 / 6)
    assert win_rate(snap_ws, rated["a"], "nothing") is None


# -- where they show up ----------------------------------------------------------------------------------------
def test_compare_shows_human_ratings(rated: dict[str, Any], make_eval: Callable[..., str],
                                     test_ids: list[str], tmp_path: Path) -> None:
    res = _run("compare", rated["a"], rated["b"], "--json", "--html", str(tmp_path / "r.html"))
    assert res.exit_code == 0, res.output
    h = json.loads(res.stdout)["human"]
    assert h["run"]["mean"] == pytest.approx(2.875) and h["run"]["n"] == 4 and h["baseline"] is None
    assert (h["win_rate"]["wins"], h["win_rate"]["losses"], h["win_rate"]["ties"]) == (4, 1, 1)
    html = (tmp_path / "r.html").read_text()
    assert "Human review" in html and "human A/B: run wins 4, baseline wins 1, ties 1 (n 6)" in html
    text = _run("compare", rated["a"], rated["b"])
    assert "run human rating: mean 2.88 [1.00, 5.00] (95% t CI)" in text.stdout and "over 4 answer(s), 6 rating(s) by alice 4, bob 2" \
        in text.stdout
    assert "Spearman with the human rating: exact_match 0.775 (n 4), rougeL 0.800 (n 4)" in text.stdout
    assert "agreement alice / bob: 2 shared, exact 0.50, within 1 1.00, quadratic-weighted kappa 0.00" in text.stdout
    assert "human A/B: run wins 4, baseline wins 1, ties 1 (n 6): win rate 0.75 [0.36, 0.94]" in text.stdout
    # without any rating or choice: null in JSON, nothing in the text or the HTML
    c = make_eval("runc", {i: {"rougeL": 0.2, "exact_match": 0.0} for i in test_ids})
    quiet = _run("compare", c, rated["b"], "--json", "--html", str(tmp_path / "q.html"))
    assert quiet.exit_code == 0 and json.loads(quiet.stdout)["human"] is None
    assert "Human review" not in (tmp_path / "q.html").read_text()
    assert "human" not in _run("compare", c, rated["b"]).stdout


def test_eval_command_shows_human_ratings(snap_ws: Any, tiny_model_dir: Path) -> None:
    common = ["eval", "--run", "base", "--base-model", str(tiny_model_dir), "--max-new-tokens", "2", "--limit", "3"]
    first = _run(*common, "--json")
    assert first.exit_code == 0, first.output
    out = json.loads(first.stdout)
    assert out["human"] is None
    assert "human" not in _run(*common).stdout
    with snap_ws.connect() as con:
        ids = [r[0] for r in con.execute("SELECT example_id FROM eval_results WHERE eval_id = ? ORDER BY 1",
                                         [out["id"]]).fetchall()]
    _rate(snap_ws, out["id"], [(ids[0], "alice", 2, "2026-12-01 10:00:00"), (ids[1], "alice", 4, "2026-12-01 10:00:00")])
    again = json.loads(_run(*common, "--json").stdout)
    assert again["cached"] and again["human"]["mean"] == pytest.approx(3.0) and again["human"]["n"] == 2
    # two answers: 3 +- t(0.975; 1) * sqrt(2) / sqrt(2) = 3 +- 12.706, clipped to the 1-5 scale
    assert (again["human"]["ci_low"], again["human"]["ci_high"]) == (1.0, 5.0)
    text = _run(*common).stdout
    assert "human rating: mean 3.00 [1.00, 5.00] (95% t CI) over 2 answer(s), 2 rating(s) by alice 2" in text


def test_rounds_list_and_report_show_human_ratings(rated: dict[str, Any], snap_ws: Any, tmp_path: Path) -> None:
    from curator.loop.report import write_round_report
    from curator.loop.rounds import _set_round, list_rounds

    for n, ev in ((1, rated["b"]), (2, rated["a"])):
        _set_round(snap_ws, n, task="support", snapshot_id="s", run_id=f"run{n}", eval_id=ev, dev_eval_id=None,
                   status="done", eval={"summary": {"rougeL": 0.3}, "baseline": "base",
                                        "baseline_summary": {"rougeL": 0.2}})
    rows = list_rounds(snap_ws)
    assert rows[0]["human"] is None and rows[1]["human"]["n"] == 4 and rows[1]["human_dev"] is None
    listed = _run("rounds", "list")
    assert listed.exit_code == 0 and "test human" in listed.stdout
    lines = listed.stdout.splitlines()
    assert lines[-1].rstrip().endswith("2.88 (4)") and lines[-2].rstrip().endswith("-")
    as_json = json.loads(_run("rounds", "list", "--json").stdout)
    assert as_json[1]["human"]["mean"] == pytest.approx(2.875) and as_json[0]["human"] is None
    html = write_round_report(snap_ws, tmp_path / "rounds.html").read_text()
    assert "Human ratings (curator review)" in html and "alice 4, bob 2" in html and "rougeL 0.800 (n 4)" in html
