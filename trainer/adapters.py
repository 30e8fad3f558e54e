"""Several runs' adapters on one base model, and merged-model export.

::

    stack = AdapterStack(ws, ["r-...-ab12", "r-...-cd34", "base"])
    answers = stack.chat([{"role": "user", "content": "My bucket is gone"}])   # {run id: answer}
    stack.generate("r-...-ab12", conversations)                                  # one adapter, a batch

One base model is loaded once with each run's LoRA adapter under its run id
(``curator.models.load_model(base, adapters={...})``); every request picks one with
``set_adapter``.  ``"base"`` means the base model with adapters disabled.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from curator.errors import CuratorError, ModelError
from curator.models import GenOutput, generate, load_model, load_tokenizer, resolve_model
from curator.workspace import Workspace
from trainer.runs import Run, get_run

__all__ = ["BASE", "AdapterStack", "export_merged"]

#: The name that stands for "no adapter".
BASE = "base"


def _local_run(ws: Workspace, ref: str) -> Run:
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
            run = _local_run(ws, ref)
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
    """Merge a run's adapter into its base model and save a plain model folder (safetensors + tokenizer)."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    run = _local_run(ws, ref)
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        if not force:
            raise CuratorError(f"{out} is not empty; pass --force to overwrite")
        shutil.rmtree(out)
    assert run.base_model is not None and run.adapter_path is not None
    base = AutoModelForCausalLM.from_pretrained(str(resolve_model(run.base_model)), dtype="auto")  # the saved dtype
    model = PeftModel.from_pretrained(base, str(ws.path / run.adapter_path))
    merged = model.merge_and_unload()
    tmp = out.with_name(out.name + ".tmp-export")
    shutil.rmtree(tmp, ignore_errors=True)
    merged.save_pretrained(tmp)
    load_tokenizer(run.base_model).save_pretrained(tmp)
    (tmp / "curator_run.txt").write_text(
        f"merged from run {run.id}: base {run.base_model} + adapter {run.adapter_path} (snapshot {run.snapshot_id})\n"
    )
    if out.exists():
        out.rmdir()
    tmp.rename(out)
    return out
