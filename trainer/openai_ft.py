"""Hosted fine-tuning on the OpenAI API: ``curator train --backend openai``.

1. export the snapshot's train and eval splits as OpenAI chat JSONL into ``runs/<id>/openai/`` and
   validate them (``curator.data.validate``: OpenAI's format checks);
2. estimate the cost: training tokens per epoch x epochs x a price per 1 M training tokens.
   tiktoken is not installed, so tokens are counted with the local tokenizer named in the config
   (SmolLM2's by default): an approximation, usually within 10-20 % of OpenAI's count for English;
3. after confirmation (``--yes`` skips it), upload the files, create the job (``model``,
   ``n_epochs``, ``batch_size``, ``learning_rate_multiplier``, ``suffix``), and store the job id in
   the run at once;
4. poll the job's status and events with a progress display until it ends; the run records the
   job id, status, trained tokens and ``fine_tuned_model``.  Interrupted (Ctrl-C, a crash), the run
   stays ``running``; ``curator runs resume ID`` picks up polling.

The key comes from ``$OPENAI_API_KEY`` (MissingKeyError when unset), the endpoint from
``$OPENAI_BASE_URL`` (default: api.openai.com).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from curator.errors import (
    BudgetExceededError,
    CuratorError,
    InputError,
    MissingKeyError,
    ProviderError,
    require,
)
from curator.snapshots import read_split, resolve_snapshot
from curator.workspace import Workspace
from trainer.config import OpenAIConfig, config_fingerprint, save_config
from trainer.runs import (
    Run,
    environment,
    find_runs,
    get_run,
    insert_run,
    new_run_id,
    update_run,
    write_run_json,
)

__all__ = ["PRICES", "estimate_cost", "export_openai_files", "price_for", "resume_openai", "train_openai"]

#: USD per 1 M *training* tokens (tokens in the training file x epochs).  Edit me: prices change;
#: see https://openai.com/api/pricing.  Matched by the longest prefix of the model name.
PRICES: dict[str, float] = {
    "gpt-4o-mini": 3.00,
    "gpt-4o": 25.00,
    "gpt-4.1-nano": 1.50,
    "gpt-4.1-mini": 5.00,
    "gpt-4.1": 25.00,
    "gpt-3.5-turbo": 8.00,
    "davinci-002": 6.00,
    "babbage-002": 0.40,
}
_TERMINAL = {"succeeded": "succeeded", "failed": "failed", "cancelled": "stopped"}


def price_for(model: str, override: float | None = None) -> float | None:
    """USD per 1 M training tokens for ``model`` (an explicit override wins), or None when unknown."""
    if override is not None:
        return override
    name = model.removeprefix("ft:")
    best = max((k for k in PRICES if name.startswith(k)), key=len, default=None)
    return PRICES[best] if best else None


def _client() -> Any:
    openai = require("openai", "synth", "OpenAI fine-tuning")

    key = os.environ.get("OPENAI_API_KEY")
    if not key:
        raise MissingKeyError("OPENAI_API_KEY", "OpenAI fine-tuning")
    return openai.OpenAI(api_key=key, base_url=os.environ.get("OPENAI_BASE_URL") or None, max_retries=3)


def export_openai_files(ws: Workspace, snapshot_id: str, out: Path) -> dict[str, Any]:
    """Write ``train.jsonl`` (and ``eval.jsonl`` when the eval split has rows) in OpenAI's chat format."""
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, Any] = {}
    for split in ("train", "eval"):
        rows = read_split(ws, snapshot_id, split)
        if not rows:
            continue
        path = out / f"{split}.jsonl"
        with path.open("w", encoding="utf-8") as f:
            for r in rows:
                msgs = [{k: m[k] for k in ("role", "content", "weight") if k in m} for m in r["messages"]]
                f.write(json.dumps({"messages": msgs}, ensure_ascii=False) + "\n")
        files[split] = {"path": str(path), "rows": len(rows)}
    if "train" not in files:
        raise CuratorError(f"snapshot {snapshot_id} has no train examples to fine-tune on")
    return files


