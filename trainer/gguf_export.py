"""A run's adapter merged into its base model, written as one GGUF file for llama.cpp and Ollama.

``curator export-model RUN --format gguf --out model.gguf [--outtype f16|f32]`` calls :func:`export_gguf`:
the adapter is merged (``merge_and_unload``), then :func:`write_gguf` writes the weights and the metadata
llama.cpp reads, with the ``gguf`` package (the writer llama.cpp's own converter uses):

* ``llama.*`` hyperparameters (context length, sizes, heads, rope base and dimension, RMS-norm epsilon);
* the tokenizer: ``tokenizer.ggml.model = gpt2`` (byte-level BPE), the tokens in id order with their
  types (control for special added tokens, user-defined for other added tokens), the merges, the
  pre-tokenizer name llama.cpp knows it by (read off ``tokenizer.json``: ``gpt-2``, ``smollm`` or
  ``llama-bpe``), the bos / eos / unk / pad ids, whether BOS is added, and the chat template;
* the tensors under GGUF names (``gguf.get_tensor_name_map``), q_proj and k_proj rows permuted as
  llama.cpp's rotary embedding expects them (the permutation transformers' GGUF loader undoes);
  a tied ``lm_head`` is left out, as llama.cpp reads ``token_embd`` for it.

``f32`` keeps the merged weights exactly (transformers' GGUF loader gives back the same tensors);
``f16`` (the default) halves the file, with the 1-D norm weights kept in f32 as llama.cpp's converter
does.  Quantize further with llama.cpp's ``llama-quantize``.

Scope: Llama-architecture models (``model_type: llama``: SmolLM2, Llama 2, Llama 3 without rope
scaling, TinyLlama...) with a byte-level BPE tokenizer of a known pre-tokenizer.  Anything else is
refused with a clear error; for those, ``export-model --format hf`` and llama.cpp's
``convert_hf_to_gguf.py`` on that folder.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from curator.errors import CuratorError, ModelError, require
from curator.models import is_hub_id, load_tokenizer, portable_name
from curator.workspace import Workspace
from trainer.adapters import local_run, merged_model

__all__ = ["GGUF_OUTTYPES", "export_gguf", "gguf_pre_tokenizer", "write_gguf"]

GGUF_OUTTYPES = ("f16", "f32")

# The Llama 3 split regex, as tokenizer.json and llama.cpp spell it.
_LLAMA3_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                 r"|\s*[\r\n]+|\s+(?!\S)|\s+")


def _steps(pre: dict[str, Any] | None) -> list[dict[str, Any]]:
    if not pre:
        return []
    return list(pre.get("pretokenizers") or []) if pre.get("type") == "Sequence" else [pre]


def gguf_pre_tokenizer(tokenizer_json: dict[str, Any]) -> str:
    """llama.cpp's name for the pre-tokenizer of a byte-level BPE ``tokenizer.json`` (ModelError if none fits)."""
    steps = _steps(tokenizer_json.get("pre_tokenizer"))
    kinds = [s.get("type") for s in steps]
    if kinds == ["ByteLevel"] and steps[0].get("use_regex", True):
        return "gpt-2"  # GPT-2's split regex: what curator's bundled SmolLM2 tokenizer does
    if kinds == ["Digits", "ByteLevel"] and steps[0].get("individual_digits") and steps[1].get("use_regex", True):
        return "smollm"  # digits one by one, then GPT-2's regex: SmolLM / StarCoder tokenizers
    if kinds == ["Split", "ByteLevel"] and not steps[1].get("use_regex", True) \
            and (steps[0].get("pattern") or {}).get("Regex") == _LLAMA3_SPLIT:
        return "llama-bpe"
    raise ModelError(
        f"GGUF export knows the pre-tokenizers of GPT-2, SmolLM and Llama 3 style tokenizers; this one is "
        f"{json.dumps(tokenizer_json.get('pre_tokenizer'))[:200]}: export with --format hf and convert that folder "
        "with llama.cpp's convert_hf_to_gguf.py"
    )


