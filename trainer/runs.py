"""Training runs: the ``runs`` table and the ``runs/<id>/`` folders.

A run folder holds ``adapter/`` (``adapter_model.safetensors`` + ``adapter_config.json``, loadable
with ``PeftModel.from_pretrained(base, path)``, and ``README.md``, its model card: see
:mod:`trainer.modelcard`), ``config.yaml`` (the resolved config), ``metrics.jsonl`` (one line per
logged step), ``train.log``, ``run.json`` (snapshot id, base model, library versions, wall time,
peak memory, final metrics), ``tb/`` with ``report_to: [tensorboard]`` (and ``wandb/``, ``mlflow.db``
for the other reporters) and, while training, ``checkpoints/``.

Run ids are short, unique and sortable: ``r-20261128-121500-ab12``.  ``adapter_path`` is stored
relative to the workspace (``runs/<id>/adapter``).  Connections are opened only around each
statement block, never while training.
"""

from __future__ import annotations

import json
import os
import resource
import secrets
import socket
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from curator.errors import CuratorError
from curator.workspace import Workspace

__all__ = [
    "RUN_KINDS",
    "RUN_STATUSES",
    "Run",
    "environment",
    "find_runs",
    "get_run",
    "insert_run",
    "lineage",
    "list_runs",
    "new_run_id",
    "peak_memory",
    "process_alive",
    "update_run",
    "write_run_json",
]

RUN_KINDS = ("sft", "dpo", "openai")
RUN_STATUSES = ("running", "succeeded", "failed", "stopped")
_COLS = "id, kind, snapshot_id, base_model, config::VARCHAR, adapter_path, status, metrics::VARCHAR, meta::VARCHAR, created_at, finished_at"


@dataclass
class Run:
    """One training run (a row of ``runs``)."""

    id: str
    kind: str
    snapshot_id: str | None
    base_model: str | None
    config: dict[str, Any] = field(default_factory=dict)
    adapter_path: str | None = None
    status: str = "running"
    metrics: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    created_at: str | None = None
    finished_at: str | None = None
    #: True when :func:`trainer.train` returned an earlier identical run instead of training.
    reused: bool = False

    def folder(self, ws: Workspace) -> Path:
        """``<workspace>/runs/<id>``."""
        return ws.runs_dir / self.id

    def adapter_dir(self, ws: Workspace) -> Path | None:
        """The absolute adapter folder, or None (OpenAI runs, unfinished runs)."""
        return ws.path / self.adapter_path if self.adapter_path else None

    @property
    def wall_time_s(self) -> float | None:
        return self.meta.get("wall_time_s")

    @property
    def overfitting_detected_at_step(self) -> int | None:
        return self.metrics.get("overfitting_detected_at_step")

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "kind": self.kind, "status": self.status, "snapshot_id": self.snapshot_id,
            "base_model": self.base_model, "adapter_path": self.adapter_path, "config": self.config,
            "metrics": self.metrics, "meta": self.meta, "created_at": self.created_at,
            "finished_at": self.finished_at, "reused": self.reused,
        }


def new_run_id() -> str:
    """``r-YYYYMMDD-HHMMSS-xxxx``: UTC time then 4 random hex digits (sortable, unique)."""
    return f"r-{datetime.now(UTC).strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"


def _row(r: tuple[Any, ...]) -> Run:
    rid, kind, snap, base, cfg, adapter, status, metrics, meta, created, finished = r
    return Run(
        rid, kind, snap, base, json.loads(cfg) if cfg else {}, adapter, status,
        json.loads(metrics) if metrics else {}, json.loads(meta) if meta else {},
        str(created) if created is not None else None, str(finished) if finished is not None else None,
    )


def insert_run(ws: Workspace, run: Run) -> Run:
    with ws.transaction() as con:
        con.execute(
            "INSERT INTO runs (id, kind, snapshot_id, base_model, config, adapter_path, status, metrics, meta) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [run.id, run.kind, run.snapshot_id, run.base_model, json.dumps(run.config), run.adapter_path,
             run.status, json.dumps(run.metrics, default=str), json.dumps(run.meta, default=str)],
        )
    return get_run(ws, run.id)


def update_run(ws: Workspace, run_id: str, *, finished: bool = False, **fields: Any) -> Run:
    """Set columns (``status``, ``adapter_path``, ``metrics``, ``meta``...); ``finished`` stamps ``finished_at``."""
    allowed = {"status", "adapter_path", "metrics", "meta", "config", "base_model"}
    bad = set(fields) - allowed
    if bad:
        raise ValueError(f"cannot update {', '.join(sorted(bad))}")
    sets, params = [], []
    for k, v in fields.items():
        sets.append(f"{k} = ?")
        params.append(json.dumps(v, default=str) if k in ("metrics", "meta", "config") else v)
    if finished:
        sets.append("finished_at = current_timestamp")
    elif "status" in fields and fields["status"] == "running":
        sets.append("finished_at = NULL")
    with ws.transaction() as con:
        con.execute(f"UPDATE runs SET {', '.join(sets)} WHERE id = ?", [*params, run_id])
    return get_run(ws, run_id)


def get_run(ws: Workspace, ref: str) -> Run:
    """A run by id, unique id prefix, or ``latest``."""
    with ws.connect() as con:
        if ref == "latest":
            rows = con.execute(f"SELECT {_COLS} FROM runs ORDER BY created_at DESC, id DESC LIMIT 1").fetchall()
        else:
            rows = con.execute(f"SELECT {_COLS} FROM runs WHERE id = ?", [ref]).fetchall()
            if not rows:
                rows = con.execute(f"SELECT {_COLS} FROM runs WHERE starts_with(id, ?) ORDER BY id", [ref]).fetchall()
    if not rows:
        raise CuratorError(f"no run {ref!r} (see `curator runs list`)")
    if len(rows) > 1:
        raise CuratorError(f"run id prefix {ref!r} is ambiguous: {', '.join(r[0] for r in rows)}")
    return _row(rows[0])


