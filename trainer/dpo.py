"""Direct preference optimisation with LoRA: the recipe, top to bottom.

1. setup: device, precision, quantization; tokenizer and base model.  After SFT (``base_run``)
   the SFT adapter is loaded *trainable* and DPO continues training it; TRL copies it into a frozen
   ``ref`` adapter, the reference policy.  Without a base run a fresh LoRA is trained and the
   reference is the base model (adapter disabled).  Either way the saved adapter loads on the
   plain base model with ``PeftModel.from_pretrained(base, path)``.
2. data: preference pairs (``prompt`` messages, ``chosen`` / ``rejected`` answers) from the
   snapshot's train split, evaluation on its eval split.  TRL renders them with the tokenizer's
   chat template, the one ``curator.models.render_chat`` uses.
3. train: TRL ``DPOTrainer`` with the same callbacks as SFT (metrics, overfitting guard on the
   eval loss), resuming from a checkpoint when given one.
4. save: only the trained adapter (not the ``ref`` copy) to ``runs/<id>/adapter``.
5. cleanup.
"""

from __future__ import annotations

import gc
from typing import Any

from curator.errors import CuratorError
from trainer.callbacks import MetricsLogger, OverfittingGuard, TimeBudget
from trainer.config import DPOConfig
from trainer.hardware import trl_common_args
from trainer.sft import TrainJob, setup_model, train_and_save

__all__ = ["train_dpo"]


def train_dpo(job: TrainJob) -> dict[str, Any]:
    """Train (or continue) a LoRA adapter on preference pairs; ``job.train_rows`` / ``eval_rows`` are pairs."""
    from datasets import Dataset
    from trl import DPOConfig as TRLDPOConfig
    from trl import DPOTrainer

    from trainer.data import dpo_record

    cfg: DPOConfig = job.cfg
    log = job.log

    # -- 1. setup --------------------------------------------------------------------------------------------
    hw, tokenizer, model, peft_config = setup_model(job, "starting from the SFT adapter {adapter} (also the frozen reference)")

    # -- 2. data ---------------------------------------------------------------------------------------------
    train_records = [dpo_record(p) for p in job.train_rows]
    eval_pairs = job.eval_rows[: cfg.max_eval_examples] if cfg.max_eval_examples else job.eval_rows
    eval_records = [dpo_record(p) for p in eval_pairs]
    if not train_records:
        raise CuratorError("no preference pairs in the snapshot's train split: DPO needs chosen/rejected pairs")
    train_ds = Dataset.from_list(train_records)
    eval_ds = Dataset.from_list(eval_records) if eval_records else None
    log(f"train {len(train_records)} preference pairs; "
        + (f"eval {len(eval_records)}" if eval_records else "no eval pairs: the overfitting guard is off"))

    # -- 3. train --------------------------------------------------------------------------------------------
    args = TRLDPOConfig(
        **trl_common_args(cfg, hw, job.run_dir / "checkpoints", run_name=job.run_id, progress=job.progress,
                          has_eval=eval_ds is not None),
        max_length=cfg.max_seq_length,
        beta=cfg.beta,
        loss_type=[cfg.loss_type],
    )
    metrics_cb = MetricsLogger(job.run_dir / "metrics.jsonl", log=log)
    guard = OverfittingGuard(cfg.overfit_patience, cfg.overfit_min_delta, log=log)
    budget = TimeBudget(cfg.max_train_time_s, log=log, steps=cfg.stop_after_steps)
    trainer = DPOTrainer(
        model=model, args=args, train_dataset=train_ds, eval_dataset=eval_ds, processing_class=tokenizer,
        peft_config=peft_config, callbacks=[metrics_cb, guard, budget],
    )
    metrics = train_and_save(job, trainer, metrics_cb, guard, budget, hw)  # -- 3. train, 4. save
    metrics["data"] = {"train_pairs": len(train_records), "eval_pairs": len(eval_records)}

    # -- 5. cleanup ------------------------------------------------------------------------------------------
    del trainer, model
    gc.collect()
    return metrics
