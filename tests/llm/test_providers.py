"""Providers against the local fake server, through the real openai / anthropic SDKs."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import openai
import pytest
from fakeserver import (
    FakeLLMServer,
    RecordedRequest,
    Reply,
    drop,
    http_error,
    malformed,
    overloaded,
    rate_limited,
    server_error,
    slow,
)

from curator.errors import MissingDependency, MissingKeyError, ProviderError
from curator.llm.providers import (
    AnthropicProvider,
    CompatibleProvider,
    Completion,
    GenParams,
    OpenAIProvider,
    Provider,
    RetryableError,
    make_provider,
    parse_retry_after,
    parse_spec,
)
from curator.llm.providers.anthropic import to_anthropic_messages

OPENAI_KEY = "sk-test-openai-SECRET-0123456789"
ANTHROPIC_KEY = "sk-ant-test-SECRET-9876543210"
CHAT = [{"role": "user", "content": "Write one haiku about tests."}]

T = TypeVar("T")


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
    monkeypatch.setenv("ANTHROPIC_API_KEY", ANTHROPIC_KEY)
    for var in (
        "OPENAI_BASE_URL",
        "ANTHROPIC_BASE_URL",
        "ANTHROPIC_AUTH_TOKEN",
        "CURATOR_COMPATIBLE_API_KEY",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


def run_with(provider: Provider, fn: Callable[[Provider], Awaitable[T]]) -> T:
    async def main() -> T:
        async with provider:
            return await fn(provider)

    return asyncio.run(main())


def complete(
    provider: Provider, messages: list[dict[str, Any]] = CHAT, params: GenParams | None = None
) -> Completion:
    return run_with(provider, lambda p: p.complete(messages, params or GenParams()))


def openai_p(srv: FakeLLMServer, **kw: Any) -> OpenAIProvider:
    return OpenAIProvider("gpt-4o-mini", base_url=srv.openai_base_url, **kw)


def anthropic_p(srv: FakeLLMServer, **kw: Any) -> AnthropicProvider:
    return AnthropicProvider("claude-test", base_url=srv.anthropic_base_url, **kw)


PROVIDERS = {"openai": openai_p, "anthropic": anthropic_p}
CHAT_PATH = {"openai": "/v1/chat/completions", "anthropic": "/v1/messages"}


# -- spec parsing ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("openai:gpt-4o-mini", ("openai", "gpt-4o-mini", None)),
        ("openai:ft:gpt-4o-mini:acme::abc123", ("openai", "ft:gpt-4o-mini:acme::abc123", None)),
        ("anthropic:claude-sonnet-4-5", ("anthropic", "claude-sonnet-4-5", None)),
        ("compatible:http://127.0.0.1:8000/v1:llama3", ("compatible", "llama3", "http://127.0.0.1:8000/v1")),
        (
            "compatible:http://localhost:11434/v1:llama3:8b",
            ("compatible", "llama3:8b", "http://localhost:11434/v1"),
        ),
        ("compatible:http://gpu-box:8000:qwen2.5", ("compatible", "qwen2.5", "http://gpu-box:8000")),
        ("compatible:https://api.example.com/v1/:m", ("compatible", "m", "https://api.example.com/v1")),
        ("compatible:http://[::1]:8080/v1:m", ("compatible", "m", "http://[::1]:8080/v1")),
        ("local:smollm2|/models/smol", ("local", "smollm2|/models/smol", None)),
    ],
)
def test_parse_spec(spec: str, expected: tuple[str, str, str | None]) -> None:
    assert parse_spec(spec) == expected


@pytest.mark.parametrize(
    "spec",
    [
        "gpt-4o-mini",
        "openai:",
        "mistral:large",
        "compatible:127.0.0.1:8000:llama3",
        "compatible:http://127.0.0.1:8000",
        "compatible:http://127.0.0.1:8000/v1",
        "compatible:http://127.0.0.1:8000/v1:",
    ],
)
def test_parse_spec_rejects(spec: str) -> None:
    with pytest.raises(ProviderError, match="compatible:BASE_URL:MODEL"):
        parse_spec(spec)


def test_make_provider(fake_llm: FakeLLMServer) -> None:
    assert isinstance(make_provider("openai:gpt-4o-mini"), OpenAIProvider)
    assert isinstance(make_provider("anthropic:claude-test"), AnthropicProvider)
    p = make_provider(f"compatible:{fake_llm.openai_base_url}:llama3:8b", timeout=5)
    assert isinstance(p, CompatibleProvider)
    assert p.spec == f"compatible:{fake_llm.openai_base_url}:llama3:8b"
    assert (p.name, p.model, p.remote) == ("compatible", "llama3:8b", True)
    assert complete(p).text == "fake reply 1"


@pytest.mark.parametrize("module", ["torch", "transformers"])
def test_make_provider_local_without_its_dependencies(monkeypatch: pytest.MonkeyPatch, module: str) -> None:
    # No fallback to another algorithm: one error that says which extra to install.
    monkeypatch.setitem(sys.modules, module, None)  # what an uninstalled package looks like to import
    with pytest.raises(MissingDependency) as exc:
        make_provider("local:smol|/nowhere")
    assert str(exc.value).endswith("pip install 'curator-loop[train]'") and exc.value.extra == "train"
    assert module in str(exc.value) and "local provider" in str(exc.value)


def test_make_provider_local_module_error_is_not_translated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "curator.llm.providers.local", None)  # a broken install: a bug, not a message
    with pytest.raises(ModuleNotFoundError):
        make_provider("local:smol|/nowhere")


def test_gen_params_to_dict() -> None:
    d = GenParams(max_tokens=64, seed=3, stop=["\n\n"]).to_dict()
    assert d == {"max_tokens": 64, "temperature": 0.7, "top_p": 1.0, "seed": 3, "stop": ["\n\n"]}


def test_parse_retry_after() -> None:
    assert parse_retry_after({"retry-after": "7"}) == 7.0
    assert parse_retry_after({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5
    assert parse_retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0
    assert parse_retry_after({"retry-after": "soon"}) is None
    assert parse_retry_after({}) is None


# -- plain completions ----------------------------------------------------------------------------
def test_openai_completion(fake_llm: FakeLLMServer) -> None:
    fake_llm.script(Reply(text="Green tests pass", input_tokens=11, output_tokens=4, finish_reason="length"))
    params = GenParams(max_tokens=32, temperature=0.2, seed=7, stop=["END"])
    c = complete(openai_p(fake_llm), params=params)
    assert (c.text, c.input_tokens, c.output_tokens, c.finish_reason) == ("Green tests pass", 11, 4, "length")
    assert c.raw["id"] == "chatcmpl-fake1"
    req = fake_llm.last("/v1/chat/completions")
    assert req.body["model"] == "gpt-4o-mini"
    assert req.body["messages"] == CHAT
    assert req.body["max_completion_tokens"] == 32
    assert (req.body["temperature"], req.body["seed"], req.body["stop"]) == (0.2, 7, ["END"])
    assert req.has_auth and "authorization" not in req.headers
    assert fake_llm.request_count == 1


def test_compatible_uses_placeholder_key_and_max_tokens(fake_llm: FakeLLMServer) -> None:
    c = complete(CompatibleProvider(fake_llm.openai_base_url, "llama3"), params=GenParams(max_tokens=16))
    assert c.text == "fake reply 1" and c.finish_reason == "stop"
    req = fake_llm.last()
    assert req.body["max_tokens"] == 16 and "max_completion_tokens" not in req.body


def test_anthropic_completion_and_system(fake_llm: FakeLLMServer) -> None:
    fake_llm.script(Reply(text="Claude says hi", input_tokens=20, output_tokens=3))
    messages = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Part one."},
        {"role": "user", "content": "Part two."},
        {"role": "assistant", "content": "Noted."},
        {"role": "system", "content": "Answer in English."},
        {"role": "user", "content": "Go."},
    ]
    c = complete(anthropic_p(fake_llm), messages, GenParams(max_tokens=50, stop=["###"]))
    assert (c.text, c.input_tokens, c.output_tokens, c.finish_reason) == ("Claude says hi", 20, 3, "stop")
    body = fake_llm.last("/v1/messages").body
    assert body["system"] == "You are terse.\n\nAnswer in English."
    assert body["messages"] == [
        {"role": "user", "content": "Part one.\n\nPart two."},
        {"role": "assistant", "content": "Noted."},
        {"role": "user", "content": "Go."},
    ]
    assert all(m["role"] != "system" for m in body["messages"])
    assert (body["max_tokens"], body["stop_sequences"], body["model"]) == (50, ["###"], "claude-test")
    assert "x-api-key" not in fake_llm.last().headers and fake_llm.last().has_auth


def test_anthropic_max_tokens_maps_to_length(fake_llm: FakeLLMServer) -> None:
    fake_llm.script(Reply(text="cut", finish_reason="length"))
    assert complete(anthropic_p(fake_llm)).finish_reason == "length"


def test_anthropic_message_conversion_blocks() -> None:
    system, msgs = to_anthropic_messages(
        [{"role": "user", "content": "a"}, {"role": "user", "content": [{"type": "text", "text": "b"}]}]
    )
    assert system is None
    assert msgs == [
        {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}
    ]


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
def test_api_key_never_in_raw(fake_llm: FakeLLMServer, kind: str) -> None:
    c = complete(PROVIDERS[kind](fake_llm))
    dumped = json.dumps(c.raw) + repr(c)
    assert OPENAI_KEY not in dumped and ANTHROPIC_KEY not in dumped and "SECRET" not in dumped
    for r in fake_llm.requests:
        assert "SECRET" not in json.dumps(r.headers)


def test_scripted_responder(fake_llm: FakeLLMServer) -> None:
    def echo(req: RecordedRequest) -> str:
        return "echo: " + req.body["messages"][-1]["content"]

    fake_llm.responder = echo
    assert complete(openai_p(fake_llm)).text == "echo: " + CHAT[0]["content"]


# -- missing keys ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("var", "factory"),
    [
        ("OPENAI_API_KEY", lambda: OpenAIProvider("gpt-4o-mini")),
        ("ANTHROPIC_API_KEY", lambda: AnthropicProvider("c")),
    ],
)
def test_missing_key(monkeypatch: pytest.MonkeyPatch, var: str, factory: Callable[[], Provider]) -> None:
    monkeypatch.delenv(var)
    with pytest.raises(MissingKeyError, match=var) as exc:
        factory()
    assert exc.value.variable == var


def test_missing_key_via_spec(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    with pytest.raises(MissingKeyError, match="ANTHROPIC_API_KEY"):
        make_provider("anthropic:claude-test")


# -- faults ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["openai", "anthropic"])
def test_429_retry_after(fake_llm: FakeLLMServer, kind: str) -> None:
    fake_llm.script(rate_limited(retry_after=7))
    with pytest.raises(RetryableError) as exc:
        complete(PROVIDERS[kind](fake_llm))
    assert exc.value.retry_after == 7.0
    assert exc.value.status == 429
    assert fake_llm.count(CHAT_PATH[kind]) == 1  # the SDK did not retry on its own


@pytest.mark.parametrize(("kind", "fault"), [("openai", 500), ("anthropic", 500), ("anthropic", 529)])
def test_server_errors_are_retryable(fake_llm: FakeLLMServer, kind: str, fault: int) -> None:
    fake_llm.script(overloaded() if fault == 529 else server_error(fault))
    with pytest.raises(RetryableError) as exc:
        complete(PROVIDERS[kind](fake_llm))
    assert exc.value.status == fault and exc.value.retry_after is None
    assert fake_llm.request_count == 1


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
def test_client_errors_are_final(fake_llm: FakeLLMServer, kind: str) -> None:
    fake_llm.script(http_error(400, "bad model"))
    with pytest.raises(ProviderError, match="400") as exc:
        complete(PROVIDERS[kind](fake_llm))
    assert not isinstance(exc.value, RetryableError)


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
def test_malformed_json(fake_llm: FakeLLMServer, kind: str) -> None:
    fake_llm.script(malformed())
    with pytest.raises(ProviderError, match="malformed") as exc:
        complete(PROVIDERS[kind](fake_llm))
    assert not isinstance(exc.value, RetryableError)


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
def test_wrong_shape_json(fake_llm: FakeLLMServer, kind: str) -> None:
    fake_llm.script(Reply(body={"hello": "world"}))
    with pytest.raises(ProviderError, match="malformed"):
        complete(PROVIDERS[kind](fake_llm))


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
def test_connection_drop(fake_llm: FakeLLMServer, kind: str) -> None:
    fake_llm.script(drop())
    with pytest.raises(RetryableError, match="connection failed") as exc:
        complete(PROVIDERS[kind](fake_llm))
    assert exc.value.status is None


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
def test_timeout(fake_llm: FakeLLMServer, kind: str) -> None:
    fake_llm.script(slow(1.0))
    with pytest.raises(RetryableError, match="timed out"):
        complete(PROVIDERS[kind](fake_llm, timeout=0.2))


def test_connection_refused() -> None:
    with FakeLLMServer() as srv:
        url = srv.openai_base_url
    with pytest.raises(RetryableError, match="(?i)connection failed: .*(refused|connect)"):
        complete(OpenAIProvider("m", base_url=url))


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
def test_transport_errors_read_the_same_with_the_sdks_default_http_client(
    fake_llm: FakeLLMServer, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without aiohttp the SDKs fall back to their httpx transport; the errors must say the same."""
    import anthropic

    import curator.llm.providers.anthropic as anthropic_provider
    import curator.llm.providers.openai as openai_provider

    made: list[Any] = []

    def httpx_client(sdk: Any) -> Any:
        made.append(sdk.DefaultAsyncHttpxClient())
        return made[-1]

    monkeypatch.setattr(openai_provider, "http_client", httpx_client)
    monkeypatch.setattr(anthropic_provider, "http_client", httpx_client)
    fake_llm.script(drop(), slow(1.0))
    with pytest.raises(RetryableError, match="connection failed"):
        complete(PROVIDERS[kind](fake_llm))
    with pytest.raises(RetryableError, match="timed out"):
        complete(PROVIDERS[kind](fake_llm, timeout=0.2))
    sdk_client = openai.DefaultAsyncHttpxClient if kind == "openai" else anthropic.DefaultAsyncHttpxClient
    assert len(made) == 2 and all(type(c) is sdk_client for c in made)


