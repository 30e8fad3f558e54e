"""`curator generate` wiring, output, exit codes; API keys never leave the environment."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from fakeserver import FakeLLMServer, RecordedRequest, http_error
from synth.synth_helpers import SEEDS, seeded_workspace, unique_pair

from curator.cli import main
from curator.workspace import Workspace

SECRET = "sk-proj-CURATOR-TEST-KEY-0123456789abcdef"


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch, fake_llm: FakeLLMServer) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    monkeypatch.setenv("OPENAI_BASE_URL", fake_llm.openai_base_url)
    monkeypatch.setenv("CURATOR_KEYS_FILE", "/nonexistent/keys.yaml")
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy", "CURATOR_PRICES"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


def run(ws: Workspace, *args: str) -> object:
    return CliRunner().invoke(main, ["--workspace", str(ws.path), "generate", *args])


def test_help_has_examples() -> None:
    res = CliRunner().invoke(main, ["generate", "--help"])
    assert res.exit_code == 0 and "curator generate --task support --n 200" in res.output


def test_seeds_file_then_cached_rerun(ws: Workspace, fake_llm: FakeLLMServer) -> None:
    fake_llm.responder = unique_pair
    args = ["--seeds", str(SEEDS), "--task", "support", "--n", "3", "--teacher", "openai:gpt-4o-mini",
            "--skip-filter", "semantic"]
    res = run(ws, *args)
    assert res.exit_code == 0, res.output
    out = res.stdout.splitlines()
    assert out[0].startswith("job ") and out[0].endswith(": seeds mode, task support, teacher openai:gpt-4o-mini")
    assert out[1:3] == ["requests: 3 (new 3, cached 0, failed 0, not started 0; 3 calls, 0 retries)",
                        "examples: 3 added, 0 already present, 0 rejected"]
    assert out[3].startswith("spend: $0.00") and "for the job; tokens in" in out[3]
    assert "seeds.jsonl: 40 seed examples, 40 added" in res.stderr and "[generate] 3/3 (100%) done" in res.stderr
    again = run(ws, *args, "--json")
    assert again.exit_code == 0
    report = json.loads(again.stdout)
    assert (report["made"], report["cached"], report["added"], report["accepted"]) == (0, 3, 0, 3)
    assert fake_llm.count() == 3


def test_dry_run_prints_tokens_and_cost(ws: Workspace, fake_llm: FakeLLMServer) -> None:
    seeded_workspace(ws)
    res = run(ws, "--task", "support", "--n", "10", "--teacher", "openai:gpt-4o-mini", "--max-tokens", "300",
              "--dry-run", "--budget", "0.001")
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    assert lines[0].startswith("dry run: job ") and lines[1] == "requests: 10 (0 cached, 10 to make)"
    assert lines[2].startswith("tokens: input about ") and lines[2].endswith("output at most 3,000")
    assert lines[3].startswith("cost: about $0.00") and ", at most $0.00" in lines[3]
    assert lines[4] == "budget $0.0010: the run may stop before all requests are made"
    assert fake_llm.count() == 0


def test_unknown_price_with_budget_and_missing_key_are_one_line_errors(ws: Workspace, monkeypatch) -> None:  # noqa: ANN001
    seeded_workspace(ws)
    res = run(ws, "--task", "support", "--n", "1", "--teacher", "openai:gpt-9-turbo", "--budget", "1")
    assert res.exit_code == 1 and res.stderr.startswith("Error: no price for openai:gpt-9-turbo")
    monkeypatch.delenv("OPENAI_API_KEY")
    res = run(ws, "--task", "support", "--n", "1", "--teacher", "openai:gpt-4o-mini")
    assert res.exit_code == 1
    assert res.stderr == ("Error: openai needs an API key: set the OPENAI_API_KEY environment variable "
                          "(or add 'OPENAI_API_KEY: ...' to /nonexistent/keys.yaml)\n")


def test_bad_mode_combination_and_failing_teacher(ws: Workspace, fake_llm: FakeLLMServer, tmp_path: Path) -> None:
    res = run(ws, "--questions", "q.jsonl", "--weaknesses", "w.json")
    assert res.exit_code == 2 and "different modes" in res.output
    seeded_workspace(ws)
    fake_llm.responder = lambda rec: http_error(404, "The model does not exist")
    res = run(ws, "--task", "support", "--n", "20", "--teacher", "openai:gpt-4o-mini", "--concurrency", "1")
    assert res.exit_code == 1 and "Error: the teacher kept failing: 10 requests in a row failed" in res.stderr
    assert "stopped (failing)" in res.stdout and fake_llm.count() == 10


def test_export_templates(ws: Workspace, tmp_path: Path) -> None:
    res = run(ws, "--export-templates", str(tmp_path / "t"))
    assert res.exit_code == 0 and res.stdout == f"wrote 4 template(s) to {tmp_path / 't'}\n"
    assert sorted(p.name for p in (tmp_path / "t").iterdir()) == ["judge.txt", "repair.txt", "seeds.txt", "targeted.txt"]


def test_api_key_never_reaches_the_workspace_or_the_output(ws: Workspace, fake_llm: FakeLLMServer) -> None:
    seeded_workspace(ws)
    first = iter([True])

    def responder(rec: RecordedRequest) -> object:
        if next(first, False):  # an error that echoes the key back, as some servers do
            return http_error(401, f"Incorrect API key provided: {SECRET}")
        return unique_pair(rec)

    fake_llm.responder = responder
    res = run(ws, "--task", "support", "--n", "4", "--teacher", "openai:gpt-4o-mini", "--concurrency", "1",
              "--skip-filter", "semantic")
    assert res.exit_code == 0, res.output
    assert all(r.has_auth for r in fake_llm.requests)  # the key was sent, as a header only
    assert SECRET not in res.output and SECRET not in res.stderr
    with ws.connect() as con:
        errors = con.execute("SELECT error FROM requests WHERE status = 'failed'").fetchall()
    assert len(errors) == 1 and errors[0][0].endswith("HTTP 401: Error code: 401 - Incorrect API key provided: [REDACTED]")
    json_res = run(ws, "--task", "support", "--n", "4", "--teacher", "openai:gpt-4o-mini", "--json",
                   "--skip-filter", "semantic")
    assert json_res.exit_code == 0 and SECRET not in json_res.output
    with ws.connect() as con:
        con.execute("CHECKPOINT")
    secret = SECRET.encode()
    files = [p for p in ws.path.rglob("*") if p.is_file()]
    assert files and not any(secret in p.read_bytes() for p in files)