def estimate_cost(train_file: Path, cfg: OpenAIConfig) -> dict[str, Any]:
    """Validate the training file and estimate the job's cost from its token count."""
    from curator.data.validate import token_counter, validate_file

    report = validate_file(train_file, count_tokens=token_counter(cfg.tokenizer))
    if not report.ok:
        kinds = "; ".join(f"{k} (lines {', '.join(map(str, v[:5]))})" for k, v in report.errors.items())
        raise InputError(f"the export fails OpenAI's format checks: {kinds}", train_file)
    per_epoch = int(report.billing.get("billed_tokens_per_epoch", 0))
    epochs = int(cfg.n_epochs) if not isinstance(cfg.n_epochs, str) else int(report.billing.get("default_epochs", 3))
    price = price_for(cfg.model, cfg.price_per_1m_tokens)
    tokens = per_epoch * epochs
    return {
        "examples": report.examples, "tokens_per_epoch": per_epoch, "epochs": epochs,
        "epochs_from": "config" if not isinstance(cfg.n_epochs, str) else "OpenAI's default rule",
        "training_tokens": tokens, "usd_per_1m_tokens": price,
        "estimated_usd": round(tokens * price / 1e6, 4) if price is not None else None,
        "tokenizer": cfg.tokenizer, "note": f"tokens counted with {cfg.tokenizer} (approximation; tiktoken is not installed)",
        "warnings": {k: len(v) for k, v in report.warnings.items()},
    }


def _describe(est: dict[str, Any], model: str) -> str:
    cost = f"about ${est['estimated_usd']:.2f}" if est["estimated_usd"] is not None else \
        "unknown (no price for this model: set price_per_1m_tokens)"
    return (f"OpenAI fine-tuning of {model}: {est['examples']} examples, ~{est['tokens_per_epoch']:,} tokens/epoch x "
            f"{est['epochs']} epochs ({est['epochs_from']}) = ~{est['training_tokens']:,} training tokens; "
            f"cost {cost} ({est['note']})")


def train_openai(ws: Workspace, snapshot: str, cfg: OpenAIConfig, *, log: Callable[[str], None],
                 progress: bool = True, confirm: Callable[[str], bool] | None = None) -> Run:
    """Export, estimate, confirm, upload, create the job and poll it to the end."""
    snap = resolve_snapshot(ws, snapshot)
    fingerprint = config_fingerprint(cfg, kind="openai", snapshot=snap.id)
    for prev in find_runs(ws, fingerprint):
        if prev.status == "succeeded":
            log(f"run {prev.id} already fine-tuned this snapshot with this config "
                f"({prev.metrics.get('fine_tuned_model')}); reusing it")
            prev.reused = True
            return prev
        if prev.status == "running" and prev.meta.get("job_id"):
            log(f"run {prev.id} has job {prev.meta['job_id']} in flight; resuming polling")
            return resume_openai(ws, prev, log=log, progress=progress)

    client = _client()
    run_id = new_run_id()
    folder = ws.runs_dir / run_id
    try:
        files = export_openai_files(ws, snap.id, folder / "openai")
        est = estimate_cost(Path(files["train"]["path"]), cfg)
        text = _describe(est, cfg.model)
        log(text)
        if cfg.max_cost_usd is not None and est["estimated_usd"] is not None and est["estimated_usd"] > cfg.max_cost_usd:
            raise BudgetExceededError(
                f"estimated ${est['estimated_usd']:.2f} is above max_cost_usd ${cfg.max_cost_usd:.2f}"
            )
        if confirm is not None and not confirm(text):
            raise CuratorError("cancelled: no fine-tuning job was started")
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise

    run = insert_run(ws, Run(
        id=run_id, kind="openai", snapshot_id=snap.id, base_model=cfg.model, config=cfg.to_dict(), status="running",
        meta={"fingerprint": fingerprint, "pid": os.getpid(), "host": socket.gethostname(), "estimate": est,
              "files": files, "snapshot_name": snap.name, **environment()},
    ))
    save_config(cfg, folder / "config.yaml")
    (folder / "snapshot_id").write_text(snap.id + "\n")
    meta = dict(run.meta)
    try:
        train_id = _upload(client, Path(files["train"]["path"]))
        eval_id = _upload(client, Path(files["eval"]["path"])) if "eval" in files else None
        meta["file_ids"] = {"train": train_id, "eval": eval_id}
        hyper = {k: getattr(cfg, k) for k in ("n_epochs", "batch_size", "learning_rate_multiplier")}
        kwargs: dict[str, Any] = {
            "model": cfg.model, "training_file": train_id,
            "method": {"type": "supervised", "supervised": {"hyperparameters": hyper}},
        }
        if eval_id:
            kwargs["validation_file"] = eval_id
        if cfg.suffix:
            kwargs["suffix"] = cfg.suffix
        if cfg.seed is not None:
            kwargs["seed"] = cfg.seed
        job = client.fine_tuning.jobs.create(**kwargs)
    except Exception as e:
        meta["error"] = _api_error(e)
        update_run(ws, run.id, status="failed", meta=meta, finished=True)
        write_run_json(ws, get_run(ws, run.id))
        raise ProviderError(f"OpenAI fine-tuning: {meta['error']}") from None
    meta.update(job_id=job.id, job_status=job.status)
    run = update_run(ws, run.id, meta=meta)
    write_run_json(ws, run)
    log(f"run {run.id}: job {job.id} created ({job.status})")
    return _poll(ws, run, client, cfg.poll_interval_s, log=log, progress=progress)


