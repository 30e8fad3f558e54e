"""The ``curator`` command line: thin commands over library functions.

Every command takes ``--help``; reporting commands take ``--json``.  A :class:`CuratorError`
prints ``Error: <message>`` and exits 1; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import logging
from pathlib import Path

import click

from curator import __version__
from curator.cli import (
    data,
    demo,
    evals,
    feedback,
    generate,
    models,
    quality,
    review,
    rounds,
    serve,
    snapshot,
    train,
)
from curator.cli import traces as traces_cli
from curator.cli.kit import CuratorGroup, configure_logging, configure_process
from curator.workspace import Workspace

__all__ = ["main"]


@click.group(cls=CuratorGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--workspace", "-w", type=click.Path(file_okay=False, path_type=Path), envvar="CURATOR_WORKSPACE",
    default=".curator", show_default=True, help="Workspace folder (env CURATOR_WORKSPACE).",
)
@click.option("--verbose", "-v", is_flag=True, help="Debug detail on stderr.")
@click.option("--quiet", "-q", is_flag=True, help="Only warnings and errors on stderr (no progress); --json output is unchanged.")
@click.version_option(__version__, prog_name="curator")
@click.pass_context
def main(ctx: click.Context, workspace: Path, verbose: bool, quiet: bool) -> None:
    """curator: seed examples and production feedback in, a better fine-tuned model out.

    Notes, stage lines and progress go to stderr: a bar on a terminal, otherwise a heartbeat line
    every 10 s (env CURATOR_HEARTBEAT, seconds).
    """
    if verbose and quiet:
        raise click.UsageError("-v/--verbose and -q/--quiet contradict each other")
    configure_process()
    configure_logging(1 if verbose else -1 if quiet else 0)
    logging.getLogger(__name__).debug("curator %s, workspace %s", __version__, workspace)
    ctx.obj = {"workspace": Workspace(workspace)}


#: Every command of ``curator``, in the order ``curator --help`` lists them by group.
COMMANDS: list[click.Command] = [
    data.ingest, data.validate, data.stats,
    quality.dedup_cmd, quality.restore_cmd, quality.leakage_cmd, quality.audit_cmd,
    generate.generate_cmd,
    feedback.feedback,
    snapshot.snapshot,
    train.train_cmd, train.runs_group, train.lineage_cmd, train.chat_cmd, train.export_model_cmd,
    evals.eval_cmd, evals.compare_cmd, evals.evals_cmd, evals.weaknesses_cmd, evals.judge_cmd,
    rounds.round_cmd, rounds.rounds_group, rounds.bakeoff_cmd,
    serve.serve_cmd, traces_cli.traces, review.review_cmd,
    models.models,
    demo.demo,
]

for _command in COMMANDS:
    main.add_command(_command)
