"""Continuous batching on the tiny model: rows that join, leave and outgrow the cache mid-flight, and the
prefix cache, all answer exactly as one-at-a-time generation does."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from serve_helpers import RUNS

from curator.llm.continuous import Engine, GenRequest, SamplingParams

SYSTEM = "You are the support assistant for a cloud platform. Answer in three numbered steps, never ask for passwords."
PROMPTS = [[{"role": "system", "content": SYSTEM},
            {"role": "user", "content": f"Ticket {i}: my {t} stopped working {i} hours ago. What now?"}]
           for i, t in enumerate(["disk", "dns", "billing", "login", "ssh", "bucket", "function", "database"])]
LONG = 90  # more tokens than the cache's headroom: the cache is moved or grown while rows decode


@pytest.fixture(scope="module")
def stack(serve_template: Path, tiny_model_dir: Path) -> Any:
    """(model, tokenizer, references): each prompt answered alone by ``generate`` for 'alpha' and the base."""
    from curator.models import generate, load_model

    model, tok = load_model(str(tiny_model_dir), adapters={rid: str(serve_template / "runs" / rid / "adapter")
                                                           for rid, _ in RUNS.values()})
    rid = RUNS["alpha"][0]
    model.set_adapter(rid)
    refs: dict[str | None, list[str]] = {
        rid: [g.text for g in generate(model, tok, PROMPTS, max_new_tokens=LONG, batch_size=1)]}
    with model.disable_adapter():
        refs[None] = [g.text for g in generate(model, tok, PROMPTS, max_new_tokens=LONG, batch_size=1)]
    return model, tok, refs


def _req(eng: Engine, i: int, adapter: str | None, max_tokens: int = LONG, **kw: Any) -> GenRequest:
    return GenRequest(eng.encode(PROMPTS[i]), SamplingParams(max_tokens=max_tokens), adapter=adapter, **kw)


def _prefix(text: str, tokens: int, tok: Any) -> str:
    """The answer cut after its first ``tokens`` tokens, as the engine decodes it."""
    ids = tok(text, add_special_tokens=False)["input_ids"][:tokens]
    return str(tok.decode(ids, skip_special_tokens=True)).strip()


def test_rows_of_different_lengths_and_adapters_finish_apart_and_answer_as_alone(stack: Any) -> None:
    model, tok, refs = stack
    rid = RUNS["alpha"][0]
    eng = Engine(model, tok, max_batch=16, prefix_cache=0)
    lengths = [3, LONG, 7, LONG, 1, 40, LONG, 12]
    reqs = [_req(eng, i, rid if i % 2 else None, n) for i, n in enumerate(lengths)]
    eng.generate_now(reqs)
    for i, (r, n) in enumerate(zip(reqs, lengths, strict=True)):
        ref = refs[r.adapter][i]
        if r.finish_reason == "length":
            assert len(r.tokens) == n
            assert ref.startswith(r.text) or r.text == _prefix(ref, n, tok), i
        else:
            assert r.finish_reason == "stop" and r.text == ref, i
    assert [r.text for r in reqs if len(r.tokens) == LONG] == [refs[r.adapter][i] for i, r in enumerate(reqs)
                                                                if len(r.tokens) == LONG]
    assert eng.live == 0 and all(r.batch_size == len(reqs) for r in reqs)  # admitted together


def test_max_batch_admits_the_rest_as_rows_finish(stack: Any) -> None:
    model, tok, refs = stack
    eng = Engine(model, tok, max_batch=3, prefix_cache=0)
    reqs = [_req(eng, i, None, 5 + 10 * (i % 3)) for i in range(len(PROMPTS))]
    eng.generate_now(reqs)
    assert max(r.batch_size for r in reqs) == 3
    assert eng.batches > 1  # later rows were admitted into the running batch
    for i, r in enumerate(reqs):
        assert refs[None][i].startswith(r.text) or r.text == _prefix(refs[None][i], len(r.tokens), tok)


def test_a_request_joins_a_batch_that_is_decoding(stack: Any) -> None:
    model, tok, refs = stack
    rid = RUNS["alpha"][0]
    eng = Engine(model, tok, batch_wait_ms=0, gap_ms=0).start()
    try:
        done = threading.Event()
        late: list[GenRequest] = []

        def on_delta(text: str) -> None:
            if not late:  # the first streamed text of the early request: the batch is decoding
                late.append(eng.submit(_req(eng, 5, rid, on_done=lambda r: done.set())))

        early = eng.submit(_req(eng, 2, rid, stream=True, on_delta=on_delta))
        assert done.wait(120)
        for _ in range(200):
            if early.done:
                break
            threading.Event().wait(0.05)
    finally:
        eng.stop()
    assert early.text == refs[rid][2] and late[0].text == refs[rid][5]
    assert late[0].started_at is not None and early.finished_at is not None
    assert late[0].started_at < early.finished_at  # admitted while the first one was generating
    assert late[0].batch_size == 2 and eng.batches == 2


def test_the_prefix_cache_reuses_a_shared_system_prompt_and_changes_no_answer(stack: Any) -> None:
    model, tok, refs = stack
    rid = RUNS["alpha"][0]
    eng = Engine(model, tok, max_batch=8, prefix_cache=4)
    first = eng.generate_now([_req(eng, 0, rid, 20)])[0]
    assert first.prefix_tokens == 0
    rest = eng.generate_now([_req(eng, i, rid if i % 2 else None, 20) for i in range(1, len(PROMPTS))])
    shared = [r for r in rest if r.adapter == rid]
    assert all(r.prefix_tokens >= 16 for r in shared)  # the system prompt's KV came from the first request
    assert all(r.prefix_tokens < len(r.prompt_ids) for r in shared)
    base = [r for r in rest if r.adapter is None]  # the base model's KV differs: not shared with 'alpha'
    assert base[0].prefix_tokens == 0 and all(r.prefix_tokens >= 16 for r in base[1:])
    off = Engine(model, tok, max_batch=8, prefix_cache=0)
    again = off.generate_now([_req(off, i, rid if i % 2 else None, 20) for i in range(1, len(PROMPTS))])
    assert [r.text for r in rest] == [r.text for r in again]
    assert all(r.prefix_tokens == 0 for r in again) and off.prefix_hits == 0 < eng.prefix_hits
    assert first.text == _prefix(refs[rid][0], 20, tok) or refs[rid][0].startswith(first.text)


def test_stop_finishes_the_rows_decoding_and_cancels_the_queue(stack: Any) -> None:
    model, tok, _ = stack
    eng = Engine(model, tok, max_batch=1, batch_wait_ms=0, gap_ms=0).start()
    finished = threading.Event()
    running = eng.submit(_req(eng, 0, None, LONG, on_done=lambda r: finished.set()))
    queued = [eng.submit(_req(eng, i, None)) for i in range(1, 4)]
    eng.stop()
    assert running.finish_reason in {"stop", "length"}
    assert all(r.finish_reason == "cancelled" and r.started_at is None for r in queued)
    assert eng.live == 0 and finished.is_set()
    with pytest.raises(ValueError, match="empty"):
        eng.submit(GenRequest([], SamplingParams()))


def test_bfloat16_serves_and_a_sliding_window_model_is_refused(tiny_model_dir: Path) -> None:
    from transformers import AutoModelForCausalLM, Qwen2Config

    from curator.errors import ModelError
    from curator.models import generate, load_model

    model, tok = load_model(str(tiny_model_dir), dtype="bfloat16")
    eng = Engine(model, tok)
    reqs = eng.generate_now([_req(eng, i, None, 8) for i in range(3)])
    assert all(r.finish_reason == "length" and len(r.tokens) == 8 for r in reqs)
    assert [r.text for r in reqs] == [g.text for g in generate(model, tok, PROMPTS[:3], max_new_tokens=8, batch_size=1)]
    cfg = Qwen2Config(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=2, num_key_value_heads=1, use_sliding_window=True, sliding_window=8,
                      max_window_layers=0)
    with pytest.raises(ModelError, match="sliding_attention"):
        Engine(AutoModelForCausalLM.from_config(cfg), tok)


@pytest.mark.slow
def test_the_real_smollm2_answers_as_generate_does() -> None:
    """The engine (prefix cache, joined and dropped rows) against one-at-a-time generate on SmolLM2-135M."""
    from curator.models import generate, load_model

    model, tok = load_model("local:smollm2-135m-instruct")
    refs = [g.text for g in generate(model, tok, PROMPTS[:4], max_new_tokens=24, batch_size=1)]
    eng = Engine(model, tok, max_batch=3)
    reqs = eng.generate_now([_req(eng, i, None, 24) for i in range(4)])
    assert [r.text for r in reqs] == refs
    assert eng.prefix_hits > 0 and eng.batches > 1


def test_serve_dtype_bfloat16_answers_as_the_bfloat16_model_does(serve_ws: Path, tiny_model_dir: Path) -> None:
    import openai
    from serve_helpers import Server

    from curator.models import generate, load_model

    rid = RUNS["alpha"][0]
    model, tok = load_model(str(tiny_model_dir), adapters={rid: str(serve_ws / "runs" / rid / "adapter")},
                            dtype="bfloat16")
    ref = generate(model, tok, PROMPTS[1:2], max_new_tokens=12, batch_size=1)[0].text
    args = ["--base-model", str(tiny_model_dir), "--adapter", f"alpha={rid}", "--dtype", "bfloat16"]
    with Server(serve_ws, args) as server:
        client = openai.OpenAI(base_url=server.url + "/v1", api_key="none", max_retries=0)
        got = client.chat.completions.create(model="alpha", messages=PROMPTS[1], max_tokens=12, temperature=0)
    assert got.choices[0].message.content == ref


def test_the_prefix_cache_keeps_to_its_size_and_memory_budget() -> None:
    import torch

    from curator.llm.continuous import _PrefixCache

    def kv(n: int) -> tuple[list[Any], list[Any]]:
        return [torch.zeros(1, 1, n, 1)], [torch.zeros(1, 1, n, 1)]  # 8 bytes a token

    prompts = [[k] * 20 + list(range(20)) for k in range(1000, 1005)]  # 40 tokens, each its own beginning
    cache = _PrefixCache(size=8, max_bytes=3 * 40 * 8)
    for p in prompts[:3]:
        assert cache.wants(None, p)
        cache.add(None, p, kv(40))
    assert not cache.wants(None, prompts[0] + [7])  # already covered
    assert cache.lookup(None, prompts[0] + [7])[1] == 40
    cache.add(None, prompts[3], kv(40))  # over budget: the least recently used (prompts[1]) goes
    assert cache.lookup(None, prompts[1] + [7])[0] is None and cache.lookup(None, prompts[0] + [7])[1] == 40
    assert cache.nbytes == 3 * 40 * 8
    cache.add(None, prompts[4], kv(200))  # larger than the whole budget: not kept
    assert cache.lookup(None, prompts[4] + [7])[0] is None
    small = _PrefixCache(size=2)
    for p in prompts[:3]:
        small.add("a", p, kv(40))
    assert small.lookup("a", prompts[0] + [7])[0] is None and small.lookup("b", prompts[2] + [7])[0] is None
    assert small.lookup("a", prompts[2] + [7])[1] == 40


def test_stacked_lora_mixed_batches_equal_peft_mixed_batching(stack: Any) -> None:
    """A mixed batch (two adapters and the base model) through the stacked LoRA matrices gives PEFT's own
    mixed-batch logits, and the engine uses it."""
    import torch

    from curator.llm.continuous import BASE_ADAPTER, _StackedLora

    model, tok, _ = stack
    names = [RUNS["alpha"][0], RUNS["bravo"][0], None, RUNS["alpha"][0]]
    eng = Engine(model, tok)
    assert eng._stack is not None and eng._stack.usable()
    assert Engine(model, tok)._stack is eng._stack  # one stack (and one set of hooks) per model
    ids = [eng.encode(PROMPTS[i]) for i in range(len(names))]
    width = max(len(x) for x in ids)
    batch = torch.tensor([[tok.pad_token_id] * (width - len(x)) + x for x in ids])
    attn = torch.tensor([[0] * (width - len(x)) + [1] * len(x) for x in ids])
    with torch.no_grad():
        want = model(input_ids=batch, attention_mask=attn, adapter_names=[n or BASE_ADAPTER for n in names]).logits
        with eng._stack.rows(names):
            got = model(input_ids=batch, attention_mask=attn).logits
        alone = []
        for i, n in enumerate(names):  # and each row as its adapter alone
            if n is None:
                with model.disable_adapter():
                    alone.append(model(input_ids=batch[i : i + 1], attention_mask=attn[i : i + 1]).logits)
            else:
                model.set_adapter(n)
                alone.append(model(input_ids=batch[i : i + 1], attention_mask=attn[i : i + 1]).logits)
    last = attn.bool()
    assert torch.allclose(got[last], want[last], atol=1e-4)
    assert torch.allclose(got[last], torch.cat(alone)[last], atol=1e-4)
    # outside a mixed batch the hooks add nothing: the adapter-less forward is the base model's, and an adapter
    # row is not (the adapters change the logits this test compares)
    with torch.no_grad(), model.disable_adapter():
        assert torch.equal(model(input_ids=batch[2:3], attention_mask=attn[2:3]).logits, alone[2])
        base_0 = model(input_ids=batch[0:1], attention_mask=attn[0:1]).logits
    assert not torch.allclose(base_0[last[0:1]], alone[0][last[0:1]], atol=1e-3)
    # a model without LoRA layers has nothing to stack (the engine then keeps PEFT's mixed batching)
    assert _StackedLora(torch.nn.Linear(2, 2)).usable() is False


def test_an_adapter_added_later_on_other_layers_joins_the_stack(tiny_model_dir: Path) -> None:
    import torch
    from peft import LoraConfig, get_peft_model

    from curator.llm.continuous import _StackedLora
    from curator.models import load_model

    base, tok = load_model(str(tiny_model_dir))
    model = get_peft_model(base, LoraConfig(r=4, target_modules=["q_proj"], init_lora_weights=False), adapter_name="a")
    stack = _StackedLora.of(model)
    assert stack.usable()
    model.add_adapter("b", LoraConfig(r=4, target_modules=["v_proj"], init_lora_weights=False))  # new LoRA layers
    model.eval()
    stack.invalidate()
    assert stack.usable()
    ids = torch.tensor([tok("Where are my invoices?", add_special_tokens=False)["input_ids"]] * 2)
    with torch.no_grad():
        with stack.rows(["a", "b"]):
            got = model(input_ids=ids).logits
        alone = []
        for name in ("a", "b"):
            model.set_adapter(name)
            alone.append(model(input_ids=ids[:1]).logits)
    assert torch.allclose(got, torch.cat(alone), atol=1e-4)
