"""Experiment tracking: ``report_to`` sends the trainer's logs to TensorBoard, Weights & Biases or MLflow too.

``metrics.jsonl`` in the run folder is always written; ``report_to: [tensorboard]`` (or ``wandb``,
``mlflow``, several, or ``none``) adds a reporter.  Each is an optional extra, checked before a run
exists (:func:`check_reporters`: ``MissingDependency`` with the pip line).  Their logs stay in the run
folder and nothing leaves the machine unless the user says so:

=============  =====================================================================================
tensorboard    event files in ``runs/<id>/tb/`` (``tensorboard --logdir runs/<id>/tb``)
wandb          ``runs/<id>/wandb/``, offline: ``WANDB_MODE=offline`` unless the user set ``WANDB_MODE``
               (``wandb sync runs/<id>/wandb/offline-run-*`` uploads it later)
mlflow         ``sqlite:///runs/<id>/mlflow.db``, experiment ``curator``, unless ``MLFLOW_TRACKING_URI``
               / ``MLFLOW_EXPERIMENT_NAME`` are set
=============  =====================================================================================

The reporters are the transformers callbacks, added by :func:`reporting` around ``trainer.train()``
(the TRL configs get ``report_to="none"``), and the environment they read is set only for that
block and restored after it: the process is left as it was.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from curator.errors import MissingDependency

__all__ = ["REPORTERS", "active_reporters", "check_reporters", "reporter_environment", "reporting"]

#: What ``report_to`` may list ("none" alone means no reporter).
REPORTERS = ("tensorboard", "wandb", "mlflow", "none")
#: reporter -> (module it needs, the extra that installs it)
_NEEDS = {"tensorboard": ("tensorboard", "tensorboard"), "wandb": ("wandb", "wandb"), "mlflow": ("mlflow", "mlflow")}


def active_reporters(report_to: Sequence[str]) -> list[str]:
    """The reporters ``report_to`` turns on, in order, without ``none`` or repeats."""
    return [r for r in dict.fromkeys(report_to) if r != "none"]


def check_reporters(report_to: Sequence[str]) -> None:
    """Raise :class:`MissingDependency` (with the pip line) for the first reporter whose package is missing."""
    for name in active_reporters(report_to):
        module, extra = _NEEDS[name]
        if importlib.util.find_spec(module) is None:
            raise MissingDependency(module, extra, f"report_to: {name}")


def reporter_environment(report_to: Sequence[str], run_dir: Path,
                         environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The variables the reporters read, as :func:`reporting` sets them: the user's own values win."""
    env = os.environ if environ is None else environ
    active = active_reporters(report_to)
    out: dict[str, str] = {}

    def default(key: str, value: str) -> None:
        if not env.get(key):
            out[key] = value

    if "wandb" in active:
        default("WANDB_MODE", "offline")  # nothing phones home unless the user sets WANDB_MODE=online
        default("WANDB_DIR", str(run_dir))
        default("WANDB_PROJECT", "curator")
        default("WANDB_LOG_MODEL", "false")
        default("WANDB_WATCH", "false")
    if "mlflow" in active:
        default("MLFLOW_TRACKING_URI", f"sqlite:///{(run_dir / 'mlflow.db').resolve()}")
        default("MLFLOW_EXPERIMENT_NAME", "curator")
        default("HF_MLFLOW_LOG_ARTIFACTS", "FALSE")
    return out


@contextmanager
def _environ(values: Mapping[str, str]) -> Iterator[None]:
    before = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@contextmanager
def reporting(report_to: Sequence[str], run_dir: Path, *, enabled: bool = True) -> Iterator[list[Any]]:
    """The reporters' trainer callbacks, with their environment set for the duration of the block.

    ``enabled=False`` (the other processes of a distributed run) gives none: only the main process reports.
    """
    active = active_reporters(report_to) if enabled else []
    if not active:
        yield []
        return
    check_reporters(active)
    run_dir = Path(run_dir)
    with _environ(reporter_environment(active, run_dir)):
        callbacks: list[Any] = []
        for name in active:
            if name == "tensorboard":
                from torch.utils.tensorboard import SummaryWriter
                from transformers.integrations import TensorBoardCallback

                tb = TensorBoardCallback(tb_writer=SummaryWriter(log_dir=str(run_dir / "tb")))
                tb.logging_dir = str(run_dir / "tb")  # where a writer reopened after on_train_end goes too
                callbacks.append(tb)
            elif name == "wandb":
                from transformers.integrations import WandbCallback

                callbacks.append(WandbCallback())
            elif name == "mlflow":
                from transformers.integrations import MLflowCallback

                callbacks.append(MLflowCallback())
        try:
            yield callbacks
        finally:
            for cb in callbacks:
                writer = getattr(cb, "tb_writer", None)
                if writer is not None:  # on_train_end closes it; an interrupted run closes it here
                    writer.close()
            if "wandb" in active:
                wandb = importlib.import_module("wandb")
                if wandb.run is not None:
                    wandb.finish()
