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