def resume_openai(ws: Workspace, run: Run, *, log: Callable[[str], None], progress: bool = True) -> Run:
    """Continue polling the run's job (after Ctrl-C or a crash)."""
    job_id = run.meta.get("job_id")
    if not job_id:
        raise CuratorError(f"run {run.id} never created a job ({run.meta.get('error', 'no job id')}); train again")
    if run.status in ("succeeded", "failed", "stopped") and run.meta.get("job_status") in _TERMINAL:
        log(f"run {run.id}: job {job_id} already ended ({run.meta['job_status']})")
        run.reused = True
        return run
    meta = dict(run.meta, pid=os.getpid(), host=socket.gethostname())
    run = update_run(ws, run.id, status="running", meta=meta)
    interval = float(run.config.get("poll_interval_s", 15.0))
    return _poll(ws, run, _client(), interval, log=log, progress=progress)


def _upload(client: Any, path: Path) -> str:
    with path.open("rb") as f:
        return client.files.create(file=(path.name, f), purpose="fine-tune").id


def _api_error(e: Exception) -> str:
    msg = getattr(e, "message", None) or str(e)
    status = getattr(e, "status_code", None)
    return f"{type(e).__name__}{f' {status}' if status else ''}: {msg}"


def _poll(ws: Workspace, run: Run, client: Any, interval: float, *, log: Callable[[str], None],
          progress: bool) -> Run:
    from curator.output import progress as progress_bar

    job_id = run.meta["job_id"]
    folder = run.folder(ws)
    seen: set[str] = set()
    meta = dict(run.meta)
    t0 = time.time()
    try:
        with progress_bar(f"job {job_id}", total=None, enabled=None if progress else False) as bar:
            while True:
                try:
                    job = client.fine_tuning.jobs.retrieve(job_id)
                    events = list(client.fine_tuning.jobs.list_events(job_id, limit=100).data)
                except Exception as e:  # network hiccups: keep the run resumable
                    meta["last_poll_error"] = _api_error(e)
                    update_run(ws, run.id, meta=meta)
                    raise ProviderError(
                        f"polling job {job_id} failed ({meta['last_poll_error']}); the run stays resumable: "
                        f"curator runs resume {run.id}"
                    ) from None
                for ev in sorted(events, key=lambda e: (e.created_at, e.id)):
                    if ev.id in seen:
                        continue
                    seen.add(ev.id)
                    line = f"  [{ev.level}] {ev.message}"
                    log(line)
                    with (folder / "train.log").open("a", encoding="utf-8") as f:
                        f.write(time.strftime("%Y-%m-%d %H:%M:%S ") + line.strip() + "\n")
                changed = job.status != meta.get("job_status")
                meta.update(job_status=job.status, trained_tokens=job.trained_tokens,
                            fine_tuned_model=job.fine_tuned_model)
                if changed:
                    with (folder / "metrics.jsonl").open("a", encoding="utf-8") as f:
                        f.write(json.dumps({"time": int(time.time()), "job_status": job.status,
                                            "trained_tokens": job.trained_tokens}) + "\n")
                    log(f"  job {job_id}: {job.status}")
                bar.update(note=job.status)
                if job.status in _TERMINAL:
                    break
                update_run(ws, run.id, meta=meta)
                time.sleep(interval)
    except KeyboardInterrupt:
        update_run(ws, run.id, meta=meta)
        log(f"stopped polling; job {job_id} keeps running at OpenAI. Resume with: curator runs resume {run.id}")
        raise
    status = _TERMINAL[job.status]
    metrics = {"fine_tuned_model": job.fine_tuned_model, "trained_tokens": job.trained_tokens,
               "job_status": job.status, "job_id": job_id}
    if job.error is not None and getattr(job.error, "message", None):
        meta["error"] = f"{job.error.code}: {job.error.message}"
    meta["poll_time_s"] = round(float(meta.get("poll_time_s", 0.0)) + time.time() - t0, 2)
    run = update_run(ws, run.id, status=status, metrics=metrics, meta=meta, finished=True)
    write_run_json(ws, run)
    if status == "succeeded":
        log(f"run {run.id} succeeded: fine-tuned model {job.fine_tuned_model} ({job.trained_tokens} trained tokens)")
    else:
        log(f"run {run.id} {status}: {meta.get('error', job.status)}")
    return run
