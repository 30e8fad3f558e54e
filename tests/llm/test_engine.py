"""The generation engine interface, tested with the transformers engine on the tiny model; what the vLLM engine
would be given (prompts, sampling, LoRA), checked without vLLM; and its refusal on this CPU machine."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from curator.errors import CuratorError, ProviderError
from curator.llm.engine import GenerationEngine, TransformersEngine, VLLMEngine, make_engine
from curator.llm.providers import GenParams
from curator.models import GenOutput, end_of_turn_ids, generate, load_model, render_chat

CONVS = [
    [{"role": "user", "content": "How do I fix my disk problem number 3?"}],
    [{"role": "system", "content": "You answer in one short line."}, {"role": "user", "content": "DNS is down."}],
    [{"role": "user", "content": "Where are my invoices for 2026?"}],
]
GREEDY = GenParams(max_tokens=8, temperature=0.0)
CPU_REFUSAL = "--engine vllm needs a CUDA GPU and this machine has none: use --engine transformers"


def test_the_transformers_engine_decodes_with_continuous_batching_and_answers_as_generate(tiny_model_dir: Path) -> None:
    """The default engine runs the serving engine's continuous batching (at most batch_size rows at once) and
    gives generate's greedy answers, token counts and finish reasons; continuous=False is generate itself."""
    engine = make_engine("transformers", str(tiny_model_dir), batch_size=2)
    assert isinstance(engine, TransformersEngine) and engine.name == "transformers" and engine.continuous
    seen: list[int] = []
    outs = engine.generate(CONVS, GREEDY, progress=seen.append)
    model, tok = load_model(str(tiny_model_dir))
    ref = generate(model, tok, CONVS, max_new_tokens=8, batch_size=1, temperature=0.0, seed=0)
    assert [o.text for o in outs] == [o.text for o in ref]
    assert [o.prompt_tokens for o in outs] == [o.prompt_tokens for o in ref]
    assert [o.finish_reason for o in outs] == [o.finish_reason for o in ref]
    assert all(isinstance(o, GenOutput) and 0 < o.output_tokens <= 8 for o in outs)
    assert seen == [1, 1, 1]  # one progress tick per answer, as each finishes
    assert engine.generate([], GREEDY) == []
    plain = TransformersEngine(str(tiny_model_dir), batch_size=2, continuous=False)
    assert plain.generate(CONVS, GREEDY) == generate(model, tok, CONVS, max_new_tokens=8, batch_size=2,
                                                     temperature=0.0, seed=0)


def test_sampling_is_seeded_per_request_and_an_adapter_is_applied(tiny_model_dir: Path, tmp_path: Path) -> None:
    sampled = GenParams(max_tokens=8, temperature=0.9, top_p=0.95, seed=7)
    engine = TransformersEngine(str(tiny_model_dir), batch_size=3)
    first = engine.generate(CONVS, sampled)
    assert engine.generate(CONVS, sampled) == first  # same seed, same answers
    assert engine.generate(CONVS[:1], sampled)[0] == first[0]  # whatever it is batched with
    assert engine.generate(CONVS, GenParams(max_tokens=8, temperature=0.9, top_p=0.95, seed=8)) != first
    unseeded = GenParams(max_tokens=8, temperature=0.9, top_p=0.95)  # rows seeded by their place: reproducible
    twice = engine.generate([CONVS[0], CONVS[0]], unseeded)
    assert engine.generate([CONVS[0], CONVS[0]], unseeded) == twice and twice[0].text != twice[1].text
    # an unmerged adapter decodes through PEFT under its own name, as the merged one does
    from peft import LoraConfig, get_peft_model

    model, _ = load_model(str(tiny_model_dir))
    lora = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    lora.save_pretrained(tmp_path / "adapter")
    merged = TransformersEngine(str(tiny_model_dir), adapter=tmp_path / "adapter").generate(CONVS, GREEDY)
    unmerged = TransformersEngine(str(tiny_model_dir), adapter=tmp_path / "adapter", merge=False).generate(CONVS, GREEDY)
    base = TransformersEngine(str(tiny_model_dir)).generate(CONVS, GREEDY)
    assert [o.text for o in unmerged] == [o.text for o in merged] != [o.text for o in base]


def test_a_model_the_continuous_engine_cannot_run_falls_back_to_generate(tiny_model_dir: Path) -> None:
    from transformers import AutoModelForCausalLM, Qwen2Config

    tok = load_model(str(tiny_model_dir))[1]
    cfg = Qwen2Config(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=2, num_key_value_heads=1, use_sliding_window=True, sliding_window=8,
                      max_window_layers=0)
    model = AutoModelForCausalLM.from_config(cfg).eval()
    engine = TransformersEngine("sliding", load=lambda *a, **k: (model, tok))
    outs = engine.generate(CONVS, GREEDY)
    assert outs == generate(model, tok, CONVS, max_new_tokens=8, batch_size=8, temperature=0.0, seed=0)


