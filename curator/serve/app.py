"""The HTTP API of ``curator serve`` (FastAPI on uvicorn): OpenAI's chat completions, models, feedback.

Routes: ``GET /health`` (no key needed), ``GET /v1/models``, ``POST /v1/chat/completions`` (OpenAI's request
and response schema; ``stream: true`` sends ``chat.completion.chunk`` server-sent events and ``data: [DONE]``),
``POST /v1/feedback``.  Errors are JSON in OpenAI's shape, ``{"error": {"message", "type", "param", "code"}}``:
a bad chat request is 400 (as OpenAI answers), an unknown model 404, a bad feedback field 422 naming it,
an unknown trace 404, a missing or wrong key 401, a body over the limit 413, a body that does not arrive
in time 408, a request over ``--request-timeout`` 504.

Every completion is a trace: the response ``id`` and the ``x-curator-trace-id`` header carry its id; the
record (messages, served name, run, adapter, sampling parameters, latency, token counts, finish reason)
is PII-scrubbed with :func:`curator.quality.pii.scrub` and queued for the trace writer before the response
is sent (:mod:`curator.serve.traces`).  The API key is compared in constant time and never logged or
written anywhere.
"""

from __future__ import annotations

import asyncio
import hmac
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from curator.feedback.tracelog import now_utc, scrub_messages, scrub_text
from curator.llm.continuous import SamplingParams
from curator.serve.ab import ABRoute
from curator.serve.traces import TraceWriter

__all__ = ["ApiError", "Backend", "Completion", "ServeConfig", "ServedModel", "create_app"]


# -- configuration ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ServedModel:
    """A name requests can ask for: the base model (``adapter`` None) or one run's adapter."""

    name: str
    base_model: str
    run_id: str | None = None
    adapter: str | None = None  # the adapter's key in the engine (the run id)
    adapter_path: Path | None = None

    def card(self) -> dict[str, Any]:
        return {"id": self.name, "object": "model", "created": 0, "owned_by": "curator",
                "run_id": self.run_id, "adapter": self.adapter, "base_model": self.base_model}


@dataclass
class ServeConfig:
    """Limits and switches of one server (see ``curator serve --help``)."""

    api_key: str | None = None
    max_tokens_cap: int = 1024
    default_max_tokens: int = 256
    request_timeout: float = 120.0
    max_body_bytes: int = 1 << 20
    body_timeout: float = 30.0
    max_messages: int = 256
    default_temperature: float = 1.0
    engine: str = "transformers"
    pii_backend: str | None = None  # None: the workspace setting ``pii_backend``, else "patterns" (resolved by build)

    def __repr__(self) -> str:  # the key never reaches a log line
        return (f"ServeConfig(api_key={'set' if self.api_key else None}, max_tokens_cap={self.max_tokens_cap}, "
                f"request_timeout={self.request_timeout}, engine={self.engine!r})")


