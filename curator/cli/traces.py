"""``curator traces list|show|stats``: what ``curator serve`` answered and how it was rated.

Each command first imports what is new in the server's trace logs (``WORKSPACE/traces/*.jsonl``) into the
``traces`` table (idempotent; see :mod:`curator.feedback.tracelog`), then reads the table.
"""

from __future__ import annotations

from typing import Any

import click

from curator.cli.kit import CuratorGroup, Number, workspace
from curator.output import echo_json, table

__all__ = ["traces"]


@click.group(cls=CuratorGroup)
def traces() -> None:
    """Served completions: list, show one, stats per adapter and A/B arm."""


def _short(text: str, width: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[: width - 3] + "..."


def _rating(t: dict[str, Any]) -> str:
    if t["rating"] is not None:
        return str(t["rating"])
    return t["thumbs"] or "-"


@traces.command("list")
@click.option("--model", help="Only traces served under this model name.")
@click.option("--rated", "rated", flag_value=True, default=None, help="Only traces with feedback.")
@click.option("--unrated", "rated", flag_value=False, help="Only traces without feedback.")
@click.option("--limit", type=Number(int, min=1), default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON (full messages).")
@click.pass_context
def list_cmd(ctx: click.Context, model: str | None, rated: bool | None, limit: int, as_json: bool) -> None:
    """The latest traces, newest first."""
    from curator.feedback.tracelog import list_traces

    rows = list_traces(workspace(ctx), model=model, rated=rated, limit=limit)
    if as_json:
        echo_json(rows)
        return
    if not rows:
        click.echo("no traces yet: serve with `curator serve` and send requests")
        return
    click.echo(table(
        ["trace", "created", "model", "adapter", "tokens", "latency", "finish", "rating", "answer"],
        [(t["id"], t["created_at"][:19], t["model"], (t["adapter"] or "base")[:24],
          f"{t['prompt_tokens']}+{t['completion_tokens']}", f"{t['latency_ms']:.0f}ms", t["finish_reason"],
          _rating(t), _short(t["messages"][-1]["content"], 40)) for t in rows]))


@traces.command("show")
@click.argument("trace_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def show_cmd(ctx: click.Context, trace_id: str, as_json: bool) -> None:
    """One trace: the conversation, parameters, timing, feedback (TRACE_ID: id or unique prefix)."""
    from curator.feedback.tracelog import get_trace

    t = get_trace(workspace(ctx), trace_id)
    if as_json:
        echo_json(t)
        return
    click.echo(f"trace {t['id']} ({t['created_at']})")
    click.echo(f"  model      {t['model']} (adapter {t['adapter'] or 'base'}"
               + (f", run {t['run_id']}" if t["run_id"] else "") + ")")
    if t["ab_name"]:
        click.echo(f"  A/B        {t['ab_name']}: arm {t['ab_arm']}")
    click.echo(f"  params     {t['params']}")
    click.echo(f"  tokens     {t['prompt_tokens']} prompt, {t['completion_tokens']} completion; "
               f"{t['latency_ms']:.0f} ms; finish {t['finish_reason']}")
    for m in t["messages"]:
        click.echo(f"  {m['role']:>9}: {m['content']}")
    for f in t["feedback"]:
        what = f"rating {f['rating']}" if f["rating"] is not None else f"thumbs {f['thumbs']}"
        click.echo(f"  feedback   {what} ({f['created_at']})" + (f": {f['comment']}" if f["comment"] else ""))
        if f["correction"]:
            click.echo(f"  correction {f['correction']}")
    if t["ingested_at"]:
        click.echo(f"  ingested   {t['ingested_at']} (feedback ingest --traces)")


def _rate(g: dict[str, Any]) -> str:
    if g["positive_rate"] is None:
        return "-"
    lo, hi = g["positive_rate_ci95"]
    return f"{g['positive_rate']:.0%} [{lo:.0%}, {hi:.0%}]"


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:.0f}"


@traces.command("stats")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def stats_cmd(ctx: click.Context, as_json: bool) -> None:
    """Volume, positive-feedback rate (95 % Wilson interval), latency p50/p95 per model and A/B arm.

    Positive: rating 4-5 or thumbs up; negative: rating 1-2 or thumbs down (3 counts as rated, neither).
    """
    from curator.feedback.tracelog import trace_stats

    s = trace_stats(workspace(ctx))
    if as_json:
        echo_json(s)
        return
    if not s["traces"]:
        click.echo("no traces yet: serve with `curator serve` and send requests")
        return
    head = ["traces", "rated", "positive", "negative", "positive rate [95% CI]", "p50 ms", "p95 ms"]

    def cells(g: dict[str, Any]) -> list[Any]:
        return [g["traces"], g["rated"], g["positive"], g["negative"], _rate(g), _ms(g["latency_ms_p50"]),
                _ms(g["latency_ms_p95"])]

    click.echo(table(["model", "adapter", *head], [[g["model"], g["adapter"][:24], *cells(g)] for g in s["by_model"]]))
    if s["ab"]:
        click.echo("")
        click.echo("A/B arms")
        click.echo(table(["route", "arm", "run", *head],
                         [[g["name"], g["arm"], g["run_id"] or "base", *cells(g)] for g in s["ab"]]))
    o = s["overall"]
    click.echo(f"\n{s['traces']} traces, {o['rated']} rated, positive rate {_rate(o)}; "
               f"{s['rated_not_ingested']} rated traces not ingested yet (curator feedback ingest --traces)")
