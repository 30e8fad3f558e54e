"""The ``demo`` command: the whole loop on the bundled seeds."""

from __future__ import annotations

from pathlib import Path

import click

from curator.cli.kit import log as _log
from curator.cli.kit import workspace as _ws

__all__ = ['demo']


# -- demo --------------------------------------------------------------------------------------------------------
@click.command()
@click.option("--quick", is_flag=True, help="A shorter run.")
@click.option("--seeds-dir", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Folder with seeds.jsonl and test.jsonl (default: the bundled seeds/support).")
@click.option("--seed", type=int, default=42, show_default=True,
              help="Training seed of both rounds and seed of the synthetic generation.")
@click.pass_context
def demo(ctx: click.Context, quick: bool, seeds_dir: Path | None, seed: int) -> None:
    """The whole loop on the bundled seeds, offline, in a fresh workspace.

    Seeds -> synthetic data -> dedup -> leakage -> round 1 -> `curator serve --champion` answers the
    questions of seeds/support/traffic.jsonl and a scripted user rates them -> round 2 learns from
    those ratings -> the metrics table and the HTML report.

    \b
    curator demo
    curator --workspace /tmp/demo demo --quick --seed 7
    """
    from curator.loop.demo import run_demo

    run_demo(_ws(ctx), quick=quick, seeds_dir=seeds_dir, seed=seed, log=_log)
