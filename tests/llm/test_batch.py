"""Provider batch APIs: the real openai and anthropic SDKs against the fake server's batch endpoints, real DuckDB."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson
import pytest
from fakeserver import FakeLLMServer, RecordedRequest, Reply, isolate_llm_env

from curator.errors import ConfigError
from curator.llm.batch import BatchSession, batch_records
from curator.llm.budget import Budget, load_prices
from curator.llm.cache import RequestStore
from curator.llm.limits import RetryPolicy
from curator.llm.providers import GenParams
from curator.llm.runner import Endpoint, Request, Runner, run_async, run_requests
from curator.workspace import Workspace

KEY = "sk-test-batch-SECRET-0123456789"
FILE_KEY = "sk-ant-batch-keys-file-SECRET-98765"
PARAMS = GenParams(max_tokens=20, temperature=0.0)
FAST = RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=0.05)


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch, fake_llm: FakeLLMServer, tmp_path: Path) -> None:
    isolate_llm_env(monkeypatch, fake_llm, tmp_path, openai_key=KEY, file_key=FILE_KEY)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", fake_llm.anthropic_base_url)


def _echo(rec: RecordedRequest) -> str:
    msgs = rec.body.get("messages") if isinstance(rec.body, dict) else []
    return f"answer to {msgs[-1]['content']}"


def _requests(n: int, offset: int = 0) -> list[Request]:
    return [Request([{"role": "user", "content": f"question {offset + i}"}], PARAMS) for i in range(n)]


def _run(ws: Workspace, spec: str, reqs: list[Request], *, budget: float | None = None, timeout: float | None = None,
         session: BatchSession | None = None) -> tuple[Runner, list[Any], BatchSession]:
    store = RequestStore(ws)
    runner = Runner(store, job="job-1", budget=Budget(budget), retry=FAST)
    runner.batch = session or BatchSession(poll_interval=0.02, progress=False)
    endpoint = Endpoint(spec, prices=load_prices(), batch=True)

    async def main() -> list[Any]:
        try:
            if timeout is None:
                return await runner.run(endpoint, reqs)
            return await asyncio.wait_for(runner.run(endpoint, reqs), timeout)
        finally:
            await endpoint.aclose()

    try:
        out = run_async(main)
    finally:
        store.close()
    return runner, out, runner.batch


def _rows(ws: Workspace, sql: str, args: list[Any] | None = None) -> list[tuple[Any, ...]]:
    with ws.connect() as con:
        return con.execute(sql, args or []).fetchall()


@pytest.mark.parametrize("spec", ["openai:gpt-4o-mini", "anthropic:claude-3-5-haiku"])
def test_a_batch_files_its_replies_under_the_keys_of_live_requests(ws: Workspace, fake_llm: FakeLLMServer,
                                                                   spec: str) -> None:
    fake_llm.responder = _echo
    reqs = _requests(5)
    runner, out, _ = _run(ws, spec, reqs)
    assert [r.text for r in out] == [f"answer to question {i}" for i in range(5)]
    st = runner.stats
    assert (st.made, st.cached, st.failed, st.batches_submitted, st.batches_resumed) == (5, 0, 0, 1, 0)
    assert fake_llm.count("/v1/chat/completions") == fake_llm.count("/v1/messages") == 0  # nothing live
    assert len(fake_llm.batch_requests) == 5
    kind, model = spec.split(":")
    (rec,) = _rows(ws, "SELECT provider, model, status, batch_id, requests, provider_status FROM llm_batches")
    assert rec[:3] == (kind, model, "done") and rec[3] == st.batch_ids[0] and rec[4] == 5
    # the rows are those a live request writes: same keys, tokens, cost at the batch price (half the list price)
    price = load_prices().lookup(kind, model)
    assert price is not None
    rows = _rows(ws, "SELECT key, status, input_tokens, output_tokens, cost_usd, job, request::VARCHAR FROM requests "
                     "ORDER BY key")
    live = Endpoint(spec, prices=load_prices())
    assert sorted(r[0] for r in rows) == sorted(live.key(r.messages, r.params) for r in reqs)
    for _, status, tin, tout, cost, job, request in rows:
        assert status == "ok" and job == "job-1" and KEY not in request
        assert cost == pytest.approx(price.cost(tin, tout) / 2)
    assert runner.budget.spent == pytest.approx(sum(r[4] for r in rows)) and runner.budget.holds == 0
    # a live run of the same requests asks nothing: the batch's replies are its cache hits
    res = run_requests(ws, spec, _requests(5), job="live")
    assert res.stats.cached == 5 and res.stats.made == 0 and res.to_request == 0
    assert fake_llm.count("/v1/chat/completions") == fake_llm.count("/v1/messages") == 0


def test_live_replies_are_not_asked_again_through_a_batch(ws: Workspace, fake_llm: FakeLLMServer) -> None:
    fake_llm.responder = _echo
    run_requests(ws, "openai:gpt-4o-mini", _requests(3), job="live")
    assert fake_llm.count("/v1/chat/completions") == 3
    runner, out, _ = _run(ws, "openai:gpt-4o-mini", _requests(4))  # 3 cached, 1 new
    assert [r.text for r in out] == [f"answer to question {i}" for i in range(4)]
    assert (runner.stats.cached, runner.stats.made, runner.stats.batches_submitted) == (3, 1, 1)
    (line,) = fake_llm.batch_requests
    assert line.body["messages"][-1]["content"] == "question 3"
    assert fake_llm.count("/v1/files") == 1 and fake_llm.count("/v1/chat/completions") == 3


def test_an_interrupted_run_resumes_its_batch_instead_of_paying_twice(ws: Workspace, fake_llm: FakeLLMServer) -> None:
    fake_llm.responder = _echo
    fake_llm.hold_batches = True
    with pytest.raises(TimeoutError):  # the run stops while the batch is in progress (a Ctrl-C, a crash)
        _run(ws, "openai:gpt-4o-mini", _requests(4), budget=1.0, timeout=1.0)
    ((status, bid),) = _rows(ws, "SELECT status, batch_id FROM llm_batches")
    assert status == "submitted" and bid in fake_llm.batches
    assert _rows(ws, "SELECT count(*) FROM requests") == [(0,)]
    fake_llm.release_batches()
    runner, out, _ = _run(ws, "openai:gpt-4o-mini", _requests(4), budget=1.0)
    assert [r.text for r in out] == [f"answer to question {i}" for i in range(4)]
    assert (runner.stats.batches_submitted, runner.stats.batches_resumed, runner.stats.made) == (0, 1, 4)
    assert runner.stats.batch_ids == [bid]
    assert fake_llm.count("/v1/files") == 1 and len(fake_llm.batches) == 1 and len(fake_llm.batch_requests) == 4
    assert _rows(ws, "SELECT status FROM llm_batches") == [("done",)]
    assert runner.budget.spent > 0 and runner.budget.reserved == 0 and runner.budget.holds == 0


def test_a_run_killed_before_it_recorded_the_batch_id_finds_it_by_its_tag(ws: Workspace,
                                                                           fake_llm: FakeLLMServer) -> None:
    """OpenAI batches carry curator's id in their metadata: a row left ``submitting`` is matched, not resubmitted."""
    from curator.llm.providers.openai import OpenAIProvider

    fake_llm.responder = _echo
    reqs = _requests(2)
    endpoint = Endpoint("openai:gpt-4o-mini", prices=load_prices(), batch=True)
    for r in reqs:
        endpoint.keyed(r)

    async def submit() -> str:
        p = OpenAIProvider("gpt-4o-mini", api_key=KEY, base_url=fake_llm.openai_base_url)
        try:
            return (await p.submit_batch([(r.key, r.messages, r.params) for r in reqs], "cb-killed"))[0]
        finally:
            await p.aclose()

    bid = run_async(submit)
    with ws.connect() as con:  # what the killed run had recorded before the provider answered
        con.execute("INSERT INTO llm_batches (id, provider, model, job, status, requests, reserved_usd) "
                    "VALUES ('cb-killed', 'openai', 'gpt-4o-mini', 'job-1', 'submitting', 2, 0.001)")
        for r in reqs:
            con.execute("INSERT INTO llm_batch_requests VALUES ('cb-killed', ?, ?)",
                        [r.key, orjson.dumps({"messages": r.messages, "params": r.params.to_dict(), "extra": {}}).decode()])
    runner, out, _ = _run(ws, "openai:gpt-4o-mini", _requests(2))
    assert [r.text for r in out] == ["answer to question 0", "answer to question 1"]
    assert (runner.stats.batches_submitted, runner.stats.batches_resumed, runner.stats.batch_ids) == (0, 1, [bid])
    assert _rows(ws, "SELECT status, batch_id FROM llm_batches") == [("done", bid)]