def list_runs(ws: Workspace, *, kind: str | None = None, status: str | None = None,
              snapshot_id: str | None = None) -> list[Run]:
    """Runs, oldest first."""
    where, params = [], []
    for col, val in (("kind", kind), ("status", status), ("snapshot_id", snapshot_id)):
        if val is not None:
            where.append(f"{col} = ?")
            params.append(val)
    sql = f"SELECT {_COLS} FROM runs" + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY id"
    with ws.connect() as con:
        return [_row(r) for r in con.execute(sql, params).fetchall()]


def find_runs(ws: Workspace, fingerprint: str) -> list[Run]:
    """Runs with this fingerprint (same kind, snapshot, resolved config and starting point), newest first."""
    with ws.connect() as con:
        rows = con.execute(
            f"SELECT {_COLS} FROM runs WHERE json_extract_string(meta, '$.fingerprint') = ? ORDER BY id DESC",
            [fingerprint],
        ).fetchall()
    return [_row(r) for r in rows]


def process_alive(pid: int | None, host: str | None) -> bool:
    """Whether a process that started a run is still alive (on this host; other hosts count as alive)."""
    if not pid:
        return False
    if host and host != socket.gethostname():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def environment() -> dict[str, Any]:
    """Library versions and the machine, recorded with every run."""
    import importlib.metadata as md

    versions = {}
    for dist in ("torch", "transformers", "peft", "trl", "accelerate", "datasets", "bitsandbytes", "openai",
                 "curator-loop"):
        try:
            versions[dist.replace("curator-loop", "curator")] = md.version(dist)
        except md.PackageNotFoundError:
            pass
    env: dict[str, Any] = {
        "versions": versions, "python": sys.version.split()[0], "host": socket.gethostname(),
        "cpu_count": os.cpu_count(),
    }
    if "torch" in sys.modules:
        import torch

        env["device"] = "cuda" if torch.cuda.is_available() else "cpu"
        if env["device"] == "cuda":
            env["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return env


def peak_memory() -> dict[str, float]:
    """Peak resident memory of this process (``ru_maxrss``) and, on CUDA, peak allocated GPU memory, in MB."""
    out = {"peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
    if "torch" in sys.modules:
        import torch

        if torch.cuda.is_available():
            out["peak_cuda_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return out


def write_run_json(ws: Workspace, run: Run) -> Path:
    """Mirror the run's row to ``runs/<id>/run.json`` for people reading the folder."""
    folder = run.folder(ws)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "run.json"
    path.write_text(json.dumps(run.to_dict(), indent=2, default=str) + "\n", encoding="utf-8")
    return path


def lineage(ws: Workspace, ref: str) -> dict[str, Any]:
    """snapshot -> example counts by split and origin -> run (and the run it started from) -> its evaluations."""
    run = get_run(ws, ref)
    out: dict[str, Any] = {"run": _run_summary(run)}
    if run.snapshot_id:
        with ws.connect() as con:
            snap = con.execute(
                "SELECT id, name, parent_id, created_at, counts::VARCHAR FROM snapshots WHERE id = ?", [run.snapshot_id]
            ).fetchall()
            members = con.execute(
                """SELECT m.split, coalesce(e.origin, '?'), count(*) FROM snapshot_members m
                   LEFT JOIN examples e ON e.id = m.example_id WHERE m.snapshot_id = ? GROUP BY ALL ORDER BY 1, 2""",
                [run.snapshot_id],
            ).fetchall()
        by_split: dict[str, dict[str, int]] = {}
        for split, origin, n in members:
            by_split.setdefault(split, {})[origin] = int(n)
        if snap:
            sid, name, parent, created, _counts = snap[0]
            out["snapshot"] = {"id": sid, "name": name, "parent_id": parent, "created_at": str(created),
                               "examples": by_split}
        else:
            out["snapshot"] = {"id": run.snapshot_id, "missing": True}
    base_run = run.meta.get("base_run")
    if base_run:
        try:
            out["base_run"] = _run_summary(get_run(ws, base_run))
        except CuratorError:
            out["base_run"] = {"id": base_run, "missing": True}
    with ws.connect() as con:
        evals = con.execute(
            "SELECT id, snapshot_id, split, summary::VARCHAR, created_at FROM evals WHERE run_id = ? ORDER BY created_at",
            [run.id],
        ).fetchall()
    out["evals"] = [
        {"id": i, "snapshot_id": s, "split": sp, "summary": json.loads(sm) if sm else {}, "created_at": str(c)}
        for i, s, sp, sm, c in evals
    ]
    return out


def _run_summary(run: Run) -> dict[str, Any]:
    m = run.metrics
    return {
        "id": run.id, "kind": run.kind, "status": run.status, "base_model": run.base_model,
        "adapter_path": run.adapter_path, "created_at": run.created_at, "finished_at": run.finished_at,
        "train_loss": m.get("train_loss"), "best_eval_loss": m.get("best_eval_loss"),
        "global_step": m.get("global_step"), "overfitting_detected_at_step": m.get("overfitting_detected_at_step"),
        "fine_tuned_model": m.get("fine_tuned_model") or run.meta.get("fine_tuned_model"),
        "wall_time_s": run.meta.get("wall_time_s"),
    }
