"""Several runs' adapters on one base model, merged-model export, and the vLLM compatibility check.

::

    stack = AdapterStack(ws, ["r-...-ab12", "r-...-cd34", "base"])
    answers = stack.chat([{"role": "user", "content": "My bucket is gone"}])   # {run id: answer}
    stack.generate("r-...-ab12", conversations)                                  # one adapter, a batch

One base model is loaded once with each run's LoRA adapter under its run id
(``curator.models.load_model(base, adapters={...})``); every request picks one with
``set_adapter``.  ``"base"`` means the base model with adapters disabled.

:func:`check_vllm_lora` reads an adapter folder (its ``adapter_config.json`` and the tensor names in
``adapter_model.safetensors``, no torch, no vLLM) and lists what vLLM's LoRA loader would refuse;
``curator serve --engine vllm`` runs it before it starts vLLM.
"""

from __future__ import annotations

import json
import shutil
import struct
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from curator.errors import CuratorError, ModelError
from curator.models import GenOutput, generate, load_model, load_pretrained, load_tokenizer
from curator.workspace import Workspace
from trainer.runs import Run, get_run

__all__ = ["BASE", "VLLM_LLAMA_LORA_MODULES", "VLLM_MAX_LORA_RANKS", "AdapterStack", "check_vllm_lora",
           "export_merged", "local_run"]

#: The name that stands for "no adapter".
BASE = "base"

#: The values vLLM accepts for ``--max-lora-rank`` (``MaxLoRARanks`` in vllm/config/lora.py, which also
#: allows 1): an adapter of rank r is served with the smallest one >= r, so r may be anything up to 512.
VLLM_MAX_LORA_RANKS = (8, 16, 32, 64, 128, 256, 320, 512)
#: The modules of a Llama-architecture model (SmolLM2, Llama, Mistral, Qwen2) that vLLM applies LoRA to;
#: it packs q/k/v into qkv_proj and gate/up into gate_up_proj itself.
VLLM_LLAMA_LORA_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
#: PEFT initialisations that only set the starting weights (what vLLM's PEFTHelper accepts besides ``true``).
_VLLM_PLAIN_INITS = ("gaussian", "eva", "orthogonal", "mica", "lora_ga")


def local_run(ws: Workspace, ref: str) -> Run:
    """A finished local run with its adapter folder on disk (else a clear :class:`CuratorError`)."""
    run = get_run(ws, ref)
    if run.kind == "openai":
        raise CuratorError(
            f"run {run.id} is an OpenAI fine-tune ({run.metrics.get('fine_tuned_model')}): "
            "it has no local adapter; call it through the OpenAI API"
        )
    if run.status != "succeeded" or not run.adapter_path:
        raise CuratorError(f"run {run.id} has no adapter (status {run.status})")
    if not (ws.path / run.adapter_path / "adapter_config.json").exists():
        raise ModelError(f"run {run.id}: adapter folder {ws.path / run.adapter_path} is missing or incomplete")
    return run


