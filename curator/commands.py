"""Command modules that live outside ``cli.py``; each defines ``register(group)``.

A module that is not there (yet) is skipped, so the CLI works while parts are being built.
"""

from __future__ import annotations

import importlib

import click

MODULES = (
    "curator.quality_cli",   # dedup, restore, leakage, audit
    "curator.synth.cli",     # generate
    "curator.feedback.cli",  # feedback ingest
    "trainer.cli",           # train, runs, lineage, chat, export-model
    "evals.cli",             # eval
    "curator.rounds_cli",    # round, rounds
)


def register(group: click.Group) -> None:
    for name in MODULES:
        try:
            mod = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name == name:
                continue
            raise
        mod.register(group)
