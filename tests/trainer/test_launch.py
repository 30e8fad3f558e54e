"""Several processes: the shipped accelerate configs, the launcher, and DDP against one process (gloo, CPU)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from click.testing import CliRunner
from trainer_helpers import build_snapshot

from curator.cli import main
from curator.errors import ConfigError, CuratorError, MissingDependency
from trainer.launch import SHIPPED, accelerate_command, accelerate_config, check_launch

ROOT = Path(__file__).resolve().parents[2]


def _common(model_dir: Path, steps: int) -> list[str]:
    """Tiny model, fp32, no dropout (its random masks differ between processes), no evaluation, every step logged."""
    return [f"base_model={model_dir}", f"max_steps={steps}", "logging_steps=1", "max_seq_length=128",
            "precision=fp32", "lora_r=4", "lora_alpha=8", "lora_dropout=0.0", "target_modules=q_proj,v_proj",
            "warmup_ratio=0.0", "eval_steps=0", "learning_rate=1e-2", "seed=7", "gradient_accumulation_steps=1"]


def _losses(ws: Any, run_id: str) -> list[float]:
    lines = (ws.path / "runs" / run_id / "metrics.jsonl").read_text().splitlines()
    return [json.loads(x)["loss"] for x in lines if "loss" in json.loads(x)]


def _adapter(ws: Any, run: Any) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(ws.path / run.adapter_path / "adapter_model.safetensors"))


def test_ddp_on_two_gloo_processes_gives_the_loss_of_one_process_with_the_same_global_batch(
        ws: Any, tmp_path: Path, tiny_model_dir: Path) -> None:
    """DDP with 2 processes x batch 2 against 1 process x batch 4, 4 steps, same seed and data order.

    Tolerance rtol=1e-4, atol=1e-6 on the per-step losses and on every adapter weight.  Both sides are fp32
    and see the same 4 examples per step (accelerate hands batch 2k to process 0 and 2k+1 to process 1 of
    the one seeded order); what differs is the order of the float sums (each process sums over its 2
    examples and gloo all-reduces the gradients, against one sum over 4): measured here, the losses agree
    to 1e-7 relative.  The losses fall by 3e-2 to 5e-2 per step at this learning rate, so a step taken on
    a wrong gradient (each process on its own half, or per-process means averaged over unequal token
    counts) shows far above the tolerance.
    """
    from trainer import train

    sid = build_snapshot(ws, tmp_path, n_train=16, n_eval=0, n_test=0)
    steps = 4
    single = train(ws, sid, overrides=[*_common(tiny_model_dir, steps), "batch_size=4"], progress=False,
                   log=lambda m: None)
    cmd = [sys.executable, "-m", "curator", "-w", str(ws.path), "train", "--snapshot", sid, "--no-progress",
           "--launcher", "accelerate", "--accelerate-config", "ddp", "--num-processes", "2",
           *_common(tiny_model_dir, steps), "batch_size=2"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT,
                         env=dict(os.environ, OMP_NUM_THREADS="1", OMP_WAIT_POLICY="PASSIVE"))
    assert res.returncode == 0, res.stderr[-4000:]
    assert res.stdout.count("succeeded") == 1, res.stdout  # only the main process reports
    from trainer import list_runs

    (ddp,) = [r for r in list_runs(ws) if r.id != single.id]
    assert ddp.metrics["hardware"]["world_size"] == 2 and single.metrics["hardware"]["world_size"] == 1
    assert ddp.metrics["global_step"] == single.metrics["global_step"] == steps
    one, two = _losses(ws, single.id), _losses(ws, ddp.id)
    print(f"\nper-step train loss, 1 process x batch 4: {one}\n                     2 processes x batch 2: {two}")
    assert len(one) == len(two) == steps
    torch.testing.assert_close(torch.tensor(two), torch.tensor(one), rtol=1e-4, atol=1e-6)
    a, b = _adapter(ws, single), _adapter(ws, ddp)
    assert a.keys() == b.keys() and a
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=1e-4, atol=1e-6, msg=lambda m, k=k: f"{k}: {m}")


def test_shipped_configs_load_with_accelerate() -> None:
    from accelerate.commands.config.config_args import load_config_from_file

    kinds = {name: str(load_config_from_file(str(accelerate_config(name))).distributed_type).split(".")[-1]
             for name in SHIPPED}
    assert kinds == {"ddp": "MULTI_GPU", "fsdp": "FSDP", "zero2": "DEEPSPEED"}
    zero2 = load_config_from_file(str(accelerate_config("zero2")))
    assert zero2.deepspeed_config["zero_stage"] == 2
    assert "gradient_accumulation_steps" not in zero2.deepspeed_config  # "auto": the training config decides
    assert load_config_from_file(str(accelerate_config("fsdp"))).fsdp_config["fsdp_use_orig_params"] is True


def test_the_command_line_and_the_refusals(tmp_path: Path) -> None:
    cmd = accelerate_command(accelerate_config("ddp"), ["--snapshot", "v1", "max_steps=3"], num_processes=4,
                             workspace=tmp_path / "ws", main_process_port=29123, python="py")
    assert cmd == ["py", "-m", "accelerate.commands.launch", "--config_file", str(accelerate_config("ddp")),
                   "--num_processes", "4", "--main_process_port", "29123", "-m", "curator", "-w",
                   str(tmp_path / "ws"), "train", "--snapshot", "v1", "max_steps=3"]
    assert check_launch(accelerate_config("ddp"), cuda=False) == "MULTI_GPU"
    with pytest.raises(MissingDependency, match=r"pip install 'curator-loop\[deepspeed\]'"):
        check_launch(accelerate_config("zero2"), cuda=True)  # deepspeed is not installed here
    with pytest.raises(CuratorError, match="FSDP is run on CUDA GPUs only"):
        check_launch(accelerate_config("fsdp"), cuda=False)
    with pytest.raises(CuratorError, match="quantization=none"):
        check_launch(accelerate_config("fsdp"), quantization="auto", cuda=True)
    assert check_launch(accelerate_config("fsdp"), quantization="none", cuda=True) == "FSDP"
    with pytest.raises(ConfigError, match="neither a shipped one"):
        accelerate_config(tmp_path / "nope.yaml")


def test_cli_refusals_exit_1(ws: Any, tmp_path: Path) -> None:
    sid = build_snapshot(ws, tmp_path)
    run = CliRunner().invoke(main, ["-w", str(ws.path), "train", "--snapshot", sid, "--launcher", "accelerate",
                                    "--accelerate-config", "zero2", "--num-processes", "2"])
    assert run.exit_code == 1 and "pip install 'curator-loop[deepspeed]'" in run.stderr
    run = CliRunner().invoke(main, ["-w", str(ws.path), "train", "--snapshot", sid, "--launcher", "accelerate",
                                    "--accelerate-config", str(tmp_path / "missing.yaml"), "--num-processes", "2"])
    assert run.exit_code == 1 and "neither a shipped one" in run.stderr
    run = CliRunner().invoke(main, ["-w", str(ws.path), "train", "--snapshot", sid, "--launcher", "accelerate",
                                    "--backend", "openai"])
    assert run.exit_code == 2 and "--backend local" in run.output