def test_vllm_would_see_the_prompts_and_stops_of_the_transformers_engine(tiny_model_dir: Path) -> None:
    """The token ids given to vLLM are those the transformers engine generates from (its prompt_tokens), and
    greedy decoding ends at the same end-of-turn tokens."""
    vllm_engine = VLLMEngine(str(tiny_model_dir), check=False)
    ids = vllm_engine.prompt_ids(CONVS)
    tok = vllm_engine.tokenizer
    assert ids == [tok(render_chat(tok, c, add_generation_prompt=True), add_special_tokens=False)["input_ids"]
                   for c in CONVS]
    outs = TransformersEngine(str(tiny_model_dir)).generate(CONVS, GREEDY)
    assert [o.prompt_tokens for o in outs] == [len(i) for i in ids]
    assert ids[0][-4:] == tok("<|im_start|>assistant\n", add_special_tokens=False)["input_ids"]  # ends where the answer starts
    opts = vllm_engine.sampling_options(GREEDY)
    assert opts == {"max_tokens": 8, "temperature": 0.0, "top_p": 1.0, "seed": 0,
                    "stop_token_ids": end_of_turn_ids(tok), "skip_special_tokens": True}
    assert tok.convert_tokens_to_ids("<|im_end|>") in opts["stop_token_ids"]
    sampled = vllm_engine.sampling_options(GenParams(max_tokens=5, temperature=0.7, top_p=0.9, seed=3))
    assert (sampled["temperature"], sampled["top_p"], sampled["seed"]) == (0.7, 0.9, 3)


def test_vllm_arguments_with_a_lora_adapter(tiny_model_dir: Path, tmp_path: Path) -> None:
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"r": 12}))
    e = VLLMEngine(str(tiny_model_dir), adapter=adapter, check=False, gpu_memory_utilization=0.5)
    kw = e.llm_arguments()
    assert kw["model"] == kw["tokenizer"] == str(tiny_model_dir) and kw["gpu_memory_utilization"] == 0.5
    assert (kw["enable_lora"], kw["max_loras"], kw["max_lora_rank"]) == (True, 1, 16)  # r=12 -> vLLM's 16
    assert "enable_lora" not in VLLMEngine(str(tiny_model_dir), check=False).llm_arguments()


def test_vllm_is_refused_on_this_cpu_machine_with_what_to_use(tiny_model_dir: Path) -> None:
    with pytest.raises(CuratorError) as e:
        make_engine("vllm", str(tiny_model_dir))
    assert str(e.value) == CPU_REFUSAL
    with pytest.raises(CuratorError, match="unknown engine 'tgi'"):
        make_engine("tgi", str(tiny_model_dir))
    from curator.llm.providers import make_provider

    with pytest.raises(CuratorError, match="needs a CUDA GPU"):  # the local teacher fails at once, not mid-run
        make_provider(f"local:{tiny_model_dir}", engine="vllm")
    with pytest.raises(ProviderError, match="unknown model"):
        make_provider("local:/nowhere/at/all").generate_batch(CONVS[:1], GREEDY)  # type: ignore[attr-defined]


class LogprobEngine(GenerationEngine):
    """An engine that answers ``token_logprobs`` as vLLM's ``prompt_logprobs`` does, from the tiny model's logits:
    the loss path of the vLLM engine, run on the CPU."""

    name = "logprobs"

    def __init__(self, model_dir: Path) -> None:
        super().__init__(str(model_dir))
        self.model, self.tok = load_model(str(model_dir))

    @property
    def tokenizer(self) -> Any:
        return self.tok

    def generate(self, conversations: Sequence[list[dict[str, Any]]], params: GenParams, *,
                 batch_size: int | None = None, progress: Callable[[int], None] | None = None) -> list[GenOutput]:
        raise NotImplementedError

    def token_logprobs(self, sequences: Sequence[list[int]]) -> list[list[float | None]]:
        import torch

        out: list[list[float | None]] = []
        for seq in sequences:
            with torch.no_grad():
                logits = self.model(input_ids=torch.tensor([seq])).logits[0].float()
            lp = torch.log_softmax(logits, dim=-1)
            out.append([None] + [float(lp[i - 1, t]) for i, t in enumerate(seq) if i > 0])
        return out


def test_engine_losses_from_token_logprobs_match_the_transformers_loss(tiny_model_dir: Path) -> None:
    from evals.runner import assistant_losses, engine_losses

    convs = [c + [{"role": "assistant", "content": f"Answer number {i}, short."}] for i, c in enumerate(CONVS)]
    reference = engine_losses(TransformersEngine(str(tiny_model_dir)), convs, batch_size=2)
    model, tok = load_model(str(tiny_model_dir))
    assert reference == assistant_losses(model, tok, convs, batch_size=2)
    got = engine_losses(LogprobEngine(tiny_model_dir), convs)
    assert [n for _, n in got] == [n for _, n in reference]
    for (a, _), (b, _) in zip(got, reference, strict=True):
        assert math.isclose(a, b, rel_tol=1e-4)


def test_an_evaluation_is_reused_whichever_engine_is_asked(ws: Any, tmp_path: Path, tiny_model_dir: Path) -> None:
    from helpers import chat, write_jsonl

    from curator.data.ingest import ingest_file
    from curator.snapshots import create_snapshot
    from evals.runner import eval_rows, evaluate

    rows = [chat(f"Question {i} about buckets?", f"Answer {i}: check the bucket.") for i in range(3)]
    ingest_file(ws, write_jsonl(tmp_path / "t.jsonl", rows), split="test", task="t")
    create_snapshot(ws)
    kw: dict[str, Any] = {"base_model": str(tiny_model_dir), "max_new_tokens": 4, "batch_size": 3, "progress": False}
    with pytest.raises(CuratorError, match="needs a CUDA GPU"):  # nothing cached yet: vLLM would have to run
        evaluate(ws, "base", engine="vllm", **kw)
    first = evaluate(ws, "base", **kw)
    assert "engine" not in first.params and first.generated == 3
    assert {r.meta["engine"] for r in eval_rows(ws, first.id)} == {"transformers"}
    again = evaluate(ws, "base", engine="vllm", **kw)
    assert again.cached and again.id == first.id and again.summary == first.summary
