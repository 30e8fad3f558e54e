"""DPO on the tiny model: from pairs, after SFT (continuing its adapter), and several adapters on one base."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from trainer_helpers import tiny_overrides

from curator.errors import CuratorError
from trainer import AdapterStack, lineage, list_runs, train


def _pair(i: int) -> dict[str, Any]:
    return {"prompt": [{"role": "user", "content": f"Question number {i}?"}],
            "chosen": [{"role": "assistant", "content": f"A careful answer to {i}."}],
            "rejected": [{"role": "assistant", "content": "No idea."}]}


PAIRS = {"train": [_pair(i) for i in range(4)], "eval": [_pair(10 + i) for i in range(2)]}


def test_dpo_trains_a_plain_peft_adapter_from_pairs(ws: Any, snapshot: str, tiny_model_dir: Path) -> None:
    logs: list[str] = []
    run = train(ws, snapshot, method="dpo", pairs=PAIRS, progress=False, log=logs.append,
                overrides=tiny_overrides(tiny_model_dir, max_steps=4, max_train_time_s=1e-6))
    # the time budget stopped it after step 1, which was still evaluated and kept
    assert run.status == "succeeded" and run.kind == "dpo" and run.metrics["global_step"] == 1
    assert run.metrics["stopped_by_time_budget_at_step"] == 1 and any("time budget" in m for m in logs)
    assert run.metrics["history"]["eval_loss"][0][0] == 1 and run.metrics["best_step"] == 1
    assert run.metrics["best_eval_loss"] is not None and "rewards_accuracies" in run.metrics
    adapter = ws.path / run.adapter_path
    assert (adapter / "adapter_model.safetensors").exists() and not (adapter / "ref").exists()
    assert run.meta["pairs_source"] == "argument" and run.meta["train_examples"] == 4

    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(str(tiny_model_dir)), str(adapter))


def test_dpo_without_pairs_is_refused_before_a_run_exists(ws: Any, snapshot: str, tiny_model_dir: Path) -> None:
    with pytest.raises(CuratorError, match="preference pairs"):
        train(ws, snapshot, method="dpo", progress=False, overrides=tiny_overrides(tiny_model_dir))
    assert list_runs(ws) == []


def test_dpo_after_sft_and_adapter_stacking(trained: Any) -> None:
    ws, sft = trained.ws, trained.run
    run = train(ws, trained.snapshot, method="dpo", base_run=sft.id, pairs=PAIRS, progress=False,
                log=lambda m: None, overrides=tiny_overrides(trained.model_dir, lora_r=16))
    assert run.status == "succeeded" and run.meta["base_run"] == sft.id
    # DPO continued the SFT adapter: its LoRA shape is the SFT one (r=4), not the config's r=16
    import json

    assert json.loads((ws.path / run.adapter_path / "adapter_config.json").read_text())["r"] == 4
    assert lineage(ws, run.id)["base_run"]["id"] == sft.id

    stack = AdapterStack(ws, [sft.id, run.id, "base"])
    assert stack.names == [sft.id, run.id, "base"]
    ids = torch.tensor([[1, 2, 3, 4, 5]])
    logits = {}
    with torch.no_grad():
        for name in (sft.id, run.id):
            stack.model.set_adapter(name)
            logits[name] = stack.model(input_ids=ids).logits
        with stack.model.disable_adapter():
            logits["base"] = stack.model(input_ids=ids).logits
    assert not torch.allclose(logits[sft.id], logits[run.id])
    assert not torch.allclose(logits[sft.id], logits["base"])
    answers = stack.chat([{"role": "user", "content": "hi"}], max_new_tokens=3)
    assert set(answers) == {sft.id, run.id, "base"} and all(isinstance(a, str) for a in answers.values())


def test_continuing_an_adapter_with_a_portable_base_name_never_looks_it_up(trained: Any) -> None:
    """A finished adapter names its base portably (a hub id for the bundled model); continuing it must
    save against the model actually loaded, not look that name up (offline: a warning; online: the hub)."""
    import json
    import warnings

    ws, sft = trained.ws, trained.run
    cfg_path = ws.path / sft.adapter_path / "adapter_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["base_model_name_or_path"] = "nobody-here/not-a-model"
    cfg_path.write_text(json.dumps(cfg))
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        run = train(ws, trained.snapshot, method="dpo", base_run=sft.id, pairs=PAIRS, progress=False,
                    log=lambda m: None, overrides=tiny_overrides(trained.model_dir))
    assert run.status == "succeeded"
    assert not [w for w in seen if "nobody-here/not-a-model" in str(w.message)]
