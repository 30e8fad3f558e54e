"""Preference pairs in snapshots (train and eval prompts only) and the ``dpo`` export that TRL reads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import write_jsonl

from curator.data.ingest import ingest_file
from curator.errors import IntegrityError, SnapshotError
from curator.feedback import ingest_feedback
from curator.snapshots import create_snapshot, export_snapshot

SEEDS = Path(__file__).resolve().parents[2] / "seeds" / "support"
FAST = ("exact", "near")


@pytest.fixture
def snap(ws, tmp_path: Path):
    """Seeds, the held-out test file, the seed feedback log, and a liked/disliked pair on a test prompt."""
    ingest_file(ws, SEEDS / "seeds.jsonl", task="support", origin="seed")
    ingest_file(ws, SEEDS / "test.jsonl", task="support", split="test", origin="seed")
    ingest_feedback(ws, SEEDS / "feedback.jsonl", task="support", gates=FAST)
    test_prompt = json.loads((SEEDS / "test.jsonl").read_text().splitlines()[0])["messages"][:-1]
    log = write_jsonl(tmp_path / "on_test.jsonl", [
        {"trace_id": "t-good", "messages": [*test_prompt, {"role": "assistant", "content": "A careful answer."}], "rating": 5},
        {"trace_id": "t-bad", "messages": [*test_prompt, {"role": "assistant", "content": "Whatever."}], "rating": 1},
    ])
    r = ingest_feedback(ws, log, task="support", gates=FAST)
    assert r.pairs_added == 1 and r.examples_added == 0  # the liked answer leaks into test: not an example
    return create_snapshot(ws)


def test_snapshot_holds_train_and_eval_pairs_only(ws, snap) -> None:
    info = json.loads(snap.path.read_text())["extra"]["preferences"]
    assert info["test_held_out"] == 1
    assert info["train"]["rows"] + info["eval"]["rows"] == 4
    assert (snap.path.parent / info["train"]["path"]).exists()


def test_dpo_export_is_trl_conversational(ws, snap, tmp_path: Path) -> None:
    out = export_snapshot(ws, snap.id, "dpo", tmp_path / "dpo")
    assert set(out["files"]) == {"train", "eval"}
    rows = [json.loads(line) for s in ("train", "eval") for line in (tmp_path / "dpo" / f"{s}.jsonl").read_text().splitlines()]
    assert len(rows) == 4
    for r in rows:
        assert set(r) == {"prompt", "chosen", "rejected"}
        assert [m["role"] for m in r["prompt"]] == ["system", "user"]
        assert [m["role"] for m in r["chosen"]] == [m["role"] for m in r["rejected"]] == ["assistant"]
        assert "Whatever." not in r["rejected"][0]["content"]  # the pair on a test prompt stays out
    from trl.data_utils import is_conversational

    assert all(is_conversational(r) for r in rows)


def test_dpo_export_through_trl_chat_template(ws, snap, tmp_path: Path) -> None:
    from trl.data_utils import maybe_apply_chat_template

    from curator.errors import ModelError
    from curator.models import load_tokenizer

    try:
        tok = load_tokenizer()
    except ModelError as e:  # pragma: no cover - the bundled tokenizer is missing
        pytest.skip(str(e))
    export_snapshot(ws, snap.id, "dpo", tmp_path / "dpo", split="train")
    row = json.loads((tmp_path / "dpo" / "train.jsonl").read_text().splitlines()[0])
    text = maybe_apply_chat_template(row, tok)
    assert text["prompt"].endswith("<|im_start|>assistant\n")
    assert text["chosen"] == row["chosen"][0]["content"] + "<|im_end|>\n"


def test_dpo_export_refusals(ws, snap, tmp_path: Path) -> None:
    with pytest.raises(SnapshotError, match="holds no test preference pairs"):
        export_snapshot(ws, snap.id, "dpo", tmp_path / "a", split="test")
    info = json.loads(snap.path.read_text())["extra"]["preferences"]
    (snap.path.parent / info["train"]["path"]).write_bytes(b"tampered")
    with pytest.raises(IntegrityError, match="modified after the snapshot was written"):
        export_snapshot(ws, snap.id, "dpo", tmp_path / "b", split="train")


def test_no_pairs_at_all(ws, tmp_path: Path) -> None:
    ingest_file(ws, SEEDS / "seeds.jsonl", task="support", origin="seed")
    s = create_snapshot(ws)
    with pytest.raises(SnapshotError, match="has no preference pairs"):
        export_snapshot(ws, s.id, "dpo", tmp_path / "x")
    out = export_snapshot(ws, s.id, "dpo", tmp_path / "y", split="eval")  # one split: written, even empty
    assert out["files"]["eval"]["rows"] == 0 and (tmp_path / "y" / "eval.jsonl").read_text() == ""


@pytest.mark.slow
def test_dpo_trainer_takes_one_step(ws, snap, tmp_path: Path, tiny_model_dir: Path) -> None:
    from datasets import load_dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    export_snapshot(ws, snap.id, "dpo", tmp_path / "dpo")
    ds = load_dataset("json", data_files={"train": str(tmp_path / "dpo" / "train.jsonl")})["train"]
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    args = DPOConfig(output_dir=str(tmp_path / "run"), per_device_train_batch_size=2, max_steps=1, report_to=[],
                     max_length=256, use_cpu=True, save_strategy="no")
    trainer = DPOTrainer(model=AutoModelForCausalLM.from_pretrained(tiny_model_dir), args=args, train_dataset=ds,
                         processing_class=tok)
    assert {"prompt_ids", "chosen_ids", "rejected_ids"} <= set(trainer.train_dataset.column_names)
    assert trainer.train().training_loss > 0
