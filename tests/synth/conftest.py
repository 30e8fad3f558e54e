from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

_TESTS = str(Path(__file__).resolve().parents[1])
if _TESTS not in sys.path:  # makes `from fakeserver import ...` work however pytest is started
    sys.path.insert(0, _TESTS)

from fakeserver import FakeLLMServer  # noqa: E402


@pytest.fixture
def fake_llm() -> Iterator[FakeLLMServer]:
    """A started fake OpenAI + Anthropic server on 127.0.0.1."""
    with FakeLLMServer() as server:
        yield server
