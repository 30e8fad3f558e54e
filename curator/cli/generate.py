"""``curator generate``: a thin command over :func:`curator.synth.generate.generate`."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from curator.cli.kit import Number, log
from curator.cli.kit import workspace as _ws
from curator.llm.batch import DEFAULT_POLL_INTERVAL
from curator.llm.engine import ENGINES
from curator.llm.limits import DEFAULT_DEADLINE, RetryPolicy
from curator.llm.providers import GenParams
from curator.output import echo_json
from curator.synth.filters import FILTER_NAMES, FilterConfig
from curator.synth.generate import DEFAULT_TEACHER, GenerateOptions, GenerateReport, Judge, generate
from curator.synth.prompts import export_templates as _export_templates

__all__ = ["format_report", "generate_cmd"]


def _money(v: float | None) -> str:
    return "unknown" if v is None else f"${v:.4f}"


def format_report(r: GenerateReport) -> str:
    """The human summary printed at the end of a run (or of a dry run)."""
    head = f"job {r.job}: {r.mode} mode, task {r.task or '-'}, teacher {r.teacher}"
    lines = [("dry run: " if r.dry_run else "") + head]
    if r.dry_run and r.estimate is not None:
        e = r.estimate
        lines.append(f"requests: {e['requests']} ({e['cached']} cached, {e['to_make']} to make)")
        lines.append(f"tokens: input about {e['input_tokens_estimate']:,} (at most {e['input_tokens_max']:,}), "
                     f"output at most {e['output_tokens_max']:,}")
        if e["cost_estimate_usd"] is None:
            lines.append("cost: unknown (no price for this model)")
        else:
            lines.append(f"cost: about {_money(e['cost_estimate_usd'])}, at most {_money(e['cost_max_usd'])}"
                         + (" (teacher and judge)" if "judge" in e else ""))
        if r.job_spent_usd:
            lines.append(f"already spent by earlier runs of this job: {_money(r.job_spent_usd)}")
        if r.budget_usd is not None and e["cost_max_usd"] is not None and e["cost_max_usd"] > r.budget_usd:
            lines.append(f"budget ${r.budget_usd:.4f}: the run may stop before all requests are made")
        lines.append(f"note: {e['note']}")
    else:
        lines.append(f"requests: {r.requested} (new {r.made}, cached {r.cached}, failed {r.failed}, "
                     f"not started {r.not_started}; {r.api_calls} calls, {r.retries} retries)")
        rej = sum(r.rejected.values())
        detail = ", ".join(f"{k} {v}" for k, v in r.rejected.items())
        lines.append(f"examples: {r.added} added, {r.already_present} already present, {rej} rejected"
                     + (f" ({detail})" if detail else ""))
        if r.by_weakness:
            lines.append("by weakness: " + ", ".join(f"{k} {v}" for k, v in sorted(r.by_weakness.items())))
        budget = f" (budget ${r.budget_usd:.4f})" if r.budget_usd is not None else ""
        lines.append(f"spend: {_money(r.spent_usd)} this run, {_money(r.job_spent_usd)} for the job{budget}; "
                     f"tokens in {r.input_tokens:,}, out {r.output_tokens:,}")
        if r.failures:
            lines.append("failed requests by reason: " + ", ".join(f"{k} {v['count']}" for k, v in r.failures.items()))
            lines += [f"  {k}, e.g.: {v['example']}" for k, v in r.failures.items()]
        if r.batch_ids:
            lines.append(f"batches: {r.batches_submitted} submitted, {r.batches_resumed} resumed from an earlier run "
                         f"({', '.join(r.batch_ids)}); prices are batch prices")
        if r.stopped:
            lines.append(f"stopped ({r.stopped}): {r.message}; re-run the same command to resume")
    lines += [f"warning: {w}" for w in r.warnings]
    return "\n".join(lines)


@click.command("generate")
@click.option("--task", help="Task of the examples (seeds mode: whose seeds to learn from).")
@click.option("--seeds", "seeds_file", type=click.Path(path_type=Path),
              help="Ingest this file as seed examples (origin seed, train split) first.")
@click.option("--questions", type=click.Path(path_type=Path),
              help="Answer mode: JSONL of {\"messages\": [..., user]} or {\"prompt\": ...}; the teacher answers.")
@click.option("--weaknesses", type=click.Path(path_type=Path),
              help="Targeted mode: JSON list of {id, task, description, example_ids}.")
@click.option("--teacher", default=DEFAULT_TEACHER, show_default=True,
              help="openai:MODEL, anthropic:MODEL, compatible:BASE_URL:MODEL or local:NAME|PATH.")
@click.option("--n", "n", type=Number(int, min=1), help="Requests to make (seeds: one new example each; required there).")
@click.option("--system", help="System prompt of the generated examples (default: the seeds').")
@click.option("--k", "k", type=Number(int, min=0), default=3, show_default=True, help="Seed examples shown per request.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the few-shot sampling.")
@click.option("--temperature", type=Number(min=0, max=2), default=0.7, show_default=True)
@click.option("--top-p", type=Number(min=0, max=1, min_open=True), default=1.0, show_default=True)
@click.option("--max-tokens", type=Number(int, min=1), default=512, show_default=True, help="Most tokens per reply.")
@click.option("--concurrency", type=Number(int, min=1), help="Requests in flight (default 16 remote; local: batch size 8).")
@click.option("--rpm", type=Number(min=0, min_open=True), help="Request rate limit, per minute.")
@click.option("--tpm", type=Number(min=0, min_open=True), help="Token rate limit, per minute (input estimate + max tokens).")
@click.option("--max-attempts", type=Number(int, min=1), default=6, show_default=True, help="Tries per request on 429/5xx/timeouts.")
@click.option("--request-timeout", type=Number(min=0, min_open=True), default=DEFAULT_DEADLINE, show_default=True,
              help="Seconds one try of a request may take, end to end (a slow drip of bytes included).")
@click.option("--budget", type=Number(min=0), help="Hard spending cap in USD for the job (needs the model's price).")
@click.option("--prices", type=click.Path(path_type=Path), help="YAML of prices merged over the bundled table.")
@click.option("--dry-run", is_flag=True, help="Print the estimated tokens and cost; ask nothing.")
@click.option("--judge", help="Provider spec of an LLM judge; candidates scoring under --min-score are dropped.")
@click.option("--min-score", type=Number(min=1, max=10), default=7.0, show_default=True, help="Judge threshold, 1-10.")
@click.option("--templates", "templates_dir", type=click.Path(path_type=Path, file_okay=False),
              help="Folder of edited prompt templates (NAME.txt; missing ones fall back to the bundled).")
@click.option("--export-templates", type=click.Path(path_type=Path, file_okay=False),
              help="Write the bundled templates into this folder for editing, and exit.")
@click.option("--skip-filter", multiple=True, type=click.Choice(FILTER_NAMES),
              help="Switch a filter off (repeatable).")
@click.option("--batch", is_flag=True,
              help="Send the requests through the provider's batch API (openai:, anthropic:): half the price, "
                   "results within 24 h; a rerun resumes the same batches.")
@click.option("--poll-interval", type=Number(min=0), default=DEFAULT_POLL_INTERVAL, show_default=True,
              help="With --batch: seconds between two polls of the batches.")
@click.option("--engine", type=click.Choice(ENGINES), default="transformers", show_default=True,
              help="What generates with a local teacher: transformers (any machine) or vllm (CUDA, the [vllm] extra).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_context
def generate_cmd(ctx: click.Context, task: str | None, seeds_file: Path | None, questions: Path | None,
                 weaknesses: Path | None, teacher: str, n: int | None, system: str | None, k: int, seed: int,
                 temperature: float, top_p: float, max_tokens: int, concurrency: int | None, rpm: float | None,
                 tpm: float | None, max_attempts: int, request_timeout: float, budget: float | None, prices: Path | None, dry_run: bool,
                 judge: str | None, min_score: float, templates_dir: Path | None, export_templates: Path | None,
                 skip_filter: tuple[str, ...], batch: bool, poll_interval: float, engine: str, as_json: bool) -> None:
    """Grow seed examples into many with a teacher model, or have it answer your questions.

    Seeds mode (default) asks for N new examples, one per request, each request showing --k
    train-split seeds of the task.  --questions FILE: the teacher answers each question
    (distillation).  --weaknesses FILE: new examples around what a model got wrong.
    Every response is cached in the workspace before it is parsed: re-running the same
    command makes no new requests and resumes an interrupted run.

    \b
    curator generate --task support --n 200 --teacher openai:gpt-4o-mini --budget 2
    curator generate --seeds seeds/support/seeds.jsonl --task support --n 20
    curator generate --questions questions.jsonl --task support --teacher anthropic:claude-3-5-haiku
    curator generate --task support --n 50 --teacher compatible:http://127.0.0.1:11434/v1:llama3:8b
    curator generate --task support --n 500 --teacher openai:gpt-4o-mini --dry-run
    curator generate --task support --n 5000 --teacher openai:gpt-4o-mini --batch --budget 5
    curator generate --questions questions.jsonl --teacher local:/models/qwen2.5-7b --engine vllm
    """
    if export_templates is not None:
        written = _export_templates(export_templates)
        click.echo(f"wrote {len(written)} template(s) to {export_templates}"
                   + ("" if written else " (all were there already; nothing overwritten)"))
        return
    if questions is not None and weaknesses is not None:
        raise click.UsageError("--questions and --weaknesses are different modes: give one")
    mode = "answer" if questions is not None else "targeted" if weaknesses is not None else "seeds"
    ws = _ws(ctx)
    if seeds_file is not None:
        from curator.data.ingest import ingest_file

        rep = ingest_file(ws, seeds_file, task=task, origin="seed")
        log(f"{seeds_file}: {rep.examples} seed examples, {rep.added} added")
    options = GenerateOptions(
        mode=mode, teacher=teacher, n=n, task=task, system=system, questions=questions, weaknesses=weaknesses,
        k=k, seed=seed, params=GenParams(max_tokens=max_tokens, temperature=temperature, top_p=top_p),
        concurrency=concurrency, budget=budget, dry_run=dry_run,
        judge=Judge(judge, min_score=min_score) if judge else None, filters=FilterConfig(skip=frozenset(skip_filter)),
        retry=RetryPolicy(max_attempts=max_attempts, deadline=request_timeout), rpm=rpm, tpm=tpm, prices=prices, templates_dir=templates_dir,
        progress=True, batch=batch, poll_interval=poll_interval, engine=engine,
    )
    report = generate(ws, options)
    if as_json:
        echo_json(report.to_dict())
    else:
        click.echo(format_report(report))
    if report.stopped == "failing":
        click.echo(f"Error: the teacher kept failing: {report.message}", err=True)
        sys.exit(1)
    if not report.dry_run and report.requested and not report.answered:
        click.echo(f"Error: no request succeeded: {_why_none(report)}", err=True)
        sys.exit(1)


def _why_none(r: GenerateReport) -> str:
    """Why a run got no reply at all (the exit-1 message): the failure reasons, or the stop."""
    if r.failures:
        first = next(iter(r.failures.values()))
        counts = ", ".join(f"{k} {v['count']}" for k, v in r.failures.items())
        return f"{r.failed} failed ({counts}); e.g. {first['example']}"
    return r.message or "no request was started"

