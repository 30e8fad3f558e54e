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
@click.pass_context
def demo(ctx: click.Context, quick: bool, seeds_dir: Path | None) -> None:
    """The whole loop on the bundled seeds, offline, in a fresh workspace."""
    from curator.loop.demo import run_demo

    run_demo(_ws(ctx), quick=quick, seeds_dir=seeds_dir, log=_log)
