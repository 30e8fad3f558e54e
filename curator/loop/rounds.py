"""Iterative rounds: snapshot -> train -> evaluate -> weaknesses -> targeted data -> next round.

One round, in order (each step is idempotent, so an interrupted round resumes where it stopped):

1. ingest feedback logs given for this round (PII-scrubbed; positives and preference pairs);
2. snapshot the active examples (the leakage gate refuses a leaking snapshot);
3. train an SFT adapter on the snapshot, starting from the previous round's adapter (from the base
   model in round 1, or with ``fresh``); a finished training with the same snapshot, config and
   starting point is reused, not redone; then DPO on top when the snapshot has preference pairs
   and the config asks;
4. evaluate the run on the held-out test split, and the previous round's run (the base model for
   round 1) on the same split, and compare them example by example (predictions of test examples
   that an earlier evaluation of the same run already made are reused);
5. find the weaknesses (lowest-scoring test examples grouped by embedding cluster);
6. generate targeted examples for them with the teacher, filtered for duplicates and for overlap
   with eval/test, ready for the next round's snapshot.

Each round is a row in ``rounds`` (snapshot, run, evaluation summary and deltas, the batch of data it
produced).  This module wires the other parts together; it owns no algorithm of its own.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from curator.errors import CuratorError
from curator.models import DEFAULT_CHAT_MODEL
from curator.workspace import Workspace

__all__ = ["RoundResult", "list_rounds", "run_round", "run_rounds"]

HEADLINE_METRICS = ("rougeL", "key_phrase_rate", "bleu", "exact_match")


@dataclass
class RoundResult:
    round: int
    task: str | None
    snapshot_id: str
    run_id: str
    eval_id: str
    baseline: str
    summary: dict[str, Any]
    baseline_summary: dict[str, Any]
    deltas: dict[str, Any]
    batch: dict[str, Any] = field(default_factory=dict)
    feedback: dict[str, Any] | None = None
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def _next_round(ws: Workspace) -> tuple[int, bool]:
    """(round number to run, whether it is an unfinished one being resumed)."""
    with ws.connect() as con:
        rows = con.execute("SELECT round, status FROM rounds ORDER BY round DESC LIMIT 1").fetchall()
    if not rows:
        return 1, False
    last, status = rows[0]
    return (last, True) if status != "done" else (last + 1, False)


def _previous_run(ws: Workspace, round_no: int) -> str:
    with ws.connect() as con:
        rows = con.execute(
            "SELECT run_id FROM rounds WHERE round < ? AND status = 'done' ORDER BY round DESC LIMIT 1", [round_no]
        ).fetchall()
    return rows[0][0] if rows and rows[0][0] else "base"


def _set_round(ws: Workspace, round_no: int, **fields: Any) -> None:
    with ws.transaction() as con:
        exists = con.execute("SELECT count(*) FROM rounds WHERE round = ?", [round_no]).fetchall()[0][0]
        if not exists:
            con.execute("INSERT INTO rounds (round, status) VALUES (?, 'started')", [round_no])
        for key, value in fields.items():
            if isinstance(value, dict | list):
                value = json.dumps(value, default=str)
            con.execute(f"UPDATE rounds SET {key} = ? WHERE round = ?", [value, round_no])


def run_round(
    ws: Workspace,
    *,
    task: str | None = None,
    teacher: str = DEFAULT_CHAT_MODEL,
    config: str | Path | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    feedback: list[str | Path] | tuple[str | Path, ...] = (),
    n_generate: int = 24,
    dpo: bool | None = None,
    max_eval: int | None = None,
    budget: float | None = None,
    fresh: bool = False,
    gen_max_tokens: int | None = None,
    max_new_tokens: int = 256,
    eval_batch_size: int = 16,
    log: Callable[[str], None] = print,
) -> RoundResult:
    """Run (or resume) the next round; see the module docstring for the steps.

    Training continues from the previous round's adapter (``fresh=True``: from the base model each
    round).  ``max_new_tokens`` / ``eval_batch_size``: generation settings of the test evaluation;
    ``gen_max_tokens``: longest teacher reply in targeted generation (default: the provider default).
    """
    from curator.snapshots import create_snapshot
    from evals.compare import compare
    from evals.runner import evaluate
    from evals.weaknesses import weaknesses as find_weaknesses
    from trainer import train

    # Settings that would only fail after training: checked before anything runs.
    for name, value, least in (("max_new_tokens", max_new_tokens, 1), ("eval_batch_size", eval_batch_size, 1),
                               ("max_eval", max_eval, 1), ("n_generate", n_generate, 0),
                               ("gen_max_tokens", gen_max_tokens, 1)):
        if value is not None and value < least:
            raise CuratorError(f"{name} must be at least {least} (got {value})")
    t0 = time.time()
    round_no, resuming = _next_round(ws)
    log(f"[round {round_no}] {'resuming' if resuming else 'starting'}")
    _set_round(ws, round_no, task=task)
    fb_report = None
    for path in feedback:
        from curator.feedback import ingest_feedback

        fb_report = ingest_feedback(ws, path, task=task).to_dict()
        log(f"[round {round_no}] feedback {path}: {_short(fb_report)}")

    snap = create_snapshot(ws, name=None)
    log(f"[round {round_no}] snapshot {snap.id}: {snap.counts.get('by_split')}, by origin {snap.counts.get('by_origin')}")
    _set_round(ws, round_no, snapshot_id=snap.id, status="snapshot")

    baseline = _previous_run(ws, round_no)
    start_from = None if fresh or baseline == "base" else baseline
    if start_from:
        log(f"[round {round_no}] training continues from the adapter of {start_from}")
    run = train(ws, snap.id, config=config, overrides=list(overrides), method="sft", base_run=start_from, log=log)
    log(f"[round {round_no}] SFT run {run.id} ({run.status})")
    if dpo or (dpo is None and _has_train_pairs(ws, snap.id) and _config_wants_dpo(config)):
        # The round's config is an SFT config; DPO uses its own default (configs/smollm2-dpo-cpu.yaml settings).
        run = train(ws, snap.id, config=None, method="dpo", base_run=run.id, log=log)
        log(f"[round {round_no}] DPO run {run.id} ({run.status})")
    _set_round(ws, round_no, run_id=run.id, status="trained")

    gen = {"split": "test", "limit": max_eval, "max_new_tokens": max_new_tokens, "batch_size": eval_batch_size}
    result = evaluate(ws, run.id, snapshot=snap.id, log=log, **gen)
    # Round 1's baseline is the base model the round trained from (not the default local model).
    base_result = evaluate(ws, baseline, snapshot=snap.id, base_model=run.base_model or DEFAULT_CHAT_MODEL, log=log, **gen)
    # An example counts as passed at ROUGE-L >= 0.5 (exact match never moves on free-text answers).
    cmp = compare(ws, result.eval_id, base_result.eval_id, pass_criterion="rougeL>=0.5")
    deltas = cmp.to_dict() if hasattr(cmp, "to_dict") else dict(cmp)
    summary = result.summary.get("overall", result.summary)
    base_summary = base_result.summary.get("overall", base_result.summary)
    log(f"[round {round_no}] test " + ", ".join(
        f"{m} {base_summary.get(m, float('nan')):.3f} -> {summary.get(m, float('nan')):.3f}"
        for m in HEADLINE_METRICS if m in summary))
    _set_round(ws, round_no, eval_id=result.eval_id, status="evaluated", eval={
        "summary": summary, "baseline": baseline, "baseline_summary": base_summary,
        "baseline_eval_id": base_result.eval_id, "comparison": _compact_comparison(deltas),
    })

    groups = find_weaknesses(ws, result.eval_id)
    batch: dict[str, Any] = {"weaknesses": len(groups)}
    if groups and n_generate > 0:
        from curator.llm.providers import GenParams
        from curator.synth.generate import generate

        rep = generate(ws, mode="targeted", teacher=teacher, n=n_generate, task=task, weaknesses=groups,
                       budget=budget, progress=False,
                       params=GenParams(max_tokens=gen_max_tokens) if gen_max_tokens else None)
        batch.update(rep.to_dict() if hasattr(rep, "to_dict") else dict(rep))
        log(f"[round {round_no}] targeted generation: {_short(batch)}")
    _set_round(ws, round_no, batch=batch, status="done", finished_at=time.strftime("%Y-%m-%d %H:%M:%S"))
    return RoundResult(
        round=round_no, task=task, snapshot_id=snap.id, run_id=run.id, eval_id=result.eval_id, baseline=baseline,
        summary=summary, baseline_summary=base_summary, deltas=_compact_comparison(deltas), batch=batch,
        feedback=fb_report, seconds=round(time.time() - t0, 1),
    )


def run_rounds(ws: Workspace, rounds: int = 1, **kw: Any) -> list[RoundResult]:
    """``rounds`` rounds in a row; feedback files are ingested at the start of the first one only."""
    out = []
    for i in range(rounds):
        out.append(run_round(ws, **(kw if i == 0 else {**kw, "feedback": ()})))
    return out


def list_rounds(ws: Workspace) -> list[dict[str, Any]]:
    """The history: one dict per round with its snapshot, run, headline metrics and deltas."""
    with ws.connect() as con:
        rows = con.execute(
            "SELECT round, task, snapshot_id, run_id, eval_id, eval, batch, status, created_at, finished_at "
            "FROM rounds ORDER BY round"
        ).fetchall()
    out = []
    for r in rows:
        ev = json.loads(r[5]) if r[5] else {}
        out.append({
            "round": r[0], "task": r[1], "snapshot_id": r[2], "run_id": r[3], "eval_id": r[4], "status": r[7],
            "summary": ev.get("summary", {}), "baseline": ev.get("baseline"),
            "baseline_summary": ev.get("baseline_summary", {}), "comparison": ev.get("comparison", {}),
            "batch": json.loads(r[6]) if r[6] else {}, "created_at": str(r[8]), "finished_at": str(r[9] or ""),
        })
    return out


def _has_train_pairs(ws: Workspace, snapshot_id: str) -> bool:
    try:
        with ws.connect() as con:
            return bool(con.execute("SELECT count(*) FROM preferences").fetchall()[0][0])
    except Exception:  # noqa: BLE001 - no preference data is simply "no"
        return False


def _config_wants_dpo(config: str | Path | None) -> bool:
    if config is None:
        return False
    import yaml

    try:
        data = yaml.safe_load(Path(config).read_text()) or {}
    except OSError as e:
        raise CuratorError(f"cannot read config {config}: {e.strerror}") from None
    return bool(data.get("dpo") or data.get("run_dpo"))


def _compact_comparison(d: dict[str, Any]) -> dict[str, Any]:
    keep = {}
    for key in ("metrics", "mcnemar", "regressions", "n_paired", "by_task", "warnings"):
        if key in d:
            keep[key] = d[key]
    for key in ("fixed", "broken", "newly_fixed", "newly_broken"):
        if key in d:
            keep[key] = d[key][:10] if isinstance(d[key], list) else d[key]
            keep[f"{key}_count"] = len(d[key]) if isinstance(d[key], list) else d[key]
    return keep


def _short(d: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in d.items() if isinstance(v, int | float) and not isinstance(v, bool))
