"""``curator serve`` started for real on 127.0.0.1 with the tiny model, driven by the real ``openai`` SDK.

One server for the module (two adapters, an A/B route, an API key from CURATOR_SERVE_KEY, small limits);
every test uses its own prompts and trace ids, so the order does not matter.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx2 as httpx
import openai
import pytest
from serve_helpers import KEY, RUNS, Server, copy_workspace, references

A, B = RUNS["alpha"][0], RUNS["bravo"][0]
MAX_TOKENS = 8
PROMPTS = [[{"role": "user", "content": f"Ticket {i}: my {t} stopped working after the update. What now?"}]
           for i, t in enumerate(["disk", "dns", "billing", "login", "ssh", "bucket", "quota", "backup"])]


@pytest.fixture(scope="module")
def server(serve_template: Path, tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    ws = copy_workspace(serve_template, tmp_path_factory.mktemp("serve-api") / "ws")
    args = ["--base-model", str(tiny_model_dir), "--adapter", f"alpha={A}", "--adapter", f"bravo={B}",
            "--ab", f"support={A},challenger={B}:0.5", "--max-tokens-cap", "64", "--max-body-bytes", "20000",
            "--body-timeout", "2", "--default-temperature", "0", "--max-batch", "32"]
    with Server(ws, args, env={"CURATOR_SERVE_KEY": KEY}) as s:
        yield s


@pytest.fixture(scope="module")
def refs(server: Server, tiny_model_dir: Path) -> dict[str, list[str]]:
    return references(tiny_model_dir, server.ws, PROMPTS, MAX_TOKENS)


@pytest.fixture
def client(server: Server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key=KEY, max_retries=0)


def curator(ws: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "curator", "--workspace", str(ws), *args], capture_output=True,
                          text=True, timeout=300)


def test_models_lists_base_adapters_and_the_ab_route(client: openai.OpenAI) -> None:
    models = {m.id: m for m in client.models.list().data}
    assert list(models) == ["base", "alpha", "bravo", "support"]
    assert models["alpha"].model_extra["run_id"] == A
    assert models["support"].model_extra["ab"]["runs"] == [A, B]


def test_two_adapters_give_different_answers_each_from_its_own_adapter(client: openai.OpenAI,
                                                                       refs: dict[str, list[str]]) -> None:
    answers = {}
    for name in ("base", "alpha", "bravo"):
        raw = client.chat.completions.with_raw_response.create(model=name, messages=PROMPTS[0],
                                                               max_tokens=MAX_TOKENS, temperature=0)
        c = raw.parse()
        assert raw.headers["x-curator-trace-id"] == c.id and c.id.startswith("chatcmpl-")
        assert c.object == "chat.completion" and c.model == name
        assert c.choices[0].finish_reason in ("stop", "length")
        assert c.usage.completion_tokens <= MAX_TOKENS and c.usage.prompt_tokens > 0
        answers[name] = c.choices[0].message.content
    assert answers == {name: refs[name][0] for name in answers}
    assert len(set(answers.values())) == 3


def test_async_client_and_streaming(server: Server, client: openai.OpenAI, refs: dict[str, list[str]]) -> None:
    async def ask_all() -> list[str]:
        ac = openai.AsyncOpenAI(base_url=server.url + "/v1", api_key=KEY, max_retries=0)
        try:
            done = await asyncio.gather(*(ac.chat.completions.create(model="bravo", messages=PROMPTS[i],
                                                                     max_tokens=MAX_TOKENS, temperature=0)
                                          for i in range(4)))
        finally:
            await ac.close()
        return [c.choices[0].message.content for c in done]

    assert asyncio.run(ask_all()) == refs["bravo"][:4]

    stream = client.chat.completions.create(model="alpha", messages=PROMPTS[1], max_tokens=MAX_TOKENS,
                                            temperature=0, stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert all(ch.object == "chat.completion.chunk" and ch.id == chunks[0].id for ch in chunks)
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert text == refs["alpha"][1]
    assert len([ch for ch in chunks if ch.choices and ch.choices[0].delta.content]) > 1  # token by token
    assert [ch.choices[0].finish_reason for ch in chunks if ch.choices][-1] in ("stop", "length")
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


def test_a_wrong_or_missing_key_gets_401_and_health_needs_none(server: Server) -> None:
    bad = openai.OpenAI(base_url=server.url + "/v1", api_key="sk-wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.chat.completions.create(model="base", messages=PROMPTS[0], max_tokens=2)
    with pytest.raises(openai.AuthenticationError):
        bad.models.list()
    r = httpx.post(server.url + "/v1/feedback", json={"trace_id": "x", "rating": 5})
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
    assert httpx.get(server.url + "/health").json()["status"] == "ok"


def _feedback(client: openai.OpenAI, body: dict[str, Any]) -> Any:
    return client.post("/feedback", body=body, cast_to=httpx.Response)


def test_feedback_lands_unknown_trace_404_bad_fields_422(server: Server, client: openai.OpenAI) -> None:
    c = client.chat.completions.create(model="alpha", messages=PROMPTS[2], max_tokens=MAX_TOKENS, temperature=0)
    r = _feedback(client, {"trace_id": c.id, "rating": 2, "comment": "too vague",
                           "correction": "Diagnosis: the billing export is late.\n1. Wait.\n2. Retry.\n3. Check."})
    assert r.status_code == 200 and r.json()["recorded"] is True and r.json()["trace_id"] == c.id
    assert _feedback(client, {"trace_id": c.id, "thumbs": "up"}).status_code == 200

    with pytest.raises(openai.NotFoundError) as e:
        _feedback(client, {"trace_id": "chatcmpl-does-not-exist", "rating": 5})
    assert e.value.body["param"] == "trace_id"
    for body, param in (({"trace_id": c.id, "rating": 6}, "rating"), ({"trace_id": c.id, "rating": "5"}, "rating"),
                        ({"trace_id": c.id, "thumbs": "sideways"}, "thumbs"), ({"trace_id": c.id}, "rating"),
                        ({"trace_id": c.id, "rating": 4, "stars": 4}, "stars"), ({"rating": 4}, "trace_id")):
        with pytest.raises(openai.UnprocessableEntityError) as e:
            _feedback(client, body)
        assert e.value.body["param"] == param, body

    # the server does not hold the workspace: another process reads (and writes) it while it runs
    shown = curator(server.ws, "traces", "show", c.id, "--json")
    assert shown.returncode == 0, shown.stderr
    t = json.loads(shown.stdout)
    assert t["model"] == "alpha" and t["run_id"] == A and t["adapter"] == A
    assert [f["rating"] for f in t["feedback"]] == [2, None] and t["thumbs"] == "up"
    assert t["params"]["max_tokens"] == MAX_TOKENS and t["params"]["temperature"] == 0.0
    assert t["finish_reason"] in ("stop", "length") and t["latency_ms"] > 0 and t["completion_tokens"] > 0


def test_pii_in_a_request_never_reaches_the_workspace(server: Server, client: openai.OpenAI) -> None:
    email, phone = "dana.pii.test@example.com", "+1 415 555 0142"
    c = client.chat.completions.create(
        model="bravo", user=email, max_tokens=MAX_TOKENS, temperature=0,
        messages=[{"role": "user", "content": f"Reach me at {email} or {phone}, my bucket is gone."}])
    assert _feedback(client, {"trace_id": c.id, "rating": 5, "comment": f"call {phone}",
                              "correction": f"We emailed {email}."}).status_code == 200
    listed = curator(server.ws, "traces", "list", "--json", "--limit", "100")
    assert listed.returncode == 0, listed.stderr
    trace = next(t for t in json.loads(listed.stdout) if t["id"] == c.id)
    assert "[EMAIL]" in trace["messages"][0]["content"] and "[PHONE]" in trace["messages"][0]["content"]
    ingest = curator(server.ws, "feedback", "ingest", "--traces", "--gates", "exact", "--json")
    assert ingest.returncode == 0, ingest.stderr
    secrets = [email.encode(), phone.encode(), b"415 555 0142", KEY.encode()]
    for path in server.ws.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert not [s for s in secrets if s in data], path
    assert KEY not in server.log()
    from curator.workspace import Workspace

    with Workspace(server.ws).connect() as con:  # the database, not only its bytes
        for table in ("traces", "trace_feedback", "feedback", "examples", "preferences"):
            hits = con.execute(f"SELECT count(*) FROM {table} t WHERE t::VARCHAR LIKE '%dana.pii%' "
                               f"OR t::VARCHAR LIKE '%555 0142%'").fetchall()[0][0]
            assert hits == 0, table


def test_32_concurrent_clients_two_adapters_each_answer_from_its_adapter(server: Server, client: openai.OpenAI,
                                                                         refs: dict[str, list[str]]) -> None:
    before = httpx.get(server.url + "/health").json()["batches"]
    jobs = [("alpha" if i % 2 else "bravo", i % len(PROMPTS)) for i in range(32)]

    def ask(job: tuple[str, int]) -> tuple[str, str]:
        name, i = job
        raw = client.chat.completions.with_raw_response.create(model=name, messages=PROMPTS[i],
                                                               max_tokens=MAX_TOKENS, temperature=0)
        return raw.headers["x-curator-run-id"], raw.parse().choices[0].message.content

    with ThreadPoolExecutor(32) as pool:
        got = list(pool.map(ask, jobs))
    assert [run for run, _ in got] == [RUNS[name][0] for name, _ in jobs]
    assert [text for _, text in got] == [refs[name][i] for name, i in jobs]
    batches = httpx.get(server.url + "/health").json()["batches"] - before
    assert batches < 32  # requests shared generate calls


def test_ab_route_is_sticky_per_user_and_traces_stats_reports_each_arm(server: Server, client: openai.OpenAI,
                                                                       refs: dict[str, list[str]]) -> None:
    arms: dict[str, set[str]] = {}
    for u in range(12):
        for _ in range(2):
            raw = client.chat.completions.with_raw_response.create(model="support", user=f"user-{u}",
                                                                   messages=PROMPTS[3], max_tokens=MAX_TOKENS,
                                                                   temperature=0)
            c = raw.parse()
            arm = raw.headers["x-curator-arm"]
            arms.setdefault(f"user-{u}", set()).add(arm)
            expected = refs["alpha"][3] if arm == "support" else refs["bravo"][3]
            assert c.choices[0].message.content == expected and c.model == "support"
            _feedback(client, {"trace_id": c.id, "thumbs": "up" if arm == "challenger" else "down"})
    assert all(len(a) == 1 for a in arms.values())  # sticky
    assert {a for s in arms.values() for a in s} == {"support", "challenger"}
    out = curator(server.ws, "traces", "stats", "--json")
    assert out.returncode == 0, out.stderr
    ab = {g["arm"]: g for g in json.loads(out.stdout)["ab"] if g["name"] == "support"}
    assert ab["challenger"]["run_id"] == B and ab["support"]["run_id"] == A
    assert ab["challenger"]["positive_rate"] == 1.0 and ab["support"]["positive_rate"] == 0.0
    lo, hi = ab["challenger"]["positive_rate_ci95"]
    assert 0 < lo < 1 and hi == 1.0
    text = curator(server.ws, "traces", "stats")
    assert "A/B arms" in text.stdout and "challenger" in text.stdout


def test_limits_and_openai_shaped_errors(server: Server, client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model="base", messages=PROMPTS[0], max_tokens=65)
    assert e.value.body["param"] == "max_tokens"
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model="base", messages=[])
    assert e.value.body["param"] == "messages"
    with pytest.raises(openai.NotFoundError) as e:
        client.chat.completions.create(model="gpt-nothing", messages=PROMPTS[0], max_tokens=2)
    assert e.value.body["code"] == "model_not_found"
    big = httpx.post(server.url + "/v1/chat/completions", headers={"Authorization": f"Bearer {KEY}"},
                     json={"model": "base", "messages": [{"role": "user", "content": "x" * 30000}]})
    assert big.status_code == 413 and big.json()["error"]["code"] == "body_too_large"
    # a seed makes a sampled answer repeatable; a stop string ends it with finish reason stop
    kw: dict[str, Any] = {"model": "alpha", "messages": PROMPTS[4], "max_tokens": MAX_TOKENS, "temperature": 1.0,
                          "seed": 11}
    first = client.chat.completions.create(**kw).choices[0].message.content
    assert client.chat.completions.create(**kw).choices[0].message.content == first
    greedy = client.chat.completions.create(model="alpha", messages=PROMPTS[4], max_tokens=MAX_TOKENS,
                                            temperature=0).choices[0].message.content
    stopped = client.chat.completions.create(model="alpha", messages=PROMPTS[4], max_tokens=MAX_TOKENS,
                                             temperature=0, stop=[greedy[3:6]])
    assert stopped.choices[0].finish_reason == "stop"
    assert stopped.choices[0].message.content == greedy[: greedy.index(greedy[3:6])].rstrip()


def test_a_stalled_client_does_not_block_others(server: Server, client: openai.OpenAI) -> None:
    with socket.create_connection(("127.0.0.1", server.port)) as s:
        s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + KEY.encode()
                  + b"\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n{\"model\": ")
        # while that body never arrives, other clients are answered
        c = client.chat.completions.create(model="bravo", messages=PROMPTS[5], max_tokens=2, temperature=0)
        assert c.choices[0].message.content is not None
        s.settimeout(60)
        head = b""
        start = time.monotonic()
        while b"\r\n\r\n" not in head and time.monotonic() - start < 60:
            chunk = s.recv(4096)
            if not chunk:
                break
            head += chunk
    assert head.startswith(b"HTTP/1.1 408"), head[:200]


def test_the_gateway_backend_forwards_and_streams_from_an_openai_compatible_upstream(
        server: Server, refs: dict[str, list[str]]) -> None:
    """What ``--engine vllm`` puts in front of vLLM, here in front of this server (no GPU needed)."""
    from curator.llm.continuous import SamplingParams
    from curator.serve.app import Completion, ServedModel
    from curator.serve.vllm import GatewayBackend

    async def run() -> list[Any]:
        gw = GatewayBackend(server.url + "/v1", api_key=KEY)
        try:
            handle = await gw.start(PROMPTS[6], ServedModel("base", "tiny"), SamplingParams(max_tokens=MAX_TOKENS,
                                    temperature=0.0), time.monotonic() + 60, True)
            return [ev async for ev in handle.events()]
        finally:
            await gw.close()

    events = asyncio.run(run())
    done = events[-1]
    assert isinstance(done, Completion) and done.finish_reason in ("stop", "length")
    assert "".join(e for e in events[:-1]) == done.text == refs["base"][6]
    assert done.completion_tokens > 0 and done.prompt_tokens > 0
