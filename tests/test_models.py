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
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="not a model folder"):
        models.resolve_model(str(tmp_path / "empty"))


def test_hub_ids_offline_name_the_switch_and_the_local_choices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert models.hub_offline()
    with pytest.raises(ModelError) as e:
        models.resolve_model("curator-tests/no-such-model")
    text = str(e.value)
    for part in ("curator-tests/no-such-model", "HF_HUB_OFFLINE=1", "HF_HUB_OFFLINE=0", "local:smollm2-135m-instruct",
                 "config.json"):
        assert part in text, part
    with pytest.raises(ModelError, match="HF_HUB_OFFLINE=0"):
        models.load_model("curator-tests/no-such-model")


def test_what_reads_as_a_hub_id(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert models.is_hub_id("HuggingFaceTB/SmolLM2-135M-Instruct") and models.is_hub_id("Qwen/Qwen2.5-0.5B-Instruct")
    for not_hub in ("local:smollm2-135m-instruct", "/models/x", "./models/x", "~/m", "a/b/c", "nope", "a b/c"):
        assert not models.is_hub_id(not_hub), not_hub
    (tmp_path / "org" / "model").mkdir(parents=True)
    assert not models.is_hub_id("org/model")  # an existing folder is a folder
    assert models.portable_name("local:smollm2-135m-instruct") == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert models.portable_name("smollm2-135m-instruct") == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert models.portable_name("Qwen/Qwen2.5-0.5B-Instruct") == "Qwen/Qwen2.5-0.5B-Instruct"
    assert models.portable_name("/models/llama") == "/models/llama"


def test_online_a_hub_id_goes_to_from_pretrained(tmp_path: Path) -> None:
    """Online (HF_HUB_OFFLINE=0), a hub id is handed to from_pretrained, which asks the hub: here a local
    HTTP server standing in for it (HF_ENDPOINT) that knows no repository, in a fresh process with an empty
    cache, so nothing hangs and nothing is downloaded."""
    import os
    import subprocess
    import sys
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    asked: list[str] = []

    class NoRepos(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            asked.append(self.path)
            body = b'{"error": "Repository not found"}'
            self.send_response(404)
            self.send_header("X-Error-Code", "RepoNotFound")
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        do_GET = do_HEAD = _answer

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), NoRepos)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = dict(os.environ, HF_HUB_OFFLINE="0", TRANSFORMERS_OFFLINE="0",
               HF_ENDPOINT=f"http://127.0.0.1:{server.server_address[1]}", HF_HOME=str(tmp_path / "hf"),
               HF_HUB_DISABLE_TELEMETRY="1")
    code = ("from curator.errors import ModelError\n"
            "from curator.models import hub_offline, load_model, resolve_model\n"
            "assert not hub_offline()\n"
            "assert resolve_model('curator-tests/no-such-model') == 'curator-tests/no-such-model'\n"
            "try:\n    load_model('curator-tests/no-such-model')\n"
            "except ModelError as e:\n    print('ModelError:', e)\n")
    try:
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    finally:
        server.shutdown()
        server.server_close()
    assert r.returncode == 0, r.stderr[-2000:]
    assert "ModelError: could not load curator-tests/no-such-model from the Hugging Face Hub" in r.stdout, r.stdout
    assert asked and all("/curator-tests/no-such-model" in path for path in asked), asked
    assert not list((tmp_path / "hf").rglob("*.safetensors"))


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