def test_anthropic_submitting_row_without_an_id_is_lost_and_submitted_again(ws: Workspace,
                                                                             fake_llm: FakeLLMServer) -> None:
    fake_llm.responder = _echo
    reqs = _requests(1)
    endpoint = Endpoint("anthropic:claude-3-5-haiku", prices=load_prices(), batch=True)
    key = endpoint.keyed(reqs[0]).key
    with ws.connect() as con:
        con.execute("INSERT INTO llm_batches (id, provider, model, job, status, requests, reserved_usd) "
                    "VALUES ('cb-x', 'anthropic', 'claude-3-5-haiku', 'job-1', 'submitting', 1, 0.001)")
        con.execute("INSERT INTO llm_batch_requests VALUES ('cb-x', ?, '{}')", [key])
    runner, out, session = _run(ws, "anthropic:claude-3-5-haiku", _requests(1))
    assert out[0].text == "answer to question 0" and runner.stats.batches_submitted == 1
    assert "carry no tag" in session.warnings[0]
    assert sorted(r[0] for r in _rows(ws, "SELECT status FROM llm_batches")) == ["done", "lost"]


def test_failed_requests_of_a_batch_leave_failed_rows_that_the_next_run_asks_again(
        ws: Workspace, fake_llm: FakeLLMServer) -> None:
    def responder(rec: RecordedRequest) -> Reply | str:
        text = rec.body["messages"][-1]["content"]
        return Reply(status=400, message="bad request") if text == "question 1" else f"answer to {text}"

    fake_llm.responder = responder
    runner, out, _ = _run(ws, "openai:gpt-4o-mini", _requests(3))
    assert [r.text if r else None for r in out] == ["answer to question 0", None, "answer to question 2"]
    assert (runner.stats.made, runner.stats.failed) == (2, 1)
    assert list(runner.stats.failures) == ["http-400"]
    assert sorted(r[0] for r in _rows(ws, "SELECT status FROM requests")) == ["failed", "ok", "ok"]
    fake_llm.responder = _echo
    runner, out, _ = _run(ws, "openai:gpt-4o-mini", _requests(3))
    assert [r.text for r in out] == [f"answer to question {i}" for i in range(3)]
    assert (runner.stats.cached, runner.stats.made, runner.stats.batches_submitted) == (2, 1, 1)
    assert len(fake_llm.batch_requests) == 4  # only the failed one went out again
    assert _rows(ws, "SELECT count(*), count(*) FILTER (WHERE status = 'ok') FROM requests") == [(3, 3)]


