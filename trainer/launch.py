"""Training on several GPUs: ``curator train --launcher accelerate`` and the shipped ``accelerate`` configs.

::

    curator train --launcher accelerate --accelerate-config ddp --num-processes 4 --snapshot v1

is ``accelerate launch --config_file trainer/accelerate_configs/ddp.yaml --num_processes 4 -m curator
train --snapshot v1`` with the workspace passed on: every process runs the same ``curator train``
(:func:`trainer.train`), only the main process touches the workspace database, and only it prints
the result.  The configs ship with the package (:data:`SHIPPED`):

* ``ddp``: data parallel, one copy of the model per GPU, gradients all-reduced (any model that fits one GPU);
* ``fsdp``: the base weights, gradients and optimizer state sharded across the GPUs (``quantization=none``);
* ``zero2``: DeepSpeed ZeRO stage 2, optimizer state and gradients sharded (needs ``deepspeed``, CUDA).

Any other accelerate config file works too (``--accelerate-config PATH``).  What was run where: the
DDP config on CPU with 2 processes on the gloo backend (``tests/trainer/test_launch.py`` checks that it
gives the loss of one process with the same global batch); FSDP and ZeRO-2 were not run here (no GPU).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from importlib import resources
from pathlib import Path
from typing import Any

from curator.errors import ConfigError, CuratorError, require

__all__ = ["LAUNCHERS", "SHIPPED", "accelerate_command", "accelerate_config", "check_launch", "launch_accelerate"]

LAUNCHERS = ("none", "accelerate")
#: The shipped accelerate configs, by name: what each is for.
SHIPPED = {
    "ddp": "data parallel (DDP): a copy of the model per GPU, gradients all-reduced",
    "fsdp": "fully sharded data parallel (FSDP): weights, gradients and optimizer state sharded",
    "zero2": "DeepSpeed ZeRO-2: optimizer state and gradients sharded (needs deepspeed)",
}


def accelerate_config(name_or_path: str | Path) -> Path:
    """The file of a shipped config (``ddp``, ``fsdp``, ``zero2``) or a given accelerate config file."""
    name = str(name_or_path)
    if name in SHIPPED:
        ref = resources.files("trainer").joinpath("accelerate_configs", f"{name}.yaml")
        return Path(str(ref))
    path = Path(name).expanduser()
    if not path.is_file():
        raise ConfigError(f"accelerate config {name!r} is neither a shipped one ({', '.join(SHIPPED)}) nor a file")
    return path


def _distributed_type(path: Path) -> str:
    from curator.yamlfile import read_yaml

    data = read_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError("expected an accelerate config (a mapping with distributed_type)", str(path))
    return str(data.get("distributed_type") or "NO").upper()


def check_launch(config: Path, *, quantization: str | None = None, cuda: bool | None = None) -> str:
    """The config's ``distributed_type``, after refusing what cannot work: DeepSpeed without ``deepspeed``
    or without CUDA, FSDP without CUDA or with 4-bit weights.  ``quantization``: the training config's
    resolved value (``auto`` is 4-bit on CUDA); ``cuda``: whether this machine has a CUDA GPU (asked when None)."""
    kind = _distributed_type(config)
    if cuda is None:
        import torch

        cuda = bool(torch.cuda.is_available())
    if kind == "DEEPSPEED":
        require("deepspeed", "deepspeed", f"the DeepSpeed config {config.name}")
        if not cuda:
            raise CuratorError(f"{config.name}: DeepSpeed needs CUDA GPUs and this machine has none; "
                               "use --accelerate-config ddp (it runs on the CPU's gloo backend too)")
    if kind == "FSDP":
        if not cuda:
            raise CuratorError(f"{config.name}: FSDP is run on CUDA GPUs only; on this machine (no GPU) use "
                               "--accelerate-config ddp")
        if quantization == "4bit" or (quantization == "auto" and cuda):
            raise CuratorError(f"{config.name}: FSDP shards bf16/fp32 weights, not 4-bit ones: add "
                               "quantization=none (or use --accelerate-config ddp for QLoRA)")
    return kind


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def accelerate_command(config: Path, train_args: list[str], *, num_processes: int, workspace: str | Path,
                       main_process_port: int | None = None, python: str | None = None) -> list[str]:
    """The ``accelerate launch`` command line that runs ``curator -w WORKSPACE train TRAIN_ARGS`` in every process.

    accelerate is run as ``python -m accelerate.commands.launch`` of this interpreter (no PATH lookup); the
    rendezvous port is a free one unless given (two launches on one machine do not collide on 29500).
    """
    if num_processes < 1:
        raise ConfigError("--num-processes must be >= 1")
    exe = python or sys.executable
    port = main_process_port or _free_port()
    return [exe, "-m", "accelerate.commands.launch", "--config_file", str(config), "--num_processes",
            str(num_processes), "--main_process_port", str(port), "-m", "curator", "-w", str(workspace), "train",
            *train_args]


def default_processes() -> int:
    """The number of CUDA GPUs; on a machine without one, ``--num-processes`` must be given."""
    import torch

    n = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if n < 1:
        raise CuratorError("no CUDA GPU here: give --num-processes N (on a CPU the ddp config runs N processes "
                           "on the gloo backend)")
    return int(n)


def launch_accelerate(workspace: str | Path, train_args: list[str], *, config: str | Path = "ddp",
                      num_processes: int | None = None, quantization: str | None = None,
                      env: dict[str, str] | None = None, **kw: Any) -> int:
    """Run ``curator train TRAIN_ARGS`` under ``accelerate launch`` with a shipped or given config; its exit code.

    The processes write to this process's stdout and stderr.  ``quantization`` is the training config's
    value (checked against FSDP); ``kw`` goes to :func:`accelerate_command`.
    """
    require("accelerate", "train", "curator train --launcher accelerate")
    path = accelerate_config(config)
    check_launch(path, quantization=quantization)
    n = num_processes if num_processes is not None else default_processes()
    cmd = accelerate_command(path, train_args, num_processes=n, workspace=workspace, **kw)
    child_env = dict(os.environ if env is None else env)
    child_env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    return subprocess.run(cmd, env=child_env).returncode