def _tokenizer_metadata(tokenizer: Any, vocab_size: int) -> dict[str, Any]:
    """tokens, token types, merges, pre-tokenizer, special ids, add_bos/eos and the chat template."""
    import gguf

    data = json.loads(tokenizer.backend_tokenizer.to_str())
    model = data.get("model") or {}
    steps = [s.get("type") for s in _steps(data.get("pre_tokenizer"))]
    if model.get("type") != "BPE" or ("ByteLevel" not in steps and (data.get("decoder") or {}).get("type") != "ByteLevel"):
        raise ModelError(f"GGUF export writes byte-level BPE tokenizers only (this one is {model.get('type')}): "
                         "export with --format hf and convert that folder with llama.cpp's convert_hf_to_gguf.py")
    pre = gguf_pre_tokenizer(data)
    ids: dict[int, tuple[str, int]] = {i: (t, int(gguf.TokenType.NORMAL)) for t, i in model["vocab"].items()}
    for added in data.get("added_tokens") or []:
        kind = gguf.TokenType.CONTROL if added.get("special") else gguf.TokenType.USER_DEFINED
        ids[int(added["id"])] = (added["content"], int(kind))
    size = max(vocab_size, max(ids) + 1)
    tokens: list[str] = []
    types: list[int] = []
    for i in range(size):
        token, kind_id = ids.get(i, (f"[PAD{i}]", int(gguf.TokenType.UNUSED)))
        tokens.append(token)
        types.append(kind_id)
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges") or []]
    probe = "a"
    plain = tokenizer(probe, add_special_tokens=False)["input_ids"]
    full = tokenizer(probe, add_special_tokens=True)["input_ids"]
    return {
        "pre": pre, "tokens": tokens, "types": types, "merges": merges,
        "bos": tokenizer.bos_token_id, "eos": tokenizer.eos_token_id, "unk": tokenizer.unk_token_id,
        "pad": tokenizer.pad_token_id,
        "add_bos": bool(tokenizer.bos_token_id is not None and full[:1] == [tokenizer.bos_token_id] != plain[:1]),
        "add_eos": bool(tokenizer.eos_token_id is not None and full[-1:] == [tokenizer.eos_token_id] != plain[-1:]),
        "chat_template": tokenizer.chat_template if isinstance(tokenizer.chat_template, str) else None,
    }


