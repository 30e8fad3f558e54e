"""Training overhead: `curator train` against a plain TRL script doing the same training.

    .venv/bin/python benchmarks/train_overhead.py [--model smollm2|tiny] [--steps 20] [--repeat 1] [--json]

Same model, same data (the snapshot's train split, exported as OpenAI chat JSONL for the plain
script), same LoRA config, batch size, sequence length, precision, seed and number of steps;
evaluation and checkpoints off on both sides.  Each side runs in its own subprocess (started
from the command line, imports included), so wall time and peak RSS (``ru_maxrss`` from
``wait4``) are per side.  curator's side also ingests nothing: the workspace and its snapshot are
prepared before timing, and a fresh copy is used per repeat (a finished run would be reused).
Target: both ratios <= 1.10.  ``--repeat N`` keeps each side's best of N.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import ROOT  # noqa: E402

LORA = {"r": 16, "alpha": 32, "dropout": 0.05,
        "modules": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]}


def plain_trl(data: Path, model: str, steps: int, batch: int, max_len: int, lr: float, bf16: bool) -> None:
    """The baseline: what a user would write with TRL + PEFT alone (conversational prompt/completion data)."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    rows = [json.loads(line) for line in data.read_text().splitlines()]
    records = [{"prompt": r["messages"][:-1], "completion": r["messages"][-1:]} for r in rows]
    tok = AutoTokenizer.from_pretrained(model)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    base = AutoModelForCausalLM.from_pretrained(model, dtype=torch.float32)
    args = SFTConfig(
        output_dir=str(data.parent / "plain-out"), per_device_train_batch_size=batch, learning_rate=lr,
        max_steps=steps, lr_scheduler_type="cosine", warmup_steps=0.05, seed=42, bf16=bf16, use_cpu=True,
        activation_checkpointing=False, eval_strategy="no", save_strategy="no", logging_steps=5,
        report_to="none", max_length=max_len, disable_tqdm=True,
    )
    peft_config = LoraConfig(r=LORA["r"], lora_alpha=LORA["alpha"], lora_dropout=LORA["dropout"],
                             target_modules=LORA["modules"], task_type="CAUSAL_LM")
    trainer = SFTTrainer(model=base, args=args, train_dataset=Dataset.from_list(records), processing_class=tok,
                         peft_config=peft_config)
    trainer.train()
    trainer.save_model(str(data.parent / "plain-adapter"))


