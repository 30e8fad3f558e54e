"""Pieces every command module shares: the error-handling group, the workspace, stderr logging.

A command module outside ``cli.py`` defines ``register(group: click.Group)`` and adds its commands;
``curator/commands.py`` lists the modules.
"""

from __future__ import annotations

import logging
import os
import warnings
from typing import Any

import click

from curator.errors import CuratorError
from curator.workspace import Workspace

__all__ = ["CuratorGroup", "configure_process", "log", "workspace"]


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


def configure_process() -> None:
    """What the ``curator`` process needs before any model library is imported.

    * No code path reaches a model hub unless the user asked for it: every bundled model comes
      from a Python package or a local folder, so the hub libraries run offline unless the user
      set these variables.
    * Under CPU oversubscription, OpenMP threads that spin while waiting make torch several
      times slower (a LoRA step of the tiny test model: 3.7 s with the default policy, 0.1-0.4 s
      with ``PASSIVE`` under the same load).
    * Noise a user cannot act on: bitsandbytes asks the hub for a CPU kernel curator does not use,
      and transformers warns about its own deprecated alias when TRL prepares a model.

    The library itself sets none of this: ``import curator`` leaves the process as it was.
    """
    for name, value in (("HF_HUB_OFFLINE", "1"), ("TRANSFORMERS_OFFLINE", "1"), ("HF_DATASETS_OFFLINE", "1"),
                        ("TOKENIZERS_PARALLELISM", "false"), ("OMP_WAIT_POLICY", "PASSIVE")):
        os.environ.setdefault(name, value)
    logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message=r"`is_gradient_checkpointing` is deprecated", category=FutureWarning)
