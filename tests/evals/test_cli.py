"""CLI wiring of eval, compare, evals, weaknesses and judge: exit codes, JSON, files."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from curator.cli import main


def _run(*args: str) -> Any:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_commands_are_registered_with_help() -> None:
    for cmd in ("eval", "compare", "evals", "weaknesses", "judge"):
        res = _run(cmd, "--help")
        assert res.exit_code == 0 and "Usage:" in res.output
    assert "--fail-on-regression" in _run("compare", "--help").output


def test_eval_then_cached_then_baseline(snap_ws: Any, tiny_model_dir: Path, tmp_path: Path) -> None:
    common = ["--base-model", str(tiny_model_dir), "--max-new-tokens", "4", "--limit", "3"]
    res = _run("eval", "--run", "base", *common, "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["run_id"] == "base" and out["summary"]["overall"]["n"] == 3 and not out["cached"]
    again = _run("eval", *common)
    assert again.exit_code == 0 and "cached" in again.stdout and "rougeL" in again.stdout
    listed = _run("evals", "--json")
    assert [e["id"] for e in json.loads(listed.stdout)] == [out["id"]]
    # comparing base with itself is refused; a second base model makes a real comparison
    html = tmp_path / "r.html"
    other = tmp_path / "other"
    import shutil

    shutil.copytree(tiny_model_dir, other)
    cmp = _run("eval", "--run", "base", "--base-model", str(other), "--max-new-tokens", "4", "--limit", "3",
               "--baseline", out["id"], "--html", str(html))
    assert cmp.exit_code == 0, cmp.output
    assert "paired examples" in cmp.stdout and "McNemar" in cmp.stdout and html.read_text().startswith("<!doctype")
    assert "different base models" in cmp.stdout


def test_compare_gate_and_errors(make_eval: Callable[..., str], test_ids: list[str], tmp_path: Path) -> None:
    make_eval("base", {i: {"rougeL": 0.5, "exact_match": 1.0} for i in test_ids})
    make_eval("bad", {i: {"rougeL": 0.1, "exact_match": 0.0} for i in test_ids})
    ok = _run("compare", "bad", "base", "--json")
    assert ok.exit_code == 0 and json.loads(ok.stdout)["regressions"] == ["exact_match", "rougeL"]
    gated = _run("compare", "bad", "--fail-on-regression")
    assert gated.exit_code == 1 and "regression beyond the CI in: exact_match, rougeL" in gated.stderr
    assert "newly broken (exact_match>=1): 6" in gated.stdout
    fine = _run("compare", "base", "bad", "--fail-on-regression")
    assert fine.exit_code == 0
    missing = _run("compare", "nope")
    assert missing.exit_code == 1 and missing.stderr.startswith("Error: no evaluation of 'nope'")
    bad_run = _run("eval", "--run", "nope")
    assert bad_run.exit_code == 1 and "Error: no run 'nope'" in bad_run.stderr


def test_weaknesses_command_writes_groups(make_eval: Callable[..., str], test_ids: list[str], tmp_path: Path) -> None:
    make_eval("r1", {i: {"rougeL": k / 10} for k, i in enumerate(test_ids)})
    out = tmp_path / "weak.jsonl"
    res = _run("weaknesses", "r1", "--fraction", "0.5", "--out", str(out), "--json")
    assert res.exit_code == 0, res.output
    groups = json.loads(res.stdout)
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert lines == groups and all(set(g) == {"id", "task", "description", "example_ids"} for g in groups)
    text = _run("weaknesses", "r1")
    assert text.exit_code == 0 and groups[0]["id"] in text.stdout
