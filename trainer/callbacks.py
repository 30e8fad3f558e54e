"""Trainer callbacks: metrics to ``metrics.jsonl``, the overfitting guard, progress.

Progress follows :mod:`curator.progress`: the trainer's tqdm bar on a terminal (:class:`StepBar`),
heartbeat lines elsewhere (:class:`Heartbeat`: step/max_steps, last loss, elapsed, time left),
nothing under ``curator -q`` or ``progress=False``.

The guard watches train and eval loss.  After the best evaluation so far, when ``patience``
evaluations in a row are worse than the best (by more than ``min_delta``) while the train loss
keeps falling below its value at the best evaluation, it stops training and records
``overfitting_detected_at_step``.  The best checkpoint is kept because the trainer runs with
``load_best_model_at_end`` (``eval_loss``, lower is better) whenever evaluation and checkpoints
are on.
"""

from __future__ import annotations

import json
import math
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from transformers import TrainerCallback
from transformers.trainer_callback import PrinterCallback, ProgressCallback

from curator.progress import Progress, progress_mode

__all__ = ["Heartbeat", "MetricsLogger", "OverfittingGuard", "StepBar", "TimeBudget", "quiet_bars", "use_progress"]


@contextmanager
def quiet_bars(progress: bool) -> Iterator[None]:
    """No ``datasets`` map bars ever, no weight-loading bars unless ``progress`` on a terminal (a tqdm bar
    in a log file is noise), no alias warnings; restored after."""
    import datasets.utils.logging as ds_logging
    import transformers.utils.logging as tf_logging

    ds_was, tf_was = ds_logging.is_progress_bar_enabled(), tf_logging.is_progress_bar_enabled()
    ds_logging.disable_progress_bar()
    if progress_mode(progress) != "bar":
        tf_logging.disable_progress_bar()
    try:
        with warnings.catch_warnings():
            # transformers 5.24 warns about its own alias, called from inside TRL / PEFT
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
            yield
    finally:
        if ds_was:
            ds_logging.enable_progress_bar()
        if tf_was:
            tf_logging.enable_progress_bar()


class StepBar(ProgressCallback):
    """The trainer's tqdm bars without its raw ``{'loss': ...}`` dict lines (:class:`MetricsLogger` logs those)."""

    def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kw: Any) -> None:
        pass


class Heartbeat(TrainerCallback):
    """Training as a :mod:`curator.progress` stage in heartbeat mode (for logs, CI, Slurm): a line at the
    start, every few seconds of steps (step/max_steps, elapsed, time left, last loss) and at the end."""

    def __init__(self, description: str = "train", *, interval: float | None = None,
                 clock: Callable[[], float] | None = None) -> None:
        self.description = description
        self.interval = interval
        self.clock = clock
        self.stage: Progress | None = None
        self._losses: dict[str, float] = {}

    def on_train_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        if not state.is_world_process_zero:
            return
        self.stage = Progress(self.description, state.max_steps or None, mode="heartbeat", interval=self.interval,
                              clock=self.clock)
        self.stage.done = state.global_step
        self.stage.start()

    def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        if self.stage is not None:
            self.stage.update(completed=state.global_step)

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kw: Any) -> None:
        if self.stage is None or not logs:
            return
        for key in ("loss", "eval_loss"):
            if isinstance(logs.get(key), int | float):
                self._losses[key] = float(logs[key])
        if self._losses:
            self.stage.note = "  ".join(f"{k} {v:.4f}" for k, v in self._losses.items())

    def on_train_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        if self.stage is not None:
            self.stage.update(completed=state.global_step)
            self.stage.close()
            self.stage = None


def use_progress(trainer: Any, progress: bool) -> None:
    """Progress when asked (a bar on a terminal, :class:`Heartbeat` lines elsewhere, nothing under ``-q``),
    never the raw log dicts."""
    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    mode = progress_mode(progress)
    if mode == "bar":
        trainer.add_callback(StepBar())
    elif mode == "heartbeat":
        trainer.add_callback(Heartbeat())


class MetricsLogger(TrainerCallback):
    """Appends every ``on_log`` record to ``metrics.jsonl`` and keeps the loss history in memory."""

    def __init__(self, path: str | Path, log: Callable[[str], None] | None = None) -> None:
        self.path = Path(path)
        self.log = log
        self.train_loss: list[tuple[int, float]] = []
        self.eval_loss: list[tuple[int, float]] = []
        self._t0 = time.time()

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kw: Any) -> None:
        if not logs or not state.is_world_process_zero:
            return
        rec = {"step": state.global_step, "epoch": round(state.epoch or 0.0, 4), "time_s": round(time.time() - self._t0, 2)}
        rec.update({k: v for k, v in logs.items() if isinstance(v, int | float | str)})
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(rec) + "\n")
        if "loss" in logs:
            self.train_loss.append((state.global_step, float(logs["loss"])))
        if "eval_loss" in logs:
            self.eval_loss.append((state.global_step, float(logs["eval_loss"])))
        if self.log is not None and ("loss" in logs or "eval_loss" in logs):
            parts = [f"step {state.global_step}/{state.max_steps}"]
            for key in ("loss", "eval_loss", "learning_rate", "rewards/accuracies", "eval_rewards/accuracies"):
                if key in logs:
                    v = logs[key]
                    parts.append(f"{key} {v:.3g}" if key == "learning_rate" else f"{key} {v:.4f}")
            self.log("  " + "  ".join(parts))


