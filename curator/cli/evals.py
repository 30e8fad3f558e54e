"""Evaluation commands: ``eval``, ``compare``, ``evals``, ``weaknesses``, ``judge``.

Thin wrappers over :mod:`evals.runner`, :mod:`evals.compare`, :mod:`evals.weaknesses` and
:mod:`evals.judge`; ``curator/commands.py`` calls :func:`register`.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import click

from curator.cli.kit import log
from curator.cli.kit import workspace as _ws
from curator.models import DEFAULT_CHAT_MODEL
from curator.output import echo_json, table

__all__ = ["compare_cmd", "eval_cmd", "evals_cmd", "judge_cmd", "weaknesses_cmd"]

_SUMMARY_KEYS = ("n", "exact_match", "bleu", "rouge1", "rouge2", "rougeL", "key_phrase_rate", "length_ratio",
                 "eval_loss", "perplexity", "mean_output_tokens")


def _num(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if isinstance(v, int):
        return str(v)
    return f"{v:.2f}" if abs(v) >= 10 else f"{v:.3f}"


def _summary_text(res: Any) -> str:
    s = res.summary
    tasks = s.get("by_task", {})
    cols = ["overall", *tasks] if len(tasks) > 1 else ["overall"]
    blocks = [s.get("overall", {})] + ([tasks[t] for t in tasks] if len(tasks) > 1 else [])
    rows = [[k, *(_num(b.get(k)) for b in blocks)] for k in _SUMMARY_KEYS]
    if s.get("judge"):
        j = s["judge"]
        rows.append([f"judge ({j['judge']})", _num(j.get("mean")), *([""] * (len(cols) - 1))])
    how = "cached" if res.cached else f"generated {res.generated}"
    reasons = ", ".join(f"{k} {v}" for k, v in sorted(s.get("finish_reasons", {}).items()))
    head = (f"evaluation {res.id}: run {res.run_id} on snapshot {res.snapshot_id} ({res.split}), "
            f"{s.get('overall', {}).get('n', 0)} examples, {how}" + (f"; finish: {reasons}" if reasons else ""))
    return head + "\n" + table(["metric", *cols], rows)


def _report(ctx: click.Context, cmp: Any, as_json: bool, html: Path | None, fail_on_regression: bool,
            extra: dict[str, Any] | None = None) -> None:
    from evals.compare import render_text

    if html:
        from evals.report import write_html

        path = write_html(cmp, html)
        log(f"HTML report written to {path}")
    if as_json:
        echo_json({**(extra or {}), "comparison": cmp.to_dict()} if extra else cmp.to_dict())
    else:
        click.echo(render_text(cmp))
    if fail_on_regression and cmp.regressions:
        click.echo(f"Error: regression beyond the CI in: {', '.join(cmp.regressions)}", err=True)
        ctx.exit(1)


_compare_options = [
    click.option("--pass", "pass_criterion", default="exact_match>=1", show_default=True,
                 help="What counts as a pass for the newly fixed / broken lists, e.g. rougeL>=0.5."),
    click.option("--n-boot", default=1000, show_default=True, help="Paired bootstrap resamples."),
    click.option("--confidence", default=0.95, show_default=True, help="Confidence level of the intervals."),
    click.option("--seed", default=0, show_default=True, help="Seed of the bootstrap resampling."),
    click.option("--judge", "judge", metavar="SPEC", help="Also judge run vs baseline pairwise (both orders) with "
                 "this provider, e.g. openai:gpt-4o-mini or local:smollm2-135m-instruct. Off by default."),
    click.option("--judge-budget", type=float, metavar="USD", help="Spend cap for the judge's requests."),
    click.option("--fail-on-regression", is_flag=True, help="Exit 1 when a metric's whole CI is on the worse side of 0."),
    click.option("--html", type=click.Path(dir_okay=False, path_type=Path), help="Also write a self-contained HTML report."),
    click.option("--json", "as_json", is_flag=True, help="Print the result as JSON."),
]


def _with_compare_options(f: Any) -> Any:
    for opt in reversed(_compare_options):
        f = opt(f)
    return f


@click.command("eval")
@click.option("--run", "run", default="base", show_default=True, help="Run id (or unique prefix), or 'base' for the base model alone.")
@click.option("--snapshot", default="latest", show_default=True, help="Snapshot id, name or 'latest'.")
@click.option("--split", default="test", show_default=True, type=click.Choice(["test", "eval", "train"]),
              help="Split to evaluate on (the held-out test split by default).")
@click.option("--baseline", metavar="RUN", help="Also evaluate RUN (or 'base'; or use a stored evaluation id) and print "
              "the regression report against it.")
@click.option("--base-model", default=DEFAULT_CHAT_MODEL, show_default=True, help="Model of the 'base' run: registry name or folder.")
@click.option("--max-new-tokens", default=256, show_default=True, help="Generation length cap.")
@click.option("--batch-size", default=8, show_default=True, help="Prompts generated together.")
@click.option("--limit", type=int, help="Only the first N examples (by id) of the split.")
@click.option("--engine", type=click.Choice(["transformers", "vllm"]), default="transformers", show_default=True,
              help="What generates: transformers (any machine) or vllm (CUDA, the [vllm] extra). Not part of the "
                   "evaluation's id: a cached evaluation is reused whichever engine made it.")
@_with_compare_options
@click.pass_context
def eval_cmd(ctx: click.Context, run: str, snapshot: str, split: str, baseline: str | None, base_model: str,
             max_new_tokens: int, batch_size: int, limit: int | None, engine: str, pass_criterion: str, n_boot: int,
             confidence: float, seed: int, judge: str | None, judge_budget: float | None, fail_on_regression: bool,
             html: Path | None, as_json: bool) -> None:
    """Evaluate a run on a snapshot's held-out split (greedy, cached), optionally against a baseline.

    Predictions and per-example scores are stored; evaluating the same run on the same snapshot
    again generates nothing.  With --baseline the report of `curator compare` follows.  With
    --judge and no --baseline, the run's answers are graded 1-5 by the judge.  Human ratings made
    in `curator review` are summarised too (mean with a t CI, Spearman with each metric; JSON key
    `human`, null without ratings).

    \b
    curator eval --run base
    curator eval --run 3f2a9c --baseline base --fail-on-regression
    curator eval --run 3f2a9c --baseline base --pass 'rougeL>=0.5' --html report.html
    curator eval --run 3f2a9c --baseline base --engine vllm --batch-size 256
    """
    from evals.runner import evaluate

    ws = _ws(ctx)
    kw: dict[str, Any] = {"snapshot": snapshot, "split": split, "base_model": base_model,
                          "max_new_tokens": max_new_tokens, "batch_size": batch_size, "limit": limit, "log": log,
                          "engine": engine}
    res = evaluate(ws, run, **kw)
    if baseline is None:
        if judge:
            from evals.judge import judge_eval

            judge_eval(ws, res.id, judge, budget_usd=judge_budget, log=log)
            from evals.runner import load_eval

            res = load_eval(ws, res.id)
        from evals.human import format_summary, summary

        human = summary(ws, res.id, confidence=confidence)
        if as_json:
            echo_json({**res.to_dict(), "human": human})
        else:
            click.echo(_summary_text(res) + (f"\n{format_summary(human)}" if human else ""))
        if html or fail_on_regression:
            log("note: --html and --fail-on-regression need --baseline")
        return
    from evals.compare import compare
    from evals.runner import list_evals

    stored = {e.id: e for e in list_evals(ws)}
    base_res = stored[baseline] if baseline in stored else evaluate(ws, baseline, **kw)

    cmp = compare(ws, res.id, base_res.id, n_boot=n_boot, seed=seed, confidence=confidence,
                  pass_criterion=pass_criterion, judge=judge,
                  judge_options={"budget_usd": judge_budget} if judge_budget is not None else None, log=log)
    if not as_json:
        click.echo(_summary_text(base_res) + "\n\n" + _summary_text(res) + "\n")
    _report(ctx, cmp, as_json, html, fail_on_regression,
            extra={"run": res.to_dict(), "baseline": base_res.to_dict(), "human": cmp.human})


@click.command("compare")
@click.argument("run")
@click.argument("baseline", default="base")
@_with_compare_options
@click.pass_context
def compare_cmd(ctx: click.Context, run: str, baseline: str, pass_criterion: str, n_boot: int, confidence: float,
                seed: int, judge: str | None, judge_budget: float | None, fail_on_regression: bool, html: Path | None,
                as_json: bool) -> None:
    """Regression report of RUN against BASELINE (default 'base'), example by example.

    Each is an evaluation id or a run id (its latest evaluation; the baseline's on the same
    snapshot and split).  Per-metric mean deltas with paired bootstrap CIs, McNemar's test for
    exact match, newly fixed / broken examples, per-task deltas.  A metric regresses when its
    whole CI lies on the worse side of 0.  Human ratings and blind A/B choices from `curator
    review`, when there are any: both mean ratings and the run's human win rate (JSON key `human`).

    \b
    curator compare 3f2a9c base
    curator compare 3f2a9c 1b7e44 --json
    curator compare 3f2a9c --pass 'rougeL>=0.5' --html report.html --fail-on-regression
    """
    from evals.compare import compare

    cmp = compare(_ws(ctx), run, baseline, n_boot=n_boot, seed=seed, confidence=confidence,
                  pass_criterion=pass_criterion, judge=judge,
                  judge_options={"budget_usd": judge_budget} if judge_budget is not None else None, log=log)
    _report(ctx, cmp, as_json, html, fail_on_regression)


@click.command("evals")
@click.option("--run", help="Only the evaluations of this run.")
@click.option("--json", "as_json", is_flag=True, help="Print the list as JSON.")
@click.pass_context
def evals_cmd(ctx: click.Context, run: str | None, as_json: bool) -> None:
    """List stored evaluations (id, run, snapshot, split, headline metrics)."""
    from evals.runner import list_evals

    items = list_evals(_ws(ctx), run)
    if as_json:
        echo_json([e.to_dict() for e in items])
        return
    rows = []
    for e in items:
        o = e.summary.get("overall", {})
        rows.append([e.id, e.run_id, e.snapshot_id, e.split, e.status, o.get("n", ""), _num(o.get("rougeL")),
                     _num(o.get("key_phrase_rate")), _num(o.get("bleu")), _num(o.get("eval_loss")), e.created_at])
    click.echo(table(["id", "run", "snapshot", "split", "status", "n", "rougeL", "key_phrase", "bleu", "eval_loss",
                      "created"], rows) if rows else "no evaluations yet: run `curator eval --run base`")


@click.command("weaknesses")
@click.argument("evaluation")
@click.option("--k", default=5, show_default=True, help="Most clusters per task.")
@click.option("--metric", default="rougeL", show_default=True, help="Metric that ranks the examples.")
@click.option("--fraction", default=0.25, show_default=True, help="Share of the examples (the lowest) that are grouped.")
@click.option("--min-size", default=3, show_default=True, help="About one cluster per this many weak examples.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the groups for targeted generation (JSONL; a .json name gets one JSON array).")
@click.option("--json", "as_json", is_flag=True, help="Print the groups as JSON.")
@click.pass_context
def weaknesses_cmd(ctx: click.Context, evaluation: str, k: int, metric: str, fraction: float, min_size: int,
                   out: Path | None, as_json: bool) -> None:
    """The lowest-scoring examples of EVALUATION (an eval id or a run id), grouped by task and embedding cluster.

    Each group has id, task, description and example_ids: the input of targeted generation.

    \b
    curator weaknesses 3f2a9c
    curator weaknesses 3f2a9c --metric key_phrase_rate --out weak.jsonl
    """
    from evals.weaknesses import weaknesses

    groups = weaknesses(_ws(ctx), evaluation, k=k, metric=metric, fraction=fraction, min_size=min_size)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        if out.suffix == ".json":
            out.write_text(json.dumps(groups, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        else:
            out.write_text("".join(json.dumps(g, ensure_ascii=False) + "\n" for g in groups), encoding="utf-8")
        log(f"{len(groups)} group(s) written to {out}")
    if as_json:
        echo_json(groups)
        return
    for g in groups:
        n = len(g["example_ids"])
        click.echo(f"{g['id']}  ({n} example{'s' if n != 1 else ''})\n  {g['description']}")


@click.command("judge")
@click.argument("evaluation")
@click.option("--judge", "judge", required=True, metavar="SPEC",
              help="Provider spec: openai:MODEL, anthropic:MODEL, compatible:URL:MODEL or local:NAME|PATH.")
@click.option("--baseline", metavar="EVAL", help="Judge pairwise against this evaluation or run (both orders).")
@click.option("--budget", type=float, metavar="USD", help="Spend cap for this command's requests.")
@click.option("--concurrency", default=4, show_default=True, help="Requests in flight.")
@click.option("--limit", type=int, help="Rubric mode: only the first N predictions.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
def judge_cmd(ctx: click.Context, evaluation: str, judge: str, baseline: str | None, budget: float | None,
              concurrency: int, limit: int | None, as_json: bool) -> None:
    """LLM-as-judge on EVALUATION (an eval id or a run id): rubric 1-5, or pairwise with --baseline.

    Requests go through the shared request cache and spend cap; the rubric score is stored as the
    metric `judge` of each prediction, so `curator compare` reports it too.

    \b
    curator judge 3f2a9c --judge openai:gpt-4o-mini --budget 0.50
    curator judge 3f2a9c --judge anthropic:claude-3-5-haiku --baseline base
    """
    from evals.judge import judge_eval, judge_pairwise

    ws = _ws(ctx)
    if baseline:
        from evals.runner import resolve_eval

        ev = resolve_eval(ws, evaluation)
        base = resolve_eval(ws, baseline, snapshot_id=ev.snapshot_id, split=ev.split)
        res = judge_pairwise(ws, ev.id, base.id, judge, budget_usd=budget, concurrency=concurrency, log=log)
        if as_json:
            echo_json(res)
            return
        click.echo(f"{res['judge']}: run wins {res['run_wins']}, baseline wins {res['baseline_wins']}, ties "
                   f"{res['ties']} (orders disagreed {res['inconsistent']}, unparsed {res['unparsed']}); preference "
                   f"{_num(res['preference'])} [{_num(res['ci_low'])}, {_num(res['ci_high'])}]: {res['verdict']}")
        return
    res = judge_eval(ws, evaluation, judge, budget_usd=budget, concurrency=concurrency, limit=limit, log=log)
    if as_json:
        echo_json(res)
        return
    dist = ", ".join(f"{k}: {v}" for k, v in res["distribution"].items())
    click.echo(f"{res['judge']}: mean {_num(res['mean'])} over {res['n']} (unparsed {res['unparsed']}); {dist}")
