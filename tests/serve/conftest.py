"""Fixtures for the serve tests: a template workspace with two adapter runs on the tiny model."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

_HERE = Path(__file__).resolve().parent
for _p in (str(_HERE.parent), str(_HERE)):
    if _p not in sys.path:
        sys.path.insert(0, _p)

from serve_helpers import build_workspace, copy_workspace  # noqa: E402


@pytest.fixture(scope="session")
def serve_template(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Path:
    """A workspace with runs ``alpha`` and ``bravo`` (random LoRA weights), built once per session."""
    return build_workspace(tmp_path_factory.mktemp("serve-template") / "ws", tiny_model_dir)


@pytest.fixture
def serve_ws(serve_template: Path, tmp_path: Path) -> Path:
    """A fresh copy of the template workspace for one test."""
    return copy_workspace(serve_template, tmp_path / "sws")
