"""`generate()` end to end: real SDKs against the fake server, real DuckDB."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest
from fakeserver import (
    FakeLLMServer,
    RecordedRequest,
    Reply,
    drop,
    http_error,
    malformed,
    rate_limited,
    server_error,
)
from synth.synth_helpers import SEEDS, TEST, answer_reply, rows, seeded_workspace, unique_pair

from curator.errors import InputError, MissingKeyError
from curator.llm.budget import max_input_tokens
from curator.synth import (
    FilterConfig,
    GenerateOptions,
    GenParams,
    Judge,
    PriceUnknownError,
    RetryPolicy,
    generate,
)

KEY = "sk-test-generate-SECRET-424242"
NO_SEMANTIC = FilterConfig(skip=frozenset({"semantic"}))
FAST_RETRY = RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=0.05)


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch, fake_llm: FakeLLMServer) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY + "-ant")
    monkeypatch.setenv("OPENAI_BASE_URL", fake_llm.openai_base_url)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", fake_llm.anthropic_base_url)
    monkeypatch.setenv("CURATOR_KEYS_FILE", "/nonexistent/keys.yaml")
    for var in ("CURATOR_COMPATIBLE_API_KEY", "CURATOR_PRICES", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY",
                "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


def gen(ws: Any, **kw: Any) -> Any:
    kw.setdefault("task", "support")
    kw.setdefault("filters", NO_SEMANTIC)
    kw.setdefault("progress", False)
    kw.setdefault("retry", FAST_RETRY)
    return generate(ws, **kw)


def sent_text(srv: FakeLLMServer) -> str:
    return "\n".join(json.dumps(r.body) for r in srv.requests)


def test_seeds_mode_stores_examples_with_provenance_and_reruns_from_cache(ws, fake_llm: FakeLLMServer) -> None:
    seeded_workspace(ws)
    fake_llm.responder = unique_pair
    r = gen(ws, teacher="openai:gpt-4o-mini", n=6, params=GenParams(max_tokens=300, temperature=0.9))
    assert (r.requested, r.made, r.cached, r.failed, r.added, r.rejected) == (6, 6, 0, 0, 6, {})
    assert fake_llm.count("/v1/chat/completions") == 6
    # The teacher saw the seeds' system prompt and three train seeds, never a test item.
    system = json.loads(SEEDS.read_text().splitlines()[0])["messages"][0]["content"]
    body = fake_llm.requests[0].body
    assert system in body["messages"][0]["content"]
    assert [m["role"] for m in body["messages"]] == ["system"] + ["user", "assistant"] * 3 + ["user"]
    test_questions = [json.loads(line)["messages"][1]["content"] for line in TEST.read_text().splitlines()]
    assert not any(q in sent_text(fake_llm) for q in test_questions)
    # Requests are stored with their raw responses; examples carry provenance and sit in train.
    reqs = rows(ws, "SELECT key, status, provider, model, cost_usd, input_tokens, output_tokens, job, response "
                    "FROM requests")
    assert len(reqs) == 6 and {x[1] for x in reqs} == {"ok"} and {x[2:4] for x in reqs} == {("openai", "gpt-4o-mini")}
    assert all(x[4] == pytest.approx((x[5] * 0.15 + x[6] * 0.60) / 1e6) for x in reqs)
    assert r.spent_usd == pytest.approx(sum(x[4] for x in reqs)) and r.job_spent_usd == pytest.approx(r.spent_usd)
    assert json.loads(reqs[0][8])["object"] == "chat.completion"
    exs = rows(ws, "SELECT e.id, e.origin, e.source, e.parent_id, e.meta, e.messages, s.split, s.pinned FROM examples e "
                   "JOIN splits s ON s.example_id = e.id WHERE e.origin = 'synthetic'")
    assert len(exs) == 6 and {(x[1], x[2], x[6], x[7]) for x in exs} == {("synthetic", "openai:gpt-4o-mini", "train", True)}
    seed_ids = {x[0] for x in rows(ws, "SELECT id FROM examples WHERE origin = 'seed'")}
    for x in exs:
        meta = json.loads(x[4])
        assert meta["teacher"] == "openai:gpt-4o-mini" and meta["job"] == r.job and meta["mode"] == "seeds"
        assert meta["params"]["temperature"] == 0.9 and len(meta["template_hash"]) == 16
        assert len(meta["parent_ids"]) == 3 and set(meta["parent_ids"]) <= seed_ids and x[3] == meta["parent_ids"][0]
        assert meta["request_key"] in {q[0] for q in reqs}
        assert [m["role"] for m in json.loads(x[5])] == ["system", "user", "assistant"]
        assert json.loads(x[5])[0]["content"] == system
    job = rows(ws, "SELECT status, spent_usd, report FROM synth_jobs WHERE id = ?", [r.job])
    assert job[0][0] == "done" and job[0][1] == pytest.approx(r.spent_usd)
    # The same command again: no request, nothing added twice.
    again = gen(ws, teacher="openai:gpt-4o-mini", n=6, params=GenParams(max_tokens=300, temperature=0.9))
    assert fake_llm.count() == 6
    assert (again.job, again.made, again.cached, again.added, again.already_present) == (r.job, 0, 6, 0, 6)
    assert again.spent_usd == 0 and again.job_spent_usd == pytest.approx(r.spent_usd)
    assert rows(ws, "SELECT count(*), count(DISTINCT key) FROM requests") == [(6, 6)]
    # A larger n reuses the first six requests.
    more = gen(ws, teacher="openai:gpt-4o-mini", n=8, params=GenParams(max_tokens=300, temperature=0.9))
    assert (more.made, more.cached, more.added) == (2, 6, 2) and more.job != r.job


def test_request_index_keeps_identical_prompts_apart(ws, fake_llm: FakeLLMServer) -> None:
    from curator.data.ingest import ingest_file

    only = ws.path.parent / "one.jsonl"
    only.write_text(SEEDS.read_text().splitlines()[0] + "\n")
    ingest_file(ws, only, origin="seed", task="support")
    fake_llm.responder = unique_pair  # same prompt -> same reply
    r = gen(ws, teacher="openai:gpt-4o-mini", n=3)
    assert fake_llm.count() == 3 and r.made == 3
    assert (r.added, r.rejected) == (1, {"duplicate-exact": 2})
    rej = rows(ws, "SELECT reason, other_id, request_key FROM synth_rejections WHERE job = ?", [r.job])
    assert len(rej) == 2 and {x[1] for x in rej} == set(r.example_ids)


def test_anthropic_teacher_gets_the_system_prompt_its_way(ws, fake_llm: FakeLLMServer) -> None:
    seeded_workspace(ws)
    fake_llm.responder = unique_pair
    r = gen(ws, teacher="anthropic:claude-3-5-haiku", n=2)
    assert r.added == 2 and fake_llm.count("/v1/messages") == 2
    body = fake_llm.last().body
    assert "training examples" in body["system"]
    assert [m["role"] for m in body["messages"]] == ["user", "assistant"] * 3 + ["user"]
    assert r.spent_usd is not None and r.spent_usd > 0


def test_answer_mode(ws, fake_llm: FakeLLMServer, tmp_path: Path) -> None:
    fake_llm.responder = answer_reply
    q = tmp_path / "q.jsonl"
    q.write_text("\n".join([
        json.dumps({"prompt": "How do I rotate the API token of my CI robot account?"}),
        json.dumps({"messages": [{"role": "system", "content": "Old system."},
                                 {"role": "user", "content": "Why are my Functions cold starts so slow?"}]}),
        "",
        json.dumps({"prompt": "How do I rotate the API token of my CI robot account?"}),  # repeated: one request
    ]) + "\n")
    r = gen(ws, mode="answer", teacher="openai:gpt-4o-mini", questions=q, system="Be a helpful Nimbus agent.")
    assert (r.requested, r.made, r.cached, r.added) == (3, 2, 1, 2)
    assert r.rejected == {"duplicate-exact": 1}
    bodies = [x.body["messages"] for x in fake_llm.requests]
    assert all(b[0] == {"role": "system", "content": "Be a helpful Nimbus agent."} for b in bodies)
    exs = [json.loads(x[0]) for x in rows(ws, "SELECT messages FROM examples ORDER BY created_at")]
    assert all(m[-1]["role"] == "assistant" and m[-1]["content"].startswith("Diagnosis:") for m in exs)
    assert {x[0] for x in rows(ws, "SELECT task FROM examples")} == {"support"}
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"prompt": "ok?"}) + "\n" + json.dumps({"messages": [
        {"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}) + "\n")
    with pytest.raises(InputError, match=r"bad.jsonl:2: the last message must be a user turn"):
        gen(ws, mode="answer", teacher="openai:gpt-4o-mini", questions=bad)


def test_targeted_mode_never_shows_test_items(ws, fake_llm: FakeLLMServer) -> None:
    seeded_workspace(ws)
    calls = iter(range(1000))
    fake_llm.responder = lambda rec: json.dumps({"question": f"Question {next(calls)} about {unique_pair(rec)[15:60]}?",
                                                 "answer": "Diagnosis: a.\n1. b\n2. c\n3. d\nEscalation: e."})
    seed_rows = rows(ws, "SELECT e.id, e.messages FROM examples e WHERE origin = 'seed' ORDER BY id LIMIT 2")
    test_rows = rows(ws, "SELECT e.id, e.messages FROM examples e JOIN splits s ON s.example_id = e.id "
                         "WHERE s.split = 'test' ORDER BY id LIMIT 2")
    weaknesses = [
        {"id": "w-dns", "task": "support", "description": "DNS record questions",
         "example_ids": [seed_rows[0][0], test_rows[0][0]]},
        {"id": "w-test-only", "task": "support", "description": "Deleting protected resources",
         "example_ids": [test_rows[1][0], "no-such-id"]},
    ]
    r = gen(ws, mode="targeted", teacher="openai:gpt-4o-mini", weaknesses=weaknesses, n=4)
    assert r.requested == 4 and r.made == 4 and r.by_weakness == {"w-dns": 2, "w-test-only": 2}
    sent = sent_text(fake_llm)
    for _, m in test_rows:
        assert json.loads(m)[1]["content"] not in sent and json.loads(m)[2]["content"] not in sent
    seed_q = json.loads(seed_rows[0][1])[1]["content"]
    assert sent.count(json.dumps(seed_q)[1:-1]) >= 2  # the train example is shown to its group's requests
    assert "Deleting protected resources" in sent
    seed_questions = {json.loads(line)["messages"][1]["content"] for line in SEEDS.read_text().splitlines()}
    for rec in fake_llm.requests:  # the test-only group is shown seeds, for the format
        if "Deleting protected resources" in json.dumps(rec.body):
            shown = [m["content"] for m in rec.body["messages"] if m["role"] == "assistant"]
            assert shown and all(s.split("\nAnswer: ")[0][len("Question: "):] in seed_questions for s in shown)
    metas = [json.loads(x[0]) for x in rows(ws, "SELECT meta FROM examples WHERE origin = 'synthetic'")]
    assert sorted(m["weakness_id"] for m in metas) == ["w-dns", "w-dns", "w-test-only", "w-test-only"]


def test_unparsable_reply_is_repaired_once_then_rejected(ws, fake_llm: FakeLLMServer) -> None:
    seeded_workspace(ws)
    good = json.dumps({"question": "How do I recover a deleted bucket object version?",
                       "answer": "Diagnosis: versioning.\n1. a\n2. b\n3. c\nEscalation: ticket."})
    fake_llm.script("Sure, here is a great example for you!", good)
    r = gen(ws, teacher="openai:gpt-4o-mini", n=1)
    assert (r.made, r.added, r.rejected) == (2, 1, {})
    repair = fake_llm.requests[1].body["messages"]
    assert repair[-2] == {"role": "assistant", "content": "Sure, here is a great example for you!"}
    assert "could not read that" in repair[-1]["content"]
    # Request 0 and its repair come from the cache; request 1 fails twice.
    fake_llm.script("still not json", "nope")
    r2 = gen(ws, teacher="openai:gpt-4o-mini", n=2)
    assert (r2.made, r2.cached, r2.added, r2.already_present, r2.rejected) == (2, 2, 0, 1, {"parse": 1})
    rej = rows(ws, "SELECT reason, candidate FROM synth_rejections")
    assert rej[0][0] == "parse" and json.loads(rej[0][1]) == {"reply": "nope"}
    again = gen(ws, teacher="openai:gpt-4o-mini", n=2)
    assert fake_llm.count() == 4 and (again.cached, again.rejected) == (4, {"parse": 1})
    assert rows(ws, "SELECT count(*) FROM synth_rejections") == [(1,)]


def test_retries_honour_retry_after_and_a_failing_request_is_recorded(ws, fake_llm: FakeLLMServer) -> None:
    seeded_workspace(ws)
    ok = unique_pair
    fake_llm.script(rate_limited(retry_after=0.3), server_error(503), drop(),  # request 1: 3 failures, gives up
                    rate_limited(retry_after=0.3))  # request 2: one 429, then the responder answers
    fake_llm.responder = ok
    # Retry-After is honoured up to max_delay (0.5 s here; a longer one is capped: tests/llm/test_faults.py).
    r = gen(ws, teacher="openai:gpt-4o-mini", n=3, concurrency=1,
            retry=RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=0.5))
    assert (r.made, r.failed, r.added, r.api_calls, r.retries) == (2, 1, 2, 6, 3)
    times = [x.time for x in fake_llm.requests]
    assert times[1] - times[0] >= 0.3 and times[4] - times[3] >= 0.3  # Retry-After was waited out
    failed = rows(ws, "SELECT status, attempts, error FROM requests WHERE status <> 'ok'")
    assert len(failed) == 1 and failed[0][1] == 3 and "connection" in failed[0][2].lower()
    # The next run retries only the failed request and replaces its row.
    again = gen(ws, teacher="openai:gpt-4o-mini", n=3, concurrency=1)
    assert (again.made, again.cached, again.failed, again.added) == (1, 2, 0, 1)
    assert rows(ws, "SELECT status, attempts FROM requests ORDER BY attempts DESC LIMIT 1") == [("ok", 4)]
    assert rows(ws, "SELECT count(*), count(DISTINCT key) FROM requests") == [(3, 3)]


def test_malformed_response_is_a_failure_not_a_crash(ws, fake_llm: FakeLLMServer) -> None:
    seeded_workspace(ws)
    fake_llm.script(malformed())
    fake_llm.responder = unique_pair
    r = gen(ws, teacher="openai:gpt-4o-mini", n=2, concurrency=1)
    assert (r.made, r.failed, r.added, r.stopped) == (1, 1, 1, None)
    assert "malformed" in rows(ws, "SELECT error FROM requests WHERE status = 'failed'")[0][0]


def test_a_provider_that_keeps_failing_stops_the_run(ws, fake_llm: FakeLLMServer) -> None:
    seeded_workspace(ws)
    fake_llm.responder = lambda rec: http_error(400, "model not found")
    r = gen(ws, teacher="openai:gpt-4o-mini", n=10, concurrency=1,
            retry=RetryPolicy(max_attempts=2, base_delay=0.01, stop_after_failures=3))
    assert (r.stopped, r.failed, r.not_started, r.added) == ("failing", 3, 7, 0)
    assert "model not found" in r.message and fake_llm.count() == 3


def test_budget_is_a_hard_cap_and_the_job_resumes_under_a_larger_one(ws, fake_llm: FakeLLMServer,
                                                                      tmp_path: Path) -> None:
    seeded_workspace(ws)
    fake_llm.responder = lambda rec: Reply(text=unique_pair(rec), input_tokens=700, output_tokens=150)
    prices = tmp_path / "prices.yaml"
    prices.write_text("openai:\n  gpt-4o-mini: {input: 100, output: 100}\n")  # USD per 1M: expensive on purpose
    params = GenParams(max_tokens=200)
    # A request reserves its worst case, (input byte bound + 200) tokens at $1e-4, about $0.35, and
    # really costs 850 tokens, $0.085.  16 requests cost $1.36: the run goes on while the next worst
    # case fits (waiting for those in flight to settle) and stops with less than one worst case left.
    r = gen(ws, teacher="openai:gpt-4o-mini", n=16, budget=1.0, prices=prices, params=params, concurrency=2)
    assert r.stopped == "budget" and "budget" in r.message and f"${r.job_spent_usd:.4f} spent" in r.message
    assert 8 <= r.made < 16 and r.made + r.not_started == 16 and fake_llm.count() == r.made
    assert r.spent_usd is not None and r.spent_usd <= 1.0 and r.spent_usd == pytest.approx(r.made * 0.085)
    assert r.spent_usd >= 1.0 - 0.36  # spent up to the cap, less at most one worst case
    assert rows(ws, "SELECT status FROM synth_jobs") == [("stopped",)]
    # Resume with more money: earlier spend counts against the cap of the job.
    more = gen(ws, teacher="openai:gpt-4o-mini", n=16, budget=10.0, prices=prices, params=params, concurrency=2)
    assert more.job == r.job and more.stopped is None and more.cached == r.made and more.made == 16 - r.made
    assert more.job_spent_usd == pytest.approx(16 * 0.085) and more.job_spent_usd <= 10.0
    assert r.added + more.added == 16


def test_budget_never_crossed_even_when_replies_are_long(ws, fake_llm: FakeLLMServer, tmp_path: Path) -> None:
    seeded_workspace(ws)
    # The fake server reports max_tokens output tokens and an input count at the byte bound: the worst case.
    def worst(rec: RecordedRequest) -> Reply:
        body = rec.body
        return Reply(text=unique_pair(rec), input_tokens=max_input_tokens(body["messages"]),
                     output_tokens=body["max_completion_tokens"])

    fake_llm.responder = worst
    prices = tmp_path / "prices.yaml"
    prices.write_text("openai:\n  gpt-4o-mini: {input: 50, output: 50}\n")
    r = gen(ws, teacher="openai:gpt-4o-mini", n=10, budget=0.5, prices=prices, concurrency=4)
    assert r.stopped == "budget" and r.spent_usd is not None and r.spent_usd <= 0.5


def test_unknown_price_refuses_a_budget_and_warns_on_dry_run(ws, fake_llm: FakeLLMServer) -> None:
    seeded_workspace(ws)
    with pytest.raises(PriceUnknownError, match="no price for openai:gpt-unknown"):
        gen(ws, teacher="openai:gpt-unknown", n=3, budget=1.0)
    d = gen(ws, teacher="openai:gpt-unknown", n=3, dry_run=True)
    assert d.estimate is not None and d.estimate["cost_estimate_usd"] is None
    assert any("no price" in w for w in d.warnings) and fake_llm.count() == 0


def test_dry_run_estimates_and_counts_the_cache(ws, fake_llm: FakeLLMServer) -> None:
    seeded_workspace(ws)
    fake_llm.responder = unique_pair
    d = gen(ws, teacher="openai:gpt-4o-mini", n=4, dry_run=True, params=GenParams(max_tokens=100))
    e = d.estimate
    assert e is not None and (e["requests"], e["cached"], e["to_make"], e["output_tokens_max"]) == (4, 0, 4, 400)
    assert 0 < e["input_tokens_estimate"] < e["input_tokens_max"]
    assert 0 < e["cost_estimate_usd"] < e["cost_max_usd"]
    assert fake_llm.count() == 0 and rows(ws, "SELECT count(*) FROM requests") == [(0,)]
    gen(ws, teacher="openai:gpt-4o-mini", n=2, params=GenParams(max_tokens=100))
    d2 = gen(ws, teacher="openai:gpt-4o-mini", n=4, dry_run=True, params=GenParams(max_tokens=100))
    assert d2.estimate is not None and (d2.estimate["cached"], d2.estimate["to_make"]) == (2, 2)


def test_judge_rejects_low_scores(ws, fake_llm: FakeLLMServer) -> None:
    seeded_workspace(ws)

    def responder(rec: RecordedRequest) -> str:
        text = json.dumps(rec.body["messages"])
        if "strict reviewer" in text:
            score = 9 if "billing" in text or "invoice" in text else 3
            return json.dumps({"score": score, "reason": "checked"})
        return unique_pair(rec)

    fake_llm.responder = responder
    r = gen(ws, teacher="openai:gpt-4o-mini", n=6, judge=Judge("openai:gpt-4o-mini", min_score=7))
    judged = r.added + r.rejected.get("judge", 0)
    assert judged == 6 and r.made == 12
    for (meta,) in rows(ws, "SELECT meta FROM examples WHERE origin = 'synthetic'"):
        assert json.loads(meta)["judge"]["score"] == 9
    scores = rows(ws, "SELECT score FROM synth_rejections WHERE reason = 'judge'")
    assert all(s == 3 for (s,) in scores)
    again = gen(ws, teacher="openai:gpt-4o-mini", n=6, judge=Judge("openai:gpt-4o-mini", min_score=7))
    assert again.made == 0 and fake_llm.count() == 12


def test_missing_key_is_one_clear_error(ws, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    seeded_workspace(ws)
    monkeypatch.delenv("OPENAI_API_KEY")
    with pytest.raises(MissingKeyError, match="OPENAI_API_KEY"):
        gen(ws, teacher="openai:gpt-4o-mini", n=1)
    keys = tmp_path / "keys.yaml"
    keys.write_text(f"OPENAI_API_KEY: {KEY}\n")
    monkeypatch.setenv("CURATOR_KEYS_FILE", str(keys))
    assert gen(ws, teacher="openai:gpt-4o-mini", n=1).failed == 0


def test_seeds_mode_needs_seeds_and_a_task(ws) -> None:  # noqa: ANN001
    from curator.errors import CuratorError

    with pytest.raises(CuratorError, match="no seed examples"):
        gen(ws, teacher="openai:gpt-4o-mini", n=1)
    seeded_workspace(ws)
    with pytest.raises(CuratorError, match="no seed examples of task 'other'"):
        gen(ws, teacher="openai:gpt-4o-mini", n=1, task="other")


def test_candidate_meta_roundtrip_is_json(ws, fake_llm: FakeLLMServer) -> None:
    seeded_workspace(ws)
    fake_llm.responder = unique_pair
    r = gen(ws, teacher=f"compatible:{fake_llm.openai_base_url}:llama3:8b", n=1)
    assert r.spent_usd is None and any("no price" in w for w in r.warnings)
    (meta,) = rows(ws, "SELECT meta FROM examples WHERE origin = 'synthetic'")[0]
    assert orjson.loads(meta)["teacher"] == f"compatible:{fake_llm.openai_base_url}:llama3:8b"


def test_concurrency_bound_is_respected(ws, fake_llm: FakeLLMServer) -> None:
    seeded_workspace(ws)
    fake_llm.responder = unique_pair
    fake_llm.latency = 0.05
    r = gen(ws, teacher="openai:gpt-4o-mini", n=9, concurrency=3)
    assert r.made == 9 and 1 <= fake_llm.peak_concurrency <= 3


def test_rate_limiter_spaces_requests() -> None:
    import asyncio
    import time

    from curator.synth import RateLimiter

    async def main(limiter: RateLimiter, n: int, tokens: int) -> float:
        t0 = time.monotonic()
        for _ in range(n):
            await limiter.acquire(tokens)
        return time.monotonic() - t0

    # 600 a minute: a burst of 10, then one every 0.1 s.
    assert asyncio.run(main(RateLimiter(rpm=600), 12, 1)) >= 0.15
    # 6,000 tokens a minute = 100 a second: five requests of 50 tokens need at least 1.5 s of refill.
    assert asyncio.run(main(RateLimiter(tpm=6000), 5, 50)) >= 1.4


def test_an_options_object_and_keywords_make_the_same_run(ws, fake_llm: FakeLLMServer) -> None:
    seeded_workspace(ws)
    fake_llm.responder = unique_pair
    opts = GenerateOptions(teacher="openai:gpt-4o-mini", task="support", n=3, filters=NO_SEMANTIC, progress=False,
                           retry=FAST_RETRY)
    a = generate(ws, opts)
    b = gen(ws, teacher="openai:gpt-4o-mini", n=3)
    assert a.job == b.job and (a.made, b.made, b.cached, b.already_present) == (3, 0, 3, a.added)
    c = generate(ws, opts, n=4)  # keywords replace fields of the object, which stays as it was
    assert (c.requested, c.cached, c.made, opts.n) == (4, 3, 1, 3) and c.job != a.job
    with pytest.raises(TypeError):
        generate(ws, teacher="openai:gpt-4o-mini", n=1, no_such_option=True)
