"""trainer.config: YAML + key=value overrides, every problem at once, every shipped config valid."""

from __future__ import annotations

from pathlib import Path

import pytest

from curator.errors import ConfigError
from trainer.config import (
    CONFIG_DIR,
    DPOConfig,
    OpenAIConfig,
    SFTConfig,
    apply_overrides,
    config_fingerprint,
    load_config,
    save_config,
)

SHIPPED = sorted(CONFIG_DIR.glob("*.yaml"))


def test_the_required_configs_ship() -> None:
    names = {p.name for p in SHIPPED}
    assert {"smollm2-lora-cpu.yaml", "llama31-8b-qlora.yaml"} <= names


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_every_shipped_config_loads_and_validates(path: Path) -> None:
    cfg = load_config(path)
    cfg.validate()
    assert cfg.problems() == []


def test_qlora_recipe_is_the_classic_one() -> None:
    cfg = load_config(CONFIG_DIR / "llama31-8b-qlora.yaml")
    assert isinstance(cfg, SFTConfig)
    assert (cfg.quantization, cfg.precision) == ("4bit", "bf16")
    assert (cfg.lora_r, cfg.lora_alpha, cfg.lora_dropout) == (16, 32, 0.05)
    assert cfg.target_modules == ["q_proj", "k_proj", "v_proj", "o_proj"]
    assert cfg.learning_rate == 2e-4
    assert (cfg.batch_size, cfg.gradient_accumulation_steps) == (4, 8)
    assert cfg.warmup_ratio > 0 and cfg.gradient_checkpointing is True


def test_default_is_the_cpu_config() -> None:
    cfg = load_config(None)
    assert isinstance(cfg, SFTConfig) and cfg.base_model == "local:smollm2-135m-instruct"
    assert cfg.quantization == "auto"
    assert isinstance(load_config(None, method="dpo"), DPOConfig)
    assert isinstance(load_config(None, method="openai"), OpenAIConfig)


def test_overrides_are_coerced_from_field_types() -> None:
    cfg = load_config(None, overrides=[
        "max_steps=3", "learning_rate=1e-4", "target_modules=q_proj,v_proj", "gradient_checkpointing=true",
        "num_train_epochs=2", "report_to=[tensorboard]", "lora-r=8",
    ])
    assert cfg.max_steps == 3 and isinstance(cfg.max_steps, int)
    assert cfg.learning_rate == 1e-4 and isinstance(cfg.learning_rate, float)
    assert cfg.target_modules == ["q_proj", "v_proj"]
    assert cfg.gradient_checkpointing is True
    assert cfg.num_train_epochs == 2.0 and isinstance(cfg.num_train_epochs, float)
    assert cfg.report_to == ["tensorboard"]
    assert cfg.lora_r == 8


def test_openai_union_fields() -> None:
    cfg = load_config(None, method="openai", overrides=["n_epochs=3", "learning_rate_multiplier=1e-1", "suffix=null"])
    assert cfg.n_epochs == 3 and cfg.learning_rate_multiplier == pytest.approx(0.1) and cfg.suffix is None
    assert load_config(None, method="openai", overrides=["batch_size=auto"]).batch_size == "auto"


def test_unknown_keys_list_the_valid_ones() -> None:
    with pytest.raises(ConfigError) as e:
        load_config(None, overrides=["max_stepz=3", "lr=1"])
    assert len(e.value.problems) == 2
    assert "unknown key 'max_stepz'" in str(e.value) and "valid keys:" in str(e.value) and "max_steps" in str(e.value)


def test_bad_types_and_malformed_overrides() -> None:
    with pytest.raises(ConfigError) as e:
        load_config(None, overrides=["max_steps=three", "gradient_checkpointing=maybe", "novalue"])
    msgs = e.value.problems
    assert any("max_steps: expected an integer" in m for m in msgs)
    assert any("gradient_checkpointing: expected true or false" in m for m in msgs)
    assert any("write key=value" in m for m in msgs)


def test_validate_reports_every_problem_at_once() -> None:
    cfg = apply_overrides(SFTConfig(), ["lora_r=0", "learning_rate=-1", "quantization=3bit", "report_to=neptune",
                                        "lora_dropout=1.5", "target_modules=[]"])
    with pytest.raises(ConfigError) as e:
        cfg.validate()
    text = str(e.value)
    assert len(e.value.problems) == 6
    for key in ("lora_r", "learning_rate", "quantization", "report_to", "lora_dropout", "target_modules"):
        assert key in text


def test_yaml_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("method: dpo\nbeta: -1\nwat: 2\n")
    with pytest.raises(ConfigError, match="unknown key 'wat'"):
        load_config(bad)
    bad.write_text("method: dpo\nbeta: -1\n")
    with pytest.raises(ConfigError, match="beta: must be > 0"):
        load_config(bad)
    with pytest.raises(ConfigError, match="is for 'dpo' but 'sft'"):
        load_config(bad, method="sft", validate=False)
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")


def test_resolved_config_round_trips(tmp_path: Path) -> None:
    cfg = load_config(None, overrides=["max_steps=7"])
    path = save_config(cfg, tmp_path / "config.yaml")
    again = load_config(path)
    assert again == cfg and path.read_text().startswith("method: sft\n")


def test_fingerprint_ignores_reporting_keys_only() -> None:
    cfg = SFTConfig()
    fp = config_fingerprint(cfg, snapshot="s1")
    assert config_fingerprint(apply_overrides(cfg, ["report_to=[tensorboard]", "logging_steps=1"]), snapshot="s1") == fp
    assert config_fingerprint(apply_overrides(cfg, ["learning_rate=1e-3"]), snapshot="s1") != fp
    assert config_fingerprint(cfg, snapshot="s2") != fp
    capped = apply_overrides(cfg, ["max_steps=10"])
    assert config_fingerprint(apply_overrides(capped, ["num_train_epochs=9"])) == config_fingerprint(capped)


def test_integers_beyond_64_bits_and_broken_files_are_refused(tmp_path: Path) -> None:
    from curator.errors import InputError

    bad = tmp_path / "c.yaml"
    bad.write_text("method: sft\nmax_steps: 1000000000000000000000000000000\n")
    with pytest.raises(ConfigError, match=r"max_steps: 1e\+30 is too large"):
        load_config(bad)
    bad.write_bytes(b"method: sft\nlearning_rate: \xff\n")
    with pytest.raises(InputError, match=r"c\.yaml:2: not UTF-8 text"):
        load_config(bad)
    bad.write_text("method: sft\nlearning_rate: [1, 2\n")
    with pytest.raises(InputError, match=r"c\.yaml:3: not valid YAML"):
        load_config(bad)
