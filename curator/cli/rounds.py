"""``curator round`` and ``curator rounds``: the iterative loop from the command line."""

from __future__ import annotations

from pathlib import Path

import click

from curator.cli.kit import CuratorGroup, log, workspace
from curator.models import DEFAULT_CHAT_MODEL
from curator.output import echo_json, table

__all__ = ["round_cmd", "rounds_group"]


@click.command("round")
@click.option("--rounds", "n_rounds", type=int, default=1, show_default=True, help="How many rounds to run.")
@click.option("--task", help="Task whose weaknesses drive targeted generation (default: all tasks).")
@click.option("--teacher", default=DEFAULT_CHAT_MODEL, show_default=True,
              help="Teacher for targeted data: local:NAME|PATH, openai:MODEL, anthropic:MODEL, compatible:URL:MODEL.")
@click.option("--config", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Training config YAML (default: configs/smollm2-lora-cpu.yaml settings).")
@click.option("--feedback", "feedback", multiple=True, type=click.Path(path_type=Path),
              help="Feedback log(s) to ingest at the start of the round.")
@click.option("--generate", "n_generate", type=int, default=24, show_default=True,
              help="Targeted examples to ask the teacher for at the end of the round (0: none).")
@click.option("--dpo/--no-dpo", default=None, help="Also train DPO on the snapshot's preference pairs.")
@click.option("--max-eval", type=int, help="Evaluate on at most this many test examples.")
@click.option("--budget", type=float, help="Spend cap in USD for the teacher in this round.")
@click.option("--fresh", is_flag=True,
              help="Train each round from the base model instead of continuing from the previous round's adapter.")
@click.option("--max-new-tokens", type=int, default=256, show_default=True,
              help="Longest answer generated per test example in the evaluation.")
@click.option("--html", "html", type=click.Path(path_type=Path), help="Write the round report here too.")
@click.option("--json", "as_json", is_flag=True)
@click.argument("overrides", nargs=-1)
@click.pass_context
def round_cmd(ctx: click.Context, n_rounds: int, task: str | None, teacher: str, config: Path | None,
              feedback: tuple[Path, ...], n_generate: int, dpo: bool | None, max_eval: int | None,
              budget: float | None, fresh: bool, max_new_tokens: int, html: Path | None, as_json: bool,
              overrides: tuple[str, ...]) -> None:
    """Run the loop: snapshot -> train -> evaluate -> weaknesses -> targeted data.

    An interrupted round resumes where it stopped (finished training and evaluations are reused).
    Training overrides go after the options as key=value.

    \b
    curator round --task support
    curator round --rounds 2 --teacher openai:gpt-4o-mini --budget 2 --feedback logs/week48.jsonl
    curator round --config configs/smollm2-lora-cpu.yaml max_steps=40
    """
    from curator.loop.report import write_round_report
    from curator.loop.rounds import run_rounds

    ws = workspace(ctx)
    results = run_rounds(ws, n_rounds, task=task, teacher=teacher, config=config, overrides=list(overrides),
                         feedback=list(feedback), n_generate=n_generate, dpo=dpo, max_eval=max_eval, budget=budget,
                         fresh=fresh, max_new_tokens=max_new_tokens, log=log)
    report = write_round_report(ws, html)
    if as_json:
        echo_json({"rounds": [r.to_dict() for r in results], "report": str(report)})
        return
    for r in results:
        click.echo(f"round {r.round}: snapshot {r.snapshot_id}, run {r.run_id}, vs {r.baseline}: "
                   + ", ".join(f"{m} {r.baseline_summary.get(m, 0):.3f} -> {r.summary.get(m, 0):.3f}"
                               for m in ("rougeL", "key_phrase_rate") if m in r.summary))
    click.echo(f"report: {report}")


@click.group("rounds", cls=CuratorGroup)
def rounds_group() -> None:
    """The history of rounds."""


@rounds_group.command("list")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def rounds_list(ctx: click.Context, as_json: bool) -> None:
    """Each round with its snapshot, run and test metrics, and the change from its baseline.

    \b
    curator rounds list
    """
    from curator.loop.rounds import list_rounds

    rows = list_rounds(workspace(ctx))
    if as_json:
        echo_json(rows)
        return
    if not rows:
        click.echo("no rounds yet: run `curator round`")
        return
    out = []
    for r in rows:
        s, b = r["summary"], r["baseline_summary"]
        cells = []
        for m in ("rougeL", "key_phrase_rate", "bleu"):
            if m in s:
                delta = s[m] - b.get(m, 0) if m in b else None
                cells.append(f"{s[m]:.3f}" + (f" ({delta:+.3f})" if delta is not None else ""))
            else:
                cells.append("-")
        out.append((r["round"], r["status"], r["snapshot_id"] or "", r["run_id"] or "", r["baseline"] or "", *cells))
    click.echo(table(["round", "status", "snapshot", "run", "vs", "rougeL", "key phrases", "bleu"], out))


@rounds_group.command("report")
@click.option("--html", "html", type=click.Path(path_type=Path), help="Output path (default reports/rounds.html).")
@click.pass_context
def rounds_report(ctx: click.Context, html: Path | None) -> None:
    """Write the HTML round report (metrics per round, loss curves, data by origin, fixed/broken, lineage).

    \b
    curator rounds report --html rounds.html
    """
    from curator.loop.report import write_round_report

    click.echo(str(write_round_report(workspace(ctx), html)))
