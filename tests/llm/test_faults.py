"""Teacher faults through the real runner, SDK and DuckDB: deadlines, capped Retry-After, hostile
usage counts, failure reasons, the budget as a hard cap that is also spent, and echoed keys."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path
from typing import Any

import pytest
from fakeserver import (
    FakeLLMServer,
    Reply,
    drip,
    drop,
    echo_key,
    html_page,
    isolate_llm_env,
    malformed,
    no_choices,
    rate_limited,
    truncated,
    with_usage,
)

from curator.errors import ConfigError
from curator.llm.budget import Budget, load_prices, max_input_tokens
from curator.llm.cache import RequestStore
from curator.llm.limits import RetryPolicy
from curator.llm.providers import GenParams, usage_count
from curator.llm.runner import Endpoint, Request, Runner, run_requests
from curator.workspace import Workspace

KEY = "sk-test-faults-SECRET-0123456789"
FILE_KEY = "sk-ant-faults-keys-file-SECRET-98765"
PARAMS = GenParams(max_tokens=20, temperature=0.0)
ONE_TRY = RetryPolicy(max_attempts=1, base_delay=0.01, max_delay=0.05, deadline=30.0)


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch, fake_llm: FakeLLMServer, tmp_path: Path) -> None:
    isolate_llm_env(monkeypatch, fake_llm, tmp_path, openai_key=KEY, file_key=FILE_KEY)


def chat(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def one(ws: Workspace, retry: RetryPolicy = ONE_TRY, budget: float | None = 1.0) -> Any:
    """One request to openai:gpt-4o-mini (priced), answered as the test scripted the fake server."""
    return run_requests(ws, "openai:gpt-4o-mini", [Request(chat("hi there"), PARAMS)], job="f", retry=retry,
                        budget_usd=budget)


def rows(ws: Workspace, sql: str) -> list[tuple[Any, ...]]:
    with ws.connect() as con:
        return con.execute(sql).fetchall()


def test_a_reply_dripping_bytes_is_cut_at_the_deadline(ws: Workspace, fake_llm: FakeLLMServer) -> None:
    fake_llm.responder = lambda rec: drip(0.2)  # the body is ~350 bytes: over a minute if nothing cuts it
    res = one(ws, RetryPolicy(max_attempts=2, base_delay=0.01, max_delay=0.05, deadline=0.5))
    st = res.stats
    assert (st.made, st.failed, st.api_calls, st.deadline_hits) == (0, 1, 2, 2)
    assert st.failures["deadline"]["count"] == 1
    assert "no complete reply within the 0.5 s deadline" in st.failures["deadline"]["example"]
    assert rows(ws, "SELECT status, attempts FROM requests") == [("failed", 2)]
    assert any("deadline of 0.5 s" in w for w in st.warnings(RetryPolicy(deadline=0.5)))


def test_retry_after_is_capped_at_max_delay_and_said() -> None:
    p, rng = RetryPolicy(max_delay=60.0), random.Random(0)
    assert all(p.delay(1, 3600.0, rng) == 60.0 for _ in range(20))  # never the 600-660 s of before
    assert all(2.0 <= p.delay(1, 2.0, rng) <= 2.2 for _ in range(20))
    assert all(p.delay(30, None, rng) <= 60.0 for _ in range(20))
    assert p.caps(3600.0) and not p.caps(60.0) and not p.caps(None)
    assert p.delay(1, float("inf"), rng) <= 60.0
    for bad in ({"max_attempts": 0}, {"deadline": 0}, {"deadline": float("nan")}, {"max_delay": -1}):
        with pytest.raises(ConfigError):
            RetryPolicy(**bad)


def test_retry_after_of_an_hour_waits_the_cap(ws: Workspace, fake_llm: FakeLLMServer) -> None:
    fake_llm.script(rate_limited(retry_after=3600), "fine")
    policy = RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=0.05)
    res = one(ws, policy)
    st = res.stats
    assert (st.made, st.retries, st.retry_after_capped, st.retry_after_max) == (1, 1, 1, 3600.0)
    assert st.warnings(policy) == ["the server asked to wait up to 3600 s (Retry-After) before 1 retry; curator "
                                   "waited at most 0.05 s each (its cap on backoff)"]


def test_usage_count_accepts_only_whole_non_negative_numbers() -> None:
    assert [usage_count(v) for v in (0, 7, 7.0, 10**12)] == [0, 7, 7, 10**12]
    assert [usage_count(v) for v in (None, -1, -0.5, 1.5, "12", True, float("nan"), float("inf"), [1])] == [None] * 9


@pytest.mark.parametrize("usage", [
    {"prompt_tokens": -5, "completion_tokens": -100_000_000},  # was a spend of $-60
    {"prompt_tokens": 10**12, "completion_tokens": 10**12},  # overflowed the INTEGER columns: reply lost
    {"prompt_tokens": 10**30, "completion_tokens": 1e30},
    {"prompt_tokens": "abc", "completion_tokens": None},  # was a malformed-response failure: reply lost
    None,
    "not an object",
])
def test_hostile_usage_is_clamped_and_the_reply_is_kept(ws: Workspace, fake_llm: FakeLLMServer, usage: Any) -> None:
    fake_llm.responder = lambda rec: with_usage(usage, "the paid answer")
    res = one(ws, budget=0.001)
    st, bound_in = res.stats, max_input_tokens(chat("hi there"))
    assert st.made == 1 and res.responses[0] is not None and res.responses[0].text == "the paid answer"
    (status, text, tin, tout, cost), = rows(ws, "SELECT status, text, input_tokens, output_tokens, cost_usd FROM requests")
    assert (status, text) == ("ok", "the paid answer")
    assert 0 <= tin <= bound_in and 0 <= tout <= PARAMS.max_tokens  # clamped into [0, bound]
    price = load_prices().lookup("openai", "gpt-4o-mini")
    assert price is not None and 0.0 <= cost <= price.cost(bound_in, PARAMS.max_tokens)
    assert res.budget.spent == pytest.approx(cost) and res.budget.spent >= 0
    assert st.usage_invalid + st.usage_clamped == 1


def test_negative_usage_does_not_buy_room_under_the_budget(ws: Workspace, fake_llm: FakeLLMServer) -> None:
    fake_llm.responder = lambda rec: with_usage({"prompt_tokens": -10**9, "completion_tokens": -10**9})
    price = load_prices().lookup("openai", "gpt-4o-mini")
    assert price is not None
    bound = price.cost(max_input_tokens(chat("q 0")), PARAMS.max_tokens)
    cap = 5.5 * bound  # five requests' worst case fit, the sixth does not
    reqs = [Request(chat(f"q {i}"), PARAMS) for i in range(20)]
    res = run_requests(ws, "openai:gpt-4o-mini", reqs, job="neg", retry=ONE_TRY, budget_usd=cap, concurrency=4)
    assert res.stats.stopped == "budget" and res.stats.made == 5 and res.budget.spent <= cap
    assert res.budget.spent == pytest.approx(5 * bound)  # each charged at its bound, never below zero


@pytest.mark.parametrize(("fault", "reason", "says"), [
    (malformed(), "malformed-response", "not JSON"),
    (html_page(), "malformed-response", "502 Bad Gateway"),
    (truncated(), "truncated-response", "content length"),
    (drop(), "connection", "connection failed"),
    (no_choices(), "malformed-response", "no choices"),
])
def test_failures_are_counted_by_reason_with_an_example(ws: Workspace, fake_llm: FakeLLMServer, fault: Reply,
                                                        reason: str, says: str) -> None:
    fake_llm.responder = lambda rec: fault
    reqs = [Request(chat(f"q {i}"), PARAMS) for i in range(3)]
    res = run_requests(ws, "openai:gpt-4o-mini", reqs, job="bad", retry=ONE_TRY)
    st = res.stats
    assert (st.made, st.failed) == (0, 3)
    assert list(st.failures) == [reason] and st.failures[reason]["count"] == 3
    assert says in st.failures[reason]["example"]
    assert rows(ws, "SELECT count(*), min(status), max(status) FROM requests") == [(3, "failed", "failed")]


def test_budget_spends_up_to_its_cap_and_never_over(ws: Workspace, fake_llm: FakeLLMServer) -> None:
    """`--n 50 --budget 0.01` used to stop after 13 requests having spent 6 % of the cap."""
    params = GenParams(max_tokens=512, temperature=0.7)
    fake_llm.latency = 0.02
    fake_llm.responder = lambda rec: Reply("an answer " * 100, input_tokens=300, output_tokens=350)
    prompt = "Write one new support question and its answer. " * 30  # ~1.5 KB, as a few-shot prompt is
    reqs = [Request(chat(prompt), params, {"index": i}) for i in range(50)]
    store = RequestStore(ws)
    endpoint = Endpoint("openai:gpt-4o-mini", prices=load_prices(), concurrency=16)
    runner = Runner(store, job="cap", budget=Budget(0.01), retry=ONE_TRY)

    async def main() -> None:
        try:
            await runner.run(endpoint, reqs)
        finally:
            await endpoint.aclose()

    asyncio.run(main())
    store.close()
    st, b = runner.stats, runner.budget
    price = endpoint.price
    assert price is not None
    per_request = price.cost(300, 350)
    assert 50 * per_request > 0.01  # the job cannot finish under the cap
    assert st.stopped == "budget" and b.exhausted
    assert b.spent <= 0.01 and b.spent >= 0.8 * 0.01
    assert b.spent >= 0.01 - endpoint.reservation(reqs[0])  # stopped only when one more could not fit
    assert st.made + st.not_started == 50 and st.made == round(b.spent / per_request)
    assert f"${b.spent:.4f} spent" in st.message and b.reserved == 0 and b.holds == 0
    (total,), = rows(ws, "SELECT sum(cost_usd) FROM requests WHERE job = 'cap'")
    assert total == pytest.approx(b.spent)


def test_budget_refuses_nan() -> None:
    with pytest.raises(ConfigError, match="--budget"):
        Budget(float("nan"))
    b = Budget(1.0)
    assert b.try_reserve(0.5)
    b.settle(0.5, float("nan"))  # charged at the reservation, not at NaN
    assert b.spent == 0.5


def test_an_echoed_key_is_stored_nowhere(ws: Workspace, fake_llm: FakeLLMServer) -> None:
    fake_llm.responder = lambda rec: echo_key(f"env key {{key}}; file key {FILE_KEY}")
    res = one(ws)
    assert res.responses[0] is not None and res.responses[0].text == "env key [REDACTED]; file key [REDACTED]"
    everything = rows(ws, "SELECT * FROM requests")
    assert everything and KEY not in str(everything) and FILE_KEY not in str(everything)
    assert "[REDACTED]" in str(everything)


def test_a_given_providers_own_key_is_scrubbed_too(ws: Workspace, fake_llm: FakeLLMServer,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from curator.llm.providers.openai import OpenAIProvider

    own = "sk-handed-to-the-provider-only-4242"
    monkeypatch.delenv("OPENAI_API_KEY")
    provider = OpenAIProvider("gpt-4o-mini", api_key=own, base_url=fake_llm.openai_base_url)
    fake_llm.responder = lambda rec: echo_key()
    res = run_requests(ws, provider, [Request(chat("hi"), PARAMS)], job="own", retry=ONE_TRY)
    assert res.responses[0] is not None and own not in res.responses[0].text
    assert own not in str(rows(ws, "SELECT * FROM requests"))
