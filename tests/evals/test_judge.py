"""LLM-as-judge through real SDKs against the fake server, and the local model as a weak judge."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fakeserver import FakeLLMServer, RecordedRequest, Reply, rate_limited

from curator.errors import BudgetExceededError, MissingDependency, ProviderError
from curator.llm.providers import OpenAIProvider
from curator.workspace import Workspace
from evals.compare import compare
from evals.judge import judge_eval, judge_pairwise, make_judge, parse_rubric, parse_winner
from evals.runner import eval_rows, resolve_eval


def _spec(srv: FakeLLMServer) -> str:
    return f"compatible:{srv.openai_base_url}:judge-model"


def _user(req: RecordedRequest) -> str:
    return req.body["messages"][-1]["content"]


def test_parse_rubric_and_winner() -> None:
    assert parse_rubric('{"score": 4, "rationale": "good"}') == (4, "good")
    assert parse_rubric('Sure! ```json\n{"score": "2", "rationale": "vague"}\n```') == (2, "vague")
    assert parse_rubric("Score: 5\nClear and correct.")[0] == 5
    assert parse_rubric("3 - partly right")[0] == 3
    assert parse_rubric('{"score": 9}')[0] is None
    assert parse_rubric("I cannot grade this.")[0] is None
    assert parse_winner('{"winner": "B", "rationale": "more steps"}') == ("B", "more steps")
    assert parse_winner('{"winner": "tie"}')[0] == "tie"
    assert parse_winner("Winner: A. It is concrete.")[0] == "A"
    assert parse_winner("Both are equally good.")[0] == "tie"
    assert parse_winner("no idea")[0] is None


def test_rubric_scores_are_stored_cached_and_compared(
    fake_llm: FakeLLMServer, make_eval: Callable[..., str], test_ids: list[str]
) -> None:
    ws = Workspace()
    scores = {"rougeL": 0.3}
    base = make_eval("base", {i: scores for i in test_ids}, predictions={i: "bad answer" for i in test_ids})
    make_eval("r1", {i: scores for i in test_ids}, predictions={i: "GOOD answer" for i in test_ids})

    def grade(req: RecordedRequest) -> str:
        good = "Candidate answer:\nGOOD" in _user(req)
        return json.dumps({"score": 5 if good else 2, "rationale": "graded"})

    fake_llm.responder = grade
    fake_llm.script(rate_limited(retry_after=0))  # the first request is retried
    summary = judge_eval(ws, "base", _spec(fake_llm), concurrency=3)
    assert summary["n"] == 6 and summary["mean"] == 2 and summary["unparsed"] == 0
    assert summary["distribution"]["2"] == 6
    assert fake_llm.count("/v1/chat/completions") == 7
    body = fake_llm.requests[-1].body
    assert body["temperature"] == 0.0 and body["model"] == "judge-model"
    assert "Reference answer:" in _user(fake_llm.requests[-1])
    rows = eval_rows(ws, base)
    assert all(r.scores["judge"] == 2 and r.meta["judge_rationale"] == "graded" for r in rows)
    assert resolve_eval(ws, base).summary["judge"]["mean"] == 2
    # the same requests again: answered from the requests table
    judge_eval(ws, "base", _spec(fake_llm))
    assert fake_llm.count("/v1/chat/completions") == 7
    with ws.connect() as con:
        rows_db = con.execute("SELECT status, count(*) FROM requests GROUP BY ALL ORDER BY 1").fetchall()
    assert rows_db == [("ok", 6)]
    judge_eval(ws, "r1", _spec(fake_llm))
    cmp = compare(ws, "r1", "base")
    j = cmp.metric("judge")
    assert j.delta == 3 and j.verdict == "better"


def test_pairwise_swaps_positions_and_cancels_order_bias(
    fake_llm: FakeLLMServer, make_eval: Callable[..., str], test_ids: list[str]
) -> None:
    ws = Workspace()
    make_eval("base", {i: {"rougeL": 0.1} for i in test_ids}, predictions={i: "plain" for i in test_ids})
    make_eval("r1", {i: {"rougeL": 0.2} for i in test_ids}, predictions={i: "BETTER" for i in test_ids})

    fake_llm.responder = lambda req: '{"winner": "A", "rationale": "first one"}'  # pure position bias
    biased = judge_pairwise(ws, "r1", "base", _spec(fake_llm))
    assert biased["n"] == 6 and biased["ties"] == 6 and biased["inconsistent"] == 6 and biased["preference"] == 0
    assert biased["verdict"] == "no clear change"
    assert fake_llm.count() == 12  # every example in both orders

    def fair(req: RecordedRequest) -> str:
        text = _user(req)
        a = re.search(r"Answer A:\n(.*?)\n\nAnswer B:", text, re.DOTALL).group(1)  # type: ignore[union-attr]
        return '{"winner": "%s", "rationale": "content"}' % ("A" if a == "BETTER" else "B")

    fake_llm.responder = fair
    fake_llm.reset()
    res = judge_pairwise(ws, "r1", "base", _spec(fake_llm.start()), max_tokens=64)
    assert res["run_wins"] == 6 and res["inconsistent"] == 0 and res["preference"] == 1.0
    assert res["verdict"] == "better"
    ex = res["examples"][0]
    assert ex["run_first"] == ex["run_second"] == "run" and ex["outcome"] == 1
    cmp = compare(ws, "r1", "base", judge=_spec(fake_llm), judge_options={"max_tokens": 64})
    assert cmp.judge is not None and cmp.judge["run_wins"] == 6 and fake_llm.count() == 12  # cached
    worse = compare(ws, "base", "r1", judge=_spec(fake_llm), judge_options={"max_tokens": 64})
    assert "judge_pairwise" in worse.regressions


def test_budget_caps_judge_spend(fake_llm: FakeLLMServer, make_eval: Callable[..., str], test_ids: list[str]) -> None:
    ws = Workspace()
    make_eval("base", {i: {"rougeL": 0.1} for i in test_ids})
    fake_llm.responder = lambda req: Reply('{"score": 3}', input_tokens=500, output_tokens=10)
    provider = OpenAIProvider("gpt-4o-mini", api_key="sk-test", base_url=fake_llm.openai_base_url)
    # each request reserves its worst case (bytes of input + max_tokens of output) before it is sent
    with pytest.raises(BudgetExceededError, match="not sent"):
        judge_eval(ws, "base", provider, budget_usd=0.0005, concurrency=1)
    sent = fake_llm.count()
    assert 0 < sent < 6
    with ws.connect() as con:
        cost = con.execute("SELECT sum(cost_usd) FROM requests").fetchall()[0][0]
    assert cost == pytest.approx(sent * (500 * 0.15 + 10 * 0.60) / 1e6)  # usage within the request's bound


def test_local_model_as_a_weak_judge(
    make_eval: Callable[..., str], test_ids: list[str], tiny_model_dir: Path
) -> None:
    ws = Workspace()
    make_eval("base", {i: {"rougeL": 0.1} for i in test_ids[:2]})
    summary: dict[str, Any] = judge_eval(ws, "base", f"local:{tiny_model_dir}", max_tokens=4)
    assert summary["n"] + summary["unparsed"] == 2  # a random model rarely answers in format; it still runs
    assert summary["judge"].startswith("local:")
    with ws.connect() as con:
        assert con.execute("SELECT count(*) FROM requests WHERE provider = 'local'").fetchall()[0][0] == 2


def test_a_local_judge_without_torch_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, make_eval: Callable[..., str], test_ids: list[str], tiny_model_dir: Path
) -> None:
    # No silent switch to another judge: the local provider or one error naming the extra.
    ws = Workspace()
    make_eval("base", {i: {"rougeL": 0.1} for i in test_ids[:2]})
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(MissingDependency, match=r"pip install 'curator-loop\[train\]'$"):
        judge_eval(ws, "base", f"local:{tiny_model_dir}", max_tokens=4)
    with pytest.raises(MissingDependency):
        make_judge(f"local:{tiny_model_dir}")
    with ws.connect() as con:
        assert con.execute("SELECT count(*) FROM requests").fetchall()[0][0] == 0


def test_judge_requests_get_rate_limits_retries_and_scrubbing(
    fake_llm: FakeLLMServer, make_eval: Callable[..., str], test_ids: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "sk-judge-SECRET-key-1234567"
    monkeypatch.setenv("CURATOR_COMPATIBLE_API_KEY", secret)
    ws = Workspace()
    make_eval("base", {i: {"rougeL": 0.1} for i in test_ids})
    fake_llm.responder = lambda req: json.dumps({"score": 4, "rationale": f"echoing {secret}"})
    fake_llm.script(rate_limited(retry_after=0), rate_limited(retry_after=0))
    summary = judge_eval(ws, "base", _spec(fake_llm), concurrency=2)
    assert summary["mean"] == 4 and fake_llm.count() == 8
    rows = eval_rows(ws, resolve_eval(ws, "base").id)
    assert all(r.meta["judge_rationale"] == "echoing [REDACTED]" for r in rows)
    with ws.connect() as con:
        texts = con.execute("SELECT text, response FROM requests").fetchall()
    assert len(texts) == 6 and not any(secret in t or secret in (resp or "") for t, resp in texts)
    # a judge that keeps failing is an error, after the others are cached
    fake_llm.responder = lambda req: Reply(status=400, message="bad judge")
    make_eval("r2", {i: {"rougeL": 0.1} for i in test_ids}, predictions={i: "other" for i in test_ids})
    with pytest.raises(ProviderError, match="bad judge"):
        judge_eval(ws, "r2", _spec(fake_llm))
