"""Pieces every command module shares: the error-handling group, the workspace, stderr logging.

A command module outside ``cli.py`` defines ``register(group: click.Group)`` and adds its commands;
``curator/commands.py`` lists the modules.
"""

from __future__ import annotations

from typing import Any

import click

from .errors import CuratorError
from .workspace import Workspace

__all__ = ["CuratorGroup", "log", "workspace"]


class CuratorGroup(click.Group):
    """Turns :class:`CuratorError` into ``Error: ...`` on stderr and exit code 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except CuratorError as e:
            click.echo(f"Error: {e}", err=True)
            ctx.exit(1)


def workspace(ctx: click.Context) -> Workspace:
    """The workspace chosen with ``--workspace`` / ``CURATOR_WORKSPACE``."""
    return ctx.find_root().obj["workspace"]


def log(msg: str) -> None:
    """Progress and notes go to stderr so stdout stays clean for ``--json``."""
    click.echo(msg, err=True)