def test_the_sdks_use_the_aiohttp_transport(fake_llm: FakeLLMServer) -> None:
    from openai._vendor.httpx_aiohttp import AiohttpTransport

    provider = PROVIDERS["openai"](fake_llm)
    assert isinstance(provider._client._client._transport, AiohttpTransport)


def test_recovers_after_faults(fake_llm: FakeLLMServer) -> None:
    fake_llm.script(server_error(), "second try")

    async def twice(p: Provider) -> str:
        with pytest.raises(RetryableError):
            await p.complete(CHAT, GenParams())
        return (await p.complete(CHAT, GenParams())).text

    assert run_with(openai_p(fake_llm), twice) == "second try"
    assert fake_llm.pending == 0


def test_parallel_requests_are_served_concurrently() -> None:
    with FakeLLMServer(latency=0.3) as srv:

        async def many(p: Provider) -> list[Completion]:
            return await asyncio.gather(*(p.complete(CHAT, GenParams()) for _ in range(24)))

        t0 = time.monotonic()
        out = run_with(openai_p(srv), many)
        elapsed = time.monotonic() - t0
    assert len({c.text for c in out}) == 24
    assert elapsed < 2.0, elapsed
    assert srv.peak_concurrency >= 12


# -- files and fine-tuning jobs -------------------------------------------------------------------
def test_fine_tuning_lifecycle(fake_llm: FakeLLMServer) -> None:
    data = b'{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}\n'

    async def main() -> None:
        client = openai.AsyncOpenAI(api_key=OPENAI_KEY, base_url=fake_llm.openai_base_url, max_retries=0)
        async with client:
            f = await client.files.create(file=("train.jsonl", data), purpose="fine-tune")
            assert (f.filename, f.bytes, f.purpose) == ("train.jsonl", len(data), "fine-tune")
            assert (await client.files.retrieve(f.id)).id == f.id
            job = await client.fine_tuning.jobs.create(
                model="gpt-4o-mini-2024-07-18", training_file=f.id, seed=5
            )
            assert job.status == "validating_files" and job.fine_tuned_model is None and job.seed == 5
            seen = [(await client.fine_tuning.jobs.retrieve(job.id)).status for _ in range(4)]
            assert seen == ["queued", "running", "succeeded", "succeeded"]
            done = await client.fine_tuning.jobs.retrieve(job.id)
            assert done.fine_tuned_model and done.fine_tuned_model.startswith("ft:gpt-4o-mini-2024-07-18:")
            events = [e.message async for e in client.fine_tuning.jobs.list_events(job.id)]
            assert events[0] == "The job has successfully completed"
            assert events[-1].startswith("Created fine-tuning job")

            fake_llm.ft_outcome = "failed"
            bad = await client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=f.id)
            for _ in range(3):
                last = await client.fine_tuning.jobs.retrieve(bad.id)
            assert last.status == "failed" and last.error is not None and last.error.message

            other = await client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=f.id)
            assert (await client.fine_tuning.jobs.cancel(other.id)).status == "cancelled"
            assert (await client.fine_tuning.jobs.retrieve(other.id)).status == "cancelled"

            with pytest.raises(openai.BadRequestError):
                await client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file="file-nope")

    asyncio.run(main())
    assert fake_llm.files[next(iter(fake_llm.files))]["_content"] == data
    upload = fake_llm.requests[0]
    assert upload.path == "/v1/files" and upload.body["purpose"] == "fine-tune"
    assert not any("SECRET" in json.dumps(r.headers) for r in fake_llm.requests)
