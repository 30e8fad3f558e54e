"""Shared fixtures: every test gets its own workspace; nothing touches real state."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
SHARED_DATA = ROOT.parent / "shared" / "data"
sys.path.insert(0, str(TESTS))  # fakeserver and helpers

# The test process is configured as the `curator` command configures its own (offline hub, quiet
# third-party noise): the library does not do it on import.
from curator.cli.kit import configure_process  # noqa: E402

configure_process()


@pytest.fixture(autouse=True)
def _isolated_workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    ws = tmp_path / "ws"
    monkeypatch.setenv("CURATOR_WORKSPACE", str(ws))
    return ws


@pytest.fixture
def ws(_isolated_workspace: Path):
    from curator.workspace import Workspace

    return Workspace(_isolated_workspace)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.exists():
        pytest.skip(f"shared datasets not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random 2-layer Llama with the SmolLM2 tokenizer (about 3 M parameters)."""
    from curator.models import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture
def fake_llm():
    """A started fake OpenAI + Anthropic server on 127.0.0.1."""
    from fakeserver import FakeLLMServer

    with FakeLLMServer() as server:
        yield server
