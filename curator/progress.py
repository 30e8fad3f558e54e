"""Progress of long steps: a rich bar on a terminal, a heartbeat log line everywhere else.

``progress(description, total)`` opens a *stage* (a context manager with ``advance(n)`` and
``update(**fields)``). Where it shows depends on stderr and on the ``curator`` loggers:

* the ``curator.progress`` logger is not enabled for INFO (``curator -q``, or a library caller
  that configured no logging) or ``enabled=False``: nothing;
* stderr is a terminal: the rich bar (description, bar, done/total, elapsed, time left, note);
* otherwise (CI, ``nohup``, Slurm logs, pipes): INFO lines through :mod:`logging`, one when the
  stage starts, one every :func:`heartbeat_interval` seconds while it runs (``CURATOR_HEARTBEAT``,
  default 10 s) and one when it ends::

      [dedup near] 0/100000 (0%) started
      [dedup near] 41000/100000 (41%) 12.3 s elapsed, ~17 s left - signatures
      [dedup near] 100000/100000 (100%) done in 29.8 s

A heartbeat costs nothing until it is due: ``advance(n)`` adds ``n`` and compares one clock
reading with the next due time; the line is formatted only when it is written. ``update`` checks
the clock too, so a stage that only changes its note (a phase name, a job status) heartbeats as well.
The library never adds handlers: the ``curator`` command line configures logging
(:func:`curator.cli.kit.configure_logging`).
"""

from __future__ import annotations

import logging
import math
import os
import sys
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from types import TracebackType
from typing import Any, Literal

__all__ = ["DEFAULT_INTERVAL", "HEARTBEAT_ENV", "Progress", "format_seconds", "heartbeat_interval", "progress",
           "progress_mode"]

log = logging.getLogger(__name__)

#: Seconds between two heartbeat lines unless ``CURATOR_HEARTBEAT`` says otherwise.
DEFAULT_INTERVAL = 10.0
HEARTBEAT_ENV = "CURATOR_HEARTBEAT"

Mode = Literal["bar", "heartbeat"]


def heartbeat_interval() -> float:
    """Seconds between heartbeat lines: ``CURATOR_HEARTBEAT`` (a number >= 0) or 10."""
    raw = os.environ.get(HEARTBEAT_ENV, "").strip()
    if not raw:
        return DEFAULT_INTERVAL
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not math.isfinite(value) or value < 0:
        log.warning("%s=%r is not a number of seconds >= 0; using %g", HEARTBEAT_ENV, raw, DEFAULT_INTERVAL)
        return DEFAULT_INTERVAL
    return value


def progress_mode(enabled: bool | None = None) -> Mode | None:
    """How progress shows now: ``"bar"`` (stderr is a terminal), ``"heartbeat"`` (log lines) or None (quiet)."""
    if enabled is False or not log.isEnabledFor(logging.INFO):
        return None
    try:
        tty = sys.stderr.isatty()
    except (AttributeError, ValueError):  # a closed or odd stream
        tty = False
    return "bar" if tty else "heartbeat"


def format_seconds(s: float) -> str:
    """``0.4 s``, ``12.3 s``, ``4 min 05 s``, ``2 h 03 min``."""
    if s < 60:
        return f"{s:.1f} s"
    s = round(s)
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


