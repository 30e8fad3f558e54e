"""Generation engines for local models: transformers (any machine) and vLLM (CUDA), behind one interface.

::

    engine = make_engine("vllm", "local:smollm2-135m-instruct")        # or "transformers"
    outs = engine.generate(conversations, GenParams(max_tokens=256, temperature=0.0))   # -> [GenOutput]

The local teacher of ``curator generate`` (:class:`~curator.llm.providers.local.LocalProvider`) and
``curator eval`` (:func:`evals.runner.evaluate`) generate through an engine.  Both engines see the same
prompts: each conversation rendered by :func:`curator.models.render_chat` with the model's own chat
template and tokenized without added special tokens, ending at the same end-of-turn tokens
(:func:`curator.models.end_of_turn_ids`), greedy at ``temperature=0``.  The engine is not part of a
request's cache key (:func:`curator.llm.cache.request_key`) nor of an evaluation's id: an answer cached
by one engine is reused when the other is asked.  (Greedy decoding on different kernels can still
differ in rare near-ties: vLLM batches with paged attention, transformers with padding.)

``vllm`` is the ``[vllm]`` extra and needs a CUDA GPU: on a machine without one, :func:`make_engine`
stops at once with what to use instead; without the package, with the ``pip install`` line.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from curator.errors import CuratorError, require
from curator.llm.providers.base import GenParams
from curator.models import GenOutput

__all__ = ["ENGINES", "GenerationEngine", "TransformersEngine", "VLLMEngine", "make_engine", "require_vllm"]

ENGINES = ("transformers", "vllm")


def require_vllm(what: str) -> Any:
    """The ``vllm`` module, after checking for a CUDA GPU (:class:`CuratorError` without one, saying what to
    use instead) and for the package (:class:`~curator.errors.MissingDependency` with its pip line)."""
    torch = require("torch", "train", what)
    if not torch.cuda.is_available():
        raise CuratorError(f"{what} needs a CUDA GPU and this machine has none: use --engine transformers")
    return require("vllm", "vllm", what)


class GenerationEngine(ABC):
    """Batched chat generation with one local model (and at most one LoRA adapter).

    ``model``: a registry name, a model folder or a hub id (:func:`curator.models.resolve_model`);
    ``adapter``: a LoRA adapter folder applied on top.
    """

    name: str = ""

    def __init__(self, model: str, *, adapter: str | Path | None = None) -> None:
        self.model = model
        self.adapter = Path(adapter) if adapter is not None else None

    @abstractmethod
    def generate(self, conversations: Sequence[list[dict[str, Any]]], params: GenParams, *,
                 batch_size: int | None = None, progress: Callable[[int], None] | None = None) -> list[GenOutput]:
        """The answer to each conversation (each ending with a user turn), in input order."""

    @property
    @abstractmethod
    def tokenizer(self) -> Any:
        """The model's tokenizer (the prompts are rendered and tokenized with it)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Free the model."""


