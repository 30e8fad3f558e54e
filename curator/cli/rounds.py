"""``curator round`` and ``curator rounds``: the iterative loop from the command line."""

from __future__ import annotations

from pathlib import Path

import click

from curator.cli.kit import CuratorGroup, log, workspace
from curator.models import DEFAULT_CHAT_MODEL
from curator.output import echo_json, table

__all__ = ["bakeoff_cmd", "round_cmd", "rounds_group"]


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
@click.option("--max-eval", type=int, help="Evaluate on at most this many dev and test examples each.")
@click.option("--budget", type=float, help="Spend cap in USD for the teacher in this round.")
@click.option("--fresh", is_flag=True,
              help="Train each round from the base model instead of continuing from the champion's adapter.")
@click.option("--promote-if", type=click.Choice(["bootstrap", "mean", "mcnemar"]), default="bootstrap",
              show_default=True,
              help="How the round's run must beat the champion on the dev split to be promoted: the paired "
                   "bootstrap CI of the metric's delta above 0, the mean delta above 0, or McNemar on exact match.")
@click.option("--promote-metric", default=None,
              help="Headline metric of the promotion (default: accuracy on label tasks, else rougeL).")
@click.option("--folds", type=int, default=3, show_default=True,
              help="k of the k-fold fallback: with fewer than 8 dev examples, weaknesses come from held-out folds of train.")
@click.option("--promote-confidence", type=float, default=0.9, show_default=True,
              help="Confidence of the bootstrap interval (or 1 - the McNemar p threshold).")
@click.option("--baselines", default="zero_shot,few_shot,retrieval_few_shot", show_default=True,
              help="Prompting baselines of the base model evaluated on test beside the runs (comma-separated; '' for none).")
@click.option("--shots", type=int, default=5, show_default=True, help="Train examples in a few-shot prompt.")
@click.option("--traces/--no-traces", default=True, show_default=True,
              help="First ingest the rated traces of `curator serve` (as `curator feedback ingest --traces`).")
@click.option("--base", "base", help="Base model to train (a registry name, folder or hub id); "
                                     "'auto': the one the latest `curator bakeoff` recommends.")
@click.option("--max-new-tokens", type=int, default=256, show_default=True,
              help="Longest answer generated per dev and test example in the evaluations.")
