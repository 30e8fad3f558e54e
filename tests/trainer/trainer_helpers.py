"""Builders shared by the trainer tests (tests/trainer is on sys.path under pytest)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

_TESTS = str(Path(__file__).resolve().parents[1])
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)

from helpers import chat, write_jsonl  # noqa: E402

SYSTEM = "You answer in one short line."
TOPICS = ["disk", "bucket", "dns", "billing", "login", "quota", "backup", "network", "cpu", "memory", "ssl", "cron"]


def qa(i: int, topic: str, prefix: str = "") -> dict[str, Any]:
    return chat(f"{prefix}How do I fix my {topic} problem number {i}?",
                f"Check the {topic} settings, then restart step {i}.", system=SYSTEM)


def build_snapshot(ws: Any, tmp: Path, *, n_train: int = 8, n_eval: int = 4, n_test: int = 2) -> str:
    """Ingest pinned train / eval / test files and snapshot them; returns the snapshot id."""
    from curator.data.ingest import ingest_file
    from curator.snapshots import create_snapshot

    train = [qa(i, TOPICS[i % len(TOPICS)]) for i in range(n_train)]
    evals = [qa(100 + i, TOPICS[(i + 3) % len(TOPICS)], "Please help: ") for i in range(n_eval)]
    tests = [chat(f"TESTSPLIT secret question {i} about zebras?", f"TESTSPLIT zebra answer {i}.") for i in range(n_test)]
    for name, rows in (("train", train), ("eval", evals), ("test", tests)):
        if rows:
            ingest_file(ws, write_jsonl(tmp / f"{name}.jsonl", rows), split=name, task="t")
    return create_snapshot(ws).id


def tiny_overrides(model_dir: Path, **extra: Any) -> list[str]:
    """Overrides that make the default config train the tiny model quickly and deterministically."""
    base = {
        "base_model": str(model_dir), "max_steps": 2, "batch_size": 2, "eval_batch_size": 4, "eval_steps": 2,
        "logging_steps": 1, "max_seq_length": 128, "precision": "fp32", "lora_r": 4, "lora_alpha": 8,
        "target_modules": "q_proj,v_proj", "warmup_ratio": 0.0,
    }
    base.update(extra)
    return [f"{k}={v}" for k, v in base.items()]


#: Three chat prompts for greedy comparisons (a system prompt, digits, punctuation).
PROMPTS = [
    [{"role": "user", "content": "How do I fix my disk problem number 3?"}],
    [{"role": "system", "content": "You answer in one short line."}, {"role": "user", "content": "DNS is down."}],
    [{"role": "user", "content": "Where are my invoices for 2026, and why 17 of them?"}],
]


def greedy(model: Any, tok: Any, n: int = 16) -> list[list[int]]:
    """Greedy new tokens for each of PROMPTS, rendered with the tokenizer's own chat template."""
    import torch

    from curator.models import render_chat

    out = []
    for conv in PROMPTS:
        ids = tok(render_chat(tok, conv, add_generation_prompt=True), return_tensors="pt", add_special_tokens=False)
        with torch.no_grad():
            gen = model.generate(**ids, max_new_tokens=n, do_sample=False, pad_token_id=tok.pad_token_id)
        out.append(gen[0, ids["input_ids"].shape[1]:].tolist())
    return out


def reload_gguf(path: Path, *, tokenizer: bool = True) -> tuple[Any, Any]:
    """transformers' GGUF loader: the model (float32) and the tokenizer built from the file alone."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=torch.float32).eval()
    tok = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name) if tokenizer else None
    return model, tok
