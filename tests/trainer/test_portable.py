"""The adapter folder travels: its model card, a portable adapter_config.json, loading it elsewhere with plain
PEFT, hub ids as base_model, and the check against vLLM's LoRA constraints."""

from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from trainer_helpers import greedy, tiny_overrides

from curator.cli import main
from curator.errors import CuratorError
from trainer import list_runs, train
from trainer.adapters import VLLM_LLAMA_LORA_MODULES, check_vllm_lora
from trainer.modelcard import finalize_adapter, read_model_card
from trainer.runs import Run, get_run, insert_run


def test_the_adapter_folder_carries_a_model_card(trained: Any) -> None:
    run = get_run(trained.ws, trained.run.id)
    folder = trained.ws.path / run.adapter_path
    card = read_model_card(folder)
    assert card["base_model"] == str(trained.model_dir)  # a local folder stays as given
    assert card["library_name"] == "peft" and card["pipeline_tag"] == "text-generation"
    assert {"curator", "lora", "sft"} <= set(card["tags"])
    cur = card["curator"]
    assert (cur["run_id"], cur["snapshot_id"], cur["method"]) == (run.id, trained.snapshot, "sft")
    assert cur["config"] == run.config and cur["config"]["lora_r"] == 4
    assert cur["metrics"]["best_eval_loss"] == run.metrics["best_eval_loss"]
    assert cur["metrics"]["global_step"] == 2 and cur["train_examples"] == 8
    text = (folder / "README.md").read_text()
    assert "PeftModel.from_pretrained(base" in text and "pass your copy of that same model" in text
    assert json.loads((folder / "adapter_config.json").read_text())["base_model_name_or_path"] == str(trained.model_dir)


