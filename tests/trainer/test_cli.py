"""CLI wiring: train, runs list|show, lineage, chat, export-model, and their errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from click.testing import CliRunner
from trainer_helpers import tiny_overrides

from curator.cli import main

ROOT = Path(__file__).resolve().parents[2]
CPU_CONFIG = str(ROOT / "configs" / "smollm2-lora-cpu.yaml")


def _cli(ws: Any, *args: str) -> Any:
    return CliRunner().invoke(main, ["-w", str(ws.path), *args])


def test_train_command_reuses_the_finished_run(trained: Any) -> None:
    res = _cli(trained.ws, "train", "--snapshot", trained.snapshot, "--config", CPU_CONFIG, "--no-progress",
               *tiny_overrides(trained.model_dir))
    assert res.exit_code == 0, res.output
    assert res.stdout.strip().startswith(f"run {trained.run.id} reused: adapter runs/{trained.run.id}/adapter")
    res = _cli(trained.ws, "train", "--snapshot", trained.snapshot, "--json", "--no-progress",
               *tiny_overrides(trained.model_dir))
    assert json.loads(res.stdout)["id"] == trained.run.id


def test_train_errors_exit_1(trained: Any) -> None:
    res = _cli(trained.ws, "train", "--snapshot", trained.snapshot, "--quantization", "4bit",
               *tiny_overrides(trained.model_dir))
    assert res.exit_code == 1 and "Error: " in res.stderr and "refused on CPU" in res.stderr
    res = _cli(trained.ws, "train", "--snapshot", trained.snapshot, "bogus=1", "max_steps=x")
    assert res.exit_code == 1 and "unknown key 'bogus'" in res.stderr and "max_steps: expected an integer" in res.stderr
    res = _cli(trained.ws, "train", "--snapshot", "nope")
    assert res.exit_code == 1 and "no snapshot 'nope'" in res.stderr


def test_runs_list_and_show(trained: Any) -> None:
    rid = trained.run.id
    res = _cli(trained.ws, "runs", "list")
    assert res.exit_code == 0, res.output
    header, rule, *rows = res.stdout.splitlines()
    assert header.split()[:3] == ["run", "kind", "status"]
    assert any(r.startswith(rid) and " sft " in r and "succeeded" in r for r in rows)
    listed = json.loads(_cli(trained.ws, "runs", "list", "--json").stdout)
    assert rid in [r["id"] for r in listed]
    res = _cli(trained.ws, "runs", "show", rid)
    assert res.exit_code == 0
    for expected in (f"run {rid} (sft) succeeded", f"snapshot     {trained.snapshot}", "train loss   1:",
                     "eval loss    2:", "peak RSS", "versions     torch"):
        assert expected in res.stdout, expected
    shown = json.loads(_cli(trained.ws, "runs", "show", rid[:12], "--json").stdout)
    assert shown["id"] == rid and shown["adapter_path"] == f"runs/{rid}/adapter"
    assert _cli(trained.ws, "runs", "show", "r-nope").exit_code == 1


def test_lineage_from_snapshot_to_evaluations(trained: Any) -> None:
    rid = trained.run.id
    res = _cli(trained.ws, "lineage", rid)
    assert res.exit_code == 0, res.output
    out = res.stdout
    assert f"snapshot {trained.snapshot}" in out
    assert "train     8 examples (import 8)" in out and "eval      4 examples (import 4)" in out
    assert f"-> run {rid} (sft, succeeded)" in out and "no evaluations yet" in out
    with trained.ws.connect() as con:  # what the evals side records
        con.execute("INSERT INTO evals (id, run_id, snapshot_id, split, summary) VALUES (?, ?, ?, 'test', ?)",
                    ["ev-1", rid, trained.snapshot, json.dumps({"rougeL": 0.5, "n": 2})])
    try:
        out = _cli(trained.ws, "lineage", rid).stdout
        assert "-> eval ev-1 on test" in out and "rougeL 0.500" in out
        d = json.loads(_cli(trained.ws, "lineage", rid, "--json").stdout)
        assert d["snapshot"]["examples"]["train"] == {"import": 8} and d["evals"][0]["summary"]["n"] == 2
    finally:
        with trained.ws.connect() as con:
            con.execute("DELETE FROM evals WHERE id = 'ev-1'")


def test_chat_compares_runs(trained: Any) -> None:
    rid = trained.run.id
    res = _cli(trained.ws, "chat", "--run", rid, "--run", "base", "--max-new-tokens", "3", "--json", "Hello?")
    assert res.exit_code == 0, res.output
    assert set(json.loads(res.stdout)) == {rid, "base"}
    res = _cli(trained.ws, "chat", "--run", rid, "--max-new-tokens", "2", "Hello?")
    assert res.exit_code == 0 and "---" not in res.stdout


def test_export_model_merges(trained: Any, tmp_path: Path) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    rid, out = trained.run.id, tmp_path / "merged"
    res = _cli(trained.ws, "export-model", rid, "--merge", "--out", str(out))  # --merge: accepted, implied
    assert res.exit_code == 0, res.output
    assert f"merged model written to {out}" in res.stdout
    merged = AutoModelForCausalLM.from_pretrained(str(out))
    peft = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(str(trained.model_dir)),
                                     str(trained.ws.path / trained.run.adapter_path))
    ids = torch.tensor([[5, 6, 7, 8]])
    with torch.no_grad():
        torch.testing.assert_close(merged(input_ids=ids).logits, peft(input_ids=ids).logits, rtol=1e-4, atol=1e-4)
    res = _cli(trained.ws, "export-model", rid, "--merge", "--out", str(out))
    assert res.exit_code == 1 and "--force" in res.stderr


@pytest.mark.parametrize("cmd", [["train"], ["runs"], ["runs", "list"], ["runs", "show"], ["runs", "resume"],
                                 ["lineage"], ["chat"], ["export-model"]])
def test_every_command_has_help(cmd: list[str]) -> None:
    res = CliRunner().invoke(main, [*cmd, "--help"])
    assert res.exit_code == 0 and len(res.stdout.splitlines()) > 3


def test_docs_cover_every_command() -> None:
    doc = (ROOT / "docs" / "training.md").read_text()
    for cmd in ("curator train", "curator runs list", "curator runs show", "curator runs resume", "curator lineage",
                "curator chat", "curator export-model", "accelerate launch", "--backend openai"):
        assert cmd in doc, cmd