class AdapterStack:
    """One base model with the adapters of several runs; pick one per request."""

    def __init__(self, ws: Workspace, runs: Sequence[str], *, base_model: str | None = None) -> None:
        if not runs:
            raise CuratorError("name at least one run (or 'base')")
        self.runs: dict[str, Run] = {}
        names: list[str] = []
        for ref in runs:
            if ref == BASE:
                names.append(BASE)
                continue
            run = local_run(ws, ref)
            self.runs[run.id] = run
            names.append(run.id)
        bases = {r.base_model for r in self.runs.values()}
        if len(bases) > 1:
            raise ModelError(
                "these runs use different base models ("
                + ", ".join(f"{r.id}: {r.base_model}" for r in self.runs.values())
                + "); compare runs of one base model"
            )
        self.base_model = base_model or (bases.pop() if bases else None)
        if self.base_model is None:
            raise CuratorError("with only 'base', pass base_model (or --base-model)")
        self.names = list(dict.fromkeys(names))
        adapters: dict[str, str | Path] = {rid: ws.path / r.adapter_path for rid, r in self.runs.items() if r.adapter_path}
        self.model, self.tokenizer = load_model(self.base_model, adapters=adapters or None)

    def generate(self, name: str, conversations: Sequence[list[dict[str, Any]]], **kwargs: Any) -> list[GenOutput]:
        """Generate with one adapter (a run id, or ``"base"``); kwargs go to :func:`curator.models.generate`."""
        if name != BASE and name not in self.runs:
            matches = [rid for rid in self.runs if rid.startswith(name)]
            if len(matches) != 1:
                raise CuratorError(f"adapter {name!r} is not loaded (loaded: {', '.join(self.names)})")
            name = matches[0]
        if not self.runs:
            return generate(self.model, self.tokenizer, conversations, **kwargs)
        if name == BASE:
            with self.model.disable_adapter():
                return generate(self.model, self.tokenizer, conversations, **kwargs)
        self.model.set_adapter(name)
        return generate(self.model, self.tokenizer, conversations, **kwargs)

    def chat(self, messages: list[dict[str, Any]], names: Sequence[str] | None = None, **kwargs: Any) -> dict[str, str]:
        """One conversation answered by each named adapter (all loaded ones by default)."""
        return {n: self.generate(n, [messages], **kwargs)[0].text for n in (names or self.names)}


def export_merged(ws: Workspace, ref: str, out: str | Path, *, force: bool = False) -> Path:
    """Merge a run's adapter into its base model and save a plain model folder (safetensors, tokenizer, a card)."""
    out = Path(out)
    if out.exists() and (out.is_file() or any(out.iterdir())):
        if not force:
            raise CuratorError(f"{out} is not empty; pass --force to overwrite")
    run = local_run(ws, ref)
    merged = merged_model(ws, run, dtype="auto")  # the saved dtype
    tmp = out.with_name(out.name + ".tmp-export")
    shutil.rmtree(tmp, ignore_errors=True)
    merged.save_pretrained(tmp)
    load_tokenizer(run.base_model or "").save_pretrained(tmp)
    (tmp / "curator_run.txt").write_text(
        f"merged from run {run.id}: base {run.base_model} + adapter {run.adapter_path} (snapshot {run.snapshot_id})\n"
    )
    from trainer.modelcard import finalize_adapter, model_card

    finalize_adapter(ws, run)  # the adapter's own card, refreshed with the evaluations recorded since training
    card = model_card(ws, run).replace("library_name: peft", "library_name: transformers", 1)
    (tmp / "README.md").write_text(card, encoding="utf-8")
    if out.is_file():
        out.unlink()
    elif out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    return out


