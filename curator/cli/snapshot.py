"""The ``snapshot`` group: create, list, show, diff, export."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from curator.cli.kit import CuratorGroup
from curator.cli.kit import workspace as _ws
from curator.output import echo_json, table

if TYPE_CHECKING:
    from curator.snapshots import Snapshot

__all__ = ['snapshot']


# -- snapshots ---------------------------------------------------------------------------------------------------
@click.group(cls=CuratorGroup)
def snapshot() -> None:
    """Immutable, versioned dataset snapshots: create, list, show, diff, export."""


@snapshot.command("create")
@click.option("--name", help="A name to refer to the snapshot by (unique).")
@click.option("--allow-leakage", is_flag=True, help="Create it even when train overlaps eval/test.")
@click.option("--require-review", "require_review", multiple=True, metavar="ORIGIN",
              help="Refuse unless every active example of this origin (e.g. synthetic) was accepted in "
                   "`curator review`; repeatable.")
@click.option("--review-sample", type=float, metavar="F",
              help="Refuse unless at least ceil(F*n) of each origin's n examples were reviewed (accepted, rejected "
                   "or edited): the --require-review origins, or every origin when none is given. 0 < F <= 1.")
@click.option("--min-acceptance", type=float, metavar="A",
              help="Refuse unless accepted / reviewed >= A on those same origins. 0 <= A <= 1.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def snapshot_create(ctx: click.Context, name: str | None, allow_leakage: bool, require_review: tuple[str, ...],
                    review_sample: float | None, min_acceptance: float | None, as_json: bool) -> None:
    """Freeze the active examples and their splits.

    When the same content was snapshotted before under another name, --name adds an alias: both names
    then refer to the one snapshot.

    The review options make it a gate on `curator review`: the refusal names each origin with its
    reviewed and accepted counts and what was needed; the gate is recorded in the manifest.

    \b
    curator snapshot create --name v1
    curator snapshot create --require-review synthetic
    curator snapshot create --review-sample 0.1 --min-acceptance 0.8
    """
    from curator.snapshots import create_snapshot

    snap = create_snapshot(_ws(ctx), name=name, allow_leakage=allow_leakage, require_review=require_review,
                           review_sample=review_sample, min_acceptance=min_acceptance)
    if as_json:
        echo_json(snap.to_dict())
        return
    verb = "created" if snap.created else "unchanged, same content as"
    c = snap.counts
    click.echo(f"snapshot {snap.id} {verb}" + (f" ({_names(snap)})" if snap.name else "")
               + f": {c.get('total', 0)} examples, " + ", ".join(f"{k} {v}" for k, v in sorted(c.get("by_split", {}).items())))
    if snap.alias_added:
        click.echo(f"  the data did not change since {snap.name}: {snap.alias_added!r} added as another name of "
                   f"snapshot {snap.id}")
    click.echo(f"  {snap.path.parent}")
    if snap.review_gate:
        click.echo("  review gate passed: " + "; ".join(
            f"{o} reviewed {c['reviewed']}/{c['examples']}, accepted {c['accepted']}"
            for o, c in snap.review_gate["origins"].items()))


@snapshot.command("list")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def snapshot_list(ctx: click.Context, as_json: bool) -> None:
    """List snapshots, oldest first."""
    from curator.snapshots import list_snapshots

    snaps = list_snapshots(_ws(ctx))
    if as_json:
        echo_json([s.to_dict() for s in snaps])
        return
    if not snaps:
        click.echo("no snapshots yet: run `curator snapshot create`")
        return
    rows = [(s.id, _names(s), s.created_at, s.counts.get("total"), s.counts["by_split"].get("train", 0),
             s.counts["by_split"].get("eval", 0), s.counts["by_split"].get("test", 0), s.parent_id or "") for s in snaps]
    click.echo(table(["id", "name", "created", "total", "train", "eval", "test", "parent"], rows))


def _names(snap: Snapshot) -> str:
    return ", ".join(n for n in (snap.name, *snap.aliases) if n)


@snapshot.command("show")
@click.argument("ref")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def snapshot_show(ctx: click.Context, ref: str, as_json: bool) -> None:
    """Show a snapshot (id, id prefix, name or 'latest'); verifies its manifest and files."""
    from curator.snapshots import load_manifest, resolve_snapshot

    snap = resolve_snapshot(_ws(ctx), ref)
    manifest = load_manifest(snap, verify=True)
    if as_json:
        echo_json(manifest)
        return
    click.echo(f"snapshot {snap.id}" + (f" ({_names(snap)})" if snap.name else "") + f", created {manifest['created_at']}"
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
    from curator.snapshots import diff_snapshots

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
@click.option("--format", "fmt", type=click.Choice(["openai", "hf", "parquet", "openai-dpo", "trl-dpo", "dpo"]),
              default="openai", show_default=True,
              help="openai: chat JSONL; hf: a datasets DatasetDict folder; parquet: typed Parquet per split; "
                   "openai-dpo / trl-dpo: the preference pairs for OpenAI or TRL DPO (dpo = trl-dpo).")
@click.option("--split", type=click.Choice(["train", "eval", "validation", "test"]),
              help="Export one split only (validation = eval).")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Output folder.")
@click.option("--force", is_flag=True,
              help="Replace what an earlier export wrote there (only curator's files; nothing else is touched).")
@click.option("--messages-only", is_flag=True,
              help="openai: write only `messages` (and `tools` where an example has them), no task or meta keys.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def snapshot_export(ctx: click.Context, ref: str, fmt: str, split: str | None, out: Path, force: bool,
                    messages_only: bool, as_json: bool) -> None:
    """Write a snapshot for other tools: OpenAI or Hugging Face, Parquet, DPO pairs.

    \b
    openai      train/eval/test.jsonl: messages (with name, weight), task and meta keys
    hf          DatasetDict folder (datasets.load_from_disk): train, validation, test
    parquet     train/validation/test.parquet: messages list<struct>, meta JSON
    openai-dpo  train/eval.jsonl: input, preferred_output, non_preferred_output
    trl-dpo     train/eval.jsonl: prompt, chosen, rejected (TRL's DPOTrainer)

    Empty splits are left out. `curator ingest` reads every example format back
    (validation is eval again), `curator feedback ingest` the pair formats.

    \b
    curator snapshot export latest --format openai --out exports/v1
    curator snapshot export v1 --format parquet --out exports/v1-pq
    curator snapshot export v1 --format openai-dpo --out exports/v1-dpo
    """
    from curator.snapshots import export_snapshot

    d = export_snapshot(_ws(ctx), ref, fmt, out, split=split, force=force, messages_only=messages_only)
    if as_json:
        echo_json(d)
        return
    for s, info in d["files"].items():
        click.echo(f"{s}: {info['rows']} rows -> {info['path']}")
    for s in d["left_out"]:
        click.echo(f"{s}: empty, left out")
    if d["removed"]:
        click.echo("removed from an earlier export: " + ", ".join(d["removed"]))