class ApiError(Exception):
    """An error answered in OpenAI's shape."""

    def __init__(self, status: int, message: str, *, type: str = "invalid_request_error", param: str | None = None,
                 code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type, param, code

    def response(self, headers: dict[str, str] | None = None) -> JSONResponse:
        body = {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}
        return JSONResponse(body, status_code=self.status, headers=headers)


# -- backends -----------------------------------------------------------------------------------------------
@dataclass
class Completion:
    """The end of one generation."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str  # stop | length | timeout | cancelled | error
    meta: dict[str, Any] = field(default_factory=dict)


class Handle(Protocol):
    """One generation in flight: text deltas, then a :class:`Completion`."""

    def events(self) -> AsyncIterator[str | Completion]: ...

    def cancel(self) -> None: ...


class Backend(Protocol):
    """What answers: the local batching engine, or the vLLM gateway."""

    name: str

    async def start(self, messages: list[dict[str, Any]], served: ServedModel, params: SamplingParams,
                    deadline: float, stream: bool) -> Handle: ...

    def describe(self) -> dict[str, Any]: ...

    async def close(self) -> None: ...


# -- request schemas ----------------------------------------------------------------------------------------
class _ContentPart(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: str
    text: str | None = None


class _Message(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[_ContentPart] | None = None


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    model: str
    messages: list[_Message] = Field(min_length=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    stop: str | list[str] | None = None
    seed: int | None = None
    stream: bool | None = False
    stream_options: dict[str, Any] | None = None
    n: int | None = Field(default=None, ge=1)
    user: str | None = None


class FeedbackIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    trace_id: str = Field(min_length=1, max_length=200)
    rating: int | None = Field(default=None, ge=1, le=5)
    thumbs: Literal["up", "down"] | None = None
    comment: str | None = Field(default=None, max_length=4000)
    correction: str | None = Field(default=None, max_length=16000)


def _validation_error(e: ValidationError, status: int) -> ApiError:
    err = e.errors()[0]
    param = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or None
    msg = err.get("msg", "invalid value")
    if err.get("type") == "extra_forbidden":
        msg = "unknown field"
    return ApiError(status, f"{param}: {msg}" if param else msg, param=param, code="invalid_value")


def _text(content: str | list[_ContentPart] | None) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    parts = []
    for p in content:
        if p.type != "text":
            raise ApiError(400, f"content parts of type {p.type!r} are not supported (text only)",
                           param="messages", code="unsupported_content")
        parts.append(p.text or "")
    return "".join(parts)


# -- the ASGI guard: key, body size, body timeout -------------------------------------------------------------
class _BodyTooLarge(Exception):
    pass


class _BodyTimeout(Exception):
    pass


def _error_body(status: int, message: str, type: str, code: str | None) -> bytes:
    return orjson.dumps({"error": {"message": message, "type": type, "param": None, "code": code}})


class Guard:
    """Pure ASGI middleware: ``Authorization: Bearer KEY`` (constant-time) on everything but ``/health``;
    a request body over ``max_body_bytes`` gets 413; a body that stalls for ``body_timeout`` seconds gets 408."""

    def __init__(self, app: Callable[..., Awaitable[None]], config: ServeConfig) -> None:
        self.app = app
        self.config = config
        self._key = config.api_key.encode("utf-8") if config.api_key else None

    async def _reply(self, send: Callable[..., Awaitable[None]], status: int, message: str, type: str,
                     code: str | None, extra: list[tuple[bytes, bytes]] | None = None) -> None:
        body = _error_body(status, message, type, code)
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers + (extra or [])})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: dict[str, Any], receive: Callable[..., Awaitable[Any]],
                       send: Callable[..., Awaitable[None]]) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        if self._key is not None and scope.get("path") != "/health":
            auth = headers.get(b"authorization", b"")
            token = auth[7:].strip() if auth[:7].lower() == b"bearer " else b""
            if not hmac.compare_digest(token, self._key):
                await self._reply(send, 401, "Incorrect API key provided: send Authorization: Bearer KEY",
                                  "invalid_request_error", "invalid_api_key", [(b"www-authenticate", b"Bearer")])
                return
        limit = self.config.max_body_bytes
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            await self._reply(send, 413, f"the request body is over the limit of {limit} bytes",
                              "invalid_request_error", "body_too_large")
            return
        seen = 0
        timeout = self.config.body_timeout

        async def guarded() -> Any:
            nonlocal seen
            try:
                message = await asyncio.wait_for(receive(), timeout)
            except TimeoutError:
                raise _BodyTimeout() from None
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise _BodyTooLarge()
            return message

        await self.app(scope, guarded, send)


# -- the app ------------------------------------------------------------------------------------------------
def create_app(backend: Backend, served: dict[str, ServedModel],
               ab: dict[str, tuple[ABRoute, dict[str, ServedModel]]], writer: TraceWriter,
               known_traces: set[str], config: ServeConfig, *,
               on_startup: Callable[[], None] | None = None, on_shutdown: Callable[[], None] | None = None) -> Any:
    """The ASGI app (a FastAPI app wrapped in :class:`Guard`)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        writer.start()
        if on_startup:
            on_startup()
        try:
            yield
        finally:
            await backend.close()
            if on_shutdown:
                on_shutdown()
            writer.close()

    app = FastAPI(title="curator serve", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    started = time.time()
    pii = config.pii_backend or "patterns"
    counters: Counter[str] = Counter()

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> Response:
        return exc.response()

    @app.exception_handler(_BodyTooLarge)
    async def _too_large(request: Request, exc: Exception) -> Response:
        return ApiError(413, f"the request body is over the limit of {config.max_body_bytes} bytes",
                        code="body_too_large").response()

    @app.exception_handler(_BodyTimeout)
    async def _body_timeout(request: Request, exc: Exception) -> Response:
        return ApiError(408, f"the request body did not arrive within {config.body_timeout:g} s",
                        code="body_timeout").response()

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        return ApiError(exc.status_code, str(exc.detail), type="invalid_request_error",
                        code="not_found" if exc.status_code == 404 else None).response()

    async def _json(request: Request) -> Any:
        raw = await request.body()
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise ApiError(400, "the request body is not valid JSON", code="invalid_json") from None

    def _names() -> list[str]:
        return list(served) + [n for n in ab if n not in served]

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "engine": backend.name, "models": _names(), "uptime_s": round(time.time() - started, 1),
                "requests": dict(counters), "traces": str(writer.path) if writer.enabled else None,
                "traces_written": writer.written, **backend.describe()}

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        data = [m.card() for m in served.values()]
        for name, (route, _) in ab.items():
            if name not in served:
                data.append({"id": name, "object": "model", "created": 0, "owned_by": "curator",
                             "ab": {"arms": [route.name, route.arm_b], "runs": [route.run_a, route.run_b],
                                    "fraction": route.fraction}})
        return {"object": "list", "data": data}

    def _route(name: str, user: str | None) -> tuple[ServedModel, str | None, str | None]:
        if name in ab:
            route, arms = ab[name]
            arm, _ = route.pick(user)
            return arms[arm], name, arm
        if name in served:
            return served[name], None, None
        raise ApiError(404, f"the model {name!r} does not exist; served: {', '.join(_names())}",
                       param="model", code="model_not_found")

    def _params(req: ChatRequest) -> SamplingParams:
        if req.n not in (None, 1):
            raise ApiError(400, "n: only n=1 is supported", param="n", code="invalid_value")
        max_tokens = req.max_completion_tokens or req.max_tokens or min(config.default_max_tokens,
                                                                        config.max_tokens_cap)
        if max_tokens > config.max_tokens_cap:
            raise ApiError(400, f"max_tokens: {max_tokens} is over this server's cap of {config.max_tokens_cap}",
                           param="max_tokens", code="invalid_value")
        stop = [req.stop] if isinstance(req.stop, str) else list(req.stop or [])
        if len(stop) > 4 or any(not s for s in stop):
            raise ApiError(400, "stop: up to 4 non-empty strings", param="stop", code="invalid_value")
        temperature = config.default_temperature if req.temperature is None else req.temperature
        return SamplingParams(max_tokens=max_tokens, temperature=temperature,
                              top_p=1.0 if req.top_p is None else req.top_p, seed=req.seed, stop=stop)

    def _trace(trace_id: str, req: ChatRequest, messages: list[dict[str, Any]], target: ServedModel,
               ab_name: str | None, arm: str | None, params: SamplingParams, done: Completion, t0: float,
               stream: bool) -> dict[str, Any]:
        convo = scrub_messages([*messages, {"role": "assistant", "content": done.text}], None, pii)
        return {
            "type": "trace", "v": 1, "id": trace_id, "created_at": now_utc(), "model": req.model,
            "run_id": target.run_id, "adapter": target.adapter or "base", "ab_name": ab_name, "ab_arm": arm,
            "user_id": scrub_text(req.user, None, pii), "messages": convo,
            "params": {"max_tokens": params.max_tokens, "temperature": params.temperature, "top_p": params.top_p,
                       "seed": params.seed, "stop": [scrub_text(s, None, pii) for s in params.stop]},
            "latency_ms": round((time.monotonic() - t0) * 1000, 2), "prompt_tokens": done.prompt_tokens,
            "completion_tokens": done.completion_tokens, "finish_reason": done.finish_reason,
            "meta": {"engine": backend.name, "stream": stream, "served": target.name, **done.meta},
        }

    async def _record(rec: dict[str, Any]) -> None:
        """Queue a trace before its response goes out (waits, off the loop, only while the queue is full)."""
        known_traces.add(rec["id"])
        counters[rec["finish_reason"]] += 1
        await writer.write(rec)

    def _record_soon(rec: dict[str, Any]) -> None:
        """The same from a stream's ``finally`` (which may run while the task is being cancelled)."""
        known_traces.add(rec["id"])
        counters[rec["finish_reason"]] += 1
        writer.put_soon(rec)

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        body = await _json(request)
        try:
            req = ChatRequest.model_validate(body)
        except ValidationError as e:
            raise _validation_error(e, 400) from None
        if len(req.messages) > config.max_messages:
            raise ApiError(400, f"messages: at most {config.max_messages}", param="messages", code="invalid_value")
        messages = [{"role": "system" if m.role == "developer" else m.role, "content": _text(m.content)}
                    for m in req.messages]
        target, ab_name, arm = _route(req.model, req.user)
        params = _params(req)
        trace_id = f"chatcmpl-{uuid.uuid4().hex}"
        t0 = time.monotonic()
        deadline = t0 + config.request_timeout
        stream = bool(req.stream)
        headers = {"x-curator-trace-id": trace_id, "x-curator-served": target.name}
        if target.run_id:
            headers["x-curator-run-id"] = target.run_id
        if arm:
            headers["x-curator-arm"] = arm
        handle = await backend.start(messages, target, params, deadline, stream)
        created = int(time.time())

        if not stream:
            done: Completion | None = None
            try:
                async with asyncio.timeout(config.request_timeout + 5):
                    async for ev in handle.events():
                        if isinstance(ev, Completion):
                            done = ev
            except TimeoutError:
                handle.cancel()
            except asyncio.CancelledError:
                handle.cancel()
                raise
            if done is None:
                done = Completion("", 0, 0, "timeout")
            await _record(_trace(trace_id, req, messages, target, ab_name, arm, params, done, t0, False))
            if done.finish_reason == "timeout":
                raise ApiError(504, f"the request took longer than {config.request_timeout:g} s (--request-timeout)",
                               type="timeout_error", code="timeout")
            if done.finish_reason == "error":
                raise ApiError(500, f"generation failed: {done.meta.get('error', 'unknown error')}",
                               type="server_error", code="generation_failed")
            payload = {
                "id": trace_id, "object": "chat.completion", "created": created, "model": req.model,
                "system_fingerprint": None,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": done.text, "refusal": None},
                             "logprobs": None, "finish_reason": _openai_reason(done.finish_reason)}],
                "usage": {"prompt_tokens": done.prompt_tokens, "completion_tokens": done.completion_tokens,
                          "total_tokens": done.prompt_tokens + done.completion_tokens},
            }
            return Response(orjson.dumps(payload), media_type="application/json", headers=headers)

        include_usage = bool((req.stream_options or {}).get("include_usage"))
        known_traces.add(trace_id)  # the id is in the headers: feedback may come before the stream ends

        def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
            obj = {"id": trace_id, "object": "chat.completion.chunk", "created": created, "model": req.model,
                   "system_fingerprint": None,
                   "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}
            return b"data: " + orjson.dumps(obj) + b"\n\n"

        async def sse() -> AsyncIterator[bytes]:
            done: Completion | None = None
            parts: list[str] = []
            try:
                yield chunk({"role": "assistant", "content": ""})
                async for ev in handle.events():
                    if isinstance(ev, Completion):
                        done = ev
                    elif ev:
                        parts.append(ev)
                        yield chunk({"content": ev})
                assert done is not None
                yield chunk({}, _openai_reason(done.finish_reason))
                if include_usage:
                    usage = {"prompt_tokens": done.prompt_tokens, "completion_tokens": done.completion_tokens,
                             "total_tokens": done.prompt_tokens + done.completion_tokens}
                    obj = {"id": trace_id, "object": "chat.completion.chunk", "created": created, "model": req.model,
                           "choices": [], "usage": usage}
                    yield b"data: " + orjson.dumps(obj) + b"\n\n"
                yield b"data: [DONE]\n\n"
            finally:
                if done is None:  # the client went away (or the stream broke): stop generating for it
                    handle.cancel()
                    done = Completion("".join(parts), 0, 0, "cancelled")
                _record_soon(_trace(trace_id, req, messages, target, ab_name, arm, params, done, t0, True))

        return StreamingResponse(sse(), media_type="text/event-stream",
                                 headers={**headers, "cache-control": "no-cache"})

    @app.post("/v1/feedback")
    async def feedback(request: Request) -> Response:
        body = await _json(request)
        try:
            fb = FeedbackIn.model_validate(body)
        except ValidationError as e:
            raise _validation_error(e, 422) from None
        if fb.rating is None and fb.thumbs is None:
            raise ApiError(422, "rating: give a rating (1-5) or thumbs (up/down)", param="rating",
                           code="missing_rating")
        if fb.trace_id not in known_traces:
            raise ApiError(404, f"no trace {fb.trace_id!r}", type="not_found_error", param="trace_id",
                           code="trace_not_found")
        fid = f"fb-{uuid.uuid4().hex}"
        record = {"type": "feedback", "v": 1, "id": fid, "trace_id": fb.trace_id, "created_at": now_utc(),
                  "rating": fb.rating, "thumbs": fb.thumbs, "comment": scrub_text(fb.comment, None, pii),
                  "correction": scrub_text(fb.correction, None, pii)}
        try:
            await writer.write_durable(record)
        except OSError as e:
            raise ApiError(503, f"the feedback could not be stored: {e.strerror or e}", type="server_error",
                           code="storage_error") from None
        counters["feedback"] += 1
        return JSONResponse({"id": fid, "object": "feedback", "trace_id": fb.trace_id, "recorded": True})

    return Guard(app, config)


def _openai_reason(reason: str) -> str:
    """OpenAI's finish reasons are ``stop`` and ``length``; a stopped-early row reports ``length``."""
    return "stop" if reason == "stop" else "length"
