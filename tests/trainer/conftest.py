"""Fixtures for trainer tests: a small pinned-split snapshot, tiny-model config overrides, a fake OpenAI."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

_HERE = Path(__file__).resolve().parent
for _p in (str(_HERE.parent), str(_HERE)):  # fakeserver, helpers, trainer_helpers however pytest is started
    if _p not in sys.path:
        sys.path.insert(0, _p)

from trainer_helpers import build_snapshot, tiny_overrides  # noqa: E402


@pytest.fixture
def snapshot(ws: Any, tmp_path: Path) -> str:
    return build_snapshot(ws, tmp_path)


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Any:
    """One tiny-model SFT run (2 steps, fixed seed) in its own workspace, shared by many tests."""
    from types import SimpleNamespace

    from curator.workspace import Workspace
    from trainer import train

    root = tmp_path_factory.mktemp("trained")
    ws = Workspace(root / "ws")
    sid = build_snapshot(ws, root)
    logs: list[str] = []
    run = train(ws, sid, overrides=tiny_overrides(tiny_model_dir), progress=False, log=logs.append)
    return SimpleNamespace(ws=ws, snapshot=sid, run=run, model_dir=tiny_model_dir, logs=logs)
