"""While `generate()` waits on the teacher, the workspace is free: other commands and processes use it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from fakeserver import FakeLLMServer, RecordedRequest
from synth.synth_helpers import ROOT, rows, seeded_workspace, unique_pair

from curator.cli import main
from curator.synth import FilterConfig, GenerateOptions, RetryPolicy, generate
from curator.workspace import Workspace


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch, fake_llm: FakeLLMServer) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-workspace-free")
    monkeypatch.setenv("OPENAI_BASE_URL", fake_llm.openai_base_url)
    monkeypatch.setenv("CURATOR_KEYS_FILE", "/nonexistent/keys.yaml")
    for var in ("CURATOR_PRICES", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


def _env_of_child() -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if "PROXY" not in k.upper()}
    e["PYTHONPATH"] = str(ROOT)
    return e


def test_the_network_phase_holds_no_workspace_lock(ws: Workspace, fake_llm: FakeLLMServer, tmp_path: Path) -> None:
    seeded_workspace(ws)
    arrived, release = threading.Event(), threading.Event()

    def responder(rec: RecordedRequest) -> str:
        arrived.set()
        release.wait(120)  # the teacher is slow: every request waits until the test is done below
        return unique_pair(rec)

    fake_llm.responder = responder
    opts = GenerateOptions(teacher="openai:gpt-4o-mini", task="support", n=3, concurrency=3, progress=False,
                           filters=FilterConfig(skip=frozenset({"semantic"})), retry=RetryPolicy(max_attempts=1))
    result: list[Any] = []
    worker = threading.Thread(target=lambda: result.append(_run(ws, opts)))
    worker.start()
    extra = tmp_path / "more.jsonl"
    extra.write_text(json.dumps({"messages": [{"role": "user", "content": "How do I rotate my API token?"},
                                              {"role": "assistant", "content": "Run `nimbus token rotate`."}]}) + "\n")
    try:
        assert arrived.wait(120)
        # In this process: a command reads the workspace (DuckDB refuses a second open of the file in
        # one process while a connection is open, so this fails if generate holds one).
        stats = CliRunner().invoke(main, ["--workspace", str(ws.path), "stats", "--no-tokens", "--json"])
        assert stats.exit_code == 0, stats.output
        # Another process writes to it (the file lock of the real thing).
        child = subprocess.run([sys.executable, "-m", "curator", "--workspace", str(ws.path), "ingest", str(extra),
                                "--task", "support"], cwd=ROOT, env=_env_of_child(), capture_output=True, text=True,
                               timeout=300)
        assert child.returncode == 0, child.stderr
        assert fake_llm.count() == 3 and worker.is_alive()  # generation was waiting on the teacher all along
    finally:
        release.set()
        worker.join(120)
    report = result[0]
    assert not isinstance(report, BaseException), report
    assert (report.made, report.failed, report.added) == (3, 0, 3)
    assert rows(ws, "SELECT count(*) FROM examples WHERE origin = 'synthetic'") == [(3,)]
    assert rows(ws, "SELECT count(*) FROM examples WHERE messages::VARCHAR LIKE '%rotate my API token%'") == [(1,)]


def _run(ws: Workspace, opts: GenerateOptions) -> Any:
    try:
        return generate(ws, opts)
    except BaseException as e:  # noqa: BLE001 - handed to the test thread
        return e