def merged_model(ws: Workspace, run: Run, *, dtype: Any = "auto") -> Any:
    """The run's base model with its adapter merged in (``merge_and_unload``), in eval mode."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    assert run.base_model is not None and run.adapter_path is not None
    base = load_pretrained(AutoModelForCausalLM, run.base_model, dtype=dtype)
    model = PeftModel.from_pretrained(base, str(ws.path / run.adapter_path))
    return model.merge_and_unload().eval()


# -- vLLM's LoRA constraints ----------------------------------------------------------------------------------
def _safetensors_names(path: Path) -> list[str]:
    """The tensor names in a safetensors file, read from its JSON header (no torch)."""
    with path.open("rb") as f:
        (size,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(size))
    return [k for k in header if k != "__metadata__"]


def check_vllm_lora(adapter_dir: str | Path, *, modules: tuple[str, ...] = VLLM_LLAMA_LORA_MODULES,
                    max_lora_rank: int | None = None) -> list[str]:
    """What vLLM's LoRA loader would refuse in this adapter folder; an empty list when it can be served.

    Checked: a LoRA ``adapter_config.json``; rank (``r`` and ``rank_pattern``) at most ``max_lora_rank`` or
    vLLM's largest (512); no bias, DoRA, ``modules_to_save``, aLoRA, layer replication or QALoRA; an
    initialisation that leaves the base weights alone (not PiSSA, OLoRA, CorDA, LoftQ); target modules and
    the weights' modules among ``modules`` (a Llama-architecture model's by default); a weights file.
    """
    folder = Path(adapter_dir)
    cfg_path = folder / "adapter_config.json"
    if not cfg_path.exists():
        return [f"{cfg_path} is missing: not a PEFT adapter folder"]
    try:
        cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        return [f"{cfg_path}:{e.lineno}: not valid JSON ({e.msg})"]
    if not isinstance(cfg, dict):
        return [f"{cfg_path}: not a JSON object"]
    problems: list[str] = []
    if cfg.get("peft_type", "LORA") != "LORA":
        problems.append(f"peft_type {cfg.get('peft_type')!r}: vLLM serves LoRA adapters only")
    r = cfg.get("r")
    pattern = cfg.get("rank_pattern") or {}
    ranks = [r, *pattern.values()] if isinstance(pattern, dict) else [r]
    if not all(isinstance(x, int) and not isinstance(x, bool) and x >= 1 for x in ranks):
        problems.append(f"rank r={r!r} (rank_pattern {pattern!r}): vLLM needs whole ranks >= 1")
    else:
        top = max(int(x) for x in ranks if x is not None)
        limit = max_lora_rank or VLLM_MAX_LORA_RANKS[-1]
        if top > limit:
            problems.append(f"rank {top} is above " + (f"--max-lora-rank {max_lora_rank}" if max_lora_rank else
                            f"vLLM's largest --max-lora-rank ({limit}; choices {', '.join(map(str, VLLM_MAX_LORA_RANKS))})"))
    if cfg.get("bias", "none") != "none":
        problems.append(f"bias {cfg.get('bias')!r}: vLLM serves adapters without bias only (bias: none)")
    if cfg.get("lora_bias"):
        problems.append("lora_bias: vLLM does not support LoRA bias")
    if cfg.get("use_dora"):
        problems.append("use_dora: vLLM does not support DoRA")
    if cfg.get("modules_to_save"):
        problems.append(f"modules_to_save {cfg['modules_to_save']!r}: vLLM loads LoRA matrices only "
                        "(fully trained modules such as lm_head cannot be served)")
    init = cfg.get("init_lora_weights", True)
    if isinstance(init, str) and init.lower() not in _VLLM_PLAIN_INITS:
        problems.append(f"init_lora_weights {init!r}: this initialisation changes the base weights, which vLLM "
                        "does not do; convert it to a plain LoRA first")
    for key, what in (("alora_invocation_tokens", "Activated LoRA (aLoRA)"), ("layer_replication", "layer_replication"),
                      ("use_qalora", "QALoRA"), ("use_bdlora", "block-diagonal LoRA")):
        if cfg.get(key):
            problems.append(f"{key}: vLLM does not support {what}")
    targets = cfg.get("target_modules")
    if isinstance(targets, list):
        bad = sorted({str(t) for t in targets if str(t).rsplit(".", 1)[-1] not in modules})
        if bad:
            problems.append(f"target_modules {', '.join(bad)}: vLLM applies LoRA to {', '.join(modules)} only")
    elif not isinstance(targets, str):
        problems.append("target_modules: missing")
    weights = folder / "adapter_model.safetensors"
    if weights.exists():
        found: set[str] = set()
        other: set[str] = set()
        for name in _safetensors_names(weights):
            head, sep, _ = name.partition(".lora_")
            (found if sep else other).add(head.rsplit(".", 1)[-1] if sep else name)
        bad = sorted(found - set(modules))
        if bad:
            problems.append(f"{weights.name} holds LoRA weights for {', '.join(bad)}: vLLM applies LoRA to "
                            f"{', '.join(modules)} only")
        if other:
            problems.append(f"{weights.name} holds tensors that are not LoRA matrices ({', '.join(sorted(other)[:3])}"
                            + (", ..." if len(other) > 3 else "") + "): vLLM cannot load them")
    elif not (folder / "adapter_model.bin").exists():
        problems.append(f"no adapter_model.safetensors (or .bin) in {folder}")
    return problems
