"""SFT on the tiny model: regression loss, the run record, plain-PEFT loading, reuse, resume, the guard."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from helpers import chat, write_jsonl
from trainer_helpers import SYSTEM, tiny_overrides

from curator.errors import ConfigError
from trainer import get_run, list_runs, train
from trainer.hardware import resolve_hardware

#: Recorded with the tiny model (make_tiny_model seed 0), seed 42, fp32, 2 steps of batch 2.
RECORDED_TRAIN_LOSS = [10.88965, 10.89582]
RECORDED_EVAL_LOSS = 10.84859


def test_regression_two_steps_fixed_seed(trained: Any) -> None:
    hist = trained.run.metrics["history"]
    assert [s for s, _ in hist["train_loss"]] == [1, 2]
    torch.testing.assert_close(torch.tensor([v for _, v in hist["train_loss"]]), torch.tensor(RECORDED_TRAIN_LOSS),
                               rtol=0, atol=2e-4)
    torch.testing.assert_close(torch.tensor(trained.run.metrics["best_eval_loss"]), torch.tensor(RECORDED_EVAL_LOSS),
                               rtol=0, atol=2e-4)


def test_the_run_records_what_made_it(trained: Any) -> None:
    ws, run = trained.ws, get_run(trained.ws, trained.run.id)
    assert run.status == "succeeded" and run.kind == "sft" and run.snapshot_id == trained.snapshot
    assert run.adapter_path == f"runs/{run.id}/adapter" and run.base_model == str(trained.model_dir)
    folder = ws.path / "runs" / run.id
    for name in ("config.yaml", "metrics.jsonl", "train.log", "run.json", "snapshot_id", "adapter/adapter_model.safetensors",
                 "adapter/adapter_config.json"):
        assert (folder / name).exists(), name
    assert not (folder / "checkpoints").exists()
    assert (folder / "snapshot_id").read_text().strip() == trained.snapshot
    assert {"torch", "transformers", "peft", "trl", "curator"} <= set(run.meta["versions"])
    assert run.meta["wall_time_s"] > 0 and run.meta["peak_rss_mb"] > 0
    assert (run.meta["train_examples"], run.meta["eval_examples"]) == (8, 4)
    assert run.metrics["global_step"] == 2 and run.metrics["overfitting_detected_at_step"] is None
    assert run.config["max_steps"] == 2 and run.config["method"] == "sft"
    lines = [json.loads(x) for x in (folder / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines if "loss" in r] == [1, 2] and any("eval_loss" in r for r in lines)
    assert json.loads((folder / "run.json").read_text())["status"] == "succeeded"
    assert any("succeeded" in m for m in trained.logs)


def test_adapter_loads_with_plain_peft(trained: Any) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(str(trained.model_dir))
    model = PeftModel.from_pretrained(base, str(trained.ws.path / trained.run.adapter_path))
    ids = torch.tensor([[1, 2, 3, 4]])
    with torch.no_grad():
        with_adapter = model(input_ids=ids).logits
        with model.disable_adapter():
            without = model(input_ids=ids).logits
    assert with_adapter.shape == without.shape and not torch.allclose(with_adapter, without)


def test_a_finished_training_is_not_redone(trained: Any) -> None:
    logs: list[str] = []
    again = train(trained.ws, trained.snapshot, overrides=tiny_overrides(trained.model_dir, logging_steps=3),
                  progress=False, log=logs.append)  # logging_steps does not change what is learned
    assert again.id == trained.run.id and again.reused is True
    assert any("reusing it" in m for m in logs)


def test_the_test_split_is_never_read(ws: Any, snapshot: str, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import trainer.api as api
    from trainer.config import load_config

    asked: list[str] = []
    real = api.read_split

    def spy(ws_: Any, snap: Any, split: str, **kw: Any) -> list[dict[str, Any]]:
        asked.append(split)
        return real(ws_, snap, split, **kw)

    monkeypatch.setattr(api, "read_split", spy)
    cfg = load_config(None, overrides=tiny_overrides(tiny_model_dir))
    payload = api._prepare(ws, snapshot, cfg, base_run=None, log=lambda m: None, pairs=None, resume_run=None)
    assert sorted(asked) == ["eval", "train"]
    assert "TESTSPLIT" not in json.dumps(payload["train_rows"] + payload["eval_rows"])


def test_4bit_on_cpu_is_refused_with_the_reason(ws: Any, snapshot: str, tiny_model_dir: Path) -> None:
    with pytest.raises(ConfigError, match="4bit is refused on CPU.*gradients are silently wrong"):
        resolve_hardware("4bit", "auto", device="cpu")
    with pytest.raises(ConfigError, match="refused on CPU"):
        train(ws, snapshot, overrides=tiny_overrides(tiny_model_dir, quantization="4bit"), progress=False)
    assert list_runs(ws) == []  # refused before any run was recorded
    assert resolve_hardware("auto", "fp32", device="cpu").quantization == "none"
    assert resolve_hardware("auto", "bf16", device="cuda").quantization == "4bit"
    assert resolve_hardware("8bit", "fp32", device="cpu").quantization == "8bit"


def test_the_trainer_collator_masks_prompt_and_padding(tiny_model_dir: Path, tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM
    from trl import SFTConfig, SFTTrainer

    from curator.models import load_tokenizer
    from trainer.data import sft_dataset

    tok = load_tokenizer(str(tiny_model_dir))
    rows = [chat("Short?", "Yes.", system=SYSTEM), chat("A much longer question about many things?", "No, never.")]
    ds, _ = sft_dataset(tok, rows, 128)
    args = SFTConfig(output_dir=str(tmp_path / "out"), per_device_train_batch_size=2, max_length=128, use_cpu=True,
                     report_to="none", activation_checkpointing=False, bf16=False)
    trainer = SFTTrainer(model=AutoModelForCausalLM.from_pretrained(str(tiny_model_dir)), args=args,
                         train_dataset=ds, processing_class=tok)
    batch = next(iter(trainer.get_train_dataloader()))
    end = tok.convert_tokens_to_ids("<|im_end|>")
    answers = {tok.decode([t for t in row.tolist() if t != -100]) for row in batch["labels"]}
    assert answers == {"Yes.<|im_end|>", "No, never.<|im_end|>"}
    for ids, labels, mask in zip(batch["input_ids"], batch["labels"], batch["attention_mask"], strict=True):
        trained_pos = (labels != -100).nonzero().flatten()
        assert labels[mask == 0].eq(-100).all()  # padding never trains
        assert ids[trained_pos[-1]] == end and trained_pos[-1] == mask.sum() - 1  # the last real token is the end of turn


def test_an_interrupted_run_resumes_from_its_checkpoint(ws: Any, snapshot: str, tiny_model_dir: Path) -> None:
    overrides = tiny_overrides(tiny_model_dir, max_steps=4)

    def crash(msg: str) -> None:
        if "step 3/4" in msg:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(ws, snapshot, overrides=overrides, progress=False, log=crash)
    (stopped,) = list_runs(ws)
    assert stopped.status == "stopped" and stopped.adapter_path is None
    assert (ws.path / "runs" / stopped.id / "checkpoints" / "checkpoint-2").is_dir()

    logs: list[str] = []
    run = train(ws, snapshot, overrides=overrides, progress=False, log=logs.append)
    assert run.id == stopped.id and run.status == "succeeded" and run.meta["resumed"] == 1
    assert any("resuming run" in m and "checkpoint-2" in m for m in logs)
    assert run.metrics["global_step"] == 4
    assert [s for s, _ in run.metrics["history"]["train_loss"]] == [1, 2, 3, 4]
    lines = [json.loads(x) for x in (ws.path / "runs" / run.id / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines if "loss" in r] == [1, 2, 3, 4]  # no step logged twice


def test_overfitting_guard_stops_and_keeps_the_best_checkpoint(ws: Any, tmp_path: Path, tiny_model_dir: Path) -> None:
    from curator.data.ingest import ingest_file
    from curator.snapshots import create_snapshot

    train_rows = [chat(f"Tell me the code {i}.", f"alpha beta gamma delta {i} epsilon.") for i in range(4)]
    eval_rows = [chat(f"Recite poem {i}.", f"zulu yankee xray whiskey victor {i} uniform.") for i in range(4)]
    ingest_file(ws, write_jsonl(tmp_path / "tr.jsonl", train_rows), split="train")
    ingest_file(ws, write_jsonl(tmp_path / "ev.jsonl", eval_rows), split="eval")
    sid = create_snapshot(ws).id
    logs: list[str] = []
    run = train(ws, sid, progress=False, log=logs.append, overrides=tiny_overrides(
        tiny_model_dir, max_steps=60, batch_size=4, eval_steps=2, learning_rate=1e-2, lora_r=8, lora_alpha=16,
        target_modules="q_proj,k_proj,v_proj,o_proj", overfit_patience=2, lr_scheduler_type="constant",
        save_total_limit=1))
    m = run.metrics
    assert m["overfitting_detected_at_step"] is not None, m["history"]
    assert m["global_step"] == m["overfitting_detected_at_step"] < 60
    assert m["best_step"] < m["overfitting_detected_at_step"]
    assert any("overfitting detected" in x for x in logs)
    assert get_run(ws, run.id).metrics["overfitting_detected_at_step"] == m["overfitting_detected_at_step"]
    train_losses = [v for _, v in m["history"]["train_loss"]]
    assert train_losses[-1] < train_losses[0]

    # the saved adapter is the best checkpoint, not the last step
    from peft import PeftModel
    from transformers import AutoModelForCausalLM
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    from curator.models import load_tokenizer
    from trainer.data import sft_dataset

    tok = load_tokenizer(str(tiny_model_dir))
    ds, _ = sft_dataset(tok, eval_rows, 128)
    batch = DataCollatorForLanguageModeling(pad_token_id=tok.pad_token_id)([dict(r) for r in ds])
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(str(tiny_model_dir)),
                                      str(ws.path / run.adapter_path)).eval()
    with torch.no_grad():
        loss = model(**batch).loss.item()
    torch.testing.assert_close(loss, m["best_eval_loss"], rtol=0, atol=2e-3)
    assert loss < m["history"]["eval_loss"][-1][1]
