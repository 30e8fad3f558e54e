"""Supervised fine-tuning with LoRA: the recipe, top to bottom.

1. setup: device, precision, quantization; tokenizer and base model; LoRA (or the adapter of a
   previous run to continue from).
2. data: the snapshot's train split (and up to ``max_eval_examples`` of its eval split) as
   completion-only sequences rendered with ``curator.models.render_chat`` (see :mod:`trainer.data`).
   The test split is never read here.
3. train: TRL ``SFTTrainer``, evaluating every ``eval_steps``, checkpoints beside the evaluations,
   the overfitting guard, metrics to ``metrics.jsonl`` (and to TensorBoard / W&B / MLflow with
   ``report_to``, see :mod:`trainer.tracking`); resumes from a checkpoint when given one.
4. save: the adapter (safetensors) to ``runs/<id>/adapter``; checkpoints are removed.
5. cleanup: free the model; return the metrics.
"""

from __future__ import annotations

import gc
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from curator.models import load_tokenizer
from trainer.callbacks import MetricsLogger, OverfittingGuard, TimeBudget, use_progress
from trainer.config import SFTConfig
from trainer.hardware import load_base_model, resolve_hardware, trl_common_args

__all__ = ["TrainJob", "train_sft"]


@dataclass
class TrainJob:
    """Everything a recipe needs; built by :func:`trainer.train` (or by hand in tests)."""

    run_id: str
    run_dir: Path
    cfg: Any
    train_rows: list[dict[str, Any]]
    eval_rows: list[dict[str, Any]] = field(default_factory=list)
    base_adapter: Path | None = None
    resume_from: Path | None = None
    log: Callable[[str], None] = print
    progress: bool = True


def setup_model(job: TrainJob, continuing: str) -> tuple[Any, Any, Any, Any]:
    """Step 1 of both recipes: hardware, seed, tokenizer, base model, and either the adapter of
    ``job.base_adapter`` (trainable; ``continuing`` is the log line, with ``{adapter}``) or a fresh LoRA config.

    Returns (hardware, tokenizer, model, peft_config or None).
    """
    import torch
    from peft import LoraConfig, PeftModel

    cfg = job.cfg
    hw = resolve_hardware(cfg.quantization, cfg.precision)
    job.log(f"device {hw.device}, precision {hw.precision}, quantization {hw.quantization}"
            + (f", {hw.world_size} processes" if hw.world_size > 1 else ""))
    torch.manual_seed(cfg.seed)
    tokenizer = load_tokenizer(cfg.base_model)
    model = load_base_model(cfg.base_model, hw, gradient_checkpointing=cfg.gradient_checkpointing)
    if job.base_adapter is not None:
        job.log(continuing.format(adapter=job.base_adapter))
        peft_model = PeftModel.from_pretrained(model, str(job.base_adapter), is_trainable=True)
        # The saved adapter names its base portably (a hub id, see trainer.modelcard); while training, PEFT
        # reads the base's config from that name when it saves: point it at the model actually loaded, so
        # saving never looks for the hub (the finished adapter gets its portable name back).
        for pc in peft_model.peft_config.values():
            pc.base_model_name_or_path = str(getattr(model, "name_or_path", "") or cfg.base_model)
        return hw, tokenizer, peft_model, None
    peft_config = LoraConfig(
        r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
        target_modules=list(cfg.target_modules), bias="none", task_type="CAUSAL_LM",
    )
    return hw, tokenizer, model, peft_config


def train_sft(job: TrainJob) -> dict[str, Any]:
    """Train a LoRA adapter on ``job.train_rows``; return the run metrics."""
    from trl import SFTConfig as TRLSFTConfig
    from trl import SFTTrainer

    cfg: SFTConfig = job.cfg
    log = job.log

    # -- 1. setup --------------------------------------------------------------------------------------------
    hw, tokenizer, model, peft_config = setup_model(job, "continuing from the adapter {adapter}")

    # -- 2. data ---------------------------------------------------------------------------------------------
    from trainer.data import sft_dataset

    train_ds, train_stats = sft_dataset(tokenizer, job.train_rows, cfg.max_seq_length)
    eval_rows = job.eval_rows[: cfg.max_eval_examples] if cfg.max_eval_examples else job.eval_rows
    eval_ds, eval_stats = sft_dataset(tokenizer, eval_rows, cfg.max_seq_length)
    no_tools = train_stats.get("excluded_tool_calls", 0) + eval_stats.get("excluded_tool_calls", 0)
    if no_tools:  # never a silent drop: the count is also in the run's metrics (data.*.excluded_tool_calls)
        log(f"left out {train_stats['excluded_tool_calls']} train and {eval_stats['excluded_tool_calls']} eval "
            f"examples with tool calls: the chat template of {cfg.base_model} cannot render tool calls (it never "
            "mentions tool_calls); train on a base model whose template supports tools to learn them")
    if len(train_ds) == 0:
        from curator.errors import CuratorError

        raise CuratorError("the snapshot's train split has no example with an assistant answer to learn"
                           + (" (its examples with tool calls were left out, see above)" if no_tools else ""))
    has_eval = len(eval_ds) > 0
    log(f"train {len(train_ds)} sequences ({train_stats['target_tokens']} answer tokens, "
        f"{train_stats['truncated']} truncated, {train_stats['dropped']} dropped); "
        + (f"eval {len(eval_ds)}" if has_eval else "no eval split: the overfitting guard is off"))

    # -- 3. train --------------------------------------------------------------------------------------------
    args = TRLSFTConfig(
        **trl_common_args(cfg, hw, job.run_dir / "checkpoints", run_name=job.run_id, progress=job.progress,
                          has_eval=has_eval),
        max_length=cfg.max_seq_length,
        packing=False,
        completion_only_loss=None,  # our sequences carry their own labels
    )
    metrics_cb = MetricsLogger(job.run_dir / "metrics.jsonl", log=log)
    guard = OverfittingGuard(cfg.overfit_patience, cfg.overfit_min_delta, log=log)
    budget = TimeBudget(cfg.max_train_time_s, log=log, steps=cfg.stop_after_steps)
    trainer = SFTTrainer(
        model=model, args=args, train_dataset=train_ds, eval_dataset=eval_ds if has_eval else None,
        processing_class=tokenizer, peft_config=peft_config, callbacks=[metrics_cb, guard, budget],
    )
    metrics = train_and_save(job, trainer, metrics_cb, guard, budget, hw)  # -- 3. train, 4. save
    metrics["data"] = {"train": train_stats, "eval": eval_stats}

    # -- 5. cleanup ------------------------------------------------------------------------------------------
    del trainer, model
    gc.collect()
    return metrics


