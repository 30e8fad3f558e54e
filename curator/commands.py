"""Registry of the commands that live outside ``cli.py`` (quality, synth, feedback, trainer, evals, rounds).

Each module exposes ``register(group)``; missing modules are skipped so the CLI works while parts are built.
"""

from __future__ import annotations

import importlib

import click

_MODULES: list[str] = []


def register(group: click.Group) -> None:
    for name in _MODULES:
        importlib.import_module(name).register(group)
