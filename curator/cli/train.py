"""Commands: ``train``, ``runs list|show|resume``, ``lineage``, ``chat``, ``export-model``.

Thin wrappers over :mod:`trainer`; registered by ``curator/commands.py``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import click

from curator.cli.kit import CuratorGroup, log, workspace
from curator.output import echo_json, table

__all__ = ["chat_cmd", "export_model_cmd", "lineage_cmd", "runs_group", "train_cmd"]


def _fmt_loss(v: Any) -> str:
    return f"{v:.4f}" if isinstance(v, int | float) else "-"


def _run_line(run: Any) -> str:
    m = run.metrics
    if run.kind == "openai":
        detail = f"job {run.meta.get('job_id', '-')} {run.meta.get('job_status', '')}".strip()
        if m.get("fine_tuned_model"):
            detail += f", model {m['fine_tuned_model']}"
        return detail
    parts = [f"adapter {run.adapter_path}" if run.adapter_path else "no adapter"]
    if m.get("train_loss") is not None:
        parts.append(f"train loss {_fmt_loss(m['train_loss'])}")
    if m.get("best_eval_loss") is not None:
        parts.append(f"best eval loss {_fmt_loss(m['best_eval_loss'])} (step {m.get('best_step')})")
    if m.get("overfitting_detected_at_step"):
        parts.append(f"overfitting detected at step {m['overfitting_detected_at_step']}")
    return ", ".join(parts)


@click.command("train")
@click.option("--snapshot", "snapshot", required=True, help="Snapshot id, id prefix, name or 'latest'.")
@click.option("--config", "config", type=click.Path(path_type=Path),
              help="YAML config (default: configs/smollm2-lora-cpu.yaml for sft, the DPO / OpenAI default otherwise).")
@click.option("--method", type=click.Choice(["sft", "dpo"]), default="sft", show_default=True,
              help="Local training method.")
@click.option("--backend", type=click.Choice(["local", "openai"]), default="local", show_default=True,
              help="Train here (TRL + PEFT) or start a hosted OpenAI fine-tuning job.")
@click.option("--base-run", help="Start from this run's adapter (DPO after SFT).")
@click.option("--quantization", type=click.Choice(["auto", "none", "4bit", "8bit"]),
              help="Shortcut for the quantization=... override (auto: 4-bit nf4 on CUDA, none on CPU).")
@click.option("--yes", "-y", is_flag=True, help="OpenAI backend: start without asking to confirm the cost.")
@click.option("--no-progress", is_flag=True, help="No progress bars.")
@click.option("--json", "as_json", is_flag=True, help="Print the run as JSON.")
@click.option("--launcher", type=click.Choice(["none", "accelerate"]), default="none", show_default=True,
              help="accelerate: run the training in several processes (one per GPU) with `accelerate launch`.")
@click.option("--accelerate-config", default="ddp", show_default=True, metavar="ddp|fsdp|zero2|PATH",
              help="With --launcher accelerate: a shipped config (ddp, fsdp, zero2) or an accelerate config file.")
@click.option("--num-processes", type=click.IntRange(min=1),
              help="With --launcher accelerate: processes to start (default: one per CUDA GPU).")
@click.argument("overrides", nargs=-1)
@click.pass_context
def train_cmd(ctx: click.Context, snapshot: str, config: Path | None, method: str, backend: str,
              base_run: str | None, quantization: str | None, yes: bool, no_progress: bool, as_json: bool,
              launcher: str, accelerate_config: str, num_processes: int | None, overrides: tuple[str, ...]) -> None:
    """Train on a snapshot: a LoRA adapter (local) or a hosted fine-tune (--backend openai).

    OVERRIDES are key=value pairs that replace config values.  A run identical to a finished one
    (same snapshot and resolved config) is not redone; an interrupted one is resumed.

    \b
    curator train --snapshot latest
    curator train --snapshot v1 --config configs/smollm2-lora-cpu.yaml max_steps=3 learning_rate=1e-4
    curator train --snapshot v1 --method dpo --base-run r-20261128-121500-ab12
    curator train --snapshot v1 --backend openai --yes
    curator train --snapshot v1 --launcher accelerate --accelerate-config ddp --num-processes 4
    """
    from trainer.api import train

    ovr = list(overrides) + ([f"quantization={quantization}"] if quantization else [])
    if launcher == "accelerate":
        _launch(ctx, snapshot, config, method, backend, base_run, yes, no_progress, as_json, accelerate_config,
                num_processes, ovr)
        return
    confirm = None if yes else (lambda text: click.confirm("Start this fine-tuning job?", default=False, err=True))
    run = train(workspace(ctx), snapshot, config=config, overrides=ovr, backend=backend, method=method,
                base_run=base_run, log=log, progress=not no_progress, confirm=confirm)
    if int(os.environ.get("RANK", "0")) != 0:
        return  # under `accelerate launch`, the main process reports
    if as_json:
        echo_json(run.to_dict())
        return
    verb = "reused" if run.reused else run.status
    click.echo(f"run {run.id} {verb}: {_run_line(run)}")


def _launch(ctx: click.Context, snapshot: str, config: Path | None, method: str, backend: str, base_run: str | None,
            yes: bool, no_progress: bool, as_json: bool, accelerate_config: str, num_processes: int | None,
            overrides: list[str]) -> None:
    """``--launcher accelerate``: the same ``curator train`` in every process of ``accelerate launch``."""
    from trainer.config import load_config
    from trainer.launch import launch_accelerate

    if backend != "local":
        raise click.UsageError("--launcher accelerate trains here (--backend local), not with a hosted backend")
    cfg = load_config(config, method=method, overrides=overrides)  # a bad config fails here, not in N processes
    args = ["--snapshot", snapshot, "--method", method]
    args += ["--config", str(Path(config).resolve())] if config is not None else []
    args += ["--base-run", base_run] if base_run else []
    args += ["--yes"] if yes else []
    args += ["--no-progress"] if no_progress else []
    args += ["--json"] if as_json else []
    ws = workspace(ctx)
    log(f"accelerate launch: {accelerate_config} config, "
        + (f"{num_processes} processes" if num_processes else "one process per GPU"))
    rc = launch_accelerate(ws.path, [*args, *overrides], config=accelerate_config, num_processes=num_processes,
                           quantization=getattr(cfg, "quantization", None))
    if rc != 0:
        raise click.exceptions.Exit(rc)


@click.group("runs", cls=CuratorGroup)
def runs_group() -> None:
    """Training runs: list, show, resume."""


@runs_group.command("list")
@click.option("--kind", type=click.Choice(["sft", "dpo", "openai"]), help="Only runs of this kind.")
@click.option("--status", type=click.Choice(["running", "succeeded", "failed", "stopped"]), help="Only this status.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def runs_list(ctx: click.Context, kind: str | None, status: str | None, as_json: bool) -> None:
    """List runs, oldest first."""
    from trainer.runs import list_runs

    runs = list_runs(workspace(ctx), kind=kind, status=status)
    if as_json:
        echo_json([r.to_dict() for r in runs])
        return
    if not runs:
        click.echo("no runs yet: run `curator train --snapshot latest`")
        return
    rows = []
    for r in runs:
        m = r.metrics
        rows.append([
            r.id, r.kind, r.status, (r.snapshot_id or "-")[:12], r.base_model,
            m.get("global_step", "-") if r.kind != "openai" else "-",
            _fmt_loss(m.get("train_loss")), _fmt_loss(m.get("best_eval_loss")),
            m.get("overfitting_detected_at_step") or "-",
            f"{r.meta['wall_time_s']:.0f}s" if r.meta.get("wall_time_s") is not None else "-",
        ])
    click.echo(table(["run", "kind", "status", "snapshot", "base model", "steps", "train loss", "best eval",
                      "overfit at", "wall"], rows))


@runs_group.command("show")
@click.argument("run_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def runs_show(ctx: click.Context, run_id: str, as_json: bool) -> None:
    """Show one run: config, metrics, versions, wall time, memory (RUN_ID: id, prefix or 'latest')."""
    from trainer.runs import get_run

    ws = workspace(ctx)
    run = get_run(ws, run_id)
    if as_json:
        echo_json(run.to_dict())
        return
    m, meta = run.metrics, run.meta
    click.echo(f"run {run.id} ({run.kind}) {run.status}")
    click.echo(f"  snapshot     {run.snapshot_id}" + (f" ({meta['snapshot_name']})" if meta.get("snapshot_name") else ""))
    click.echo(f"  base model   {run.base_model}")
    if meta.get("base_run"):
        click.echo(f"  started from {meta['base_run']}")
    click.echo(f"  folder       {run.folder(ws)}")
    click.echo(f"  result       {_run_line(run)}")
    if m.get("history"):
        h = m["history"]
        tl = " ".join(f"{s}:{v:.3f}" for s, v in h.get("train_loss", [])[-12:])
        el = " ".join(f"{s}:{v:.3f}" for s, v in h.get("eval_loss", [])[-12:])
        click.echo(f"  train loss   {tl or '-'}")
        click.echo(f"  eval loss    {el or '-'}")
    if meta.get("estimate"):
        est = meta["estimate"]
        click.echo(f"  estimate     ~{est['training_tokens']:,} training tokens"
                   + (f", ~${est['estimated_usd']:.2f}" if est.get("estimated_usd") is not None else ""))
    extras = []
    if meta.get("wall_time_s") is not None:
        extras.append(f"wall {meta['wall_time_s']:.1f}s")
    if meta.get("peak_rss_mb") is not None:
        extras.append(f"peak RSS {meta['peak_rss_mb']:.0f} MB")
    if meta.get("peak_cuda_mb") is not None:
        extras.append(f"peak GPU {meta['peak_cuda_mb']:.0f} MB")
    if extras:
        click.echo("  resources    " + ", ".join(extras))
    if meta.get("versions"):
        click.echo("  versions     " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()))
    if meta.get("error"):
        click.echo(f"  error        {meta['error']}")
    click.echo("  config       " + json.dumps({k: v for k, v in run.config.items()}, default=str))


@runs_group.command("resume")
@click.argument("run_id")
@click.option("--no-progress", is_flag=True, help="No progress bars.")
@click.option("--json", "as_json", is_flag=True, help="Print the run as JSON.")
@click.pass_context
def runs_resume(ctx: click.Context, run_id: str, no_progress: bool, as_json: bool) -> None:
    """Resume a run: poll an OpenAI job again, or continue a crashed local run from its last checkpoint."""
    from trainer.api import resume

    run = resume(workspace(ctx), run_id, log=log, progress=not no_progress)
    if as_json:
        echo_json(run.to_dict())
        return
    click.echo(f"run {run.id} {run.status}: {_run_line(run)}")


@click.command("lineage")
@click.argument("run_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def lineage_cmd(ctx: click.Context, run_id: str, as_json: bool) -> None:
    """Where a run came from and what came of it: snapshot -> examples by origin -> run -> evaluations."""
    from trainer.runs import lineage

    d = lineage(workspace(ctx), run_id)
    if as_json:
        echo_json(d)
        return
    snap = d.get("snapshot")
    if snap:
        if snap.get("missing"):
            click.echo(f"snapshot {snap['id']} (not in this workspace)")
        else:
            click.echo(f"snapshot {snap['id']}" + (f" ({snap['name']})" if snap.get("name") else "")
                       + f", created {snap['created_at']}" + (f", parent {snap['parent_id']}" if snap.get("parent_id") else ""))
            for split in ("train", "eval", "test"):
                origins = snap["examples"].get(split, {})
                if origins:
                    total = sum(origins.values())
                    detail = ", ".join(f"{o} {n}" for o, n in sorted(origins.items()))
                    click.echo(f"  {split:<5} {total:>5} examples ({detail})")
    if d.get("base_run"):
        b = d["base_run"]
        click.echo(f"  -> run {b['id']} ({b['kind']}, {b['status']})")
    r = d["run"]
    line = f"  -> run {r['id']} ({r['kind']}, {r['status']}) on {r['base_model']}"
    if r.get("adapter_path"):
        line += f", adapter {r['adapter_path']}"
    if r.get("fine_tuned_model"):
        line += f", model {r['fine_tuned_model']}"
    click.echo(line)
    if r.get("train_loss") is not None:
        click.echo(f"       train loss {_fmt_loss(r['train_loss'])}, best eval loss {_fmt_loss(r['best_eval_loss'])}, "
                   f"{r.get('global_step')} steps" + (f", overfitting detected at step {r['overfitting_detected_at_step']}"
                                                      if r.get("overfitting_detected_at_step") else ""))
    if not d["evals"]:
        click.echo("     -> no evaluations yet (curator eval --run " + r["id"] + ")")
    for e in d["evals"]:
        summary = e["summary"]
        shown = ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}"
                          for k, v in list(summary.items())[:6] if not isinstance(v, dict | list))
        click.echo(f"     -> eval {e['id']} on {e['split']} ({e['created_at']}): {shown}")


@click.command("chat")
@click.option("--run", "runs", multiple=True, required=True,
              help="A run id (or prefix) whose adapter answers; repeat to compare; 'base' = no adapter.")
@click.option("--system", help="A system prompt.")
@click.option("--system-file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Read the system prompt from a file.")
@click.option("--base-model", help="Base model when only --run base is given.")
@click.option("--max-new-tokens", default=256, show_default=True, help="Answer length limit.")
@click.option("--temperature", default=0.0, show_default=True, help="0 = greedy.")
@click.option("--json", "as_json", is_flag=True, help="Print {run: answer} as JSON (with a PROMPT).")
@click.argument("prompt", required=False)
@click.pass_context
def chat_cmd(ctx: click.Context, runs: tuple[str, ...], system: str | None, system_file: Path | None,
             base_model: str | None, max_new_tokens: int, temperature: float, as_json: bool, prompt: str | None) -> None:
    """Talk to one run's adapter, or compare several on one base model.

    With PROMPT: answer once and exit.  Without: an interactive loop (empty line or Ctrl-D ends it).

    \b
    curator chat --run r-20261128-121500-ab12 "My bucket returns 403"
    curator chat --run base --run latest --system-file seeds/support/system.txt "DNS not resolving"
    """
    from trainer.adapters import AdapterStack
    from trainer.runs import get_run

    ws = workspace(ctx)
    if system_file is not None:
        from curator.errors import InputError

        raw = system_file.read_bytes()
        try:
            system = raw.decode("utf-8-sig").strip()
        except UnicodeDecodeError as e:
            raise InputError("not UTF-8 text", system_file, raw.count(b"\n", 0, e.start) + 1) from None
    refs = [r if r == "base" else get_run(ws, r).id for r in runs]
    log("loading the base model and adapters ...")
    stack = AdapterStack(ws, refs, base_model=base_model)
    kwargs: dict[str, Any] = {"max_new_tokens": max_new_tokens, "temperature": temperature}

    def ask(text: str) -> dict[str, str]:
        messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": text}]
        return stack.chat(messages, **kwargs)

    def show(answers: dict[str, str]) -> None:
        for name, answer in answers.items():
            if len(answers) > 1:
                click.echo(f"--- {name}")
            click.echo(answer)

    if prompt is not None:
        answers = ask(prompt)
        echo_json(answers) if as_json else show(answers)
        return
    while True:
        try:
            text = click.prompt("you", default="", show_default=False, err=True)
        except (EOFError, click.Abort):
            break
        if not text.strip():
            break
        show(ask(text))


@click.command("export-model")
@click.argument("run_id")
@click.option("--format", "fmt", type=click.Choice(["hf", "gguf"]), default="hf", show_default=True,
              help="hf: a transformers model folder; gguf: one GGUF file for llama.cpp and Ollama.")
@click.option("--outtype", type=click.Choice(["f16", "f32"]), default="f16", show_default=True,
              help="GGUF weights: f16 (half the size) or f32 (the merged weights exactly).")
@click.option("--merge", is_flag=True, help="Merge the adapter into the base weights (every format does; optional).")
@click.option("--out", type=click.Path(path_type=Path), required=True,
              help="Output folder (hf) or .gguf file (gguf).")
@click.option("--force", is_flag=True, help="Overwrite a non-empty output folder or an existing file.")
@click.pass_context
def export_model_cmd(ctx: click.Context, run_id: str, fmt: str, outtype: str, merge: bool, out: Path,
                     force: bool) -> None:
    """Write a run's adapter merged into its base model: a model folder, or a GGUF file.

    The hf folder loads with AutoModelForCausalLM.from_pretrained and carries the run's model card
    (README.md); the GGUF file runs in llama.cpp and Ollama.  The run's adapter folder gets its card
    refreshed too (with the evaluations recorded since training).

    \b
    curator export-model r-20261128-121500-ab12 --out models/support-v1
    curator export-model r-20261128-121500-ab12 --format gguf --out support-v1.gguf
    curator export-model latest --format gguf --outtype f32 --out support-v1-f32.gguf
    """
    ws = workspace(ctx)
    if fmt == "gguf":
        from trainer.gguf_export import export_gguf

        path = export_gguf(ws, run_id, out, outtype=outtype, force=force)
        click.echo(f"GGUF ({outtype}) written to {path} ({path.stat().st_size / 2**20:.1f} MiB)")
        return
    from trainer.adapters import export_merged

    path = export_merged(ws, run_id, out, force=force)
    click.echo(f"merged model written to {path}")
