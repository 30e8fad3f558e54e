"""Training: snapshots in, LoRA adapters (or hosted fine-tunes) and run records out.

::

    from trainer import train
    run = train(ws, "latest", overrides=["max_steps=50"])      # -> Run (id, status, adapter_path, metrics)

Importing this package does not import torch (it sets ``OMP_WAIT_POLICY=PASSIVE`` unless set); the recipes (:mod:`trainer.sft`, :mod:`trainer.dpo`)
load it when they run.
"""

from __future__ import annotations

import os

# Under CPU oversubscription (a shared machine), OpenMP threads that spin while waiting make torch
# several times slower; measured here: a LoRA step of the tiny test model took 3.7 s with the default
# policy and 0.1-0.4 s with PASSIVE under the same load.  Only takes effect if torch is not imported yet.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import warnings  # noqa: E402

# transformers calls its own deprecated property while TRL prepares the model: noise to a user.
warnings.filterwarnings("ignore", message=r"`is_gradient_checkpointing` is deprecated", category=FutureWarning)

from .adapters import AdapterStack, export_merged  # noqa: E402
from .api import resume, train  # noqa: E402
from .config import DPOConfig, OpenAIConfig, SFTConfig, load_config  # noqa: E402
from .runs import Run, get_run, lineage, list_runs  # noqa: E402

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
