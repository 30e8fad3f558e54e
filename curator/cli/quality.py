"""Dataset quality commands: ``dedup``, ``restore``, ``leakage``, ``audit``.

Thin wrappers over :mod:`curator.quality.dedup`, :mod:`curator.quality.leakage`, :mod:`curator.quality.audit` and
:mod:`curator.quality.audit_report`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from curator.cli.kit import Number, log
from curator.cli.kit import workspace as _ws
from curator.models import DEFAULT_EMBEDDER
from curator.output import echo_json, progress, table

__all__ = ["audit_cmd", "dedup_cmd", "leakage_cmd", "restore_cmd"]

_VIEW = click.Choice(["conversation", "prompt", "response"])


def engine_options(fn: Any) -> Any:
    """``--engine local|ray`` and ``--ray-address`` (the [ray] extra; see docs/scaling.md)."""
    fn = click.option("--ray-address", default=None, metavar="HOST:PORT",
                      help="Ray cluster to connect to with --engine ray (default: $RAY_ADDRESS, else a local "
                           "Ray instance on this machine).")(fn)
    return click.option("--engine", type=click.Choice(["local", "ray"]), default="local", show_default=True,
                        help="Where the keys, pairs and embeddings are computed: this process, or Ray "
                             "(the [ray] extra). The decisions are the same.")(fn)


def _engine(engine: str, ray_address: str | None) -> Any:
    from curator.engines import open_engine

    return open_engine(engine, address=ray_address)


def _short(text: str, n: int = 70) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"


@click.command("dedup")
@click.option("--exact", "exact", is_flag=True, help="Exact duplicates after case, punctuation and space folding.")
@click.option("--near", type=Number(min=0, max=1, min_open=True), is_flag=False, flag_value=0.8, default=None, metavar="J",
              help="Near duplicates: MinHash LSH on word bigrams, Jaccard >= J (0.8 when no value is given).")
@click.option("--semantic", type=Number(min=-1, max=1), is_flag=False, flag_value=0.95, default=None, metavar="C",
              help="Semantic duplicates: embedding cosine >= C (0.95 when no value is given).")
@click.option("--on", type=_VIEW, default="conversation", show_default=True,
              help="Which turns make the text: user+assistant, user only, or assistant only.")
@click.option("--include-system", is_flag=True, help="Put system prompts in the text too (left out by default).")
@click.option("--model", default=DEFAULT_EMBEDDER, show_default=True, help="Embedder: registry name or a sentence-transformers folder.")
@click.option("--dry-run", is_flag=True, help="Show what would be excluded, with sample pairs; change nothing.")
@click.option("--samples", default=3, show_default=True, help="Sample pairs shown per method.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@engine_options
@click.pass_context
def dedup_cmd(ctx: click.Context, exact: bool, near: float | None, semantic: float | None, on: str,
              include_system: bool, model: str, dry_run: bool, samples: int, as_json: bool, engine: str,
              ray_address: str | None) -> None:
    """Exclude duplicate examples, keeping one copy of each (undo with `curator restore`).

    With no method flag, runs exact, near (Jaccard 0.8) and semantic (cosine 0.95), in that
    order. Kept copy: eval/test before train, then seed > import > feedback > synthetic, then
    the earliest; examples pinned to eval/test are never excluded.

    \b
    curator dedup --dry-run
    curator dedup --exact --near 0.85 --json
    curator dedup --semantic 0.97 --on prompt
    curator dedup --engine ray --ray-address head-node:6379
    """
    from curator.quality.dedup import dedup

    methods = [m for m, on_ in (("exact", exact), ("near", near is not None), ("semantic", semantic is not None)) if on_]
    methods = methods or ["exact", "near", "semantic"]
    ws = _ws(ctx)
    with _engine(engine, ray_address) as eng:
        report = dedup(ws, methods, on=on, include_system=include_system, near_threshold=near or 0.8,
                       semantic_threshold=semantic or 0.95, model=model, dry_run=dry_run, samples=samples,
                       progress=progress, engine=eng)
    if as_json:
        echo_json(report.to_dict())
        return
    rows = [[m.method, m.threshold if m.threshold is not None else "-", m.pairs, m.clusters, m.excluded,
             f"{m.seconds:.1f}s"] for m in report.methods]
    click.echo(table(["method", "threshold", "pairs", "clusters", "would exclude" if dry_run else "excluded", "time"],
                     rows))
    verb = "would be excluded" if dry_run else "excluded"
    for m in report.methods:
        for s in m.samples:
            click.echo(f"  {m.method} {s['score']:.3f}  {s['example_id'][:12]} {_short(s['example_text'])!r}")
            click.echo(f"  {'':{len(m.method) + 6}} keeps {s['kept_id'][:12]} {_short(s['kept_text'])!r}")
    tail = f"{report.excluded} of {report.examples} active examples {verb}"
    if report.embedded:
        tail += f" ({report.embedded} embeddings computed)"
    if dry_run:
        tail += "; run without --dry-run to apply"
    elif report.excluded:
        tail += "; undo with `curator restore dedup`"
    click.echo(tail)


@click.command("restore")
@click.argument("kind")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
def restore_cmd(ctx: click.Context, kind: str, as_json: bool) -> None:
    """Undo every live decision of KIND: those examples become active again.

    KIND is dedup or leakage (all their methods), or one decision kind: dedup_exact,
    dedup_near, dedup_semantic, leakage_exact, leakage_ngram, leakage_semantic, or a review
    exclusion made in `curator review`: review_reject, edited.

    \b
    curator restore dedup_near
    curator restore leakage
    """
    from curator.quality.decisions import restore

    n = restore(_ws(ctx), kind)
    if as_json:
        echo_json({"kind": kind, "restored": n})
    else:
        click.echo(f"{n} example{'s' if n != 1 else ''} restored ({kind})")


@click.command("leakage")
@click.option("--methods", default="exact,ngram,semantic", show_default=True,
              help="Comma-separated methods: exact, ngram, semantic.")
@click.option("--ngram", "ngram", default=13, show_default=True, metavar="N",
              help="N-gram size for texts of at least 2N words (shorter texts use 8-grams).")
@click.option("--coverage", default=0.8, show_default=True,
              help="Share of an eval/test text's n-grams found in one train text that counts as a leak.")
@click.option("--semantic", "semantic", default=0.95, show_default=True, metavar="C", help="Cosine threshold.")
@click.option("--on", type=_VIEW, default="conversation", show_default=True, help="Which turns make the text.")
@click.option("--include-system", is_flag=True, help="Put system prompts in the text too.")
@click.option("--model", default=DEFAULT_EMBEDDER, show_default=True, help="Embedder for the semantic method.")
@click.option("--fix", is_flag=True, help="Exclude the train copy of every leaking pair (eval/test never change).")
@click.option("--limit", default=20, show_default=True, help="Pairs shown (all with --json).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@engine_options
@click.pass_context
def leakage_cmd(ctx: click.Context, methods: str, ngram: int, coverage: float, semantic: float, on: str,
                include_system: bool, model: str, fix: bool, limit: int, as_json: bool, engine: str,
                ray_address: str | None) -> None:
    """Find train examples that overlap eval or test examples.

    \b
    curator leakage
    curator leakage --methods exact,ngram --json
    curator leakage --fix
    curator leakage --engine ray
    """
    from curator.quality.leakage import LeakageReport, find_leakage, fix_leakage_until_clean

    ws = _ws(ctx)
    chosen = [m.strip() for m in methods.split(",") if m.strip()]
    passes: list[int] = []
    fixed = 0
    with _engine(engine, ray_address) as eng:
        def find() -> LeakageReport:
            return find_leakage(ws, chosen, on=on, include_system=include_system, ngram=ngram, coverage=coverage,
                                semantic_threshold=semantic, model=model, progress=progress, engine=eng)

        if fix:
            report, fixed, passes = fix_leakage_until_clean(ws, find)
        else:
            report = find()
    if as_json:
        out = report.to_dict()
        if fix:
            out["excluded"] = fixed
            out["pairs_per_pass"] = passes
        echo_json(out)
        return
    compared = ", ".join(f"{s} {n}" for s, n in report.compared.items())
    click.echo(f"train {report.train} against {compared}: {len(report.pairs)} leaking pairs "
               f"({', '.join(f'{m} {n}' for m, n in report.by_method.items())}), "
               f"{len(report.train_ids)} train examples")
    if report.pairs:
        rows = [[p.method, f"{p.score:.3f}", p.train_id[:12], _short(p.train_text, 40), p.other_split,
                 p.other_id[:12], _short(p.other_text, 40)] for p in report.pairs[:limit]]
        click.echo(table(["method", "score", "train", "train text", "split", "other", "other text"], rows))
        if len(report.pairs) > limit:
            click.echo(f"... {len(report.pairs) - limit} more (--limit, or --json for all)")
    if fix:
        again = (f" ({len(passes) - 1} passes until clean: pairs found {', '.join(map(str, passes))})"
                 if len(passes) > 2 or (passes and passes[-1]) else "")
        click.echo(f"{fixed} train examples excluded{again}; undo with `curator restore leakage`")
    elif report.pairs:
        click.echo("run `curator leakage --fix` to exclude the train copies")


@click.command("audit")
@click.option("--json", "as_json", is_flag=True, help="Print the whole report as JSON.")
@click.option("--html", "html_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write a self-contained HTML page with plots and worst offenders.")
@click.option("--fail-on", "fail_on", multiple=True, metavar="RULE",
              help="Exit 1 when RULE holds, e.g. duplicates>0.05 (a fraction) or leakage>0 (a count). Repeatable.")
@click.option("--semantic", is_flag=True, help="Include semantic duplicates and leakage (computes embeddings).")
@click.option("--model", default=DEFAULT_EMBEDDER, show_default=True, help="Embedder for --semantic.")
@click.option("--worst", default=10, show_default=True, help="Worst offenders listed per section.")
@engine_options
@click.pass_context
def audit_cmd(ctx: click.Context, as_json: bool, html_path: Path | None, fail_on: tuple[str, ...], semantic: bool,
              model: str, worst: int, engine: str, ray_address: str | None) -> None:
    """Dataset quality report: composition, lengths, validation, duplicates, leakage, PII, refusals.

    Metrics for --fail-on: duplicates, leakage, pii, refusals, validation, empty, short, long,
    excluded. A value with a decimal point or % compares the fraction of active examples; an
    integer compares the count.

    \b
    curator audit
    curator audit --html report.html
    curator audit --json --fail-on 'duplicates>0.05' --fail-on 'leakage>0'
    curator audit --engine ray
    """
    from curator.quality.audit import audit, check_rules, parse_rule

    for rule in fail_on:
        parse_rule(rule)  # reject a bad rule before the (slow) audit
    ws = _ws(ctx)
    with _engine(engine, ray_address) as eng:
        report = audit(ws, semantic=semantic, model=model, worst=worst, progress=progress, engine=eng)
    failed = check_rules(report, fail_on)
    if html_path:
        from curator.quality.audit_report import render_html

        render_html(report, html_path, failed=failed)
        log(f"wrote {html_path}")
    if as_json:
        echo_json(report.to_dict() | {"failed": failed})
    else:
        click.echo(_summary(report.to_dict()))
    if failed:
        log("audit failed: " + "; ".join(failed))
        ctx.exit(1)


def _summary(d: dict[str, Any]) -> str:
    c, ln = d["counts"], d["lengths"]
    lines = [f"{c['active']} active examples ({c['excluded']} excluded)"]
    rows = [[s, *[c["by_split_origin"].get(f"{s}/{o}", 0) for o in c["by_origin"]], n]
            for s, n in c["by_split"].items()]
    lines += [table(["split", *c["by_origin"], "total"], rows), ""]
    unit = ln["unit"].split(" ")[0]
    lines.append(table([f"{unit}", "n", "p10", "p50", "p90", "p99", "max"],
                       [[s, p["n"], p["p10"], p["p50"], p["p90"], p["p99"], p["max"]]
                        for s, p in [*ln["by_split"].items(), ("all", ln["all"])] if p.get("n")]))
    if unit == "words" and "(" in ln["unit"]:  # why not tokens, e.g. the pip line of the [train] extra
        lines.append("lengths in " + ln["unit"])
    lines.append("")
    m = d["metrics"]
    dup = ", ".join(f"{k} {v['excluded']}" for k, v in d["duplicates"]["by_method"].items())
    lk = ", ".join(f"{k} {v}" for k, v in d["leakage"]["by_method"].items())
    pii = ", ".join(f"{k} {v}" for k, v in d["pii"]["by_kind"].items())
    verr = ", ".join(f"{k} {v}" for k, v in d["validation"]["errors"].items())
    rows = [
        ["duplicates", m["duplicates"]["count"], f"{m['duplicates']['fraction']:.2%}", dup],
        ["leakage", m["leakage"]["count"], f"{m['leakage']['fraction']:.2%}", lk],
        ["pii", m["pii"]["count"], f"{m['pii']['fraction']:.2%}", pii],
        ["refusals", m["refusals"]["count"], f"{m['refusals']['fraction']:.2%}", ""],
        ["validation", m["validation"]["count"], f"{m['validation']['fraction']:.2%}", verr],
        ["empty", m["empty"]["count"], f"{m['empty']['fraction']:.2%}", ""],
        ["short", m["short"]["count"], f"{m['short']['fraction']:.2%}", d["responses"]["rules"]["short"]],
        ["long", m["long"]["count"], f"{m['long']['fraction']:.2%}", d["responses"]["rules"]["long"]],
    ]
    lines.append(table(["check", "examples", "share", "detail"], rows))
    ro = d["roles"]
    lines.append("")
    lines.append("roles: " + ", ".join(f"{k} {v}" for k, v in ro["messages_by_role"].items())
                 + f"; {ro['with_system']} with a system prompt, {ro['multi_turn']} multi-turn")
    tasks = d["tasks"]
    lines.append(f"tasks: {len(tasks)} (" + ", ".join(f"{t} {v['examples']}" for t, v in list(tasks.items())[:8])
                 + (", ..." if len(tasks) > 8 else "") + ")")
    return "\n".join(lines)