class OverfittingGuard(TrainerCallback):
    """Stops training when eval loss rises for ``patience`` evaluations while train loss falls."""

    def __init__(self, patience: int = 3, min_delta: float = 0.0, log: Callable[[str], None] | None = None) -> None:
        self.patience = patience
        self.min_delta = min_delta
        self.log = log
        self.best_eval: float = math.inf
        self.best_step: int | None = None
        self.train_at_best: float | None = None
        self.bad_evals = 0
        self.detected_at_step: int | None = None
        self._window: list[float] = []  # train losses logged since the last evaluation
        self._last_train: float | None = None

    def replay(self, log_history: list[dict[str, Any]]) -> None:
        """Rebuild the guard's state from a checkpoint's ``trainer_state.json`` log history (on resume)."""
        from types import SimpleNamespace

        control = SimpleNamespace(should_training_stop=False)
        for rec in log_history:
            step = SimpleNamespace(global_step=int(rec.get("step", 0)))
            if "loss" in rec:
                self.on_log(None, step, control, logs={"loss": rec["loss"]})
            if "eval_loss" in rec:
                self.on_evaluate(None, step, control, metrics={"eval_loss": rec["eval_loss"]})

    # -- callback ----------------------------------------------------------------------------------------
    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kw: Any) -> None:
        if logs and "loss" in logs and math.isfinite(float(logs["loss"])):
            self._window.append(float(logs["loss"]))

    def on_evaluate(self, args: Any, state: Any, control: Any, metrics: dict[str, float] | None = None,
                    **kw: Any) -> None:
        if not metrics or "eval_loss" not in metrics:
            return
        eval_loss = float(metrics["eval_loss"])
        if self._window:
            self._last_train = sum(self._window) / len(self._window)
            self._window = []
        train_now = self._last_train
        if eval_loss < self.best_eval - self.min_delta or self.best_step is None:
            self.best_eval, self.best_step, self.train_at_best = eval_loss, state.global_step, train_now
            self.bad_evals = 0
            return
        train_falling = train_now is not None and (self.train_at_best is None or train_now < self.train_at_best)
        if eval_loss > self.best_eval + self.min_delta and train_falling:
            self.bad_evals += 1
        else:
            self.bad_evals = 0
        if self.bad_evals >= self.patience and self.detected_at_step is None:
            self.detected_at_step = state.global_step
            control.should_training_stop = True
            if self.log is not None:
                self.log(
                    f"overfitting detected at step {state.global_step}: eval loss rose for {self.bad_evals} "
                    f"evaluations (best {self.best_eval:.4f} at step {self.best_step}, now {eval_loss:.4f}) "
                    f"while train loss fell to {train_now:.4f}; stopping and keeping the best checkpoint"
                )


class TimeBudget(TrainerCallback):
    """Stops training after ``steps`` optimizer steps (a fixed, reproducible cap: the learning-rate schedule
    still spans the whole run), or once ``seconds`` of wall time have passed since training began (a
    safety cap whose result depends on the machine's speed).  0 switches either off.

    The last step is then evaluated and checkpointed, so it competes with the earlier checkpoints for
    "best" (``load_best_model_at_end``) instead of being thrown away.  ``stopped_by`` says which cap
    cut the run (``"steps"`` or ``"time"``), ``stopped_at_step`` where.
    """

    def __init__(self, seconds: float, log: Callable[[str], None] | None = None,
                 clock: Callable[[], float] = time.monotonic, steps: int = 0) -> None:
        self.seconds = seconds
        self.steps = steps
        self.log = log
        self.clock = clock
        self.stopped_at_step: int | None = None
        self.stopped_by: str | None = None
        self._t0: float | None = None

    def on_train_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        self._t0 = self.clock()

    def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        if self._t0 is None or self.stopped_at_step is not None or state.global_step >= state.max_steps:
            return
        elapsed = self.clock() - self._t0
        if self.steps > 0 and state.global_step >= self.steps:
            self.stopped_by = "steps"
            why = f"step cap of {self.steps} reached ({state.global_step}/{state.max_steps} of the schedule)"
        elif self.seconds > 0 and elapsed >= self.seconds:
            self.stopped_by = "time"
            why = (f"time budget of {self.seconds:.0f}s reached at step {state.global_step}/{state.max_steps} "
                   f"({elapsed:.0f}s)")
        else:
            return
        self.stopped_at_step = state.global_step
        control.should_training_stop = True
        if args is not None and getattr(args, "eval_strategy", "no") != "no":
            control.should_evaluate = True
        if args is not None and getattr(args, "save_strategy", "no") != "no":
            control.should_save = True
        if self.log is not None:
            self.log(f"{why}; stopping")
