"""The base-model bake-off on the two models that exist offline: the tiny random Llama and SmolLM2-135M."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from curator.cli import main
from curator.data.ingest import ingest_file
from curator.errors import CuratorError
from curator.loop.bakeoff import bakeoff, recommended_base
from curator.snapshots import create_snapshot
from curator.workspace import Workspace

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
SEEDS = Path(__file__).resolve().parents[2] / "seeds" / "support"


def _count(ws: Workspace) -> int:
    with ws.connect() as con:
        return int(con.execute("SELECT count(*) FROM eval_results").fetchall()[0][0])


def test_bakeoff_table_recommendation_and_cache(ws: Workspace, tiny_model_dir: Path) -> None:
    from curator.models import prepare

    prepare()
    ws.set_setting("split_ratios", [0.85, 0.15, 0.0])
    ingest_file(ws, SEEDS / "seeds.jsonl", task="support", origin="seed")
    ingest_file(ws, SEEDS / "test.jsonl", task="support", split="test", origin="seed")
    create_snapshot(ws)
    with pytest.raises(CuratorError, match="needs a bake-off first"):
        recommended_base(ws)
    models = [str(tiny_model_dir), "local:smollm2-135m-instruct"]
    r = CliRunner().invoke(main, ["bakeoff", "--models", ",".join(models), "--few-shot", "2", "--max-eval", "3",
                                  "--max-new-tokens", "12", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert [(row["model"], row["prompting"], row["n"]) for row in out["rows"]] == [
        (models[0], "zero_shot", 3), (models[0], "few_shot", 3), (models[1], "zero_shot", 3), (models[1], "few_shot", 3)]
    best = max(out["rows"], key=lambda row: row["rougeL"])
    assert out["recommendation"]["model"] == best["model"] == recommended_base(ws)
    # a random model does not beat an instruction-tuned one at answering support questions
    assert recommended_base(ws) == "local:smollm2-135m-instruct"
    n = _count(ws)
    again = bakeoff(ws, models, few_shot=2, max_eval=3, max_new_tokens=12)
    assert _count(ws) == n and [x["eval_id"] for x in again["rows"]] == [x["eval_id"] for x in out["rows"]]
    text = CliRunner().invoke(main, ["bakeoff", "--models", ",".join(models), "--few-shot", "2", "--max-eval", "3",
                                     "--max-new-tokens", "12"])
    assert text.exit_code == 0 and "recommended: local:smollm2-135m-instruct" in text.stdout
    assert "few-shot (2)" in text.stdout


def test_bakeoff_bad_input(ws: Workspace) -> None:
    with pytest.raises(CuratorError, match="at least one model"):
        bakeoff(ws, [" "])
    with pytest.raises(CuratorError, match="listed twice"):
        bakeoff(ws, ["a", "a"])