class TransformersEngine(GenerationEngine):
    """Generation with ``transformers`` on the CPU or one GPU.

    ``continuous`` (the default): the serving engine's continuous batching (:mod:`curator.llm.continuous`) runs
    the batch on the calling thread: at most ``batch_size`` rows decode at once, a finished row stops costing
    compute and the next one takes its place, over a preallocated KV cache, and a beginning shared by several
    prompts (the system prompt, a few-shot baseline's examples) is prefilled once (``benchmarks/eval_speed.py``
    measures it against ``generate``).  Otherwise, or for a model that engine cannot run (a sliding-window
    layer), :func:`curator.models.generate`: length-sorted, left-padded batches of ``model.generate``.
    Greedy answers are the same either way up to float rounding; sampled ones draw from per-row generators
    seeded by ``params.seed`` (else by the row's place in the batch) instead of one global seed.
    ``merge``: fold the adapter into the base weights (inference only; as fast as the base model).
    ``load`` / ``generate``: stand-ins for :func:`curator.models.load_model` and
    :func:`curator.models.generate` with their signatures (a caller's own references to them).
    """

    name = "transformers"

    def __init__(self, model: str, *, adapter: str | Path | None = None, dtype: str = "auto", batch_size: int = 8,
                 merge: bool = True, continuous: bool = True, load: Callable[..., tuple[Any, Any]] | None = None,
                 generate: Callable[..., list[GenOutput]] | None = None) -> None:
        super().__init__(model, adapter=adapter)
        for module in ("torch", "transformers"):
            require(module, "train", f"generating with {model}")
        self.dtype, self.batch_size, self.merge, self.continuous = dtype, batch_size, merge, continuous
        self._load_fn, self._generate_fn = load, generate
        self._loaded: tuple[Any, Any] | None = None
        self._lock = threading.Lock()

    def load(self) -> tuple[Any, Any]:
        """(model, tokenizer), loaded on the first call (thread-safe)."""
        from curator.models import load_model

        with self._lock:
            if self._loaded is None:
                adapters: dict[str, str | Path] | None = {"evaluated": self.adapter} if self.adapter else None
                self._loaded = (self._load_fn or load_model)(self.model, adapters=adapters, dtype=self.dtype,
                                                             merge=self.merge)
            return self._loaded

    @property
    def tokenizer(self) -> Any:
        return self.load()[1]

    def generate(self, conversations: Sequence[list[dict[str, Any]]], params: GenParams, *,
                 batch_size: int | None = None, progress: Callable[[int], None] | None = None) -> list[GenOutput]:
        from curator.models import generate

        model, tok = self.load()
        if self._generate_fn is None and self.continuous:
            outs = self._generate_continuous(model, tok, conversations, params, batch_size or self.batch_size,
                                             progress)
            if outs is not None:
                return outs
        return (self._generate_fn or generate)(model, tok, conversations, max_new_tokens=params.max_tokens,
                        batch_size=batch_size or self.batch_size, temperature=params.temperature, top_p=params.top_p,
                        seed=params.seed if params.seed is not None else 0, progress=progress)

    def _generate_continuous(self, model: Any, tok: Any, conversations: Sequence[list[dict[str, Any]]],
                             params: GenParams, batch_size: int,
                             progress: Callable[[int], None] | None) -> list[GenOutput] | None:
        """The serving engine's continuous batching (:class:`curator.llm.continuous.Engine`) on this thread, at most
        ``batch_size`` rows decoding at once, prompts that share a beginning (a system prompt, the same few-shot
        examples) prefilling it once; None for a model it cannot run (not full attention everywhere)."""
        from curator.errors import ModelError
        from curator.llm.continuous import Engine, GenRequest, SamplingParams

        if not conversations:
            return []
        try:
            engine = Engine(model, tok, max_batch=batch_size, mixed=False)  # one adapter at most
        except ModelError:
            return None
        # A sampled row draws from its own generator: seeded by params.seed (the same prompt and seed give the
        # same answer in any batch), else by its place in the batch (reproducible, and different rows differ).
        sampling = [SamplingParams(max_tokens=params.max_tokens, temperature=params.temperature, top_p=params.top_p,
                                   seed=params.seed if params.seed is not None else i) for i in range(len(conversations))]
        adapter = "evaluated" if engine.is_peft and self.adapter is not None else None
        done = (lambda _r: progress(1)) if progress is not None else None
        reqs = [GenRequest(engine.encode(c), sp, adapter=adapter, on_done=done)
                for c, sp in zip(conversations, sampling, strict=True)]
        engine.generate_now(reqs)
        outs = []
        for r in reqs:
            if r.error is not None:
                raise ModelError(f"generating with {self.model} failed: {r.error}") from r.error
            reason = "length" if r.finish_reason == "length" else "stop"
            outs.append(GenOutput(r.text.strip(), len(r.prompt_ids), len(r.tokens), reason))
        return outs

    def close(self) -> None:
        self._loaded = None


