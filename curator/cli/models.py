"""The ``models`` group: the local model registry."""

from __future__ import annotations

import click

from curator.cli.kit import CuratorGroup
from curator.cli.kit import log as _log
from curator.output import echo_json, table

__all__ = ['models']


# -- models ------------------------------------------------------------------------------------------------------
@click.group(cls=CuratorGroup)
def models() -> None:
    """Local models shipped in Python packages (no hub downloads)."""


@models.command("list")
@click.option("--json", "as_json", is_flag=True)
def models_list(as_json: bool) -> None:
    """List the local model registry and whether each model is ready."""
    from curator.models import list_models

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
    from curator.models import prepare

    path = prepare(name, force=force, log=_log)
    click.echo(str(path))
