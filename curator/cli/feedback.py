"""``curator feedback ...``: ingest rated production logs, look at what came out."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import click

from curator.cli.kit import CuratorGroup, Number, log, workspace
from curator.output import echo_json, table

__all__ = ["feedback"]

_FORMATS = ["auto", "chat", "trace", "oasst", "hh-rlhf"]
_LONG_ID = re.compile(r"\b([0-9a-f]{12})[0-9a-f]{52}\b")  # example ids, shortened in text output


@click.group(cls=CuratorGroup)
def feedback() -> None:
    """Production feedback: rated logs in, SFT examples and preference pairs out."""


@feedback.command("ingest")
@click.argument("files", nargs=-1, type=click.Path(path_type=Path))
@click.option("--traces", "from_traces", is_flag=True,
              help="Ingest the rated traces of `curator serve` (its trace logs) instead of files.")
@click.option("--format", "fmt", type=click.Choice(_FORMATS), default="auto", show_default=True,
              help="chat logs, trace exports (Langfuse/LangSmith), OASST trees, HH-RLHF pairs.")
@click.option("--task", help="Task label of the examples made from positives (default: the record's, else 'default').")
@click.option("--min-rating", type=Number(), help="Same as --positive-threshold.")
@click.option("--positive-threshold", type=Number(),
              help="Ratings/scores at or above are positive (defaults: rating 4, score 0.7).")
@click.option("--negative-threshold", type=Number(),
              help="Ratings/scores at or below are negative (defaults: rating 2, score 0.3).")
@click.option("--rating-field", help="Field (dotted path) or trace score name holding the rating.")
@click.option("--messages-field", help="Chat logs: field (dotted path) holding the conversation.")
@click.option("--trace-field", help="Field (dotted path) holding the trace id.")
@click.option("--skip-invalid", is_flag=True, help="Store the good records and report the bad ones instead of rejecting the file.")
@click.option("--gates", "gate_list", metavar="METHODS",
              help="Duplicate gates for positives, e.g. exact,near (default exact,near,semantic; "
                   "semantic also adds the semantic leakage check).")
@click.option("--no-gates", is_flag=True, help="Store positives without the duplicate and eval/test leakage gates.")
@click.option("--sft-chosen", is_flag=True, help="HH-RLHF / pairs: also store the chosen answers as SFT examples.")
@click.option("--pii-backend", type=click.Choice(["patterns", "presidio"]),
              help="PII scrubber: patterns (fast, no model) or presidio (adds person names and places; the [pii] "
                   "extra). Default: the workspace setting pii_backend, else patterns.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_context
def ingest_cmd(ctx: click.Context, files: tuple[Path, ...], from_traces: bool, fmt: str, task: str | None,
               min_rating: float | None,
               positive_threshold: float | None, negative_threshold: float | None, rating_field: str | None,
               messages_field: str | None, trace_field: str | None, skip_invalid: bool, gate_list: str | None, no_gates: bool,
               sft_chosen: bool, pii_backend: str | None, as_json: bool) -> None:
    """Ingest feedback files (one transaction per file; the same file twice adds nothing).

    \b
    curator feedback ingest logs/2026-11.jsonl --task support
    curator feedback ingest oasst/en_100_tree.jsonl
    curator feedback ingest hh_rlhf/harmless-base_test.jsonl.gz --gates exact,near
    curator feedback ingest export.jsonl --rating-field stars --positive-threshold 4
    curator feedback ingest --traces
    """
    from curator.feedback.ingest import ingest_feedback

    ws = workspace(ctx)
    if from_traces:
        if files:
            raise click.UsageError("give FILES or --traces, not both")
        _ingest_traces(ws, task, positive_threshold if min_rating is None else min_rating, negative_threshold,
                       False if no_gates else (gate_list or True), as_json, pii_backend)
        return
    if not files:
        raise click.UsageError("give feedback FILES, or --traces for the traces of `curator serve`")
    reports = []
    for f in files:
        r = ingest_feedback(ws, f, fmt=fmt, task=task, min_rating=min_rating, positive_threshold=positive_threshold,
                            negative_threshold=negative_threshold, rating_field=rating_field,
                            messages_field=messages_field, trace_field=trace_field, skip_invalid=skip_invalid,
                            gates=False if no_gates else (gate_list or True), sft_chosen=sft_chosen,
                            pii_backend=pii_backend)
        reports.append(r.to_dict())
        if not as_json:
            click.echo(render_report(r.to_dict()))
        for s in r.skipped:
            log(f"  skipped {r.path}:{s['line']}: {s['reason']}")
    if as_json:
        echo_json(reports if len(reports) > 1 else reports[0])


def _ingest_traces(ws: Any, task: str | None, positive: float | None, negative: float | None, gates: Any,
                   as_json: bool, pii_backend: str | None = None) -> None:
    from curator.feedback.tracelog import ingest_traces

    r = ingest_traces(ws, task=task, positive_threshold=positive, negative_threshold=negative, gates=gates,
                      pii_backend=pii_backend).to_dict()
    if as_json:
        echo_json(r)
        return
    imp = r["imported"]
    click.echo(f"traces: {imp['traces_added']} new traces and {imp['feedback_added']} new ratings imported "
               f"from {imp['files']} log files; {r['rated_traces']} rated traces to ingest")
    if r["feedback"]:
        click.echo(render_report(r["feedback"]))
    for b in imp["bad_lines"][:10]:
        log(f"  skipped {b['file']}:{b['line']}: {b['reason']}")


def render_report(r: dict[str, Any]) -> str:
    """The text summary of one ingest report."""
    lines = [
        f"{r['path']} ({r['format']}): {r['events']} events, {r['new_events']} new"
        + (f", {r['already_present']} already stored" if r["already_present"] else "")
        + (f", {r['duplicates_in_file']} repeated in the file" if r["duplicates_in_file"] else ""),
        f"  new: {r['positive']} positive, {r['negative']} negative, {r['neutral']} neutral",
    ]
    splits = ", ".join(f"{k} {v}" for k, v in sorted(r["by_split"].items()))
    lines.append(f"  examples: {r['examples_added']} added" + (f" ({splits})" if splits else "")
                 + (f", {r['positives_already_examples']} already stored" if r["positives_already_examples"] else "")
                 + (f", {len(r['positives_rejected'])} rejected by gates" if r["positives_rejected"] else ""))
    for reason, n in sorted(r["positives_not_for_sft"].items()):
        lines.append(f"  not for SFT: {n} ({reason})")
    lines.append(f"  preference pairs: {r['pairs_added']} added ({r['pairs_found']} found)"
                 + (f", {len(r['unpaired'])} records unpaired" if r["unpaired"] else ""))
    pii = ", ".join(f"{k} {v}" for k, v in r["pii"].items())
    lines.append(f"  PII replaced: {pii or 'none'}")
    if r["skipped"]:
        lines.append(f"  skipped: {len(r['skipped'])} invalid records")
    if r["gates"]:
        lines.append(f"  gates: {'; '.join(r['gates'])}")
    for rej in r["positives_rejected"][:10]:
        reason = _LONG_ID.sub(r"\1", rej["reason"])
        lines.append(f"  rejected {rej['trace_id']} (line {rej['line']}): {reason}")
    if len(r["positives_rejected"]) > 10:
        lines.append(f"  ... {len(r['positives_rejected']) - 10} more rejected (see --json)")
    return "\n".join(lines)


@feedback.command("stats")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@click.pass_context
def stats_cmd(ctx: click.Context, as_json: bool) -> None:
    """Feedback events by format and label, what positives became, pairs, PII replaced."""
    from curator.feedback.query import feedback_stats

    s = feedback_stats(workspace(ctx))
    if as_json:
        echo_json(s)
        return
    rows = [(fmt, c.get("positive", 0), c.get("negative", 0), c.get("neutral", 0), sum(c.values()))
            for fmt, c in sorted(s["by_format"].items())]
    click.echo(table(["format", "positive", "negative", "neutral", "events"], rows))
    click.echo(f"positives stored as examples: {s['positives_as_examples']}, not stored: {s['positives_not_stored']}")
    basis = ", ".join(f"{k} {v}" for k, v in s["pairs_by_basis"].items())
    click.echo(f"preference pairs: {s['pairs']}" + (f" ({basis})" if basis else ""))
    click.echo("PII replaced: " + (", ".join(f"{k} {v}" for k, v in s["pii_replaced"].items()) or "none"))


def _short(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 3] + "..."


@feedback.command("list")
@click.option("--label", type=click.Choice(["positive", "negative", "neutral"]), help="Only events of this label.")
@click.option("--limit", type=Number(int, min=1), default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print as JSON (full messages).")
@click.pass_context
def list_cmd(ctx: click.Context, label: str | None, limit: int, as_json: bool) -> None:
    """The latest feedback events."""
    from curator.feedback.query import list_events

    rows = list_events(workspace(ctx), label=label, limit=limit)
    if as_json:
        echo_json(rows)
        return
    click.echo(table(["trace_id", "format", "label", "rating", "example", "answer"],
                     [(r["trace_id"], r["format"], r["label"], r["rating"], (r["example_id"] or "-")[:12],
                       _short(r["messages"][-1]["content"], 50)) for r in rows]))


@feedback.command("pairs")
@click.option("--limit", type=Number(int, min=1), default=5, show_default=True)
@click.option("--basis", type=click.Choice(["rating", "rank", "votes", "preference", "correction"]), help="Only pairs made this way.")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@click.pass_context
def pairs_cmd(ctx: click.Context, limit: int, basis: str | None, as_json: bool) -> None:
    """Show stored preference pairs (prompt, chosen, rejected)."""
    from curator.feedback.query import list_pairs

    rows = list_pairs(workspace(ctx), limit=limit, basis=basis)
    if as_json:
        echo_json(rows)
        return
    for r in rows:
        margin = "-" if r["margin"] is None else f"{r['margin']:g}"
        click.echo(f"pair {r['id'][:12]} ({r['meta'].get('basis', '?')}, margin {margin})")
        for m in r["prompt"]:
            click.echo(f"  {m['role']:>9}: {_short(m['content'], 100)}")
        click.echo(f"  {'chosen':>9}: {_short(r['chosen'], 100)}")
        click.echo(f"  {'rejected':>9}: {_short(r['rejected'], 100)}")
