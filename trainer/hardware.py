"""Device, precision and quantization choices, and loading the base model for training.

``quantization: auto`` means nf4 4-bit (bitsandbytes, QLoRA) on CUDA and none on CPU.
``precision: auto`` means bf16 on GPUs that support it (else fp16), and on CPU bf16 autocast when
the CPU has native bf16 (AVX512-BF16 / AMX), else fp32.  The weights stay fp32 on CPU.

4-bit on CPU is refused: measured with bitsandbytes 0.50, after any evaluation or ``generate()``
in eval mode the 4-bit weights are repacked and later LoRA gradients are silently wrong
(cosine 0.05 against a reference).  8-bit on CPU gives correct gradients and is allowed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from curator.errors import ConfigError
from curator.models import load_pretrained

__all__ = ["CPU_4BIT_REFUSAL", "Hardware", "load_base_model", "resolve_hardware", "trl_common_args"]

CPU_4BIT_REFUSAL = (
    "quantization 4bit is refused on CPU: bitsandbytes 0.50 repacks 4-bit weights after any evaluation or "
    "generate() in eval mode, and later LoRA gradients are silently wrong (gradient cosine 0.05 against a "
    "reference). Use quantization=none (the CPU default) or 8bit, or train 4-bit (QLoRA) on a CUDA GPU"
)


@dataclass
class Hardware:
    device: str  # "cuda" | "cpu"
    quantization: str  # "none" | "4bit" | "8bit"
    precision: str  # "bf16" | "fp16" | "fp32"
    world_size: int = 1
    local_rank: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"device": self.device, "quantization": self.quantization, "precision": self.precision,
                "world_size": self.world_size}


def _cpu_bf16() -> bool:
    import torch

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def resolve_hardware(quantization: str, precision: str, *, device: str | None = None) -> Hardware:
    """Turn ``auto`` settings into concrete ones for this machine; refuse combinations that are wrong here."""
    import torch

    dev = device or ("cuda" if torch.cuda.is_available() else "cpu")
    quant = quantization
    if quant == "auto":
        quant = "4bit" if dev == "cuda" else "none"
    if quant == "4bit" and dev == "cpu":
        raise ConfigError(CPU_4BIT_REFUSAL)
    prec = precision
    if prec == "auto":
        if dev == "cuda":
            prec = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        else:
            prec = "bf16" if _cpu_bf16() else "fp32"
    if prec == "fp16" and dev == "cpu":
        raise ConfigError("precision fp16 needs a CUDA GPU; use bf16 (if the CPU supports it) or fp32 on CPU")
    if prec == "bf16" and dev == "cpu" and not _cpu_bf16():
        raise ConfigError("precision bf16: this CPU has no native bf16 support; use precision=fp32")
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("LOCAL_RANK", "0"))
    return Hardware(dev, quant, prec, world, rank)


def load_base_model(base_model: str, hw: Hardware, *, gradient_checkpointing: bool) -> Any:
    """The base causal LM for LoRA training (quantized and prepared for k-bit training when asked)."""
    import torch
    from transformers import AutoModelForCausalLM

    kwargs: dict[str, Any] = {}
    compute = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[hw.precision]
    if hw.device == "cuda":
        kwargs["dtype"] = compute
    else:
        kwargs["dtype"] = torch.float32  # autocast handles bf16 on CPU; LoRA weights stay fp32
    if hw.quantization in ("4bit", "8bit"):
        from transformers import BitsAndBytesConfig

        if hw.quantization == "4bit":
            kwargs["quantization_config"] = BitsAndBytesConfig(
                load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=compute,
                bnb_4bit_use_double_quant=True,
            )
        else:
            kwargs["quantization_config"] = BitsAndBytesConfig(load_in_8bit=True)
        if hw.device == "cuda":
            kwargs["device_map"] = {"": hw.local_rank}
    model = load_pretrained(AutoModelForCausalLM, base_model, **kwargs)
    if hw.quantization in ("4bit", "8bit"):
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=gradient_checkpointing,
            gradient_checkpointing_kwargs={"use_reentrant": False},
        )
    model.config.use_cache = False
    return model


def trl_common_args(cfg: Any, hw: Hardware, out_dir: Path, *, run_name: str, progress: bool,
                    has_eval: bool) -> dict[str, Any]:
    """Arguments shared by TRL's ``SFTConfig`` and ``DPOConfig`` for a curator config."""
    evaluate = has_eval and cfg.eval_steps > 0
    save = cfg.save_checkpoints and (evaluate or cfg.eval_steps > 0)
    return {
        "output_dir": str(out_dir),
        "run_name": run_name,
        "per_device_train_batch_size": cfg.batch_size,
        "per_device_eval_batch_size": cfg.eval_batch_size,
        "gradient_accumulation_steps": cfg.gradient_accumulation_steps,
        "learning_rate": cfg.learning_rate,
        "num_train_epochs": cfg.num_train_epochs,
        "max_steps": cfg.max_steps,
        "lr_scheduler_type": cfg.lr_scheduler_type,
        "warmup_steps": cfg.warmup_ratio,  # a float < 1 is a ratio of the total steps (transformers 5)
        "weight_decay": cfg.weight_decay,
        "max_grad_norm": cfg.max_grad_norm,
        "optim": cfg.optim,
        "seed": cfg.seed,
        "data_seed": cfg.seed,
        "bf16": hw.precision == "bf16",
        "fp16": hw.precision == "fp16",
        "use_cpu": hw.device == "cpu",
        "activation_checkpointing": cfg.gradient_checkpointing,
        "activation_checkpointing_kwargs": {"use_reentrant": False} if cfg.gradient_checkpointing else None,
        "eval_strategy": "steps" if evaluate else "no",
        "eval_steps": cfg.eval_steps if evaluate else None,
        "save_strategy": "steps" if save else "no",
        "save_steps": cfg.eval_steps if save else 500,
        "save_total_limit": cfg.save_total_limit,
        "load_best_model_at_end": bool(evaluate and save),
        "metric_for_best_model": "eval_loss",
        "greater_is_better": False,
        "logging_steps": cfg.logging_steps,
        "report_to": "none",  # trainer.tracking adds the reporters, pointed at the run folder
        "disable_tqdm": not progress,
        "dataloader_num_workers": 0,
        "remove_unused_columns": True,
    }
