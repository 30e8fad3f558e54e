"""Slow checks: the real SmolLM2 on a real snapshot, and a 2-process (gloo) run under torchrun."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from trainer_helpers import build_snapshot

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def test_real_smollm2_learns_the_support_format(ws: Any) -> None:
    from curator.data.ingest import ingest_file
    from curator.snapshots import create_snapshot
    from trainer import AdapterStack, train

    ingest_file(ws, ROOT / "seeds/support/seeds.jsonl", origin="seed", task="support")
    ingest_file(ws, ROOT / "seeds/support/test.jsonl", split="test", task="support")
    snap = create_snapshot(ws)
    run = train(ws, snap.id, overrides=["max_steps=6", "eval_steps=3", "logging_steps=1"], progress=False,
                log=lambda m: None)
    losses = [v for _, v in run.metrics["history"]["train_loss"]]
    assert run.status == "succeeded" and run.metrics["global_step"] == 6
    assert min(losses[-3:]) < losses[0]  # learning, visibly, within a few steps
    assert (ws.path / run.adapter_path / "adapter_model.safetensors").stat().st_size > 1_000_000
    test = json.loads((ROOT / "seeds/support/test.jsonl").read_text().splitlines()[0])
    stack = AdapterStack(ws, [run.id])
    out = stack.generate(run.id, [test["messages"][:-1]], max_new_tokens=24)[0].text
    assert out.strip()


def test_two_processes_with_gloo_under_torchrun(ws: Any, tmp_path: Path, tiny_model_dir: Path) -> None:
    from trainer import list_runs

    sid = build_snapshot(ws, tmp_path)
    torchrun = Path(sys.executable).parent / "torchrun"
    cmd = [str(torchrun), "--nproc_per_node", "2", "-m", "curator", "-w", str(ws.path), "train", "--snapshot", sid,
           "--no-progress", f"base_model={tiny_model_dir}", "max_steps=4", "batch_size=2", "eval_steps=2",
           "logging_steps=1", "max_seq_length=128", "precision=fp32", "lora_r=4"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600,
                         env=dict(os.environ, OMP_WAIT_POLICY="PASSIVE"), cwd=ROOT)
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stdout.count("succeeded") == 1  # only the main process reports
    (run,) = list_runs(ws)
    assert run.status == "succeeded" and run.metrics["hardware"]["world_size"] == 2
    assert run.metrics["global_step"] == 4 and (ws.path / run.adapter_path / "adapter_model.safetensors").exists()


def test_real_smollm2_adapter_travels_and_exports_to_gguf(ws: Any, tmp_path: Path) -> None:
    """The bundled model end to end: the card and adapter_config name the hub id; the adapter folder, copied
    elsewhere, loads with plain PEFT on the base loaded separately; the f32 GGUF export, reloaded with
    transformers' GGUF loader, gives the same greedy tokens on 3 prompts as curator's own loading."""
    import shutil

    from peft import PeftModel
    from trainer_helpers import PROMPTS, greedy, reload_gguf
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from curator.data.ingest import ingest_file
    from curator.models import load_model, render_chat, resolve_model
    from curator.snapshots import create_snapshot
    from trainer import train
    from trainer.gguf_export import export_gguf
    from trainer.modelcard import read_model_card

    ingest_file(ws, ROOT / "seeds/support/seeds.jsonl", origin="seed", task="support")
    run = train(ws, create_snapshot(ws).id, overrides=["max_steps=2", "eval_steps=0", "logging_steps=1"],
                progress=False, log=lambda m: None)
    adapter = ws.path / run.adapter_path
    assert read_model_card(adapter)["base_model"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert json.loads((adapter / "adapter_config.json").read_text())["base_model_name_or_path"] == \
        "HuggingFaceTB/SmolLM2-135M-Instruct"

    ours, our_tok = load_model("local:smollm2-135m-instruct", adapters={"a": adapter})
    expected = greedy(ours, our_tok)

    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(adapter, elsewhere)
    base_dir = str(resolve_model("local:smollm2-135m-instruct"))  # the machine's copy of the base model
    theirs = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base_dir), str(elsewhere)).eval()
    assert greedy(theirs, AutoTokenizer.from_pretrained(base_dir)) == expected

    out = export_gguf(ws, run.id, tmp_path / "support-f32.gguf", outtype="f32")
    g_model, g_tok = reload_gguf(out)
    for conv in PROMPTS:
        text = render_chat(our_tok, conv, add_generation_prompt=True)
        assert g_tok(text, add_special_tokens=False)["input_ids"] == our_tok(text, add_special_tokens=False)["input_ids"]
    got = greedy(g_model, g_tok)
    print("\nGGUF f32 reload vs curator, greedy tokens on 3 prompts:")
    for conv, a, b in zip(PROMPTS, expected, got, strict=True):
        print(f"  {conv[-1]['content']!r}: identical={a == b} {our_tok.decode(b)!r}")
    assert got == expected