def train_and_save(job: TrainJob, trainer: Any, metrics_cb: MetricsLogger, guard: OverfittingGuard,
                   budget: TimeBudget, hw: Any) -> dict[str, Any]:
    """Steps 3-4 of both recipes: train (resuming from ``job.resume_from``), save the adapter to
    ``runs/<id>/adapter``, remove the checkpoints; returns the run metrics."""
    use_progress(trainer, job.progress)
    if job.resume_from is not None:
        _replay(guard, job.resume_from)
        job.log(f"resuming from {job.resume_from.name}")
    from trainer.tracking import reporting

    # report_to: TensorBoard / W&B / MLflow callbacks writing into the run folder, for the training only
    with reporting(job.cfg.report_to, job.run_dir, enabled=trainer.is_world_process_zero()) as reporters:
        for callback in reporters:
            trainer.add_callback(callback)
        result = trainer.train(resume_from_checkpoint=str(job.resume_from) if job.resume_from else None)
    adapter_dir = job.run_dir / "adapter"
    trainer.save_model(str(adapter_dir))
    metrics = _metrics(trainer, result, metrics_cb, guard)
    metrics["hardware"] = hw.to_dict()
    metrics["stopped_by_time_budget_at_step"] = budget.stopped_at_step if budget.stopped_by == "time" else None
    metrics["stopped_by_step_cap_at_step"] = budget.stopped_at_step if budget.stopped_by == "steps" else None
    if trainer.is_world_process_zero():
        shutil.rmtree(adapter_dir / "ref", ignore_errors=True)  # DPO's frozen reference copy is not the result
        shutil.rmtree(job.run_dir / "checkpoints", ignore_errors=True)
    return metrics


def _replay(guard: OverfittingGuard, checkpoint: Path) -> None:
    import json

    state = checkpoint / "trainer_state.json"
    if state.exists():
        guard.replay(json.loads(state.read_text()).get("log_history", []))


def _metrics(trainer: Any, result: Any, metrics_cb: MetricsLogger, guard: OverfittingGuard) -> dict[str, Any]:
    """The run's metrics: final and best losses, the loss history, the guard's verdict."""
    state = trainer.state
    history: dict[str, list[list[float]]] = {"train_loss": [], "eval_loss": []}
    for rec in state.log_history:  # includes the steps before a resume
        if "loss" in rec:
            history["train_loss"].append([rec["step"], round(float(rec["loss"]), 5)])
        if "eval_loss" in rec:
            history["eval_loss"].append([rec["step"], round(float(rec["eval_loss"]), 5)])
    evals = [v for _, v in history["eval_loss"]]
    out: dict[str, Any] = {
        "train_loss": history["train_loss"][-1][1] if history["train_loss"] else round(float(result.training_loss), 5),
        "train_loss_mean": round(float(result.training_loss), 5),
        "eval_loss": evals[-1] if evals else None,
        "best_eval_loss": round(float(state.best_metric), 5) if state.best_metric is not None else (min(evals) if evals else None),
        "best_step": _best_step(state, history),
        "global_step": state.global_step,
        "max_steps": state.max_steps,
        "epochs": round(float(state.epoch or 0.0), 3),
        "train_runtime_s": round(float(result.metrics.get("train_runtime", 0.0)), 2),
        "overfitting_detected_at_step": guard.detected_at_step,
        "history": history,
    }
    for k in ("rewards/accuracies", "rewards/margins"):
        vals = [rec[k] for rec in state.log_history if k in rec]
        if vals:
            out[k.replace("/", "_")] = round(float(vals[-1]), 5)
    return out


def _best_step(state: Any, history: dict[str, list[list[float]]]) -> int | None:
    ckpt = state.best_model_checkpoint
    if ckpt:
        try:
            return int(str(ckpt).rsplit("-", 1)[-1])
        except ValueError:
            pass
    if history["eval_loss"]:
        return int(min(history["eval_loss"], key=lambda x: x[1])[0])
    return None
