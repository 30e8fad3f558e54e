"""report_to: TensorBoard event files written offline into the run folder and read back; W&B and MLflow as
extras that say their pip line, offline by default; the config's validation."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from trainer_helpers import tiny_overrides

from curator.cli import main
from curator.errors import ConfigError, MissingDependency
from trainer import list_runs, train
from trainer.config import SFTConfig, apply_overrides
from trainer.tracking import check_reporters, reporter_environment, reporting


def test_tensorboard_event_files_in_the_run_folder(ws: Any, snapshot: str, tiny_model_dir: Path,
                                                   tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    monkeypatch.chdir(tmp_path)  # nothing may land in the working directory (transformers' default runs/)
    env_before = dict(os.environ)
    run = train(ws, snapshot, overrides=tiny_overrides(tiny_model_dir, max_steps=4, report_to="[tensorboard]"),
                progress=False, log=lambda m: None)
    assert run.status == "succeeded"
    tb = ws.path / "runs" / run.id / "tb"
    assert list(tb.glob("events.out.tfevents.*")), list(tb.iterdir())
    acc = EventAccumulator(str(tb))
    acc.Reload()
    scalars = acc.Tags()["scalars"]
    assert "train/loss" in scalars and "eval/loss" in scalars, scalars
    losses = acc.Scalars("train/loss")
    assert [e.step for e in losses] == [1, 2, 3, 4]
    recorded = dict((s, v) for s, v in run.metrics["history"]["train_loss"])
    for e in losses:  # the same numbers as metrics.jsonl / the run record
        assert abs(e.value - recorded[e.step]) < 1e-4
    assert [e.step for e in acc.Scalars("eval/loss")] == [2, 4]
    assert not (tmp_path / "runs").exists()
    assert dict(os.environ) == env_before  # the process is left as it was


def test_missing_reporters_name_their_extra(ws: Any, snapshot: str, tiny_model_dir: Path) -> None:
    check_reporters([])
    check_reporters(["none"])
    check_reporters(["tensorboard"])  # installed by [all]
    for name in ("wandb", "mlflow"):
        if importlib.util.find_spec(name) is not None:
            continue
        with pytest.raises(MissingDependency, match=rf"pip install 'curator-loop\[{name}\]'"):
            check_reporters(["tensorboard", name])
        res = CliRunner().invoke(main, ["-w", str(ws.path), "train", "--snapshot", snapshot, "--no-progress",
                                        *tiny_overrides(tiny_model_dir, report_to=name)])
        assert res.exit_code == 1 and f"pip install 'curator-loop[{name}]'" in res.stderr, res.output
        assert "Traceback" not in res.output
    assert list_runs(ws) == []  # refused before any run exists


def test_wandb_and_mlflow_stay_offline_in_the_run_folder(tmp_path: Path) -> None:
    env = reporter_environment(["wandb", "mlflow"], tmp_path / "r1", environ={})
    assert env["WANDB_MODE"] == "offline" and env["WANDB_DIR"] == str(tmp_path / "r1")
    assert env["WANDB_LOG_MODEL"] == "false" and env["WANDB_PROJECT"] == "curator"
    assert env["MLFLOW_TRACKING_URI"] == f"sqlite:///{(tmp_path / 'r1' / 'mlflow.db').resolve()}"
    assert env["HF_MLFLOW_LOG_ARTIFACTS"] == "FALSE"
    mine = reporter_environment(["wandb", "mlflow"], tmp_path, environ={
        "WANDB_MODE": "online", "MLFLOW_TRACKING_URI": "http://mlflow.internal:5000"})
    assert "WANDB_MODE" not in mine and "MLFLOW_TRACKING_URI" not in mine  # what the user set wins
    assert reporter_environment(["tensorboard"], tmp_path, environ={}) == {}
    with reporting(["none"], tmp_path) as callbacks:
        assert callbacks == []
    with reporting(["tensorboard"], tmp_path, enabled=False) as callbacks:  # not the main process
        assert callbacks == []
    assert not (tmp_path / "tb").exists()


def test_report_to_is_validated() -> None:
    for ok in ("[tensorboard]", "[wandb]", "[mlflow]", "[none]", "none", "tensorboard,mlflow", "[]"):
        apply_overrides(SFTConfig(), [f"report_to={ok}"]).validate()
    with pytest.raises(ConfigError, match="report_to: unknown neptune"):
        apply_overrides(SFTConfig(), ["report_to=[neptune]"]).validate()
    with pytest.raises(ConfigError, match="'none' cannot be combined"):
        apply_overrides(SFTConfig(), ["report_to=[none,wandb]"]).validate()
