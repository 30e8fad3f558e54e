"""The ``curator`` command line: thin commands over library functions.

Every command takes ``--help``; reporting commands take ``--json``.  A :class:`CuratorError`
prints ``Error: <message>`` and exits 1; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from . import __version__
from .clikit import CuratorGroup
from .clikit import log as _log
from .clikit import workspace as _ws
from .output import echo_json, table
from .workspace import Workspace

__all__ = ["main"]


@click.group(cls=CuratorGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--workspace", "-w", type=click.Path(file_okay=False, path_type=Path), envvar="CURATOR_WORKSPACE",
    default=".curator", show_default=True, help="Workspace folder (env CURATOR_WORKSPACE).",
)
@click.version_option(__version__, prog_name="curator")
@click.pass_context
def main(ctx: click.Context, workspace: Path) -> None:
    """curator: seed examples and production feedback in, a better fine-tuned model out."""
    ctx.obj = {"workspace": Workspace(workspace)}


# -- ingest ------------------------------------------------------------------------------------------------------
@main.command()
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
@click.option("--hf-split", help="HF DatasetDict folder: read only this split.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_context
def ingest(ctx: click.Context, files: tuple[Path, ...], fmt: str, task: str | None, split: str | None, origin: str,
           skip_invalid: bool, ratios: str | None, prompt_column: str | None, response_column: str | None,
           system_column: str | None, task_column: str | None, hf_split: str | None, as_json: bool) -> None:
    """Read example files into the workspace (one transaction per file).

    \b
    curator ingest data/train.jsonl
    curator ingest my_test.jsonl --split test --task support
    curator ingest tickets.csv --prompt-column question --response-column reply
    """
    from .ingest import ingest_file
    from .readers import CsvMapping
    from .splits import parse_ratios

    ws = _ws(ctx)
    if ratios:
        ws.set_setting("split_ratios", list(parse_ratios(ratios)))
    mapping = CsvMapping(prompt_column, response_column, system_column, task_column)
    reports = []
    for f in files:
        r = ingest_file(ws, f, fmt=fmt, task=task, split=split, origin=origin, skip_invalid=skip_invalid,
                        csv_mapping=mapping, hf_split=hf_split)
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
@main.command()
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--format", "fmt", default="auto", show_default=True, help="Input format (as for ingest).")
@click.option("--model", default="local:smollm2-135m-instruct", show_default=True,
              help="Tokenizer used to count tokens.")
@click.option("--no-tokens", is_flag=True, help="Skip token counting.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def validate(file: Path, fmt: str, model: str, no_tokens: bool, as_json: bool) -> None:
    """Check a file against OpenAI's chat fine-tuning rules and more; writes nothing.

    Exit code 1 when there are errors.

    \b
    curator validate data/train.jsonl
    """
    from .validate import token_counter, validate_file

    report = validate_file(file, fmt=fmt, count_tokens=None if no_tokens else token_counter(model))
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
@main.command()
@click.option("--snapshot", "ref", help="Counts of a snapshot instead of the live workspace.")
@click.option("--tokens/--no-tokens", default=True, help="Token length percentiles (base model tokenizer).")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def stats(ctx: click.Context, ref: str | None, tokens: bool, as_json: bool) -> None:
    """Counts by split, origin and task, and token length percentiles.

    \b
    curator stats
    curator stats --snapshot latest --json
    """
    from .stats import workspace_stats

    d = workspace_stats(_ws(ctx), ref, tokens=tokens)
    if as_json:
        echo_json(d)
        return
    click.echo(f"{d['total']} examples" + (f" ({d.get('excluded', 0)} excluded)" if d.get("excluded") else ""))
    for key in ("by_split", "by_origin", "by_task"):
        click.echo(f"{key.replace('_', ' ')}: " + ", ".join(f"{k} {v}" for k, v in sorted(d[key].items())))
    if d.get("tokens"):
        click.echo(table(["split", "n", "p10", "p50", "p90", "p99", "max"],
                         [(s, t["n"], t["p10"], t["p50"], t["p90"], t["p99"], t["max"]) for s, t in d["tokens"].items()]))


# -- snapshots ---------------------------------------------------------------------------------------------------
@main.group(cls=CuratorGroup)
def snapshot() -> None:
    """Immutable, versioned dataset snapshots: create, list, show, diff, export."""


@snapshot.command("create")
@click.option("--name", help="A name to refer to the snapshot by (unique).")
@click.option("--allow-leakage", is_flag=True, help="Create it even when train overlaps eval/test.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def snapshot_create(ctx: click.Context, name: str | None, allow_leakage: bool, as_json: bool) -> None:
    """Freeze the active examples and their splits.

    \b
    curator snapshot create --name v1
    """
    from .snapshots import create_snapshot

    snap = create_snapshot(_ws(ctx), name=name, allow_leakage=allow_leakage)
    if as_json:
        echo_json(snap.to_dict())
        return
    verb = "created" if snap.created else "unchanged, same content as"
    c = snap.counts
    click.echo(f"snapshot {snap.id} {verb}" + (f" ({snap.name})" if snap.name else "")
               + f": {c.get('total', 0)} examples, " + ", ".join(f"{k} {v}" for k, v in sorted(c.get("by_split", {}).items())))
    click.echo(f"  {snap.path.parent}")


@snapshot.command("list")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def snapshot_list(ctx: click.Context, as_json: bool) -> None:
    """List snapshots, oldest first."""
    from .snapshots import list_snapshots

    snaps = list_snapshots(_ws(ctx))
    if as_json:
        echo_json([s.to_dict() for s in snaps])
        return
    if not snaps:
        click.echo("no snapshots yet: run `curator snapshot create`")
        return
    rows = [(s.id, s.name or "", s.created_at, s.counts.get("total"), s.counts["by_split"].get("train", 0),
             s.counts["by_split"].get("eval", 0), s.counts["by_split"].get("test", 0), s.parent_id or "") for s in snaps]
    click.echo(table(["id", "name", "created", "total", "train", "eval", "test", "parent"], rows))


@snapshot.command("show")
@click.argument("ref")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def snapshot_show(ctx: click.Context, ref: str, as_json: bool) -> None:
    """Show a snapshot (id, id prefix, name or 'latest'); verifies its files."""
    from .snapshots import load_manifest, resolve_snapshot

    snap = resolve_snapshot(_ws(ctx), ref)
    manifest = load_manifest(snap, verify=True)
    if as_json:
        echo_json(manifest)
        return
    click.echo(f"snapshot {snap.id}" + (f" ({snap.name})" if snap.name else "") + f", created {manifest['created_at']}"
               + (f", parent {snap.parent_id}" if snap.parent_id else ""))
    c = manifest["counts"]
    for key in ("by_split", "by_origin", "by_task"):
        click.echo(f"  {key.replace('_', ' ')}: " + ", ".join(f"{k} {v}" for k, v in sorted(c[key].items())))
    for info in manifest["files"].values():
        click.echo(f"  {info['path']}: {info['rows']} rows, sha256 {info['sha256'][:16]}... verified")


@snapshot.command("diff")
@click.argument("a")
@click.argument("b")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def snapshot_diff(ctx: click.Context, a: str, b: str, as_json: bool) -> None:
    """What changed from snapshot A to snapshot B (added / removed / moved, by origin, with reasons)."""
    from .snapshots import diff_snapshots

    d = diff_snapshots(_ws(ctx), a, b)
    if as_json:
        echo_json(d)
        return
    click.echo(f"{d['from']} -> {d['to']}")
    for key in ("added", "removed", "moved"):
        n = sum(d[key].values())
        click.echo(f"  {key}: {n}" + (" (" + ", ".join(f"{k} {v}" for k, v in sorted(d[key].items())) + ")" if n else ""))
    for r in d["removed_examples"][:20]:
        click.echo(f"    - {r['id'][:12]} [{r['origin']}, {r['split']}] {r['reason']}")
    for r in d["moved_examples"][:20]:
        click.echo(f"    ~ {r['id'][:12]} [{r['origin']}] {r['from']} -> {r['to']}")


@snapshot.command("export")
@click.argument("ref")
@click.option("--format", "fmt", type=click.Choice(["openai", "hf", "parquet", "dpo"]), default="openai",
              show_default=True, help="dpo: prompt/chosen/rejected JSONL of the preference pairs, for TRL's DPOTrainer.")
@click.option("--split", type=click.Choice(["train", "eval", "test"]), help="Export one split only.")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Output folder.")
@click.option("--force", is_flag=True, help="Overwrite an existing export.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def snapshot_export(ctx: click.Context, ref: str, fmt: str, split: str | None, out: Path, force: bool,
                    as_json: bool) -> None:
    """Write a snapshot as OpenAI chat JSONL, a `datasets` folder (load_from_disk), Parquet, or DPO pairs.

    \b
    curator snapshot export latest --format openai --out exports/v1
    """
    from .snapshots import export_snapshot

    d = export_snapshot(_ws(ctx), ref, fmt, out, split=split, force=force)
    if as_json:
        echo_json(d)
        return
    for s, info in d["files"].items():
        click.echo(f"{s}: {info['rows']} rows -> {info['path']}")


# -- models ------------------------------------------------------------------------------------------------------
@main.group(cls=CuratorGroup)
def models() -> None:
    """Local models shipped in Python packages (no hub downloads)."""


@models.command("list")
@click.option("--json", "as_json", is_flag=True)
def models_list(as_json: bool) -> None:
    """List the local model registry and whether each model is ready."""
    from .models import list_models

    rows = list_models()
    if as_json:
        echo_json(rows)
        return
    click.echo(table(["name", "kind", "ready", "path"],
                     [(r["name"], r["kind"], "yes" if r["ready"] else "no", r.get("path") or r.get("error", ""))
                      for r in rows]))


@models.command("prepare")
@click.argument("name", default="local:smollm2-135m-instruct")
@click.option("--force", is_flag=True, help="Convert again even when already prepared.")
def models_prepare(name: str, force: bool) -> None:
    """Convert a registry model once into a fast-loading folder and print where it is."""
    from .models import prepare

    path = prepare(name, force=force, log=_log)
    click.echo(str(path))


# -- demo --------------------------------------------------------------------------------------------------------
@main.command()
@click.option("--quick", is_flag=True, help="A shorter run.")
@click.option("--seeds-dir", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Folder with seeds.jsonl and test.jsonl (default: the bundled seeds/support).")
@click.pass_context
def demo(ctx: click.Context, quick: bool, seeds_dir: Path | None) -> None:
    """The whole loop on the bundled seeds, offline, in a fresh workspace."""
    from .demo import run_demo

    run_demo(_ws(ctx), quick=quick, seeds_dir=seeds_dir, log=_log)


def _register_optional() -> None:
    """Commands of the trainer/evals packages and later curator modules register themselves here."""
    from .commands import register

    register(main)


_register_optional()
