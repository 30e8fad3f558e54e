"""The OpenAI backend with the real openai SDK against a local fake server (files + fine_tuning.jobs)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from curator.errors import BudgetExceededError, CuratorError, MissingKeyError
from trainer import get_run, list_runs, resume, train
from trainer.openai_ft import PRICES, price_for

FAST = ["poll_interval_s=0"]


@pytest.fixture
def openai_env(fake_llm: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("OPENAI_BASE_URL", fake_llm.openai_base_url)
    return fake_llm


def test_job_lifecycle_is_recorded(ws: Any, snapshot: str, openai_env: Any) -> None:
    srv = openai_env
    logs: list[str] = []
    run = train(ws, snapshot, backend="openai", overrides=[*FAST, "n_epochs=2", "suffix=support"], progress=False,
                log=logs.append)
    assert run.kind == "openai" and run.status == "succeeded" and run.base_model == "gpt-4o-mini-2024-07-18"
    assert run.metrics["fine_tuned_model"].startswith("ft:gpt-4o-mini-2024-07-18:support")
    assert run.metrics["trained_tokens"] > 0 and run.metrics["job_status"] == "succeeded"
    assert run.meta["job_id"] in srv.jobs and run.adapter_path is None

    # both splits were exported, validated and uploaded; the test split was not
    uploaded = {f["filename"]: f["_content"].decode() for f in srv.files.values()}
    assert set(uploaded) == {"train.jsonl", "eval.jsonl"}
    train_lines = [json.loads(x) for x in uploaded["train.jsonl"].splitlines()]
    assert len(train_lines) == 8 and train_lines[0]["messages"][-1]["role"] == "assistant"
    assert "TESTSPLIT" not in uploaded["train.jsonl"] + uploaded["eval.jsonl"]

    body = srv.last("/v1/fine_tuning/jobs").body
    assert body["model"] == "gpt-4o-mini-2024-07-18" and body["suffix"] == "support"
    assert body["method"]["supervised"]["hyperparameters"]["n_epochs"] == 2
    assert body["validation_file"] and body["training_file"] != body["validation_file"]

    est = run.meta["estimate"]
    assert est["epochs"] == 2 and est["training_tokens"] == 2 * est["tokens_per_epoch"] > 0
    assert est["estimated_usd"] == pytest.approx(est["training_tokens"] * PRICES["gpt-4o-mini"] / 1e6, abs=1e-4)
    text = "\n".join(logs)
    for expected in ("training tokens", "queued", "running", "Fine-tuning job started", "succeeded"):
        assert expected in text

    again = train(ws, snapshot, backend="openai", overrides=[*FAST, "n_epochs=2", "suffix=support"], progress=False,
                  log=logs.append)
    assert again.id == run.id and again.reused and len(srv.jobs) == 1


def test_a_failed_job_fails_the_run(ws: Any, snapshot: str, openai_env: Any) -> None:
    openai_env.ft_outcome = "failed"
    run = train(ws, snapshot, backend="openai", overrides=FAST, progress=False, log=lambda m: None)
    assert run.status == "failed" and run.meta["error"] == "fake_failure: Scripted failure"
    assert run.metrics["fine_tuned_model"] is None


def test_polling_resumes_after_an_interruption(ws: Any, snapshot: str, openai_env: Any) -> None:
    def interrupt(msg: str) -> None:
        if msg.endswith(": queued"):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(ws, snapshot, backend="openai", overrides=FAST, progress=False, log=interrupt)
    (run,) = list_runs(ws)
    assert run.status == "running" and run.meta["job_status"] == "queued" and run.meta["job_id"]

    done = resume(ws, run.id, progress=False, log=lambda m: None)
    assert done.id == run.id and done.status == "succeeded" and done.metrics["fine_tuned_model"]
    assert len(openai_env.jobs) == 1  # no second job was created


def test_training_again_picks_up_a_job_in_flight(ws: Any, snapshot: str, openai_env: Any) -> None:
    def interrupt(msg: str) -> None:
        if msg.endswith(": running"):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(ws, snapshot, backend="openai", overrides=FAST, progress=False, log=interrupt)
    run = train(ws, snapshot, backend="openai", overrides=FAST, progress=False, log=lambda m: None)
    assert run.status == "succeeded" and len(openai_env.jobs) == 1 and len(list_runs(ws)) == 1


def test_the_key_is_required(ws: Any, snapshot: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(MissingKeyError, match="OPENAI_API_KEY"):
        train(ws, snapshot, backend="openai", overrides=FAST, progress=False)
    assert list_runs(ws) == []


def test_confirmation_and_budget_come_before_any_upload(ws: Any, snapshot: str, openai_env: Any) -> None:
    seen: list[str] = []

    def refuse(text: str) -> bool:
        seen.append(text)
        return False

    with pytest.raises(CuratorError, match="cancelled"):
        train(ws, snapshot, backend="openai", overrides=FAST, progress=False, log=lambda m: None, confirm=refuse)
    assert "cost about $" in seen[0] and "approximation" in seen[0]
    with pytest.raises(BudgetExceededError, match="above max_cost_usd"):
        train(ws, snapshot, backend="openai", overrides=[*FAST, "max_cost_usd=0"], progress=False, log=lambda m: None)
    assert openai_env.count("/v1/files") == 0 and list_runs(ws) == []
    assert not (ws.path / "runs").exists() or not any((ws.path / "runs").iterdir())


def test_prices() -> None:
    assert price_for("gpt-4o-mini-2024-07-18") == PRICES["gpt-4o-mini"]
    assert price_for("gpt-4o-2024-08-06") == PRICES["gpt-4o"]
    assert price_for("unknown-model") is None and price_for("unknown-model", 1.5) == 1.5


def test_runs_resume_cli(ws: Any, snapshot: str, openai_env: Any) -> None:
    from click.testing import CliRunner

    from curator.cli import main

    def interrupt(msg: str) -> None:
        if msg.endswith(": queued"):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(ws, snapshot, backend="openai", overrides=FAST, progress=False, log=interrupt)
    (run,) = list_runs(ws)
    res = CliRunner().invoke(main, ["-w", str(ws.path), "runs", "resume", run.id, "--no-progress"])
    assert res.exit_code == 0, res.output
    assert f"run {run.id} succeeded" in res.stdout and "model ft:gpt-4o-mini" in res.stdout
    assert get_run(ws, run.id).status == "succeeded"
