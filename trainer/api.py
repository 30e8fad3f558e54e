"""``train()``: a snapshot in, a run (adapter + metrics) out; the function rounds and the CLI call.

A finished training is not redone: a run's *fingerprint* is a hash of its kind, snapshot id,
resolved config (less reporting-only keys) and starting adapter.  When a run with the same
fingerprint already succeeded, ``train()`` returns it (``run.reused`` is True).  When one crashed
or was interrupted midway, ``train()`` resumes it, under the same id, from its last checkpoint.
When one is still running in a live process, ``train()`` refuses.

Under ``accelerate launch`` every process calls ``train()``; only the main process touches the
workspace database and broadcasts the prepared job to the others.
"""

from __future__ import annotations

import os
import socket
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from curator.errors import CuratorError, require
from curator.snapshots import read_split, resolve_snapshot
from curator.workspace import Workspace
from trainer.config import (
    DPOConfig,
    OpenAIConfig,
    SFTConfig,
    TrainConfig,
    config_fingerprint,
    load_config,
    save_config,
)
from trainer.runs import (
    Run,
    environment,
    find_runs,
    get_run,
    insert_run,
    new_run_id,
    peak_memory,
    process_alive,
    update_run,
    write_run_json,
)

__all__ = ["resume", "train"]

BACKENDS = ("local", "openai")


def _stderr(msg: str) -> None:
    import sys

    print(msg, file=sys.stderr, flush=True)


def train(
    ws: Workspace,
    snapshot: str,
    *,
    config: str | Path | TrainConfig | None = None,
    overrides: Sequence[str] = (),
    backend: str = "local",
    method: str = "sft",
    base_run: str | None = None,
    log: Callable[[str], None] | None = None,
    progress: bool = True,
    pairs: dict[str, list[dict[str, Any]]] | None = None,
    confirm: Callable[[str], bool] | None = None,
) -> Run:
    """Train on a snapshot's train split (evaluating on its eval split) and return the run.

    ``backend="openai"`` starts a hosted fine-tuning job instead (``method`` is then ``openai``).
    ``base_run``: the run whose adapter training starts from (DPO after SFT).  ``pairs``: preference
    pairs ``{"train": [...], "eval": [...]}`` for DPO instead of the snapshot's own.  ``confirm``: called
    with the cost estimate before an OpenAI job starts; returning False cancels.
    """
    log = log or _stderr
    if backend not in BACKENDS:
        raise CuratorError(f"unknown backend {backend!r} (choose from {', '.join(BACKENDS)})")
    if backend == "openai":
        method = "openai"
    elif method not in ("sft", "dpo"):
        raise CuratorError(f"unknown method {method!r} for the local backend (choose sft or dpo)")
    cfg = load_config(config, method=method, overrides=list(overrides))
    if isinstance(cfg, OpenAIConfig):
        from trainer.openai_ft import train_openai

        return train_openai(ws, snapshot, cfg, log=log, progress=progress, confirm=confirm)
    return _train_local(ws, snapshot, cfg, base_run=base_run, log=log, progress=progress, pairs=pairs)


def resume(ws: Workspace, run_id: str, *, log: Callable[[str], None] | None = None, progress: bool = True) -> Run:
    """Pick a run up again: poll an OpenAI job, or continue a crashed local run from its last checkpoint."""
    log = log or _stderr
    run = get_run(ws, run_id)
    if run.kind == "openai":
        from trainer.openai_ft import resume_openai

        return resume_openai(ws, run, log=log, progress=progress)
    if run.status == "succeeded":
        log(f"run {run.id} already succeeded; nothing to resume")
        run.reused = True
        return run
    if run.meta.get("pairs_source") == "argument":
        raise CuratorError(f"run {run.id} trained on preference pairs passed from Python: call trainer.train() "
                           "again with the same pairs to resume it")
    cfg = load_config(dict_config(run.config), method=run.kind)
    assert isinstance(cfg, SFTConfig | DPOConfig)  # OpenAI runs resumed above
    if not run.snapshot_id:
        raise CuratorError(f"run {run.id} has no snapshot to resume from")
    return _train_local(ws, run.snapshot_id, cfg, base_run=run.meta.get("base_run"), log=log, progress=progress,
                        pairs=None, resume_run=run)


