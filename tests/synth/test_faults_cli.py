"""`curator generate` against a faulty teacher: failure reasons in the report, exit status, echoed
keys stored nowhere, and a second process using the workspace while generation waits."""

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
from fakeserver import (
    FakeLLMServer,
    RecordedRequest,
    drop,
    echo_key,
    html_page,
    isolate_llm_env,
    malformed,
    no_choices,
    truncated,
)
from synth.synth_helpers import ROOT, rows, seeded_workspace, unique_pair

from curator.cli import main
from curator.workspace import Workspace

SECRET = "sk-proj-FAULTS-CLI-KEY-0123456789abcdef"
FILE_KEY = "sk-ant-FAULTS-keys-file-KEY-5555"


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch, fake_llm: FakeLLMServer, tmp_path: Path) -> None:
    isolate_llm_env(monkeypatch, fake_llm, tmp_path, openai_key=SECRET, file_key=FILE_KEY)


def run(ws: Workspace, *args: str) -> Any:
    return CliRunner().invoke(main, ["--workspace", str(ws.path), "generate", "--task", "support",
                                     "--teacher", "openai:gpt-4o-mini", "--skip-filter", "semantic",
                                     "--max-attempts", "1", *args])


@pytest.mark.parametrize(("fault", "reason"), [
    (malformed(), "malformed-response"), (html_page(), "malformed-response"), (truncated(), "truncated-response"),
    (drop(), "connection"), (no_choices(), "malformed-response"),
])
def test_nothing_succeeded_exits_1_with_the_reasons(ws: Workspace, fake_llm: FakeLLMServer, fault: Any,
                                                    reason: str) -> None:
    seeded_workspace(ws)
    fake_llm.responder = lambda rec: fault
    res = run(ws, "--n", "3")
    assert res.exit_code == 1, res.output
    assert f"failed requests by reason: {reason} 3" in res.stdout
    assert f"  {reason}, e.g.: openai:gpt-4o-mini: " in res.stdout
    assert f"Error: no request succeeded: 3 failed ({reason} 3); e.g. openai:gpt-4o-mini:" in res.stderr
    assert "Traceback" not in res.output
    js = run(ws, "--n", "3", "--json")
    assert js.exit_code == 1
    report = json.loads(js.stdout)
    assert report["failures"][reason]["count"] == 3 and report["failures"][reason]["example"]


def test_some_failures_are_reported_and_exit_0(ws: Workspace, fake_llm: FakeLLMServer) -> None:
    seeded_workspace(ws)
    fake_llm.script(malformed())
    fake_llm.responder = unique_pair
    res = run(ws, "--n", "3", "--concurrency", "1")
    assert res.exit_code == 0, res.output
    assert "failed requests by reason: malformed-response 1" in res.stdout


def test_budget_too_small_for_one_request_exits_1(ws: Workspace, fake_llm: FakeLLMServer) -> None:
    seeded_workspace(ws)
    res = run(ws, "--n", "3", "--budget", "0.000001")
    assert res.exit_code == 1 and fake_llm.count() == 0
    assert "Error: no request succeeded: stopped at the budget of $0.0000: $0.0000 spent" in res.stderr


def test_an_echoed_key_reaches_no_table(ws: Workspace, fake_llm: FakeLLMServer) -> None:
    seeded_workspace(ws)

    def reply(rec: RecordedRequest) -> Any:
        pair = json.loads(unique_pair(rec))
        return echo_key(json.dumps({"question": pair["question"] + " My key is {key}.",
                                    "answer": pair["answer"] + f" Also try {FILE_KEY}."}))

    fake_llm.responder = reply
    res = run(ws, "--n", "3", "--judge", "openai:gpt-4o-mini", "--min-score", "1")
    assert res.exit_code == 0, res.output
    assert SECRET not in res.output and FILE_KEY not in res.output
    dump = ""
    for table in ("requests", "examples", "synth_rejections", "synth_jobs"):
        dump += str(rows(ws, f"SELECT * FROM {table}"))
    assert "[REDACTED]" in dump and SECRET not in dump and FILE_KEY not in dump
    for path in Path(ws.path).rglob("*"):  # logs and any other file of the workspace
        if path.is_file() and path.suffix not in (".duckdb", ".wal"):
            data = path.read_bytes()
            assert SECRET.encode() not in data and FILE_KEY.encode() not in data, path


def _child_env() -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if "PROXY" not in k.upper()}
    e["PYTHONPATH"] = str(ROOT)
    e["NO_PROXY"] = "127.0.0.1,localhost"
    return e


def test_a_second_process_uses_the_workspace_while_generate_waits(ws: Workspace, fake_llm: FakeLLMServer,
                                                                  tmp_path: Path) -> None:
    """Three processes: `curator generate` waits on a slow teacher; `stats` and `ingest` run meanwhile."""
    seeded_workspace(ws)
    arrived, release = threading.Event(), threading.Event()

    def slow(rec: RecordedRequest) -> str:
        arrived.set()
        release.wait(120)
        return unique_pair(rec)

    fake_llm.responder = slow
    cmd = [sys.executable, "-m", "curator", "--workspace", str(ws.path)]
    gen = subprocess.Popen(cmd + ["generate", "--task", "support", "--n", "2", "--teacher", "openai:gpt-4o-mini",
                                  "--skip-filter", "semantic", "--max-attempts", "1"], cwd=ROOT, env=_child_env(),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    extra = tmp_path / "more.jsonl"
    extra.write_text(json.dumps({"messages": [{"role": "user", "content": "How do I rotate my API token?"},
                                              {"role": "assistant", "content": "Run `nimbus token rotate`."}]}) + "\n")
    try:
        assert arrived.wait(120), "generate never reached the teacher"
        stats = subprocess.run(cmd + ["stats", "--no-tokens", "--json"], cwd=ROOT, env=_child_env(),
                               capture_output=True, text=True, timeout=300)
        assert stats.returncode == 0, stats.stderr
        ingest = subprocess.run(cmd + ["ingest", str(extra), "--task", "support"], cwd=ROOT, env=_child_env(),
                                capture_output=True, text=True, timeout=300)
        assert ingest.returncode == 0, ingest.stderr
        assert gen.poll() is None  # generate was waiting on the teacher all along
    finally:
        release.set()
        out, err = gen.communicate(timeout=300)
    assert gen.returncode == 0, err
    assert "requests: 2 (new 2" in out
    assert rows(ws, "SELECT count(*) FROM examples WHERE origin = 'synthetic'") == [(2,)]
    assert rows(ws, "SELECT count(*) FROM examples WHERE messages::VARCHAR LIKE '%rotate my API token%'") == [(1,)]
