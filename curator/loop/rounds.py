"""Iterative rounds: snapshot -> train -> evaluate -> weaknesses (on dev) -> targeted data -> promote or not.

One round, in order (each step is idempotent, so an interrupted round resumes where it stopped):

1. ingest feedback logs given for this round and the rated traces of ``curator serve`` (PII-scrubbed;
   positives and preference pairs);
2. snapshot the active examples (the leakage gate refuses a leaking snapshot);
3. train an SFT adapter on the snapshot (the **challenger**), starting from the current **champion**'s
   adapter (the base model until a round is promoted, or with ``fresh``); a finished training with the
   same snapshot, config and starting point is reused, not redone; then DPO on top when the snapshot
   has preference pairs and the config asks;
4. evaluate challenger and champion on the **dev** split (``eval``) and decide: the challenger is
   promoted only when it beats the champion there under the stated criterion
   (:data:`PROMOTION_CRITERIA`: a paired bootstrap CI of the headline metric's delta above 0 by
   default); otherwise the champion stays and the next round continues from it;
5. evaluate both on the held-out **test** split, for the report only (predictions an earlier
   evaluation of the same run made on the same examples are reused);
6. find the weaknesses of the champion-to-be on the **dev** split (lowest-scoring dev examples grouped
   by embedding cluster, and by gold label on label tasks; on held-out folds of train when the dev split
   is too small, see :mod:`curator.loop.targets`) and generate targeted examples for them with the
   teacher, filtered for duplicates and for overlap with eval/test, ready for the next round's snapshot.

Every round reports its test metrics per task; on a label task (answers from a small label set, see
:mod:`evals.runner`) label accuracy is the headline metric the decision is made on.

Nothing computed from the test split (prompts, answers, words, cluster descriptions, example ids)
reaches a teacher request, a training set or a decision: the test split is evaluated once per round
and only reported.  Each round is a row in ``rounds`` (snapshot, run, dev and test evaluations, the
promotion decision with its evidence, the champion after the round, the batch of data it produced).
This module wires the other parts together; its one algorithm of its own is :func:`decide_promotion`.
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

__all__ = ["HEADLINE_METRICS", "PROMOTION_CRITERIA", "Promotion", "RoundResult", "champion", "decide_promotion",
           "headline_metric", "list_rounds", "run_round", "run_rounds"]

HEADLINE_METRICS = ("accuracy", "macro_f1", "rougeL", "key_phrase_rate", "bleu", "exact_match")
#: How a challenger must beat the champion on the dev split to be promoted:
#: ``bootstrap``: the paired bootstrap CI (at ``confidence``) of the headline metric's mean delta lies above 0;
#: ``mean``: the mean paired delta of the headline metric is above 0;
#: ``mcnemar``: on exact match, more examples fixed than broken, with McNemar's p < 1 - ``confidence``.
PROMOTION_CRITERIA = ("bootstrap", "mean", "mcnemar")
DEV_SPLIT = "eval"


@dataclass
class Promotion:
    """The champion/challenger decision of one round, with the evidence it was made on."""

    promoted: bool
    criterion: str
    metric: str
    champion: str          # the champion before the round (a run id or ``base``)
    challenger: str        # the round's run
    n: int                 # paired dev examples
    champion_score: float | None
    challenger_score: float | None
    delta: float | None
    ci: list[float | None]
    confidence: float
    p_value: float | None
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def headline_metric(summary: dict[str, Any]) -> str:
    """The metric a round decides on: ``accuracy`` when every task of the (dev) evaluation summary is a
    label task (it has label accuracy), else ``rougeL``."""
    tasks = summary.get("by_task") or {}
    if tasks and all(isinstance((b or {}).get("accuracy"), int | float) for b in tasks.values()):
        return "accuracy"
    return "rougeL"


def decide_promotion(cmp: Any, *, criterion: str = "bootstrap", metric: str = "rougeL",
                     confidence: float = 0.9) -> Promotion:
    """Whether the run of ``cmp`` (an :class:`evals.compare.Comparison` of challenger vs champion on the
    dev split) beats its baseline under ``criterion`` (see :data:`PROMOTION_CRITERIA`).  With
    ``mcnemar``, the pass/fail pairs are exact match, or label accuracy when ``metric`` is ``accuracy``
    (the comparison's pass test is then ``accuracy>=1``)."""
    if criterion not in PROMOTION_CRITERIA:
        raise CuratorError(f"unknown promotion criterion {criterion!r} (choose from {', '.join(PROMOTION_CRITERIA)})")
    try:
        m = cmp.metric(metric)
    except KeyError:
        raise CuratorError(f"the dev comparison has no {metric!r} scores (promotion metric)") from None
    champion, challenger = str(cmp.baseline.get("run_id")), str(cmp.run.get("run_id"))
    p_value = None
    if m.n == 0 or m.delta is None:
        ok, why = False, f"no paired dev examples scored on {metric}"
    elif criterion == "mean":
        ok = m.delta > 0
        why = f"mean {metric} delta {m.delta:+.4f} on {m.n} dev examples is {'above' if ok else 'not above'} 0"
    elif criterion == "bootstrap":
        ok = m.ci_low is not None and m.ci_low > 0
        why = (f"{confidence:.0%} paired bootstrap CI of the {metric} delta on {m.n} dev examples is "
               f"[{_f(m.ci_low)}, {_f(m.ci_high)}] (mean {m.delta:+.4f}): "
               + ("entirely above 0" if ok else "not entirely above 0"))
    else:
        t = cmp.pass_test if metric == "accuracy" else cmp.mcnemar
        p_value = t.p_value
        ok = t.fixed > t.broken and t.p_value < 1 - confidence
        why = (f"{'label accuracy' if metric == 'accuracy' else 'exact match'} on {m.n} dev examples: {t.fixed} fixed, {t.broken} broken, McNemar p = {t.p_value:.3g} "
               f"({'below' if t.p_value < 1 - confidence else 'not below'} {1 - confidence:.2g})")
    reason = ("promoted: " if ok else "not promoted: ") + why
    return Promotion(promoted=ok, criterion=criterion, metric=metric, champion=champion, challenger=challenger,
                     n=m.n, champion_score=m.baseline, challenger_score=m.run, delta=m.delta,
                     ci=[m.ci_low, m.ci_high], confidence=confidence, p_value=p_value, reason=reason)


def _f(v: float | None) -> str:
    return "nan" if v is None else f"{v:+.4f}"


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
    dev_eval_id: str | None = None
    promoted: bool = False
    champion: str = "base"          # the champion after this round
    promotion: dict[str, Any] = field(default_factory=dict)
    baselines: dict[str, Any] = field(default_factory=dict)  # zero_shot, few_shot, retrieval_few_shot on test
    by_task: dict[str, Any] = field(default_factory=dict)    # test metrics per task (labels included)

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


def champion(ws: Workspace, before_round: int | None = None) -> str:
    """The current champion: the run of the latest promoted round (before ``before_round``), else ``base``."""
    with ws.connect() as con:
        rows = con.execute(
            "SELECT champion FROM rounds WHERE status = 'done' AND champion IS NOT NULL AND round < ? "
            "ORDER BY round DESC LIMIT 1", [before_round if before_round is not None else 2**31 - 1]
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
    promote_if: str = "bootstrap",
    promote_metric: str | None = None,
    promote_confidence: float = 0.9,
    baselines: tuple[str, ...] | list[str] = ("zero_shot", "few_shot", "retrieval_few_shot"),
    shots: int = 5,
    base: str | None = None,
    traces: bool = True,
    folds: int = 3,
    min_dev: int = 8,
    log: Callable[[str], None] = print,
) -> RoundResult:
    """Run (or resume) the next round; see the module docstring for the steps.

    Training continues from the champion's adapter (``fresh=True``: from the base model each round).
    ``max_new_tokens`` / ``eval_batch_size``: generation settings of the dev and test evaluations
    (``max_eval`` caps the examples of each); ``gen_max_tokens``: longest teacher reply in targeted
    generation (default: the provider default).  ``promote_if`` / ``promote_metric`` /
    ``promote_confidence``: the champion/challenger criterion (:func:`decide_promotion`).  ``baselines``:
    the prompting baselines evaluated on test beside the runs (the base model zero-shot, with ``shots``
    fixed train examples, with the ``shots`` nearest train examples), so the report shows whether
    fine-tuning beats prompting on the task.  ``base``: the base model to train (``auto``: the one the
    latest ``curator bakeoff`` recommends); default: the config's.  ``traces``: first ingest the rated
    traces of ``curator serve`` (``WORKSPACE/traces/``) through the feedback gates, as
    ``curator feedback ingest --traces`` does.  ``min_dev`` / ``folds``: with fewer than ``min_dev`` dev
    examples the weaknesses are mined on ``folds``-fold held-out predictions on train instead
    (:func:`curator.loop.targets.fold_weaknesses`); the round's batch records which source and why.
    On a label task (:func:`headline_metric`) the decision is on label accuracy and the teacher is
    asked about the weak labels (:func:`curator.loop.targets.select_targets`).
    """
    from curator.snapshots import create_snapshot
    from evals.compare import compare
    from evals.runner import evaluate
    from evals.weaknesses import weaknesses as find_weaknesses
    from trainer import train

    # Settings that would only fail after training: checked before anything runs.
    for name, value, least in (("max_new_tokens", max_new_tokens, 1), ("eval_batch_size", eval_batch_size, 1),
                               ("max_eval", max_eval, 1), ("n_generate", n_generate, 0),
                               ("gen_max_tokens", gen_max_tokens, 1),
                               ("folds", folds, 2), ("min_dev", min_dev, 0)):
        if value is not None and value < least:
            raise CuratorError(f"{name} must be at least {least} (got {value})")
    if promote_if not in PROMOTION_CRITERIA:
        raise CuratorError(f"unknown promotion criterion {promote_if!r} (choose from {', '.join(PROMOTION_CRITERIA)})")
    if not 0 < promote_confidence < 1:
        raise CuratorError(f"promote_confidence must be between 0 and 1 (got {promote_confidence})")
    from evals.runner import PROMPTING_MODES

    unknown = [b for b in baselines if b not in PROMPTING_MODES]
    if unknown:
        raise CuratorError(f"unknown baseline {unknown[0]!r} (choose from {', '.join(PROMPTING_MODES)})")
    if shots < 1:
        raise CuratorError(f"shots must be at least 1 (got {shots})")
    if base is not None:
        if base == "auto":
            from curator.loop.bakeoff import recommended_base

            base = recommended_base(ws)
            log(f"base model from the latest bake-off: {base}")
        overrides = [f"base_model={base}", *overrides]
    t0 = time.time()
    round_no, resuming = _next_round(ws)
    log(f"[round {round_no}] {'resuming' if resuming else 'starting'}")
    _set_round(ws, round_no, task=task)
    fb_report = None
    for path in feedback:
        from curator.feedback import ingest_feedback

        fb_report = ingest_feedback(ws, path, task=task).to_dict()
        log(f"[round {round_no}] feedback {path}: {_short(fb_report)}")
    if traces and (ws.path / "traces").is_dir():
        from curator.feedback.tracelog import ingest_traces

        served = ingest_traces(ws, task=task).to_dict()
        log(f"[round {round_no}] rated traces of curator serve: {served['rated_traces']} ingested")
        fb_report = {**(fb_report or {}), "traces": served}

    snap = create_snapshot(ws, name=None)
    log(f"[round {round_no}] snapshot {snap.id}: {snap.counts.get('by_split')}, by origin {snap.counts.get('by_origin')}")
    _set_round(ws, round_no, snapshot_id=snap.id, status="snapshot")

    baseline = champion(ws, round_no)
    start_from = None if fresh or baseline == "base" else baseline
    if start_from:
        log(f"[round {round_no}] training continues from the adapter of the champion {start_from}")
    run = train(ws, snap.id, config=config, overrides=list(overrides), method="sft", base_run=start_from, log=log)
    log(f"[round {round_no}] SFT run {run.id} ({run.status})")
    if dpo or (dpo is None and _has_train_pairs(ws, snap.id) and _config_wants_dpo(config)):
        # The round's config is an SFT config; DPO uses its own default (the smollm2-dpo-cpu config's settings).
        run = train(ws, snap.id, config=None, method="dpo", base_run=run.id, log=log)
        log(f"[round {round_no}] DPO run {run.id} ({run.status})")
    _set_round(ws, round_no, run_id=run.id, status="trained")
    base_model = run.base_model or DEFAULT_CHAT_MODEL  # the base model the round trained from

    # -- the decision: challenger vs champion on the dev split ---------------------------------------------
    if not snap.counts.get("by_split", {}).get(DEV_SPLIT):
        raise CuratorError(f"snapshot {snap.id} has no {DEV_SPLIT} (dev) examples: a round chooses its champion on "
                           "the dev split and mines weaknesses there, never on test. Ingest a dev file with "
                           "`--split eval`, or set split ratios that give eval examples (e.g. --ratios 80/10/10)")
    gen: dict[str, Any] = {"limit": max_eval, "max_new_tokens": max_new_tokens, "batch_size": eval_batch_size}
    dev = evaluate(ws, run.id, snapshot=snap.id, split=DEV_SPLIT, log=log, **gen)
    dev_champ = evaluate(ws, baseline, snapshot=snap.id, split=DEV_SPLIT, base_model=base_model, log=log, **gen)
    metric = promote_metric or headline_metric(dev.summary)
    passed = "accuracy>=1" if metric == "accuracy" else "rougeL>=0.5"
    dev_cmp = compare(ws, dev.eval_id, dev_champ.eval_id, pass_criterion=passed, confidence=promote_confidence)
    decision = decide_promotion(dev_cmp, criterion=promote_if, metric=metric, confidence=promote_confidence)
    new_champion = run.id if decision.promoted else baseline
    log(f"[round {round_no}] {run.id} vs champion {baseline} on dev: {decision.reason}")
    _set_round(ws, round_no, dev_eval_id=dev.eval_id, promoted=decision.promoted, promotion=decision.to_dict())

    # -- the test split: evaluated once, for the report only ----------------------------------------------
    result = evaluate(ws, run.id, snapshot=snap.id, split="test", log=log, **gen)
    base_result = evaluate(ws, baseline, snapshot=snap.id, split="test", base_model=base_model, log=log, **gen)
    # An example counts as passed at ROUGE-L >= 0.5 (exact match never moves on free-text answers), or when
    # its label is right on a label task.
    cmp = compare(ws, result.eval_id, base_result.eval_id, pass_criterion=passed)
    deltas = cmp.to_dict()
    summary = result.summary.get("overall", result.summary)
    base_summary = base_result.summary.get("overall", base_result.summary)
    log(f"[round {round_no}] test (report only) " + ", ".join(
        f"{m} {base_summary.get(m, float('nan')):.3f} -> {summary.get(m, float('nan')):.3f}"
        for m in HEADLINE_METRICS if isinstance(summary.get(m), int | float)))
    by_task = _by_task(result.summary, base_result.summary)
    for t, v in by_task.items():
        log(f"[round {round_no}] test, task {t} (n {v['n']}): " + ", ".join(
            f"{m} {_n(v['baseline'].get(m))} -> {_n(v['run'].get(m))}" for m in HEADLINE_METRICS
            if isinstance(v["run"].get(m), int | float)))
    prompting: dict[str, Any] = {}
    for mode in baselines:  # the base model prompted, not trained: does fine-tuning beat prompting here?
        b = evaluate(ws, "base", snapshot=snap.id, split="test", base_model=base_model, prompting=mode,
                     shots=shots, log=log, **gen)
        prompting[mode] = {"eval_id": b.eval_id, "summary": b.summary.get("overall", b.summary),
                           "shots": 0 if mode == "zero_shot" else shots}
    if prompting:
        log(f"[round {round_no}] prompting baselines on test: " + ", ".join(
            f"{mode} rougeL {v['summary'].get('rougeL', float('nan')):.3f}" for mode, v in prompting.items()))
    _set_round(ws, round_no, eval_id=result.eval_id, status="evaluated", eval={
        "summary": summary, "baseline": baseline, "baseline_summary": base_summary,
        "baseline_eval_id": base_result.eval_id, "comparison": _compact_comparison(deltas),
        "dev": {"summary": dev.summary.get("overall", dev.summary), "eval_id": dev.eval_id,
                "champion_summary": dev_champ.summary.get("overall", dev_champ.summary),
                "champion_eval_id": dev_champ.eval_id},
        "baselines": prompting, "by_task": by_task, "headline_metric": metric,
    })

    # -- weaknesses of the champion-to-be, on dev only (or on held-out folds of train) ---------------------
    from curator.loop.targets import fold_weaknesses, targeted_batch

    weak_eval = dev.eval_id if decision.promoted else dev_champ.eval_id
    n_dev = int((dev.summary.get("overall") or {}).get("n") or 0)
    if n_dev >= min_dev:
        groups = find_weaknesses(ws, weak_eval, metric=metric)
        source: dict[str, Any] = {"split": DEV_SPLIT, "eval_id": weak_eval, "run": new_champion,
                                  "why": f"the dev split ({n_dev} examples): the test split never steers the data"}
    elif n_generate == 0:  # the folds would train k adapters for data nobody asked for
        groups, source = [], {"split": "none", "why": f"the dev split has {n_dev} examples, fewer than {min_dev}, "
                              "and no targeted data was asked for (--generate 0): the k-fold fallback was skipped"}
    else:
        log(f"[round {round_no}] the dev split has {n_dev} examples, fewer than {min_dev}: too small to mine; "
            f"weaknesses come from {folds}-fold held-out predictions on train")
        groups, source = fold_weaknesses(ws, snap.id, round_no=round_no, k=folds, metric=metric, config=config,
                                         overrides=overrides, gen=gen, log=log)
        source["why"] = (f"the dev split has {n_dev} examples, fewer than {min_dev} (too small to cluster): "
                         f"{folds}-fold cross-validation on train (each fold scored by an adapter trained on the "
                         "other folds); the test split never steers the data")
    batch = targeted_batch(ws, groups, teacher=teacher, n_generate=n_generate, task=task, budget=budget,
                           gen_max_tokens=gen_max_tokens)
    batch["weaknesses_from"] = source
    if n_generate > 0 and groups:
        log(f"[round {round_no}] targeted generation for {len(batch['targeted_at'])} weaknesses "
            f"({source['split']}): {_short(batch)}")
    _set_round(ws, round_no, batch=batch, champion=new_champion, status="done",
               finished_at=time.strftime("%Y-%m-%d %H:%M:%S"))
    return RoundResult(
        round=round_no, task=task, snapshot_id=snap.id, run_id=run.id, eval_id=result.eval_id, baseline=baseline,
        summary=summary, baseline_summary=base_summary, deltas=_compact_comparison(deltas), batch=batch,
        feedback=fb_report, seconds=round(time.time() - t0, 1), dev_eval_id=dev.eval_id,
        promoted=decision.promoted, champion=new_champion, promotion=decision.to_dict(), baselines=prompting,
        by_task=by_task,
    )


def run_rounds(ws: Workspace, rounds: int = 1, **kw: Any) -> list[RoundResult]:
    """``rounds`` rounds in a row; feedback files are ingested at the start of the first one only."""
    out = []
    for i in range(rounds):
        out.append(run_round(ws, **(kw if i == 0 else {**kw, "feedback": ()})))
    return out


def list_rounds(ws: Workspace) -> list[dict[str, Any]]:
    """The history: one dict per round with its snapshot, run, headline metrics and deltas.

    ``human`` / ``human_dev``: the human ratings (:func:`evals.human.summary`) of the round's test and
    dev evaluations, ``None`` without any.
    """
    from evals.human import summary as human_summary

    with ws.connect() as con:
        rows = con.execute(
            "SELECT round, task, snapshot_id, run_id, eval_id, eval, batch, status, created_at, finished_at, "
            "dev_eval_id, promoted, champion, promotion FROM rounds ORDER BY round"
        ).fetchall()
    out = []
    for r in rows:
        ev = json.loads(r[5]) if r[5] else {}
        out.append({
            "round": r[0], "task": r[1], "snapshot_id": r[2], "run_id": r[3], "eval_id": r[4], "status": r[7],
            "summary": ev.get("summary", {}), "baseline": ev.get("baseline"),
            "baseline_summary": ev.get("baseline_summary", {}), "comparison": ev.get("comparison", {}),
            "batch": json.loads(r[6]) if r[6] else {}, "created_at": str(r[8]), "finished_at": str(r[9] or ""),
            "dev_eval_id": r[10], "dev": ev.get("dev", {}), "baselines": ev.get("baselines", {}),
            "promoted": bool(r[11]), "champion": r[12],
            "promotion": json.loads(r[13]) if r[13] else {},
            "by_task": ev.get("by_task", {}), "headline_metric": ev.get("headline_metric"),
            "human": human_summary(ws, r[4]) if r[4] else None,
            "human_dev": human_summary(ws, r[10]) if r[10] else None,
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
    from curator.yamlfile import read_yaml

    data = read_yaml(config) or {}
    return isinstance(data, dict) and bool(data.get("dpo") or data.get("run_dpo"))


def _compact_comparison(d: dict[str, Any]) -> dict[str, Any]:
    keep: dict[str, Any] = {}
    for key in ("metrics", "mcnemar", "regressions", "n_paired", "by_task", "warnings"):
        if key in d:
            keep[key] = d[key]
    for key in ("fixed", "broken", "newly_fixed", "newly_broken"):
        if key in d:
            keep[key] = d[key][:10] if isinstance(d[key], list) else d[key]
            keep[f"{key}_count"] = len(d[key]) if isinstance(d[key], list) else d[key]
    return keep


def _by_task(run_summary: dict[str, Any], base_summary: dict[str, Any]) -> dict[str, Any]:
    """``{task: {"n", "run": metrics, "baseline": metrics}}`` from two evaluation summaries (test split)."""
    out = {}
    for t, block in sorted((run_summary.get("by_task") or {}).items()):
        out[t] = {"n": block.get("n"), "run": block, "baseline": (base_summary.get("by_task") or {}).get(t, {})}
    return out


def _n(v: Any) -> str:
    return f"{v:.3f}" if isinstance(v, int | float) else "-"


def _short(d: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in d.items() if isinstance(v, int | float) and not isinstance(v, bool))