def dict_config(d: dict[str, Any]) -> TrainConfig:
    from trainer.config import config_from_dict

    return config_from_dict(d, source="the run's stored config")


# -- local training ---------------------------------------------------------------------------------------------
def _distributed() -> tuple[bool, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    return rank == 0, world


def _train_local(
    ws: Workspace,
    snapshot: str,
    cfg: SFTConfig | DPOConfig,
    *,
    base_run: str | None,
    log: Callable[[str], None],
    progress: bool,
    pairs: dict[str, list[dict[str, Any]]] | None,
    resume_run: Run | None = None,
) -> Run:
    from curator.models import resolve_model
    from trainer.hardware import resolve_hardware
    from trainer.tracking import check_reporters

    for module in ("torch", "transformers", "peft", "trl", "accelerate", "datasets"):
        require(module, "train", f"training ({cfg.method})")  # the [train] extra, before any run exists
    resolve_hardware(cfg.quantization, cfg.precision)  # refuse impossible settings before any run exists
    check_reporters(cfg.report_to)
    resolve_model(cfg.base_model)  # an unknown model, or a hub id while offline, is refused before any run exists
    is_main, world = _distributed()
    payload: dict[str, Any] | None = None
    failure: BaseException | None = None
    if is_main:
        try:
            payload = _prepare(ws, snapshot, cfg, base_run=base_run, log=log, pairs=pairs, resume_run=resume_run)
        except BaseException as e:  # the other processes must not wait forever for the payload
            failure, payload = e, {"error": f"{type(e).__name__}: {e}"}
    if world > 1:
        import torch
        import torch.distributed as dist
        from accelerate import PartialState

        PartialState()  # joins the process group the launcher set up
        if not dist.is_initialized():
            dist.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")
        box = [payload]
        dist.broadcast_object_list(box, src=0)
        payload = box[0]
    if failure is not None:
        raise failure
    assert payload is not None
    if "error" in payload:
        raise CuratorError(f"the main process could not prepare the run: {payload['error']}")
    if payload.get("done"):
        run = get_run(ws, payload["run_id"]) if is_main else Run(payload["run_id"], cfg.method, None, None)
        run.reused = True
        return run
    return _execute(ws, cfg, payload, log=log, progress=progress, is_main=is_main)


def _prepare(
    ws: Workspace,
    snapshot: str,
    cfg: SFTConfig | DPOConfig,
    *,
    base_run: str | None,
    log: Callable[[str], None],
    pairs: dict[str, list[dict[str, Any]]] | None,
    resume_run: Run | None,
) -> dict[str, Any]:
    """Main process only: resolve the snapshot, reuse / resume / create the run, read the data."""
    from trainer.data import load_preference_pairs, pairs_digest

    snap = resolve_snapshot(ws, snapshot)
    base: Run | None = None
    if base_run:
        base = get_run(ws, base_run)
        if base.status != "succeeded" or not base.adapter_path:
            raise CuratorError(f"base run {base.id} has no finished adapter (status {base.status})")
        if base.base_model != cfg.base_model:
            raise CuratorError(
                f"base run {base.id} was trained on {base.base_model}, but this config trains {cfg.base_model}"
            )
    context: dict[str, Any] = {"kind": cfg.method, "snapshot": snap.id, "base_run": base.id if base else None}
    if pairs is not None:
        context["pairs"] = pairs_digest([pairs.get("train", []), pairs.get("eval", [])])
    fingerprint = config_fingerprint(cfg, **context)

    run = resume_run
    if run is None:
        for prev in find_runs(ws, fingerprint):
            if prev.status == "succeeded":
                log(f"run {prev.id} already trained this snapshot with this config; reusing it")
                return {"done": True, "run_id": prev.id}
            if prev.status == "running" and process_alive(prev.meta.get("pid"), prev.meta.get("host")):
                raise CuratorError(
                    f"run {prev.id} is training this snapshot with this config right now "
                    f"(PID {prev.meta.get('pid')}); wait for it or stop it"
                )
            if run is None:
                run = prev  # the newest crashed / stopped / failed identical run: resume it
    elif run.status == "running" and process_alive(run.meta.get("pid"), run.meta.get("host")) \
            and run.meta.get("pid") != os.getpid():
        raise CuratorError(f"run {run.id} is still running (PID {run.meta.get('pid')})")

    if cfg.method == "dpo":
        if pairs is not None:
            train_rows, eval_rows = list(pairs.get("train", [])), list(pairs.get("eval", []))
        else:
            train_rows = load_preference_pairs(ws, snap.id, "train")
            eval_rows = load_preference_pairs(ws, snap.id, "eval")
        if not train_rows:
            raise CuratorError(f"snapshot {snap.id} has no train preference pairs: DPO needs chosen/rejected pairs "
                               "(curator feedback ingest, then a new snapshot)")
    else:
        # meta.tools: the function schemas of a tool-calling example (rendered by a template that supports tools)
        train_rows = [{"id": r["id"], "messages": r["messages"], "meta": {"tools": r["meta"].get("tools")}}
                      for r in read_split(ws, snap, "train")]
        eval_rows = [{"id": r["id"], "messages": r["messages"], "meta": {"tools": r["meta"].get("tools")}}
                     for r in read_split(ws, snap, "eval")]

    resume_from: Path | None = None
    if run is not None:
        ckpt = _last_checkpoint(run.folder(ws) / "checkpoints")
        resume_from = ckpt
        meta = dict(run.meta)
        meta.update(pid=os.getpid(), host=socket.gethostname(), resumed=meta.get("resumed", 0) + 1)
        meta.pop("error", None)
        _trim_metrics(run.folder(ws) / "metrics.jsonl", int(ckpt.name.rsplit("-", 1)[-1]) if ckpt else 0)
        run = update_run(ws, run.id, status="running", meta=meta)
        log(f"resuming run {run.id}" + (f" from {ckpt.name}" if ckpt else " from the start (no checkpoint yet)"))
    else:
        run = Run(
            id=new_run_id(), kind=cfg.method, snapshot_id=snap.id, base_model=cfg.base_model, config=cfg.to_dict(),
            status="running",
            meta={
                "fingerprint": fingerprint, "pid": os.getpid(), "host": socket.gethostname(),
                "base_run": base.id if base else None, "snapshot_name": snap.name,
                "snapshot_counts": snap.counts.get("by_split_origin", {}),
                "train_examples": len(train_rows), "eval_examples": len(eval_rows),
                "pairs_source": "argument" if pairs is not None else ("snapshot" if cfg.method == "dpo" else None),
            },
        )
        run = insert_run(ws, run)
        log(f"run {run.id}: {cfg.method} on snapshot {snap.id} ({len(train_rows)} train, {len(eval_rows)} eval)")
    folder = run.folder(ws)
    folder.mkdir(parents=True, exist_ok=True)
    save_config(cfg, folder / "config.yaml")
    (folder / "snapshot_id").write_text(snap.id + "\n")
    write_run_json(ws, run)
    return {
        "run_id": run.id, "run_dir": str(folder), "train_rows": train_rows, "eval_rows": eval_rows,
        "base_adapter": str(base.adapter_dir(ws)) if base else None,
        "resume_from": str(resume_from) if resume_from else None, "meta": run.meta,
    }


def _trim_metrics(path: Path, last_step: int) -> None:
    """Drop metric lines logged after the checkpoint a run resumes from (they are logged again)."""
    import json

    if not path.exists():
        return
    keep = [line for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip() and json.loads(line).get("step", 0) <= last_step and last_step > 0]
    path.write_text("".join(line + "\n" for line in keep), encoding="utf-8")


def _sigterm_as_interrupt() -> Callable[[], None]:
    """While training, SIGTERM (``kill``, a scheduler) stops like Ctrl-C: the run is marked ``stopped``."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)

    def restore() -> None:
        signal.signal(signal.SIGTERM, previous)

    return restore


def _last_checkpoint(folder: Path) -> Path | None:
    if not folder.is_dir():
        return None
    from transformers.trainer_utils import get_last_checkpoint

    last = get_last_checkpoint(str(folder))
    return Path(last) if last else None


def _execute(ws: Workspace, cfg: SFTConfig | DPOConfig, payload: dict[str, Any], *, log: Callable[[str], None],
             progress: bool, is_main: bool) -> Run:
    from trainer.sft import TrainJob

    run_dir = Path(payload["run_dir"])
    log_file = run_dir / "train.log"

    def run_log(msg: str) -> None:
        if not is_main:
            return
        log(msg)
        with log_file.open("a", encoding="utf-8") as f:
            f.write(time.strftime("%Y-%m-%d %H:%M:%S ") + msg + "\n")

    job = TrainJob(
        run_id=payload["run_id"], run_dir=run_dir, cfg=cfg, train_rows=payload["train_rows"],
        eval_rows=payload["eval_rows"],
        base_adapter=Path(payload["base_adapter"]) if payload["base_adapter"] else None,
        resume_from=Path(payload["resume_from"]) if payload["resume_from"] else None,
        log=run_log, progress=progress,
    )
    meta = dict(payload["meta"])
    t0 = time.time()
    restore = _sigterm_as_interrupt()
    status, error = "failed", None
    metrics: dict[str, Any] = {}
    try:
        from trainer.callbacks import quiet_bars

        with quiet_bars(progress):
            if cfg.method == "dpo":
                from trainer.dpo import train_dpo

                metrics = train_dpo(job)
            else:
                from trainer.sft import train_sft

                metrics = train_sft(job)
        status = "succeeded"
    except KeyboardInterrupt:
        status, error = "stopped", "interrupted"
        raise
    except BaseException as e:
        error = f"{type(e).__name__}: {e}"
        if is_main:
            with log_file.open("a", encoding="utf-8") as f:
                f.write(traceback.format_exc())
        raise
    finally:
        restore()
        if is_main:
            wall = time.time() - t0
            meta.update(environment())
            meta.update(peak_memory())
            meta["wall_time_s"] = round(wall + float(meta.get("wall_time_s_before_resume", 0.0)), 2)
            if status != "succeeded":
                meta["wall_time_s_before_resume"] = meta["wall_time_s"]
                meta["error"] = error
                run_log(f"run {job.run_id} {status}: {error}")
            else:
                meta.pop("wall_time_s_before_resume", None)
            adapter = f"runs/{job.run_id}/adapter" if status == "succeeded" else None
            run = update_run(ws, job.run_id, status=status, metrics=metrics, meta=meta, adapter_path=adapter,
                             finished=True)
            write_run_json(ws, run)
            if status == "succeeded":
                from trainer.modelcard import finalize_adapter

                finalize_adapter(ws, run)  # the portable base name and the model card (README.md)
                run_log(
                    f"run {run.id} succeeded in {meta['wall_time_s']:.0f}s: adapter {adapter}, "
                    f"train loss {metrics.get('train_loss')}, best eval loss {metrics.get('best_eval_loss')}"
                    + (f", overfitting detected at step {metrics['overfitting_detected_at_step']}"
                       if metrics.get("overfitting_detected_at_step") else "")
                )
    if is_main:
        return get_run(ws, job.run_id)
    return Run(job.run_id, cfg.method, None, cfg.base_model, status=status, metrics=metrics)
