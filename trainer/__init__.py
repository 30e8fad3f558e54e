"""Training: snapshots in, LoRA adapters (or hosted fine-tunes) and run records out.

::

    from trainer import train
    run = train(ws, "latest", overrides=["max_steps=50"])      # -> Run (id, status, adapter_path, metrics)

Importing this package does not import torch and changes no environment variable or warning
filter; the recipes (:mod:`trainer.sft`, :mod:`trainer.dpo`) load torch when they run, and the
``curator`` command sets ``OMP_WAIT_POLICY=PASSIVE`` before they do (:func:`curator.cli.kit.configure_process`).
"""

from __future__ import annotations

from trainer.adapters import AdapterStack, export_merged
from trainer.api import resume, train
from trainer.config import DPOConfig, OpenAIConfig, SFTConfig, load_config
from trainer.runs import Run, get_run, lineage, list_runs

__all__ = [
    "AdapterStack",
    "DPOConfig",
    "OpenAIConfig",
    "Run",
    "SFTConfig",
    "export_merged",
    "get_run",
    "lineage",
    "list_runs",
    "load_config",
    "resume",
    "train",
]