class VLLMEngine(GenerationEngine):
    """vLLM's offline ``LLM.generate`` on a CUDA GPU (continuous batching, paged attention); the adapter
    through ``enable_lora`` and a ``LoRARequest``.

    The prompts are the transformers engine's token ids (:meth:`prompt_ids`), so both see the same input;
    ``llm_options`` go to ``vllm.LLM`` (``gpu_memory_utilization``, ``max_model_len``, ``tensor_parallel_size``...).
    """

    name = "vllm"

    def __init__(self, model: str, *, adapter: str | Path | None = None, dtype: str = "auto",
                 max_lora_rank: int | None = None, check: bool = True, **llm_options: Any) -> None:
        super().__init__(model, adapter=adapter)
        if check:
            require_vllm("--engine vllm")
        self.dtype, self.max_lora_rank, self.llm_options = dtype, max_lora_rank, llm_options
        self._tok: Any = None
        self._llm: Any = None

    @property
    def tokenizer(self) -> Any:
        if self._tok is None:
            from curator.models import load_tokenizer

            self._tok = load_tokenizer(self.model)
        return self._tok

    # -- what vLLM is given (pure: tested without vLLM) ------------------------------------------------------------
    def prompt_ids(self, conversations: Sequence[list[dict[str, Any]]]) -> list[list[int]]:
        """Each conversation rendered with the chat template and tokenized as the transformers engine does it."""
        from curator.models import render_chat

        tok = self.tokenizer
        return [tok(render_chat(tok, c, add_generation_prompt=True), add_special_tokens=False)["input_ids"]
                for c in conversations]

    def sampling_options(self, params: GenParams) -> dict[str, Any]:
        """``vllm.SamplingParams`` keywords for ``params``: greedy at temperature 0, the engine's end-of-turn tokens."""
        from curator.models import end_of_turn_ids

        greedy = params.temperature <= 0
        return {
            "max_tokens": params.max_tokens,
            "temperature": 0.0 if greedy else params.temperature,
            "top_p": 1.0 if greedy else params.top_p,
            "seed": params.seed if params.seed is not None else 0,
            "stop_token_ids": end_of_turn_ids(self.tokenizer),
            "skip_special_tokens": True,
        }

    def llm_arguments(self) -> dict[str, Any]:
        """``vllm.LLM`` keywords: the resolved model folder, its tokenizer, LoRA when there is an adapter."""
        from curator.models import resolve_model

        path = str(resolve_model(self.model))
        kw: dict[str, Any] = {"model": path, "tokenizer": path, "dtype": self.dtype, "seed": 0}
        if self.adapter is not None:
            kw.update(enable_lora=True, max_loras=1, max_lora_rank=self.max_lora_rank or _lora_rank(self.adapter))
        kw.update(self.llm_options)
        return kw

    # -- vLLM ------------------------------------------------------------------------------------------------------
    def llm(self) -> Any:
        if self._llm is None:
            vllm = require_vllm("--engine vllm")
            self._llm = vllm.LLM(**self.llm_arguments())
        return self._llm

    def _lora(self) -> Any:
        if self.adapter is None:
            return None
        import importlib

        return importlib.import_module("vllm.lora.request").LoRARequest("evaluated", 1, str(self.adapter))

    def generate(self, conversations: Sequence[list[dict[str, Any]]], params: GenParams, *,
                 batch_size: int | None = None, progress: Callable[[int], None] | None = None) -> list[GenOutput]:
        if not conversations:
            return []
        vllm = require_vllm("--engine vllm")
        ids = self.prompt_ids(conversations)
        prompts = [{"prompt_token_ids": p} for p in ids]
        outs = self.llm().generate(prompts, vllm.SamplingParams(**self.sampling_options(params)),
                                   lora_request=self._lora(), use_tqdm=False)
        result = []
        for p, o in zip(ids, outs, strict=True):
            c = o.outputs[0]
            reason = "length" if c.finish_reason == "length" else "stop"
            result.append(GenOutput(c.text.strip(), len(p), len(c.token_ids), reason))
        if progress is not None:
            progress(len(result))
        return result

    def token_logprobs(self, sequences: Sequence[list[int]]) -> list[list[float | None]]:
        """The log-probability of each token of each sequence given the ones before it (None for the first):
        vLLM's ``prompt_logprobs``, for teacher-forced losses."""
        if not sequences:
            return []
        vllm = require_vllm("--engine vllm")
        sp = vllm.SamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=0)
        outs = self.llm().generate([{"prompt_token_ids": list(s)} for s in sequences], sp,
                                   lora_request=self._lora(), use_tqdm=False)
        result: list[list[float | None]] = []
        for seq, o in zip(sequences, outs, strict=True):
            row: list[float | None] = []
            for tok_id, lps in zip(seq, o.prompt_logprobs or [], strict=False):
                row.append(None if lps is None else float(lps[tok_id].logprob))
            result.append(row)
        return result

    def close(self) -> None:
        self._llm = None


def _lora_rank(adapter: Path) -> int:
    """The adapter's ``r`` rounded up to a rank vLLM accepts (8, 16, 32, 64...)."""
    import json

    r = int(json.loads((adapter / "adapter_config.json").read_text(encoding="utf-8")).get("r", 8))
    return next((x for x in (8, 16, 32, 64, 128, 256, 320, 512) if x >= r), r)  # trainer.adapters.VLLM_MAX_LORA_RANKS


def make_engine(name: str, model: str, *, adapter: str | Path | None = None, batch_size: int = 8,
                dtype: str = "auto", **options: Any) -> GenerationEngine:
    """The engine ``name`` (:data:`ENGINES`) for ``model``; vLLM checks for CUDA and the package here, at once."""
    if name == "transformers":
        return TransformersEngine(model, adapter=adapter, dtype=dtype, batch_size=batch_size, **options)
    if name == "vllm":
        return VLLMEngine(model, adapter=adapter, dtype=dtype, **options)
    raise CuratorError(f"unknown engine {name!r} (choose from {', '.join(ENGINES)})")
