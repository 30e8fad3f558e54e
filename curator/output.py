"""Small helpers for command output: JSON, aligned tables, progress on stderr.

``progress`` lives in :mod:`curator.progress` (a bar on a terminal, heartbeat log lines elsewhere)
and is re-exported here.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import click

from curator.progress import Progress, progress

__all__ = ["Progress", "echo_json", "progress", "table"]


def echo_json(obj: Any) -> None:
    click.echo(json.dumps(obj, indent=2, ensure_ascii=False, default=str))


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain aligned text table (stable for tests, readable in logs)."""
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