def _child(cmd: list[str], env: dict[str, str]) -> dict[str, float]:
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert proc.stderr is not None
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        sys.stderr.write(err.decode(errors="replace")[-4000:])
        raise SystemExit(f"{cmd[:3]} failed with exit code {proc.returncode}")
    return {"wall_s": round(wall, 2), "peak_rss_mb": round(usage.ru_maxrss / 1024, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", choices=["smollm2", "tiny"], default="smollm2",
                    help="smollm2: the prepared SmolLM2-135M folder; tiny: the 3M-parameter test model")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--side", choices=["plain"], help=argparse.SUPPRESS)
    ap.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--model-dir", help=argparse.SUPPRESS)
    ap.add_argument("--bf16", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    batch, max_len, lr = 4, 384, 4e-4

    if args.side == "plain":
        plain_trl(args.data, args.model_dir, args.steps, batch, max_len, lr, args.bf16)
        return

    import curator  # noqa: F401  (offline hub settings)
    from curator.data.ingest import ingest_file
    from curator.models import make_tiny_model, resolve_model
    from curator.snapshots import create_snapshot, export_snapshot
    from curator.workspace import Workspace
    from trainer.hardware import resolve_hardware

    env = dict(os.environ, OMP_WAIT_POLICY=os.environ.get("OMP_WAIT_POLICY", "PASSIVE"), HF_HUB_OFFLINE="1",
               TRANSFORMERS_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    with tempfile.TemporaryDirectory(prefix="train-overhead-") as tmp:
        tmpd = Path(tmp)
        model_dir = str(resolve_model("local:smollm2-135m-instruct")) if args.model == "smollm2" \
            else str(make_tiny_model(tmpd / "tiny-model"))
        ws = Workspace(tmpd / "ws")
        ingest_file(ws, ROOT / "seeds/support/seeds.jsonl", split="train", origin="seed", task="support")
        ingest_file(ws, ROOT / "seeds/support/test.jsonl", split="test", task="support")
        snap = create_snapshot(ws)
        export_snapshot(ws, snap.id, "openai", tmpd / "export", split="train")
        data = tmpd / "export" / "train.jsonl"
        bf16 = resolve_hardware("auto", "auto").precision == "bf16"

        curator_cmd = [
            str(Path(sys.executable).parent / "curator"), "-w", "WS", "train", "--snapshot", snap.id,
            "--config", str(ROOT / "configs/smollm2-lora-cpu.yaml"), "--no-progress",
            f"base_model={model_dir}", f"max_steps={args.steps}", f"batch_size={batch}", f"max_seq_length={max_len}",
            f"learning_rate={lr}", f"lora_r={LORA['r']}", f"lora_alpha={LORA['alpha']}",
            f"lora_dropout={LORA['dropout']}", f"target_modules={','.join(LORA['modules'])}",
            "eval_steps=0", "save_checkpoints=false", "max_train_time_s=0", "logging_steps=5", "warmup_ratio=0.05",
            f"precision={'bf16' if bf16 else 'fp32'}", "seed=42",
        ]
        plain_cmd = [sys.executable, str(Path(__file__).resolve()), "--side", "plain", "--data", str(data),
                     "--model-dir", model_dir, "--steps", str(args.steps)] + (["--bf16"] if bf16 else [])
        best: dict[str, dict[str, float]] = {}
        for i in range(args.repeat):
            for side in ("plain", "curator"):  # alternate, so slow phases of a shared machine hit both
                if side == "curator":
                    wsi = tmpd / f"ws-{i}"
                    shutil.copytree(ws.path, wsi)
                    res = _child([c if c != "WS" else str(wsi) for c in curator_cmd], env)
                else:
                    res = _child(plain_cmd, env)
                print(f"  repeat {i + 1} {side:<8} wall {res['wall_s']:7.1f}s  peak RSS {res['peak_rss_mb']:7.0f} MB",
                      file=sys.stderr)
                prev = best.get(side)
                best[side] = {k: min(res[k], prev[k]) if prev else res[k] for k in res}

    out: dict[str, Any] = {
        "model": f"{args.model} ({model_dir})", "steps": args.steps, "batch": batch, "max_seq_length": max_len,
        "precision": "bf16" if bf16 else "fp32", "lora": LORA, "repeat": args.repeat, "examples": snap.counts,
        "plain_trl": best["plain"], "curator": best["curator"],
        "wall_ratio": round(best["curator"]["wall_s"] / best["plain"]["wall_s"], 3),
        "rss_ratio": round(best["curator"]["peak_rss_mb"] / best["plain"]["peak_rss_mb"], 3),
        "target": "both ratios <= 1.10",
    }
    out["ok"] = out["wall_ratio"] <= 1.10 and out["rss_ratio"] <= 1.10
    if args.json:
        print(json.dumps(out, indent=2))
        return
    print(f"train overhead: {args.model}, {args.steps} steps, batch {batch}, {out['precision']}, LoRA r={LORA['r']} "
          f"on {len(LORA['modules'])} modules (best of {args.repeat})")
    print(f"  plain TRL  wall {best['plain']['wall_s']:7.1f}s  peak RSS {best['plain']['peak_rss_mb']:7.0f} MB")
    print(f"  curator    wall {best['curator']['wall_s']:7.1f}s  peak RSS {best['curator']['peak_rss_mb']:7.0f} MB")
    print(f"  ratios     wall {out['wall_ratio']:.3f}  peak RSS {out['rss_ratio']:.3f}  (target <= 1.10: "
          f"{'ok' if out['ok'] else 'MISSED'})")


if __name__ == "__main__":
    main()
