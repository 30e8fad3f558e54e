"""models.py: registry, one chat template for everything, batched generation, adapters."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from curator import models
from curator.errors import ModelError

MSGS = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Name a colour."},
    {"role": "assistant", "content": "Blue."},
]


def test_render_chat_is_the_tokenizer_template() -> None:
    tok = models.load_tokenizer()
    text = models.render_chat(tok, MSGS)
    assert text == tok.apply_chat_template(MSGS, tokenize=False)
    assert text.startswith("<|im_start|>system\nYou are terse.<|im_end|>")
    prompt = models.render_chat(tok, models.prompt_messages(MSGS), add_generation_prompt=True)
    assert prompt.endswith("<|im_start|>assistant\n") and text.startswith(prompt)


def test_registry_lists_both_models() -> None:
    rows = {r["name"]: r for r in models.list_models()}
    assert set(rows) == {"local:smollm2-135m-instruct", "local:all-minilm-l6-v2"}
    assert rows["local:all-minilm-l6-v2"]["ready"] is True
    assert rows["local:smollm2-135m-instruct"]["source"].endswith(".gguf")


def test_unknown_models_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="unknown model 'nope'"):
        models.resolve_model("nope")
    with pytest.raises(ModelError, match="hub downloads are off"):
        models.resolve_model("meta-llama/Llama-3.1-8B")


def test_tiny_model_generates_in_batches(tiny_model_dir: Path) -> None:
    model, tok = models.load_model(str(tiny_model_dir))
    prompts = [[{"role": "user", "content": "hi " * n}] for n in (1, 7, 3)]
    outs = models.generate(model, tok, prompts, max_new_tokens=5, batch_size=2)
    assert len(outs) == 3
    assert outs[0].prompt_tokens < outs[2].prompt_tokens < outs[1].prompt_tokens  # input order is kept
    assert all(o.output_tokens <= 5 and o.finish_reason in ("stop", "length") for o in outs)


def test_named_adapters_on_one_base(tiny_model_dir: Path, tmp_path: Path) -> None:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    for name, seed in (("a", 1), ("b", 2)):
        base = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir))
        torch.manual_seed(seed)
        peft_model = get_peft_model(base, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
        peft_model.save_pretrained(tmp_path / name)
    model, tok = models.load_model(str(tiny_model_dir), adapters={"a": tmp_path / "a", "b": tmp_path / "b"})
    ids = tok("hello there", return_tensors="pt")
    with torch.no_grad():
        model.set_adapter("a")
        la = model(**ids).logits
        model.set_adapter("b")
        lb = model(**ids).logits
    assert not torch.allclose(la, lb)


@pytest.mark.slow
def test_prepare_real_smollm2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CURATOR_CACHE", str(tmp_path / "cache"))
    models._TOKENIZERS.clear()
    path = models.prepare()
    assert (path / "model.safetensors").exists()
    t0 = time.time()
    model, tok = models.load_model("local:smollm2-135m-instruct")
    assert time.time() - t0 < 10  # about a second once converted, against 14 s from GGUF
    out = models.generate(model, tok, [[{"role": "user", "content": "What is the capital of France?"}]],
                          max_new_tokens=20)
    assert "Paris" in out[0].text
    models._TOKENIZERS.clear()
