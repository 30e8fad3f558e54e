"""The shared request runner: real SDKs against the fake server, real DuckDB, a real second process."""

from __future__ import annotations

import asyncio
import random
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from fakeserver import (
    FakeLLMServer,
    RecordedRequest,
    Reply,
    http_error,
    isolate_llm_env,
    rate_limited,
    server_error,
)

from curator.llm.cache import RequestRow, RequestStore
from curator.llm.keys import known_secrets, scrub_value
from curator.llm.limits import RateLimiter, RetryPolicy
from curator.llm.providers import GenParams
from curator.llm.runner import Endpoint, Request, Runner, run_requests
from curator.workspace import Workspace

KEY = "sk-test-runner-SECRET-0123456789"
FILE_KEY = "sk-ant-from-the-keys-file-SECRET-98765"
FAST = RetryPolicy(max_attempts=4, base_delay=0.01, max_delay=0.05)
PARAMS = GenParams(max_tokens=20, temperature=0.0)


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch, fake_llm: FakeLLMServer, tmp_path: Path) -> None:
    isolate_llm_env(monkeypatch, fake_llm, tmp_path, openai_key=KEY, file_key=FILE_KEY)


def chat(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def stored(ws: Workspace, sql: str) -> list[tuple[object, ...]]:
    with ws.connect() as con:
        return con.execute(sql).fetchall()


def test_retry_policy_caps_backoff_and_retry_after() -> None:
    p, rng = RetryPolicy(base_delay=1.0, max_delay=4.0), random.Random(0)
    assert all(0.5 <= p.delay(1, None, rng) < 1.0 for _ in range(20))
    assert all(p.delay(10, None, rng) <= 4.0 for _ in range(20))  # capped at max_delay
    assert all(2.0 <= p.delay(1, 2.0, rng) <= 2.2 for _ in range(20))  # the server's Retry-After, plus jitter
    assert all(p.delay(1, 3600.0, rng) <= 44.0 for _ in range(20))  # an absurd Retry-After: 10 * max_delay


def test_secret_helpers() -> None:
    assert known_secrets() == sorted([KEY, FILE_KEY], key=len, reverse=True)
    value = {"a": [f"x {KEY} y", {"k": FILE_KEY}], KEY: 3, "n": 1}
    assert scrub_value(value, known_secrets()) == {"a": ["x [REDACTED] y", {"k": "[REDACTED]"}], "[REDACTED]": 3,
                                                    "n": 1}


def test_retries_then_the_cache_answers(ws: Workspace, fake_llm: FakeLLMServer) -> None:
    fake_llm.script(rate_limited(retry_after=0), server_error(503))
    spec = f"compatible:{fake_llm.openai_base_url}:m"
    res = run_requests(ws, spec, [Request(chat("one"), PARAMS)], job="t", retry=FAST)
    assert res.responses[0] is not None and res.responses[0].text == "fake reply 3"
    st = res.stats
    assert (st.made, st.api_calls, st.retries, st.failed, res.to_request) == (1, 3, 2, 0, 1)
    assert stored(ws, "SELECT status, attempts, job FROM requests") == [("ok", 3, "t")]
    again = run_requests(ws, spec, [Request(chat("one"), PARAMS)], job="t", retry=FAST)
    assert (again.stats.cached, again.stats.api_calls, again.to_request, fake_llm.count()) == (1, 0, 0, 3)
    assert again.responses[0] is not None and again.responses[0].text == "fake reply 3"


def test_same_request_twice_at_once_is_asked_once(ws: Workspace, fake_llm: FakeLLMServer) -> None:
    fake_llm.latency = 0.05
    spec = f"compatible:{fake_llm.openai_base_url}:m"
    res = run_requests(ws, spec, [Request(chat("same"), PARAMS), Request(chat("same"), PARAMS)], job="t")
    assert fake_llm.count() == 1 and (res.stats.made, res.stats.cached) == (1, 1)
    assert res.responses[0] == res.responses[1]


def test_every_known_secret_is_scrubbed_from_what_is_stored(ws: Workspace, fake_llm: FakeLLMServer) -> None:
    def responder(rec: RecordedRequest) -> Reply | str:
        text = rec.body["messages"][-1]["content"]
        if "fail" in text:
            return http_error(401, f"Incorrect API key provided: {KEY}")
        return f"the keys are {KEY} and {FILE_KEY}"  # a reply that repeats secrets (prompt injection, echo)

    fake_llm.responder = responder
    reqs = [Request(chat(f"my key is {FILE_KEY}"), PARAMS), Request(chat("please fail"), PARAMS)]
    res = run_requests(ws, "openai:gpt-4o-mini", reqs, job="t", retry=FAST)
    assert res.stats.failed == 1 and KEY not in res.stats.last_error
    ok = res.responses[0]
    assert ok is not None and ok.text == "the keys are [REDACTED] and [REDACTED]"
    assert all(r.has_auth for r in fake_llm.requests)  # the key was sent, as a header only
    (request, response, text), = stored(ws, "SELECT request, response, text FROM requests WHERE status = 'ok'")
    assert "[REDACTED]" in request and "[REDACTED]" in response and "[REDACTED]" in text
    (error,), = stored(ws, "SELECT error FROM requests WHERE status = 'failed'")
    assert error.endswith("Incorrect API key provided: [REDACTED]")
    with ws.connect() as con:
        con.execute("CHECKPOINT")
    files = [p for p in ws.path.rglob("*") if p.is_file()]
    assert files and not any(s.encode() in p.read_bytes() for p in files for s in (KEY, FILE_KEY))


def test_rate_limiter_sees_every_call_retries_included(ws: Workspace, fake_llm: FakeLLMServer) -> None:
    class Counting(RateLimiter):
        def __init__(self) -> None:
            super().__init__(rpm=60_000)
            self.calls = 0

        async def acquire(self, tokens: int) -> None:
            self.calls += 1
            await super().acquire(tokens)

    fake_llm.script(rate_limited(retry_after=0))
    limiter = Counting()
    ep = Endpoint(f"compatible:{fake_llm.openai_base_url}:m", limiter=limiter, concurrency=2)
    res = run_requests(ws, ep, [Request(chat(f"q{i}"), PARAMS) for i in range(3)], job="t", retry=FAST)
    assert res.stats.made == 3 and limiter.calls == res.stats.api_calls == 4


def test_no_connection_is_held_while_a_request_waits(ws: Workspace, fake_llm: FakeLLMServer) -> None:
    # DuckDB refuses a second attach of the file in the same process while one is open ("Unique file
    # handle conflict"), and another process while any is open: opening it here proves none is.
    with ws.connect():
        pass  # the workspace exists
    arrived, release, seen = threading.Event(), threading.Event(), []

    def responder(rec: RecordedRequest) -> str:
        arrived.set()
        release.wait(60)
        return "late"

    fake_llm.responder = responder
    out: list[object] = []
    th = threading.Thread(target=lambda: out.append(run_requests(
        ws, f"compatible:{fake_llm.openai_base_url}:m", [Request(chat("slow"), PARAMS)], job="t")))
    th.start()
    try:
        assert arrived.wait(60)
        with Workspace(ws.path).connect() as con:
            seen.append(con.execute("SELECT count(*) FROM requests").fetchall()[0][0])
    finally:
        release.set()
        th.join(60)
    assert seen == [0] and out and out[0].responses[0].text == "late"  # type: ignore[attr-defined]


HOLD = """
import sys, duckdb
con = duckdb.connect(sys.argv[1])
print("holding", flush=True)
sys.stdin.read()
con.close()
"""


@pytest.mark.parametrize("first_step", [True, False])
def test_a_cache_write_waits_while_another_process_holds_the_workspace(ws: Workspace, first_step: bool) -> None:
    with ws.connect():
        pass
    store = RequestStore(ws, lock_wait=120)
    if not first_step:
        store.preload(["k0"])  # later steps attach the file to the store's own DuckDB instance
    row = RequestRow("k1", "openai", "m", {"messages": chat("x")}, "ok", "t", 1, text="y", finish_reason="stop",
                     input_tokens=1, output_tokens=1, cost_usd=0.0)
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(ws.db_path)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"

        async def main() -> None:
            task = asyncio.ensure_future(store.put(row))
            while store.lock_waits == 0 and not task.done():  # the write finds the workspace held, and waits
                await asyncio.sleep(0.01)
            assert not task.done()
            assert holder.stdin is not None
            holder.stdin.close()  # the other process finishes
            await task

        asyncio.run(main())
    finally:
        if holder.poll() is None:
            holder.kill()
        holder.wait()
        store.close()
    assert stored(ws, "SELECT key, status FROM requests") == [("k1", "ok")]


def test_runner_shares_budget_and_counts_across_endpoints(ws: Workspace, fake_llm: FakeLLMServer) -> None:
    from curator.llm.budget import Budget, load_prices

    with ws.connect():
        pass
    prices = load_prices()
    a = Endpoint("openai:gpt-4o-mini", prices=prices)
    b = Endpoint("openai:gpt-4o-mini", prices=prices, concurrency=1)
    fake_llm.responder = lambda rec: Reply("ok", input_tokens=30, output_tokens=10)  # within the bound (41, 20)
    store = RequestStore(ws)
    runner = Runner(store, job="t", budget=Budget(1.0), retry=FAST)

    async def main() -> None:
        try:
            await runner.run(a, [Request(chat("a"), PARAMS)])
            await runner.run(b, [Request(chat("b"), PARAMS), Request(chat("a"), PARAMS)])
        finally:
            await a.aclose()
            await b.aclose()

    asyncio.run(main())
    store.close()
    cost = (30 * 0.15 + 10 * 0.60) / 1e6
    assert (runner.stats.made, runner.stats.cached) == (2, 1)
    assert runner.budget.spent_this_run == pytest.approx(2 * cost) and store.steps >= 2