@click.option("--html", "html", type=click.Path(path_type=Path), help="Write the round report here too.")
@click.option("--json", "as_json", is_flag=True)
@click.argument("overrides", nargs=-1)
@click.pass_context
def round_cmd(ctx: click.Context, n_rounds: int, task: str | None, teacher: str, config: Path | None,
              feedback: tuple[Path, ...], n_generate: int, dpo: bool | None, max_eval: int | None,
              budget: float | None, fresh: bool, promote_if: str, promote_metric: str | None, folds: int, promote_confidence: float,
              baselines: str, shots: int, traces: bool, base: str | None, max_new_tokens: int, html: Path | None, as_json: bool, overrides: tuple[str, ...]) -> None:
    """Run the loop: snapshot -> train -> dev decision -> test report -> dev weaknesses -> targeted data.

    The round's run (the challenger) becomes the champion only when it beats the current champion
    on the dev split (--promote-if); the next round continues from the champion.  The test split is
    evaluated for the report only: nothing from it reaches the teacher or the decision.  An
    interrupted round resumes where it stopped (finished training and evaluations are reused).
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
                         fresh=fresh, max_new_tokens=max_new_tokens, promote_if=promote_if,
                         promote_metric=promote_metric, promote_confidence=promote_confidence,
                         baselines=tuple(b.strip() for b in baselines.split(",") if b.strip()), shots=shots, base=base, traces=traces, folds=folds, log=log)
    report = write_round_report(ws, html)
    if as_json:
        echo_json({"rounds": [r.to_dict() for r in results], "report": str(report)})
        return
    for r in results:
        click.echo(f"round {r.round}: snapshot {r.snapshot_id}, run {r.run_id}, vs champion {r.baseline}: test "
                   + ", ".join(f"{m} {r.baseline_summary.get(m, 0):.3f} -> {r.summary.get(m, 0):.3f}"
                               for m in ("accuracy", "macro_f1", "rougeL", "key_phrase_rate") if m in r.summary))
        click.echo(f"  {r.promotion.get('reason', '')}; champion now {r.champion}")
        for mode, b in r.baselines.items():
            click.echo(f"  baseline {mode}: test rougeL {b['summary'].get('rougeL', float('nan')):.3f}")
    click.echo(f"report: {report}")


@click.group("rounds", cls=CuratorGroup)
def rounds_group() -> None:
    """The history of rounds."""


@rounds_group.command("list")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def rounds_list(ctx: click.Context, as_json: bool) -> None:
    """Each round: snapshot, run, whether it was promoted, the champion after it, test metrics vs the champion before.

    `test human` is the mean human rating (n answers) of the round's test evaluation from `curator
    review`, `-` without ratings; --json also has the dev evaluation's (`human_dev`).

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
        promoted = "" if r["status"] != "done" else "yes" if r["promoted"] else "no"
        h = r.get("human")
        human = f"{h['mean']:.2f} ({h['n']})" if h else "-"
        out.append((r["round"], r["status"], r["snapshot_id"] or "", r["run_id"] or "", r["baseline"] or "",
                    promoted, r["champion"] or "", *cells, human))
    click.echo(table(["round", "status", "snapshot", "run", "vs", "promoted", "champion", "test rougeL",
                      "key phrases", "bleu", "test human"], out))


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


@click.command("bakeoff")
@click.option("--models", required=True,
              help="Comma-separated base models: registry names (local:...), model folders, or hub ids when online.")
@click.option("--few-shot", "few_shot", type=int, default=5, show_default=True,
              help="Also evaluate each model with this many train examples in the prompt (0: zero-shot only).")
@click.option("--task", help="Score only this task's examples.")
@click.option("--snapshot", default="latest", show_default=True)
@click.option("--split", type=click.Choice(["eval", "test"]), default="test", show_default=True)
@click.option("--metric", default="rougeL", show_default=True, help="The metric the recommendation is made on.")
@click.option("--max-eval", type=int, help="Evaluate on at most this many examples.")
@click.option("--max-new-tokens", type=int, default=256, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def bakeoff_cmd(ctx: click.Context, models: str, few_shot: int, task: str | None, snapshot: str, split: str,
                metric: str, max_eval: int | None, max_new_tokens: int, as_json: bool) -> None:
    """Benchmark several base models, zero- and few-shot, before committing to one; recommend the best.

    `curator round --base auto` then trains the recommended model.

    \b
    curator bakeoff --models local:smollm2-135m-instruct,./models/qwen2.5-0.5b --few-shot 5
    curator bakeoff --models local:smollm2-135m-instruct --task support --json
    """
    from curator.loop.bakeoff import bakeoff

    out = bakeoff(workspace(ctx), models.split(","), few_shot=few_shot, task=task, snapshot=snapshot, split=split,
                  metric=metric, max_eval=max_eval, max_new_tokens=max_new_tokens, log=log)
    if as_json:
        echo_json(out)
        return
    click.echo(table(["model", "prompting", "n", metric, "key phrases"],
                     [(r["model"], r["prompting"].replace("_", "-") + (f" ({r['shots']})" if r["shots"] else ""),
                       r["n"], f"{r[metric]:.3f}" if isinstance(r[metric], int | float) else "-",
                       f"{r['key_phrase_rate']:.3f}" if isinstance(r["key_phrase_rate"], int | float) else "-")
                      for r in out["rows"]]))
    rec = out["recommendation"]
    click.echo(f"recommended: {rec['model']} ({rec['why']}); train it with `curator round --base auto`")