def test_the_budget_reserves_at_batch_prices_and_submits_what_fits(ws: Workspace, fake_llm: FakeLLMServer) -> None:
    fake_llm.responder = _echo
    endpoint = Endpoint("openai:gpt-4o-mini", prices=load_prices(), batch=True)
    listed = Endpoint("openai:gpt-4o-mini", prices=load_prices())
    reqs = _requests(10)
    one = endpoint.reservation(reqs[0])
    assert one == pytest.approx(listed.reservation(reqs[0]) / 2)
    session = BatchSession(poll_interval=0.02, progress=False, max_requests=2)  # batches of 2: 2, then 1, then stop
    runner, out, _ = _run(ws, "openai:gpt-4o-mini", reqs, budget=one * 3.5, session=session)
    assert sum(1 for r in out if r is not None) == 3
    st = runner.stats
    assert (st.made, st.not_started, st.stopped) == (3, 7, "budget") and "stopped at the budget" in st.message
    assert (st.batches_submitted, [len(b["_content"].splitlines()) for b in fake_llm.files.values()
                                   if b["purpose"] == "batch"]) == (2, [2, 1])
    assert runner.budget.spent <= one * 3.5 and runner.budget.holds == 0


def test_a_provider_without_a_batch_api_is_refused(ws: Workspace) -> None:
    assert not BatchSession.handles(Endpoint("compatible:http://127.0.0.1:9/v1:m"))
    assert not BatchSession.handles(Endpoint("local:smollm2-135m-instruct"))
    with pytest.raises(ConfigError, match="poll-interval"):
        BatchSession(poll_interval=-1)
    with ws.connect() as con:
        assert batch_records(con) == []
