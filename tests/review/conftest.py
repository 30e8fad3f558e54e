"""Fixtures for the review tests: a built workspace, and the review app on a real uvicorn on 127.0.0.1."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

_HERE = Path(__file__).resolve().parent
if str(_HERE) not in sys.path:
    sys.path.insert(0, str(_HERE))

from review_helpers import AppServer, build  # noqa: E402


@pytest.fixture
def built(ws: Any, tmp_path: Path) -> dict[str, Any]:
    """``ws`` with seeds, imports (planted markup, a refusal), test examples and two evaluations."""
    return build(ws, tmp_path / "data")


@pytest.fixture
def server(ws: Any, built: dict[str, Any]) -> Iterator[AppServer]:
    """The review app for reviewer ``ann`` on a free port (uvicorn in a thread of this process)."""
    with AppServer(ws, reviewer="ann") as s:
        yield s