def _permute(w: Any, n_head: int) -> Any:
    """llama.cpp's q/k row order: each head's rotary halves interleaved (convert_hf_to_gguf's ``permute``)."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _rope(config: Any) -> tuple[float, str]:
    params = getattr(config, "rope_parameters", None) or {}
    scaling = getattr(config, "rope_scaling", None) or {}
    theta = params.get("rope_theta", getattr(config, "rope_theta", 10000.0))
    kind = params.get("rope_type") or scaling.get("rope_type") or scaling.get("type") or "default"
    return float(theta), str(kind)


def write_gguf(model: Any, tokenizer: Any, out: str | Path, *, outtype: str = "f16", name: str = "model",
               base_model: str | None = None, extra: dict[str, str] | None = None) -> Path:
    """Write a (merged, plain transformers) Llama-architecture model and its tokenizer as one GGUF file.

    ``base_model``: the portable name of the model it derives from (``general.base_model.*``);
    ``extra``: more string metadata (``curator.run_id``...).  Written to a temporary file, then renamed.
    """
    gguf = require("gguf", "train", "GGUF export")
    import numpy as np
    import torch

    if outtype not in GGUF_OUTTYPES:
        raise CuratorError(f"outtype {outtype!r} is not one of {', '.join(GGUF_OUTTYPES)}")
    config = model.config
    if config.model_type != "llama":
        raise ModelError(f"GGUF export writes Llama-architecture models only (this one is {config.model_type}): "
                         "export with --format hf and convert that folder with llama.cpp's convert_hf_to_gguf.py")
    theta, rope_type = _rope(config)
    if rope_type != "default":
        raise ModelError(f"GGUF export does not write rope scaling ({rope_type}): export with --format hf and convert "
                         "that folder with llama.cpp's convert_hf_to_gguf.py")
    n_head, n_kv = config.num_attention_heads, config.num_key_value_heads or config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // n_head
    tok = _tokenizer_metadata(tokenizer, config.vocab_size)
    if len(tok["tokens"]) != config.vocab_size:
        raise ModelError(f"the tokenizer has {len(tok['tokens'])} tokens but the model {config.vocab_size} embeddings")

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    w = gguf.GGUFWriter(str(tmp), "llama")
    w.add_name(name)
    w.add_file_type(gguf.LlamaFileType.ALL_F32 if outtype == "f32" else gguf.LlamaFileType.MOSTLY_F16)
    if base_model:
        w.add_base_model_count(1)
        w.add_base_model_name(0, base_model)
        if is_hub_id(base_model):
            w.add_base_model_repo_url(0, f"https://huggingface.co/{base_model}")
    for key, value in (extra or {}).items():
        w.add_string(key, value)
    w.add_context_length(config.max_position_embeddings)
    w.add_embedding_length(config.hidden_size)
    w.add_block_count(config.num_hidden_layers)
    w.add_feed_forward_length(config.intermediate_size)
    w.add_head_count(n_head)
    w.add_head_count_kv(n_kv)
    if head_dim != config.hidden_size // n_head:
        w.add_key_length(head_dim)
        w.add_value_length(head_dim)
    w.add_rope_dimension_count(head_dim)
    w.add_rope_freq_base(theta)
    w.add_layer_norm_rms_eps(float(config.rms_norm_eps))
    w.add_vocab_size(config.vocab_size)

    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre(tok["pre"])
    w.add_token_list(tok["tokens"])
    w.add_token_types(tok["types"])
    w.add_token_merges(tok["merges"])
    for key, adder in (("bos", w.add_bos_token_id), ("eos", w.add_eos_token_id), ("unk", w.add_unk_token_id),
                       ("pad", w.add_pad_token_id)):
        if tok[key] is not None:
            adder(int(tok[key]))
    w.add_add_bos_token(tok["add_bos"])
    w.add_add_eos_token(tok["add_eos"])
    if tok["chat_template"]:
        w.add_chat_template(tok["chat_template"])

    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, config.num_hidden_layers)
    tied = bool(getattr(config, "tie_word_embeddings", False))
    for hf_name, tensor in model.state_dict().items():
        if tied and hf_name == "lm_head.weight":
            continue
        stem, _, suffix = hf_name.rpartition(".")
        gguf_name = names.get_name(stem)
        if gguf_name is None:
            raise ModelError(f"GGUF export: no GGUF name for the tensor {hf_name}")
        data = tensor.detach().to(torch.float32).cpu().numpy()
        if stem.endswith("self_attn.q_proj"):
            data = _permute(data, n_head)
        elif stem.endswith("self_attn.k_proj"):
            data = _permute(data, n_kv)
        if outtype == "f16" and data.ndim > 1:
            data = data.astype(np.float16)
        w.add_tensor(f"{gguf_name}.{suffix}", np.ascontiguousarray(data))
    try:
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
        os.replace(tmp, out)  # nothing half-written under the final name
    finally:
        w.close()
        tmp.unlink(missing_ok=True)
    return out


def export_gguf(ws: Workspace, ref: str, out: str | Path, *, outtype: str = "f16", force: bool = False) -> Path:
    """Merge a run's adapter into its base model and write ``out`` (a ``.gguf`` file)."""
    import torch

    out = Path(out)
    if out.suffix != ".gguf":
        raise CuratorError(f"--out {out}: a GGUF export is one file; name it *.gguf")
    if out.exists() and not force:
        raise CuratorError(f"{out} exists; pass --force to overwrite")
    if out.is_dir():
        raise CuratorError(f"{out} is a folder; name a .gguf file")
    if outtype not in GGUF_OUTTYPES:
        raise CuratorError(f"outtype {outtype!r} is not one of {', '.join(GGUF_OUTTYPES)}")
    run = local_run(ws, ref)
    assert run.base_model is not None
    model = merged_model(ws, run, dtype=torch.float32)
    tokenizer = load_tokenizer(run.base_model)
    extra = {"curator.run_id": run.id, "curator.snapshot_id": run.snapshot_id or "",
             "curator.base_model": run.base_model}
    return write_gguf(model, tokenizer, out, outtype=outtype, name=run.id, base_model=portable_name(run.base_model),
                      extra=extra)