def test_the_adapter_loads_on_another_machine(trained: Any, tmp_path: Path) -> None:
    """Copied elsewhere, loaded with plain PEFT on a base loaded separately: the same greedy tokens as curator's
    own loading."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from curator.models import load_model

    elsewhere = tmp_path / "elsewhere" / "support-adapter"
    shutil.copytree(trained.ws.path / trained.run.adapter_path, elsewhere)
    base = AutoModelForCausalLM.from_pretrained(str(trained.model_dir))
    model = PeftModel.from_pretrained(base, str(elsewhere)).eval()
    tok = AutoTokenizer.from_pretrained(str(trained.model_dir))
    ours, our_tok = load_model(str(trained.model_dir), adapters={"a": trained.ws.path / trained.run.adapter_path})
    theirs = greedy(model, tok)
    assert theirs == greedy(ours, our_tok)
    assert all(len(t) > 0 for t in theirs)


def test_the_bundled_base_is_named_by_its_hub_id(trained: Any, tmp_path: Path) -> None:
    """A run on local:smollm2-135m-instruct: adapter_config.json and the card name HuggingFaceTB/SmolLM2-135M-Instruct
    and say how curator's copy differs (here on a copy of the tiny run's adapter: no SmolLM2 is loaded)."""
    ws = trained.ws
    rid = "r-20260101-000000-smol"
    shutil.copytree(ws.path / trained.run.adapter_path, ws.path / "runs" / rid / "adapter")
    try:
        run = insert_run(ws, Run(rid, "sft", trained.snapshot, "local:smollm2-135m-instruct",
                                 config=trained.run.config, adapter_path=f"runs/{rid}/adapter", status="succeeded",
                                 metrics={"train_loss": 1.5, "best_eval_loss": 1.7}))
        finalize_adapter(ws, run)
        folder = ws.path / "runs" / rid / "adapter"
        cfg = json.loads((folder / "adapter_config.json").read_text())
        assert cfg["base_model_name_or_path"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
        card = read_model_card(folder)
        assert card["base_model"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
        assert card["curator"]["base_model"] == "local:smollm2-135m-instruct"
        text = (folder / "README.md").read_text()
        assert 'from_pretrained("HuggingFaceTB/SmolLM2-135M-Instruct")' in text and "dequantized" in text
    finally:
        with ws.connect() as con:
            con.execute("DELETE FROM runs WHERE id = ?", [rid])
        shutil.rmtree(ws.path / "runs" / rid, ignore_errors=True)


def test_export_refreshes_the_card_with_evaluations(trained: Any, tmp_path: Path) -> None:
    rid = trained.run.id
    with trained.ws.connect() as con:
        con.execute("INSERT INTO evals (id, run_id, snapshot_id, split, summary) VALUES (?, ?, ?, 'test', ?)",
                    ["ev-card", rid, trained.snapshot, json.dumps({"rougeL": 0.25, "n": 2, "by_task": {"t": 1}})])
    try:
        res = CliRunner().invoke(main, ["-w", str(trained.ws.path), "export-model", rid, "--out", str(tmp_path / "m")])
        assert res.exit_code == 0, res.output
        evals = read_model_card(trained.ws.path / trained.run.adapter_path)["curator"]["evals"]
        assert evals == [{"id": "ev-card", "split": "test", "snapshot_id": trained.snapshot,
                          "created_at": evals[0]["created_at"], "metrics": {"rougeL": 0.25, "n": 2}}]
        merged = read_model_card(tmp_path / "m")
        assert merged["library_name"] == "transformers" and merged["curator"]["evals"][0]["id"] == "ev-card"
        assert "`ev-card` on test" in (tmp_path / "m" / "README.md").read_text()
    finally:
        with trained.ws.connect() as con:
            con.execute("DELETE FROM evals WHERE id = 'ev-card'")
        finalize_adapter(trained.ws, get_run(trained.ws, rid))


def test_a_hub_id_offline_is_refused_before_a_run_exists(ws: Any, snapshot: str, tiny_model_dir: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    res = CliRunner().invoke(main, ["-w", str(ws.path), "train", "--snapshot", snapshot, "--no-progress",
                                    *tiny_overrides(tiny_model_dir, base_model="HuggingFaceTB/SmolLM2-360M-Instruct")])
    assert res.exit_code == 1 and "HF_HUB_OFFLINE=0" in res.stderr and "local:smollm2-135m-instruct" in res.stderr
    assert list_runs(ws) == []
    with pytest.raises(CuratorError, match="HF_HUB_OFFLINE"):
        train(ws, snapshot, overrides=tiny_overrides(tiny_model_dir, base_model="org/no-such-model"), progress=False)


# -- vLLM's LoRA constraints --------------------------------------------------------------------------------------
def _adapter(folder: Path, tiny_model_dir: Path, **lora: Any) -> Path:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir))
    get_peft_model(base, LoraConfig(task_type="CAUSAL_LM", **lora)).save_pretrained(str(folder))
    return folder


def _edit(folder: Path, **changes: Any) -> Path:
    path = folder / "adapter_config.json"
    cfg = json.loads(path.read_text())
    cfg.update(changes)
    path.write_text(json.dumps(cfg))
    return folder


def test_curator_adapters_pass_the_vllm_check(trained: Any, tmp_path: Path) -> None:
    assert check_vllm_lora(trained.ws.path / trained.run.adapter_path) == []
    from trainer.config import CONFIG_DIR, load_config

    shipped = load_config(CONFIG_DIR / "smollm2-lora-cpu.yaml")  # the default config's LoRA: every projection
    assert set(shipped.target_modules) <= set(VLLM_LLAMA_LORA_MODULES)
    full = _adapter(tmp_path / "full", trained.model_dir, r=shipped.lora_r, lora_alpha=shipped.lora_alpha,
                    target_modules=list(shipped.target_modules))
    assert check_vllm_lora(full) == []
    assert check_vllm_lora(full, max_lora_rank=8) == [f"rank {shipped.lora_r} is above --max-lora-rank 8"]


def test_planted_bad_adapters_are_named(trained: Any, tmp_path: Path) -> None:
    good = trained.ws.path / trained.run.adapter_path

    def planted(name: str, **changes: Any) -> list[str]:
        folder = tmp_path / name
        shutil.copytree(good, folder)
        return check_vllm_lora(_edit(folder, **changes))

    assert planted("rank", r=1024) == ["rank 1024 is above vLLM's largest --max-lora-rank (512; choices 8, 16, 32, "
                                       "64, 128, 256, 320, 512)"]
    assert planted("pattern", rank_pattern={"q_proj": 640})[0].startswith("rank 640 is above")
    assert planted("bias", bias="all") == ["bias 'all': vLLM serves adapters without bias only (bias: none)"]
    assert planted("dora", use_dora=True) == ["use_dora: vLLM does not support DoRA"]
    assert "modules_to_save ['lm_head']" in planted("save", modules_to_save=["lm_head"])[0]
    assert "init_lora_weights 'pissa'" in planted("pissa", init_lora_weights="pissa")[0]
    assert planted("gaussian", init_lora_weights="gaussian") == []
    assert planted("targets", target_modules=["q_proj", "embed_tokens", "lm_head"]) == [
        "target_modules embed_tokens, lm_head: vLLM applies LoRA to " + ", ".join(VLLM_LLAMA_LORA_MODULES) + " only"]
    assert planted("prefix", peft_type="PREFIX_TUNING") == ["peft_type 'PREFIX_TUNING': vLLM serves LoRA adapters only"]
    several = planted("several", bias="lora_only", use_dora=True, r=2048)
    assert len(several) == 3

    folder = tmp_path / "broken"
    shutil.copytree(good, folder)
    (folder / "adapter_config.json").write_text('{"r": 8,\n "target_modules": [}')
    assert check_vllm_lora(folder)[0].startswith(f"{folder / 'adapter_config.json'}:2: not valid JSON")
    (folder / "adapter_config.json").unlink()
    assert check_vllm_lora(folder) == [f"{folder / 'adapter_config.json'} is missing: not a PEFT adapter folder"]

    embed = _adapter(tmp_path / "embed", trained.model_dir, r=8, target_modules=["q_proj", "embed_tokens"])
    _edit(embed, target_modules=["q_proj"])  # the config lies; the weights tell
    lora, whole = check_vllm_lora(embed)
    assert lora == ("adapter_model.safetensors holds LoRA weights for embed_tokens: vLLM applies LoRA to "
                    + ", ".join(VLLM_LLAMA_LORA_MODULES) + " only")
    assert "not LoRA matrices (base_model.model.model.embed_tokens.base_layer.weight)" in whole  # PEFT saved it whole

    extra = tmp_path / "extra"
    shutil.copytree(good, extra)
    header = json.dumps({"base_model.model.lm_head.weight": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}})
    raw = header.encode()
    (extra / "adapter_model.safetensors").write_bytes(struct.pack("<Q", len(raw)) + raw + b"\0\0\0\0")
    assert "not LoRA matrices (base_model.model.lm_head.weight)" in check_vllm_lora(extra)[0]
    (extra / "adapter_model.safetensors").unlink()
    assert check_vllm_lora(extra) == [f"no adapter_model.safetensors (or .bin) in {extra}"]


def test_serve_with_vllm_checks_the_adapters_first(trained: Any, tmp_path: Path) -> None:
    from curator.serve.vllm import GatewayBackend

    bad = tmp_path / "bad"
    shutil.copytree(trained.ws.path / trained.run.adapter_path, bad)
    _edit(bad, use_dora=True)
    with pytest.raises(CuratorError, match=r"vLLM cannot serve these adapters: r1 \(.*bad\): use_dora"):
        GatewayBackend.launch(str(trained.model_dir), {"r1": bad})
