"""Pieces every command module shares: the error-handling group, the workspace, stderr logging.

Logging: :func:`configure_logging` (called by the ``main`` group with ``-v`` / ``-q``) is the one
place that adds a handler; library code only calls ``logging.getLogger(__name__)``.

A command module outside ``cli.py`` defines ``register(group: click.Group)`` and adds its commands;
``curator/commands.py`` lists the modules.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import warnings
from typing import Any

import click

from curator.errors import CuratorError, WorkspaceError
from curator.progress import progress_mode
from curator.workspace import Workspace

__all__ = ["READ_COMMANDS", "CuratorGroup", "Number", "configure_logging", "configure_process", "log", "workspace"]


class CuratorGroup(click.Group):
    """Turns :class:`CuratorError` into ``Error: ...`` on stderr and exit code 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except CuratorError as e:
            click.echo(f"Error: {e}", err=True)
            ctx.exit(1)


class Number(click.ParamType[float]):
    """A finite number in a range: ``Number(float, min=0, min_open=True)``.

    Click's ``FloatRange`` lets ``nan`` through (every comparison with it is false) and ``inf`` when
    no maximum is set; an option typed ``Number`` refuses both, so ``--budget nan`` cannot lift a cap.
    """

    def __init__(self, kind: type = float, *, min: float | None = None, max: float | None = None,
                 min_open: bool = False) -> None:
        self.kind, self.min, self.max, self.min_open = kind, min, max, min_open
        self.name = "integer" if kind is int else "number"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number: float
        if isinstance(value, int | float) and not isinstance(value, bool):
            number = value
        else:
            try:
                number = self.kind(str(value).strip())
            except ValueError:
                self.fail(f"{value!r} is not {'an integer' if self.kind is int else 'a number'}", param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        low_ok = self.min is None or (number > self.min if self.min_open else number >= self.min)
        if not low_ok or (self.max is not None and number > self.max):
            self.fail(f"{value!r} is not {self._range()}", param, ctx)
        return number

    def _range(self) -> str:
        parts = []
        if self.min is not None:
            parts.append(f"{'>' if self.min_open else '>='} {self.min:g}")
        if self.max is not None:
            parts.append(f"<= {self.max:g}")
        return " and ".join(parts) or "a number"


#: Commands that only read: on a folder that holds no workspace they say so (exit 1) instead of
#: creating an empty one, and they open the database read-only (beside other readers, such as a
#: ``duckdb -readonly`` shell).  Every other command creates the workspace when it is missing.
READ_COMMANDS = frozenset({
    "stats", "compare", "lineage", "weaknesses", "evals", "chat", "export-model", "feedback list", "feedback pairs",
    "feedback stats", "rounds list", "rounds report", "runs list", "runs show", "snapshot diff", "snapshot export",
    "snapshot list", "snapshot show", "traces list", "traces show", "traces stats",
})


def _command_name(ctx: click.Context) -> str:
    names: list[str] = []
    c: click.Context | None = ctx
    while c is not None and c.parent is not None:
        names.append(c.info_name or "")
        c = c.parent
    return " ".join(reversed(names))


def workspace(ctx: click.Context) -> Workspace:
    """The workspace chosen with ``--workspace`` / ``CURATOR_WORKSPACE``.

    For a command of :data:`READ_COMMANDS` the workspace must exist already (``WorkspaceError`` otherwise),
    and it is opened read-only.
    """
    ws: Workspace = ctx.find_root().obj["workspace"]
    if _command_name(ctx) in READ_COMMANDS:
        if not ws.exists():
            raise WorkspaceError(f"no workspace at {ws.path} (nothing ingested there yet): pass --workspace DIR "
                                 "or set CURATOR_WORKSPACE, or start one with `curator ingest`")
        ws.read_only = True
    return ws


_log = logging.getLogger("curator.cli")

#: The loggers of curator's own packages (``trainer`` and ``evals`` sit beside ``curator``).
OWN_LOGGERS = ("curator", "trainer", "evals")


def log(msg: str) -> None:
    """A note for the user (INFO on the ``curator.cli`` logger): stderr, so stdout stays clean for ``--json``."""
    _log.info(msg)


class _StderrHandler(logging.Handler):
    """Writes to whatever ``sys.stderr`` is when a record comes (a progress bar or a test runner may swap it)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            stream = sys.stderr
            stream.write(self.format(record) + "\n")
            stream.flush()
        except Exception:
            self.handleError(record)


class _Formatter(logging.Formatter):
    """INFO is the bare message (stage lines, heartbeats, notes); other levels say their level, and
    records of other libraries their logger."""

    def format(self, record: logging.LogRecord) -> str:
        msg = record.getMessage()
        if record.exc_info:
            msg += "\n" + self.formatException(record.exc_info)
        if record.levelno == logging.INFO:
            return msg
        own = record.name.split(".", 1)[0] in OWN_LOGGERS
        return f"{record.levelname.lower()}: {msg}" if own else f"{record.levelname.lower()} [{record.name}]: {msg}"


def configure_logging(verbosity: int = 0) -> None:
    """One logging setup for the ``curator`` process: ``-1`` (``-q``), ``0`` (default) or ``1`` (``-v``).

    curator's loggers (``curator``, ``trainer``, ``evals``) log at WARNING under ``-q``, INFO by
    default (stage lines, heartbeats, notes), DEBUG under ``-v``; every other library stays at
    WARNING (the root logger's level). One handler on the root logger writes to stderr; calling this
    again (one process, several commands, as in tests) replaces it rather than adding a second one.
    """
    level = logging.WARNING if verbosity < 0 else logging.DEBUG if verbosity > 0 else logging.INFO
    root = logging.getLogger()
    for h in [h for h in root.handlers if isinstance(h, _StderrHandler)]:
        root.removeHandler(h)
    handler = _StderrHandler()
    handler.setFormatter(_Formatter())
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    for name in OWN_LOGGERS:
        logging.getLogger(name).setLevel(level)
    if progress_mode() != "bar":
        # Hugging Face's tqdm bars ("Loading weights: 40%|####") would be drawn into a log file or under -q.
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        if "transformers.utils.logging" in sys.modules:  # imported already: the variable came too late
            sys.modules["transformers.utils.logging"].disable_progress_bar()


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
