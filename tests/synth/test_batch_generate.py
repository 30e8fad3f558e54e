"""`curator generate --batch`: provider batches through the real SDKs, a kill -9 between submit and completion,
and the engine option of the local teacher."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from fakeserver import FakeLLMServer
from synth.synth_helpers import ROOT, answer_reply, rows, seeded_workspace, unique_pair

from curator.cli import main
from curator.workspace import Workspace

SECRET = "sk-proj-CURATOR-BATCH-KEY-0123456789abcdef"
ANT_SECRET = "sk-ant-CURATOR-BATCH-KEY-0123456789abcdef"


def _env_vars(fake_llm: FakeLLMServer) -> dict[str, str]:
    return {"OPENAI_API_KEY": SECRET, "OPENAI_BASE_URL": fake_llm.openai_base_url, "ANTHROPIC_API_KEY": ANT_SECRET,
            "ANTHROPIC_BASE_URL": fake_llm.anthropic_base_url, "CURATOR_KEYS_FILE": "/nonexistent/keys.yaml",
            "NO_PROXY": "127.0.0.1,localhost"}


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch, fake_llm: FakeLLMServer) -> None:
    for k, v in _env_vars(fake_llm).items():
        monkeypatch.setenv(k, v)
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy", "CURATOR_PRICES"):
        monkeypatch.delenv(var, raising=False)


def run(ws: Workspace, *args: str) -> Any:
    return CliRunner().invoke(main, ["--workspace", str(ws.path), "generate", *args])


SEEDS_ARGS = ["--task", "support", "--n", "4", "--teacher", "openai:gpt-4o-mini", "--skip-filter", "semantic"]


def test_batch_run_stores_examples_and_a_live_rerun_asks_nothing(ws: Workspace, fake_llm: FakeLLMServer) -> None:
    seeded_workspace(ws)
    fake_llm.responder = unique_pair
    res = run(ws, *SEEDS_ARGS, "--batch", "--poll-interval", "0.05")
    assert res.exit_code == 0, res.output
    out = res.stdout.splitlines()
    assert out[1] == "requests: 4 (new 4, cached 0, failed 0, not started 0; 0 calls, 0 retries)"
    assert out[2] == "examples: 4 added, 0 already present, 0 rejected"
    (bid,) = fake_llm.batches
    assert f"batches: 1 submitted, 0 resumed from an earlier run ({bid}); prices are batch prices" in out
    assert f"submitted batch {bid} (4 requests" in res.stderr
    assert fake_llm.count("/v1/chat/completions") == 0 and len(fake_llm.batch_requests) == 4
    # the batch's replies cost half the list price: gpt-4o-mini at 0.075 / 0.30 USD per 1M
    ((spent, tin, tout),) = rows(ws, "SELECT sum(cost_usd), sum(input_tokens), sum(output_tokens) FROM requests")
    assert spent == pytest.approx((tin * 0.075 + tout * 0.30) / 1e6)
    live = run(ws, *SEEDS_ARGS, "--json")  # the same command without --batch: every answer is a cache hit
    report = json.loads(live.stdout)
    assert (report["made"], report["cached"], report["accepted"], report["batch_ids"]) == (0, 4, 4, [])
    assert fake_llm.count("/v1/chat/completions") == 0


def test_live_answers_are_reused_by_a_batch_run(ws: Workspace, fake_llm: FakeLLMServer) -> None:
    seeded_workspace(ws)
    fake_llm.responder = unique_pair
    assert run(ws, *SEEDS_ARGS[:3], "2", *SEEDS_ARGS[4:]).exit_code == 0  # --n 2, live
    assert fake_llm.count("/v1/chat/completions") == 2
    res = run(ws, *SEEDS_ARGS, "--batch", "--poll-interval", "0.05", "--json")
    report = json.loads(res.stdout)
    assert (report["made"], report["cached"], report["batches_submitted"]) == (2, 2, 1)
    assert len(fake_llm.batch_requests) == 2 and fake_llm.count("/v1/chat/completions") == 2


def test_kill_9_between_submit_and_completion_resumes_the_same_batch(ws: Workspace, fake_llm: FakeLLMServer) -> None:
    """A real `curator generate --batch` process, killed with SIGKILL while its batch is in progress: the rerun
    polls the recorded batch instead of submitting (and paying for) it again."""
    seeded_workspace(ws)
    fake_llm.responder = unique_pair
    fake_llm.hold_batches = True
    cmd = [sys.executable, "-m", "curator", "-w", str(ws.path), "generate", *SEEDS_ARGS, "--batch",
           "--poll-interval", "0.1", "--budget", "1"]
    env = {**os.environ, **_env_vars(fake_llm), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            polled = [b for b in fake_llm.batches if fake_llm.count(f"/v1/batches/{b}") >= 2]
            if polled:
                break
            time.sleep(0.05)
        assert proc.poll() is None, proc.communicate()[1].decode()[-3000:]
        (bid,) = polled
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert rows(ws, "SELECT status, batch_id, requests FROM llm_batches") == [("submitted", bid, 4)]
    assert rows(ws, "SELECT count(*) FROM requests") == [(0,)] and not fake_llm.batch_requests
    uploads, creates = fake_llm.count("/v1/files"), fake_llm.count("/v1/batches")
    fake_llm.release_batches()
    res = run(ws, *SEEDS_ARGS, "--batch", "--poll-interval", "0.05", "--budget", "1")
    assert res.exit_code == 0, res.output
    assert f"batches: 0 submitted, 1 resumed from an earlier run ({bid}); prices are batch prices" in res.stdout
    assert "examples: 4 added" in res.stdout and f"resuming batch {bid} (4 requests" in res.stderr
    assert (fake_llm.count("/v1/files"), fake_llm.count("/v1/batches")) == (uploads, creates)  # nothing submitted
    assert len(fake_llm.batches) == 1 and len(fake_llm.batch_requests) == 4  # each request answered (billed) once
    assert rows(ws, "SELECT status FROM llm_batches") == [("done",)]
    assert rows(ws, "SELECT count(*), count(DISTINCT key) FROM requests WHERE status = 'ok'") == [(4, 4)]


def test_anthropic_answer_mode_through_message_batches(ws: Workspace, fake_llm: FakeLLMServer, tmp_path: Path) -> None:
    seeded_workspace(ws, with_test=False)
    fake_llm.responder = answer_reply
    questions = tmp_path / "q.jsonl"
    questions.write_text("".join(json.dumps({"prompt": f"How do I rotate secret number {i}?"}) + "\n" for i in range(3)))
    res = run(ws, "--questions", str(questions), "--task", "support", "--teacher", "anthropic:claude-3-5-haiku",
              "--batch", "--poll-interval", "0.05", "--skip-filter", "semantic", "--json")
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert (report["made"], report["added"], report["batches_submitted"]) == (3, 3, 1)
    assert report["batch_ids"] == list(fake_llm.message_batches)
    assert fake_llm.count("/v1/messages") == 0 and len(fake_llm.batch_requests) == 3
    assert all(r.body["system"] for r in fake_llm.batch_requests)  # the seeds' system prompt, as a live run sends


def test_dry_run_estimates_at_batch_prices(ws: Workspace) -> None:
    seeded_workspace(ws)
    live = json.loads(run(ws, *SEEDS_ARGS, "--dry-run", "--json").stdout)["estimate"]
    batch = json.loads(run(ws, *SEEDS_ARGS, "--dry-run", "--batch", "--json").stdout)["estimate"]
    assert batch["cost_max_usd"] == pytest.approx(live["cost_max_usd"] / 2)
    assert batch["price"] == {"input_per_m": 0.075, "output_per_m": 0.3} and "at batch prices" in batch["note"]


def test_batch_and_engine_refusals(ws: Workspace, tiny_model_dir: Path) -> None:
    seeded_workspace(ws)
    res = run(ws, "--task", "support", "--n", "2", "--teacher", f"local:{tiny_model_dir}", "--batch")
    assert res.exit_code == 1 and "--batch needs a teacher with a batch API" in res.stderr
    res = run(ws, "--task", "support", "--n", "2", "--teacher", "compatible:http://127.0.0.1:9/v1:m", "--batch")
    assert res.exit_code == 1 and "--batch needs a teacher with a batch API" in res.stderr
    res = run(ws, *SEEDS_ARGS, "--engine", "vllm")
    assert res.exit_code == 1 and "--engine vllm is for a local teacher" in res.stderr
    res = run(ws, "--task", "support", "--n", "2", "--teacher", f"local:{tiny_model_dir}", "--engine", "vllm")
    assert res.exit_code == 1
    assert res.stderr.strip().splitlines()[-1] == ("Error: --engine vllm needs a CUDA GPU and this machine has none: "
                                                    "use --engine transformers")


def test_a_cached_local_answer_is_reused_whichever_engine_is_asked(ws: Workspace, tiny_model_dir: Path) -> None:
    """The engine is not part of the cache key: answers made by transformers are hits for --engine vllm (which,
    with nothing left to generate, never starts; on this CPU machine it could not)."""
    seeded_workspace(ws)
    args = ["--task", "support", "--n", "2", "--k", "1", "--teacher", f"local:{tiny_model_dir}", "--max-tokens", "6",
            "--temperature", "0", "--skip-filter", "semantic", "--json"]
    first = json.loads(run(ws, *args).stdout)
    assert first["made"] >= 2
    again = run(ws, *args, "--engine", "vllm")
    assert again.exit_code == 0, again.output
    report = json.loads(again.stdout)
    assert (report["made"], report["cached"], report["job"]) == (0, first["made"], first["job"])
