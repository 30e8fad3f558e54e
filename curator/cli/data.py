"""Data commands: ``ingest``, ``validate``, ``stats``."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from curator.cli.kit import log
from curator.cli.kit import workspace as _ws
from curator.output import echo_json, table

__all__ = ['ingest', 'stats', 'validate']


# -- ingest ------------------------------------------------------------------------------------------------------
@click.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--format", "fmt", default="auto", show_default=True,
              type=click.Choice(["auto", "chat", "alpaca", "selfinstruct", "sharegpt", "dolly", "csv", "hf"]),
              help="Input format; auto looks at the extension and the first record.")
@click.option("--task", help="Label the examples with this task (default: 'default', or the CSV --task-column).")
@click.option("--split", type=click.Choice(["train", "eval", "test"]), help="Pin every example of these files to a split.")
@click.option("--origin", type=click.Choice(["import", "seed"]), default="import", show_default=True,
              help="'seed' marks examples that synthetic generation may learn from.")
@click.option("--skip-invalid", is_flag=True, help="Store the good rows and report the bad ones instead of rejecting the file.")
@click.option("--ratios", help="Split ratios for new prompt groups, e.g. 80/10/10 (saved in the workspace).")
@click.option("--prompt-column", help="CSV: column holding the user turn.")
@click.option("--response-column", help="CSV: column holding the assistant answer.")
@click.option("--system-column", help="CSV: column holding a system prompt.")
@click.option("--task-column", help="CSV: column holding the task label.")
@click.option("--delimiter", help="CSV: the delimiter (one character, or 'tab' / '\\t'); default: sniffed "
                                  "(',' tab ';' '|'), tab for .tsv.")
@click.option("--hf-split", help="HF DatasetDict folder: read only this split.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_context
def ingest(ctx: click.Context, files: tuple[Path, ...], fmt: str, task: str | None, split: str | None, origin: str,
           skip_invalid: bool, ratios: str | None, prompt_column: str | None, response_column: str | None,
           system_column: str | None, task_column: str | None, delimiter: str | None, hf_split: str | None,
           as_json: bool) -> None:
    """Read example files into the workspace (one transaction per file).

    \b
    curator ingest data/train.jsonl
    curator ingest my_test.jsonl --split test --task support
    curator ingest tickets.csv --prompt-column question --response-column reply
    curator ingest tickets.txt --format csv --delimiter tab
    """
    from curator.data.ingest import ingest_file
    from curator.data.readers import CsvMapping
    from curator.data.readers.csvfile import parse_delimiter
    from curator.data.splits import parse_ratios

    ws = _ws(ctx)
    split_ratios = parse_ratios(ratios) if ratios else None
    mapping = CsvMapping(prompt_column, response_column, system_column, task_column,
                         parse_delimiter(delimiter) if delimiter else None)
    reports = []
    for f in files:
        r = ingest_file(ws, f, fmt=fmt, task=task, split=split, origin=origin, skip_invalid=skip_invalid,
                        csv_mapping=mapping, hf_split=hf_split, ratios=split_ratios)
        reports.append(r.to_dict())
        if not as_json:
            splits = ", ".join(f"{k} {v}" for k, v in sorted(r.by_split.items()))
            click.echo(f"{r.path} ({r.format}): {r.examples} example{'s' if r.examples != 1 else ''}, {r.added} added"
                       + (f" ({splits})" if splits else "") + f", {r.already_present} already present"
                       + (f", {r.duplicates_in_file} repeated in file" if r.duplicates_in_file else ""))
            for old, n in sorted(r.moved_to_pinned_split.items()):
                click.echo(f"  {n} example{'s' if n != 1 else ''} already stored in {old} moved to {split} "
                           "(the same example after normalisation; run `curator leakage` for near copies)")
            for s in r.skipped:
                unit = s["unit"]
                loc = f"{r.path}:{s['line']}" if unit == "line" else f"{r.path}: {unit} {s['line']}"
                click.echo(f"  skipped {loc}: {s['reason']}")
    if as_json:
        echo_json(reports if len(reports) > 1 else reports[0])

# -- validate ----------------------------------------------------------------------------------------------------
@click.command()
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--format", "fmt", default="auto", show_default=True, help="Input format (as for ingest).")
@click.option("--model", default="local:smollm2-135m-instruct", show_default=True,
              help="Tokenizer used to count tokens.")
@click.option("--no-tokens", is_flag=True, help="Skip token counting.")
@click.option("--prompt-column", help="CSV: column holding the user turn.")
@click.option("--response-column", help="CSV: column holding the assistant answer.")
@click.option("--system-column", help="CSV: column holding a system prompt.")
@click.option("--delimiter", help="CSV: the delimiter (one character, or 'tab' / '\\t'); default: sniffed.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def validate(file: Path, fmt: str, model: str, no_tokens: bool, prompt_column: str | None,
             response_column: str | None, system_column: str | None, delimiter: str | None, as_json: bool) -> None:
    """Check a file against OpenAI's chat fine-tuning rules (tool calls included) and more; writes nothing.

    Every error is listed with its line (the first five of each kind). Exit code 1 when there are errors.

    \b
    curator validate data/train.jsonl
    curator validate tickets.txt --format csv --delimiter tab
    """
    from curator.data.readers import CsvMapping
    from curator.data.readers.csvfile import parse_delimiter
    from curator.data.validate import token_counter, validate_file
    from curator.errors import MissingDependency

    mapping = CsvMapping(prompt_column, response_column, system_column, None,
                         parse_delimiter(delimiter) if delimiter else None)
    counter = None
    if not no_tokens:
        try:
            counter = token_counter(model)
        except MissingDependency as e:  # a core install: every rule is still checked, only the counts are not
            log(f"tokens not counted: {e} (--no-tokens skips the count)")
    report = validate_file(file, fmt=fmt, csv_mapping=mapping, count_tokens=counter)
    d = report.to_dict()
    if as_json:
        echo_json(d)
    else:
        click.echo(f"{file} ({report.format}): {report.examples} examples, "
                   + ("no errors" if report.ok else f"{sum(v['count'] for v in d['errors'].values())} errors"))
        unit = report.unit
        for title, kinds in (("errors", d["errors"]), ("warnings", d["warnings"])):
            if kinds:
                click.echo(f"{title}:")
                rows = [(k, v["count"], ", ".join(map(str, v[f"first_{unit}s"]))) for k, v in kinds.items()]
                click.echo(table(["kind", "count", f"first {unit}s"], rows))
        for line in report.messages():
            click.echo(line)
        if d["tokens_per_example"]:
            t = d["tokens_per_example"]
            click.echo(f"tokens per example: min {t['min']:.0f}, median {t['median']:.0f}, p90 {t['p90']:.0f}, "
                       f"max {t['max']:.0f}")
            b = d["billing"]
            click.echo(f"OpenAI estimate: {b['billed_tokens_per_epoch']} billed tokens per epoch x "
                       f"{b['default_epochs']} default epochs = {b['billed_tokens']}")
    if not report.ok:
        sys.exit(1)

# -- stats -------------------------------------------------------------------------------------------------------
@click.command()
@click.option("--snapshot", "ref", help="Counts of a snapshot instead of the live workspace.")
@click.option("--tokens/--no-tokens", default=True, help="Token length percentiles (each example counted once per tokenizer, then cached).")
@click.option("--model", default=None, help="Whose tokenizer and chat template count the tokens (default: the bundled SmolLM2).")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def stats(ctx: click.Context, ref: str | None, tokens: bool, model: str | None, as_json: bool) -> None:
    """Counts by split, origin and task, and token length percentiles.

    \b
    curator stats
    curator stats --snapshot latest --json
    curator stats --model ./my-base-model
    """
    from curator.models import DEFAULT_CHAT_MODEL
    from curator.stats import workspace_stats

    d = workspace_stats(_ws(ctx), ref, tokens=tokens, model=model or DEFAULT_CHAT_MODEL)
    if as_json:
        echo_json(d)
        return
    click.echo(f"{d['total']} examples" + (f" ({d.get('excluded', 0)} excluded)" if d.get("excluded") else ""))
    for key in ("by_split", "by_origin", "by_task"):
        click.echo(f"{key.replace('_', ' ')}: " + ", ".join(f"{k} {v}" for k, v in sorted(d[key].items())))
    if d.get("tokens"):
        click.echo(table(["split", "n", "p10", "p50", "p90", "p99", "max"],
                         [(s, t["n"], t["p10"], t["p50"], t["p90"], t["p99"], t["max"]) for s, t in d["tokens"].items()]))
