"""Training configs: one dataclass per method, loaded from YAML, overridden with ``key=value``.

::

    cfg = load_config("configs/smollm2-lora-cpu.yaml", overrides=["max_steps=3", "learning_rate=1e-4"])
    cfg.validate()          # raises ConfigError listing every problem at once
    save_config(cfg, run_dir / "config.yaml")

A YAML file may name its method (``method: sft | dpo | openai``); otherwise the caller's ``method``
picks the dataclass.  Unknown keys are errors that list the valid keys.  Override values are
coerced to the field's type (``learning_rate=1e-4`` is a float, ``target_modules=q_proj,v_proj``
a list, ``gradient_checkpointing=true`` a bool).

These are curator's configs, not TRL's ``SFTConfig``/``DPOConfig``: :mod:`trainer.sft` and
:mod:`trainer.dpo` translate them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Union

import yaml

from curator.errors import ConfigError
from trainer.tracking import REPORTERS

__all__ = [
    "CONFIG_DIR",
    "DEFAULT_CONFIGS",
    "DPOConfig",
    "METHODS",
    "OpenAIConfig",
    "SFTConfig",
    "TrainConfig",
    "apply_overrides",
    "config_fingerprint",
    "config_from_dict",
    "load_config",
    "save_config",
]

#: Shipped configs (``configs/*.yaml`` next to the package).
CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"

QUANTIZATIONS = ("auto", "none", "4bit", "8bit")
PRECISIONS = ("auto", "bf16", "fp16", "fp32")
SCHEDULERS = ("linear", "cosine", "constant", "constant_with_warmup", "cosine_with_restarts", "polynomial")
OPTIMIZERS = ("adamw_torch", "adamw_torch_fused", "adamw_8bit", "paged_adamw_8bit", "paged_adamw_32bit", "sgd", "adafactor")
DPO_LOSSES = ("sigmoid", "hinge", "ipo", "robust", "bco_pair", "sppo_hard", "nca_pair", "apo_zero", "apo_down")

#: Keys that change how a run is reported, not what it learns: left out of the fingerprint.
_REPORTING_KEYS = frozenset({"report_to", "logging_steps", "save_total_limit", "eval_batch_size", "poll_interval_s",
                             "max_cost_usd", "price_per_1m_tokens"})


class _Config:
    """What every config does: list its problems, validate, serialise with its method."""

    method: ClassVar[str]
    #: Set by each subclass's @dataclass (declared so the type checker sees a dataclass).
    __dataclass_fields__: ClassVar[dict[str, dataclasses.Field[Any]]]
    #: Where the config was read from (a file, "overrides"), for error messages; not a field.
    _source: str | None = None

    def problems(self) -> list[str]:
        raise NotImplementedError

    def validate(self) -> None:
        """Raise :class:`ConfigError` listing every problem; return None when the config is valid."""
        problems = self.problems()
        if problems:
            raise ConfigError(problems, self._source)

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, **dataclasses.asdict(self)}


@dataclass
class _LocalConfig(_Config):
    """Fields shared by the local (TRL + PEFT) methods."""

    method: ClassVar[str] = ""

    base_model: str = "local:smollm2-135m-instruct"
    # LoRA
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])
    # data
    max_seq_length: int = 384
    max_eval_examples: int = 64
    # optimisation
    learning_rate: float = 2e-4
    num_train_epochs: float = 3.0
    max_steps: int = -1
    batch_size: int = 4
    gradient_accumulation_steps: int = 1
    eval_batch_size: int = 8
    warmup_ratio: float = 0.05
    lr_scheduler_type: str = "cosine"
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    optim: str = "adamw_torch"
    seed: int = 42
    # precision and memory
    quantization: str = "auto"
    precision: str = "auto"
    gradient_checkpointing: bool = False
    # evaluation, checkpoints and the overfitting guard
    eval_steps: int = 10
    logging_steps: int = 5
    save_checkpoints: bool = True
    save_total_limit: int = 2
    overfit_patience: int = 3
    overfit_min_delta: float = 0.0
    #: Stop after this many optimizer steps, the schedule still spanning the whole run; 0 = no cap.
    #: Reproducible: the same data, seed and commit give the same adapter on any machine.
    stop_after_steps: int = 0
    #: A safety cap: stop after this many seconds of training (evaluations included); 0 = no limit.
    #: Its result depends on the machine's speed; a run it cuts says so (``stopped_by_time_budget_at_step``).
    max_train_time_s: float = 0.0
    report_to: list[str] = field(default_factory=list)

    def problems(self) -> list[str]:
        p: list[str] = []
        if not self.base_model:
            p.append("base_model: must name a model (local:smollm2-135m-instruct, a model folder or a hub id)")
        if self.lora_r < 1:
            p.append(f"lora_r: must be >= 1 (got {self.lora_r})")
        if self.lora_alpha <= 0:
            p.append(f"lora_alpha: must be > 0 (got {self.lora_alpha})")
        if not 0 <= self.lora_dropout < 1:
            p.append(f"lora_dropout: must be in [0, 1) (got {self.lora_dropout})")
        if not self.target_modules:
            p.append("target_modules: list at least one module name (e.g. q_proj, v_proj)")
        if self.max_seq_length < 16:
            p.append(f"max_seq_length: must be >= 16 (got {self.max_seq_length})")
        if self.max_eval_examples < 0:
            p.append(f"max_eval_examples: must be >= 0, 0 = all (got {self.max_eval_examples})")
        if not self.learning_rate > 0:
            p.append(f"learning_rate: must be > 0 (got {self.learning_rate})")
        if self.max_steps <= 0 and not self.num_train_epochs > 0:
            p.append("num_train_epochs: must be > 0 unless max_steps is set")
        if self.max_steps == 0 or self.max_steps < -1:
            p.append(f"max_steps: must be > 0, or -1 to train num_train_epochs (got {self.max_steps})")
        for name in ("batch_size", "gradient_accumulation_steps", "eval_batch_size", "logging_steps",
                     "save_total_limit", "overfit_patience"):
            if getattr(self, name) < 1:
                p.append(f"{name}: must be >= 1 (got {getattr(self, name)})")
        if not 0 <= self.warmup_ratio < 1:
            p.append(f"warmup_ratio: must be in [0, 1) (got {self.warmup_ratio})")
        if self.lr_scheduler_type not in SCHEDULERS:
            p.append(f"lr_scheduler_type: {self.lr_scheduler_type!r} is not one of {', '.join(SCHEDULERS)}")
        if self.weight_decay < 0:
            p.append(f"weight_decay: must be >= 0 (got {self.weight_decay})")
        if self.max_grad_norm < 0:
            p.append(f"max_grad_norm: must be >= 0 (got {self.max_grad_norm})")
        if self.optim not in OPTIMIZERS:
            p.append(f"optim: {self.optim!r} is not one of {', '.join(OPTIMIZERS)}")
        if self.quantization not in QUANTIZATIONS:
            p.append(f"quantization: {self.quantization!r} is not one of {', '.join(QUANTIZATIONS)}")
        if self.precision not in PRECISIONS:
            p.append(f"precision: {self.precision!r} is not one of {', '.join(PRECISIONS)}")
        if self.eval_steps < 0:
            p.append(f"eval_steps: must be >= 0, 0 = no evaluation (got {self.eval_steps})")
        if self.stop_after_steps < 0:
            p.append(f"stop_after_steps: must be >= 0, 0 = no cap (got {self.stop_after_steps})")
        if self.max_train_time_s < 0:
            p.append(f"max_train_time_s: must be >= 0, 0 = no limit (got {self.max_train_time_s})")
        if self.overfit_min_delta < 0:
            p.append(f"overfit_min_delta: must be >= 0 (got {self.overfit_min_delta})")
        bad = [r for r in self.report_to if r not in REPORTERS]
        if bad:
            p.append(f"report_to: unknown {', '.join(bad)} (choose from {', '.join(REPORTERS)}, or an empty list)")
        elif "none" in self.report_to and len(set(self.report_to)) > 1:
            p.append(f"report_to: 'none' cannot be combined with other reporters (got {', '.join(self.report_to)})")
        return p



@dataclass
class SFTConfig(_LocalConfig):
    """Supervised fine-tuning with LoRA; the loss covers the last assistant answer and its end-of-turn token."""

    method: ClassVar[str] = "sft"


@dataclass
class DPOConfig(_LocalConfig):
    """Direct preference optimisation with LoRA on prompt / chosen / rejected pairs."""

    method: ClassVar[str] = "dpo"

    learning_rate: float = 5e-5
    num_train_epochs: float = 1.0
    batch_size: int = 2
    max_seq_length: int = 512
    beta: float = 0.1
    loss_type: str = "sigmoid"

    def problems(self) -> list[str]:
        p = super().problems()
        if not self.beta > 0:
            p.append(f"beta: must be > 0 (got {self.beta})")
        if self.loss_type not in DPO_LOSSES:
            p.append(f"loss_type: {self.loss_type!r} is not one of {', '.join(DPO_LOSSES)}")
        return p


@dataclass
class OpenAIConfig(_Config):
    """A hosted fine-tuning job on the OpenAI API (``curator train --backend openai``)."""

    method: ClassVar[str] = "openai"

    model: str = "gpt-4o-mini-2024-07-18"
    n_epochs: int | str = "auto"
    batch_size: int | str = "auto"
    learning_rate_multiplier: float | str = "auto"
    suffix: str | None = "curator"
    seed: int | None = 42
    #: Seconds between status polls.
    poll_interval_s: float = 15.0
    #: Tokenizer used to count tokens for the cost estimate (tiktoken is not installed: an approximation).
    tokenizer: str = "local:smollm2-135m-instruct"
    #: USD per 1 M training tokens; None looks the model up in ``trainer.openai_ft.PRICES``.
    price_per_1m_tokens: float | None = None
    #: Refuse to start when the estimate is above this (None: no cap).
    max_cost_usd: float | None = None

    def problems(self) -> list[str]:
        p: list[str] = []
        if not self.model:
            p.append("model: name the OpenAI base model to fine-tune (e.g. gpt-4o-mini-2024-07-18)")
        for name, kind in (("n_epochs", int), ("batch_size", int), ("learning_rate_multiplier", float)):
            v = getattr(self, name)
            if isinstance(v, str):
                if v != "auto":
                    p.append(f"{name}: must be a number or 'auto' (got {v!r})")
            elif not v > 0:
                p.append(f"{name}: must be > 0 or 'auto' (got {v})")
            elif kind is int and not float(v).is_integer():
                p.append(f"{name}: must be a whole number or 'auto' (got {v})")
        if self.suffix is not None and (len(self.suffix) > 64 or not self.suffix):
            p.append("suffix: at most 64 characters (or null)")
        if not self.poll_interval_s >= 0:
            p.append(f"poll_interval_s: must be >= 0 (got {self.poll_interval_s})")
        if self.price_per_1m_tokens is not None and self.price_per_1m_tokens < 0:
            p.append(f"price_per_1m_tokens: must be >= 0 (got {self.price_per_1m_tokens})")
        if self.max_cost_usd is not None and self.max_cost_usd < 0:
            p.append(f"max_cost_usd: must be >= 0 (got {self.max_cost_usd})")
        return p



TrainConfig = Union[SFTConfig, DPOConfig, OpenAIConfig]  # noqa: UP007 - a runtime alias
METHODS: dict[str, type[Any]] = {"sft": SFTConfig, "dpo": DPOConfig, "openai": OpenAIConfig}
#: The config used when none is given, per method.
DEFAULT_CONFIGS = {"sft": "smollm2-lora-cpu.yaml", "dpo": "smollm2-dpo-cpu.yaml", "openai": "openai-gpt4o-mini.yaml"}


# -- type coercion --------------------------------------------------------------------------------------------
_MAX_INT = 2**53

def _field_types(cls: type[Any]) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _parse_scalar(text: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def _coerce(name: str, value: Any, tp: Any) -> Any:
    """``value`` (from YAML or a ``key=value`` string) as type ``tp``; ValueError with a readable reason."""
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None or (isinstance(value, str) and value.lower() in ("null", "none", "~")):
            if type(None) in args:
                return None
        errors = []
        # Try the non-str members first, so "3" becomes 3 for ``int | str``.
        for a in sorted((a for a in args if a is not type(None)), key=lambda a: a is str):
            try:
                return _coerce(name, value, a)
            except ValueError as e:
                errors.append(str(e))
        raise ValueError(errors[-1] if errors else f"{name}: cannot be null")
    if origin is list:
        (item,) = typing.get_args(tp) or (str,)
        if isinstance(value, str):
            parsed = _parse_scalar(value) if value.strip().startswith("[") else [v.strip() for v in value.split(",")]
            value = [v for v in parsed if v != ""] if isinstance(parsed, list) else parsed
        if value is None:
            return []
        if not isinstance(value, list):
            raise ValueError(f"{name}: expected a list, got {value!r}")
        return [_coerce(name, v, item) for v in value]
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "yes", "on", "1", "false", "no", "off", "0"):
            return value.strip().lower() in ("true", "yes", "on", "1")
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        raise ValueError(f"{name}: expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, bool):
            raise ValueError(f"{name}: expected an integer, got {value!r}")
        out: int | None = None
        if isinstance(value, int):
            out = value
        elif isinstance(value, float) and value.is_integer():
            out = int(value)
        elif isinstance(value, str):
            try:
                f = float(value.replace("_", ""))
            except ValueError:
                raise ValueError(f"{name}: expected an integer, got {value!r}") from None
            if f.is_integer():
                out = int(f)
        if out is None:
            raise ValueError(f"{name}: expected an integer, got {value!r}")
        if abs(out) > _MAX_INT:  # torch and the trainer count in 64-bit integers
            raise ValueError(f"{name}: {out:.3g} is too large (at most 2^53)")
        return out
    if tp is float:
        if isinstance(value, bool):
            raise ValueError(f"{name}: expected a number, got {value!r}")
        if isinstance(value, int | float):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise ValueError(f"{name}: expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
        raise ValueError(f"{name}: expected a string, got {value!r}")
    return value


def config_from_dict(data: dict[str, Any], method: str | None = None, *, source: str | None = None) -> TrainConfig:
    """Build (not validate) a config from a mapping; every unknown key and bad type is reported at once."""
    data = dict(data)
    file_method = data.pop("method", None)
    if file_method is not None and method is not None and file_method != method:
        raise ConfigError(f"method: the config is for {file_method!r} but {method!r} was asked for", source)
    m = method or file_method or "sft"
    if m not in METHODS:
        raise ConfigError(f"method: {m!r} is not one of {', '.join(METHODS)}", source)
    cls = METHODS[m]
    ftypes = _field_types(cls)
    problems: list[str] = []
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        if key not in ftypes:
            problems.append(f"unknown key {key!r} for method {m} (valid keys: {', '.join(sorted(ftypes))})")
            continue
        try:
            kwargs[key] = _coerce(key, value, ftypes[key])
        except ValueError as e:
            problems.append(str(e))
    if problems:
        raise ConfigError(problems, source)
    cfg = cls(**kwargs)
    cfg._source = source
    return cfg


def apply_overrides(cfg: TrainConfig, overrides: list[str] | tuple[str, ...]) -> TrainConfig:
    """A copy of ``cfg`` with ``key=value`` overrides applied (types coerced from the dataclass fields)."""
    ftypes = _field_types(type(cfg))
    problems: list[str] = []
    changes: dict[str, Any] = {}
    for item in overrides:
        key, sep, raw = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            problems.append(f"override {item!r}: write key=value (e.g. max_steps=3)")
            continue
        if key == "method":
            problems.append("method: choose the method with --method (or the config file), not an override")
            continue
        if key not in ftypes:
            problems.append(f"unknown key {key!r} for method {cfg.method} (valid keys: {', '.join(sorted(ftypes))})")
            continue
        tp = ftypes[key]
        value: Any = raw.strip()
        if typing.get_origin(tp) is not list and tp is not str and raw.strip():
            value = _parse_scalar(raw)
            if not isinstance(value, str | int | float | bool | type(None)):
                value = raw.strip()  # a YAML date, mapping...: let the coercion report it
        try:
            changes[key] = _coerce(key, value, tp)
        except ValueError as e:
            problems.append(str(e))
    if problems:
        raise ConfigError(problems, "overrides")
    new = dataclasses.replace(cfg, **changes)
    new._source = cfg._source
    return new


def load_config(
    config: str | Path | TrainConfig | None = None,
    *,
    method: str | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    validate: bool = True,
) -> TrainConfig:
    """A config from a YAML path, a shipped config name, an instance, or the method's default; then overrides."""
    if config is None:
        config = CONFIG_DIR / DEFAULT_CONFIGS[method or "sft"]
    if isinstance(config, SFTConfig | DPOConfig | OpenAIConfig):
        if method is not None and config.method != method:
            raise ConfigError(f"method: the config is for {config.method!r} but {method!r} was asked for")
        cfg: TrainConfig = dataclasses.replace(config)
    else:
        path = Path(config)
        if not path.exists() and (CONFIG_DIR / path).exists():
            path = CONFIG_DIR / path
        if not path.exists():
            raise ConfigError(f"config file {config} does not exist (shipped configs: {_shipped()})")
        from curator.yamlfile import read_yaml

        data = read_yaml(path) or {}
        if not isinstance(data, dict):
            raise ConfigError("the file must hold a mapping of key: value", str(path))
        cfg = config_from_dict(data, method, source=str(path))
    if overrides:
        cfg = apply_overrides(cfg, overrides)
    if validate:
        cfg.validate()
    return cfg


def _shipped() -> str:
    return ", ".join(sorted(p.name for p in CONFIG_DIR.glob("*.yaml"))) or "none"


def save_config(cfg: TrainConfig, path: str | Path) -> Path:
    """Write the resolved config as YAML (every field, the method first)."""
    path = Path(path)
    path.write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False), encoding="utf-8")
    return path


def config_fingerprint(cfg: TrainConfig, **context: Any) -> str:
    """A hash of what determines a run's result: the config (less reporting keys) plus ``context``."""
    d = {k: v for k, v in cfg.to_dict().items() if k not in _REPORTING_KEYS}
    if isinstance(d.get("max_steps"), int) and d["max_steps"] > 0:
        d.pop("num_train_epochs", None)  # max_steps wins: the epoch count changes nothing
    blob = json.dumps({"config": d, **context}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]