class Progress(AbstractContextManager["Progress"]):
    """One stage of a long step; see the module docstring. Use it with ``with``."""

    __slots__ = ("_bar", "_clock", "_done0", "_due", "_interval", "_open", "_task", "_t0", "description", "done",
                 "mode", "note", "total")

    def __init__(self, description: str, total: int | None = None, *, mode: Mode | None = "heartbeat",
                 interval: float | None = None, clock: Callable[[], float] | None = None) -> None:
        self.description = description
        self.total = total
        self.done = 0
        self.note = ""
        self.mode = mode
        self._interval = heartbeat_interval() if interval is None else interval
        self._clock = clock or time.monotonic
        self._t0 = 0.0
        self._done0 = 0
        # Heartbeats only: when the next line is due (None while not started, off or in bar mode).
        self._due: float | None = None
        self._bar: Any = None
        self._task: Any = None
        self._open = False

    # -- the stage -----------------------------------------------------------------------------------------
    def __enter__(self) -> Progress:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close(ok=exc_type is None)

    def start(self) -> None:
        """Open the stage: the bar appears, or the start line is logged."""
        if self._open:
            return
        self._open = True
        self._t0 = self._clock()
        self._done0 = self.done
        if self.mode == "bar":
            self._start_bar()
        elif self.mode == "heartbeat":
            log.info("%s started", self._head() if self.total is not None else f"[{self.description}]")
            self._due = self._t0 + self._interval

    def close(self, ok: bool = True) -> None:
        """End the stage: the bar stops, or the end line is logged (``stopped`` when ``ok`` is false)."""
        if not self._open:
            return
        self._open = False
        self._due = None
        if self._bar is not None:
            bar, self._bar = self._bar, None
            bar.stop()
        elif self.mode == "heartbeat":
            took = format_seconds(self._clock() - self._t0)
            log.info("%s %s%s", self._head(), f"done in {took}" if ok else f"stopped after {took}", self._tail())

    # -- what long steps call --------------------------------------------------------------------------------
    def advance(self, n: int = 1) -> None:
        """``n`` more items done. In heartbeat mode: one clock reading, a line only when one is due."""
        self.done += n
        if self._due is not None:
            # the stage's last advance leaves the line to close(), which comes next
            if self._clock() >= self._due and (self.total is None or self.done < self.total):
                self._beat()
        elif self._bar is not None:
            self._bar.advance(self._task, n)

    def update(self, **fields: Any) -> None:
        """Change ``total``, ``completed``, ``advance``, ``description`` or ``note`` (as rich's ``update``)."""
        if "total" in fields:
            self.total = fields["total"]
        if "completed" in fields:
            self.done = int(fields["completed"])
        if "advance" in fields:
            self.done += int(fields["advance"])
        if "description" in fields:
            self.description = str(fields["description"])
        if "note" in fields:
            self.note = str(fields["note"])
        if self._due is not None:
            finished = self.total is not None and self.done >= self.total and ("completed" in fields or "advance" in fields)
            if not finished and self._clock() >= self._due:
                self._beat()
        elif self._bar is not None:
            self._bar.update(self._task, **fields)

    # -- lines -------------------------------------------------------------------------------------------------
    def _head(self) -> str:
        if self.total is None:
            return f"[{self.description}] {self.done}"
        pct = 100 * self.done // self.total if self.total else 100
        return f"[{self.description}] {self.done}/{self.total} ({pct}%)"

    def _tail(self) -> str:
        return f" - {self.note}" if self.note else ""

    def _beat(self) -> None:
        now = self._clock()
        elapsed = now - self._t0
        line = f"{self._head()} {format_seconds(elapsed)} elapsed"
        rate_done = self.done - self._done0
        if self.total is not None and 0 < rate_done and self.done < self.total and elapsed > 0:
            left = elapsed * (self.total - self.done) / rate_done
            line += f", ~{format_seconds(left) if left >= 60 else f'{max(1, round(left))} s'} left"
        log.info("%s%s", line, self._tail())
        self._due = now + self._interval

    def _start_bar(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )
        from rich.progress import Progress as RichProgress

        bar = RichProgress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            TimeRemainingColumn(), TextColumn("{task.fields[note]}"), console=Console(stderr=True), transient=False,
        )
        bar.start()
        self._task = bar.add_task(self.description, total=self.total, completed=self.done, note=self.note)
        self._bar = bar


def progress(description: str, total: int | None = None, *, enabled: bool | None = None,
             interval: float | None = None, clock: Callable[[], float] | None = None) -> Progress:
    """A progress stage for a long step: ``with progress("dedup near", n) as bar: ... bar.advance(k)``.

    ``enabled=False`` makes it silent; otherwise (``None`` or ``True``) it is a bar on a terminal and
    heartbeat lines elsewhere, and nothing when logging is quieter than INFO (``curator -q``).
    ``interval`` (seconds between heartbeats, default :func:`heartbeat_interval`) and ``clock``
    (default :func:`time.monotonic`) are there for tests.
    """
    return Progress(description, total, mode=progress_mode(enabled), interval=interval, clock=clock)
