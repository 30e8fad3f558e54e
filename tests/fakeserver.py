"""A local stand-in for the OpenAI and Anthropic HTTP APIs, good enough for the official SDKs.

::

    with FakeLLMServer() as srv:
        srv.script("hello", rate_limited(retry_after=2), server_error())
        client = openai.AsyncOpenAI(base_url=srv.openai_base_url, api_key="sk-test")
        ...
        assert srv.count("/v1/chat/completions") == 3
        assert srv.requests[0].body["model"] == "gpt-4o-mini"

Speaks ``POST /v1/chat/completions`` (OpenAI) and ``POST /v1/messages`` (Anthropic), plus a
compact ``/v1/models``, ``/v1/files`` and ``/v1/fine_tuning/jobs``, and the two batch APIs:
OpenAI's ``/v1/batches`` (an uploaded JSONL of requests in, an output and an error file out) and
Anthropic's ``/v1/messages/batches`` (with ``.../results``).  Replies to the two chat endpoints, and
to each request of a batch, come from the script queue (:meth:`FakeLLMServer.script`), else from
``responder`` (a callable), else ``"fake reply N"``.  A batch ends at the first poll after
``batch_delay`` seconds, unless ``hold_batches`` is set (then at the first poll after it is cleared:
:meth:`FakeLLMServer.release_batches`); its requests are answered when it ends.  A reply may be a plain string or a :class:`Reply`,
which can carry a fault: see :func:`rate_limited`, :func:`server_error`, :func:`overloaded`,
:func:`slow`, :func:`malformed`, :func:`drop`, :func:`http_error`, :func:`drip`, :func:`html_page`,
:func:`truncated`, :func:`no_choices`, :func:`echo_key`, :func:`with_usage`.

Requests are served in parallel (one thread each); ``latency`` adds a fixed sleep to every
request, so N concurrent requests take about one latency, not N.  Only 127.0.0.1 is bound.
"""

from __future__ import annotations

import collections
import itertools
import json
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from email import policy
from email.parser import BytesParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = [
    "FakeLLMServer",
    "RecordedRequest",
    "Reply",
    "drip",
    "drop",
    "echo_key",
    "html_page",
    "http_error",
    "malformed",
    "no_choices",
    "overloaded",
    "rate_limited",
    "server_error",
    "slow",
    "truncated",
    "with_usage",
]

_AUTH_HEADERS = {"authorization", "x-api-key", "api-key", "proxy-authorization", "cookie"}
_ANTHROPIC_STOP = {"stop": "end_turn", "length": "max_tokens"}
_TERMINAL = ("succeeded", "failed", "cancelled")


@dataclass
class Reply:
    """One scripted answer of a chat endpoint.

    ``finish_reason`` uses OpenAI words ("stop", "length"); Anthropic replies get
    ``end_turn`` / ``max_tokens``.  Token counts default to word counts.  ``status`` other than
    200 sends an error body of the endpoint's flavour; ``fault`` is ``"malformed"`` (invalid JSON
    with status 200), ``"drop"`` (close the connection without answering), ``"html"`` (a 200 HTML
    page), ``"truncated"`` (half the body, then the connection closes), ``"drip"`` (the body one
    byte every ``drip`` seconds), ``"no-choices"`` (``choices: []``) or ``"echo-key"`` (the text
    quotes the request's credential header).  ``delay`` sleeps before answering; ``body`` replaces
    the generated JSON body verbatim; ``usage`` (when not ``"auto"``) replaces the usage object
    (None leaves it out).
    """

    text: str = "ok"
    finish_reason: str = "stop"
    input_tokens: int | None = None
    output_tokens: int | None = None
    status: int = 200
    retry_after: float | str | None = None
    fault: str | None = None
    delay: float = 0.0
    message: str = ""
    body: Any = None
    drip: float = 2.0
    usage: Any = "auto"


def drip(every: float = 2.0, text: str = "ok") -> Reply:
    """A 200 reply whose body arrives one byte every ``every`` seconds (a read timeout never trips)."""
    return Reply(text=text, fault="drip", drip=every)


def html_page(status: int = 200) -> Reply:
    """An HTML page (a proxy's or a captive portal's) instead of JSON."""
    return Reply(status=status, fault="html")


def truncated() -> Reply:
    """Half of a valid JSON body under the full ``Content-Length``, then the connection closes."""
    return Reply(fault="truncated")


def no_choices() -> Reply:
    """A well-formed chat completion with ``choices: []``."""
    return Reply(fault="no-choices")


def echo_key(text: str = "Your key is {key}.") -> Reply:
    """A successful reply whose text quotes the credential the request carried (``{key}``)."""
    return Reply(text=text, fault="echo-key")


def with_usage(usage: Any, text: str = "ok") -> Reply:
    """A reply whose ``usage`` object is ``usage`` verbatim (None: no usage at all)."""
    return Reply(text=text, usage=usage)


def rate_limited(retry_after: float | str | None = 1, message: str = "Rate limit reached") -> Reply:
    """HTTP 429, with a ``Retry-After`` header unless ``retry_after`` is None."""
    return Reply(status=429, retry_after=retry_after, message=message)


def server_error(status: int = 500, message: str = "The server had an error") -> Reply:
    return Reply(status=status, message=message)


def overloaded() -> Reply:
    """Anthropic's HTTP 529 ``overloaded_error``."""
    return Reply(status=529, message="Overloaded")


def http_error(status: int, message: str = "Bad request") -> Reply:
    return Reply(status=status, message=message)


def slow(delay: float, text: str = "ok") -> Reply:
    """Answer ``text`` after ``delay`` seconds."""
    return Reply(text=text, delay=delay)


def malformed() -> Reply:
    """Status 200, ``application/json``, a body that is not valid JSON."""
    return Reply(fault="malformed")


def drop() -> Reply:
    """Close the connection without sending a response."""
    return Reply(fault="drop")


@dataclass
class RecordedRequest:
    """One request as the server saw it; credential headers are left out of ``headers``."""

    method: str
    path: str  # without the query string
    query: str
    headers: dict[str, str]  # lower-case names, credential headers removed
    body: Any  # parsed JSON, a dict of multipart fields, or None
    has_auth: bool  # whether a credential header was present
    time: float = field(default_factory=time.monotonic)


Responder = Callable[[RecordedRequest], "Reply | str"]


def _words(content: Any) -> int:
    if isinstance(content, str):
        return len(content.split())
    if isinstance(content, list):
        return sum(_words(b.get("text", "")) for b in content if isinstance(b, dict))
    return 0


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 512
    owner: FakeLLMServer


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the SDKs' connection pools expect
    timeout = 30  # idle keep-alive connections end after this
    disable_nagle_algorithm = True  # replies go out as two small writes; Nagle would stall each ~40 ms
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass

    def do_GET(self) -> None:
        self.server.owner._handle(self, "GET")

    def do_POST(self) -> None:
        self.server.owner._handle(self, "POST")

    def do_DELETE(self) -> None:
        self.server.owner._handle(self, "DELETE")

    def read_body(self) -> bytes:
        if "chunked" in self.headers.get("transfer-encoding", "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("content-length") or 0)
        return self.rfile.read(length) if length else b""

    def send(self, status: int, body: bytes, headers: dict[str, str] | None = None, *,
             content_type: str = "application/json", cut: int | None = None, drip: float | None = None) -> None:
        """Send a response; ``cut``: send only that many body bytes and close; ``drip``: one byte every
        ``drip`` seconds."""
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            if drip is not None:
                for i in range(len(body)):
                    self.wfile.write(body[i : i + 1])
                    self.wfile.flush()
                    time.sleep(drip)
            else:
                self.wfile.write(body if cut is None else body[:cut])
                self.wfile.flush()
            if cut is not None:
                self.close_connection = True
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (e.g. its timeout)
            self.close_connection = True


class FakeLLMServer:
    """A threaded fake OpenAI + Anthropic server on 127.0.0.1; use as a context manager.

    ``replies``: an iterable of replies to queue, or a responder callable
    ``(RecordedRequest) -> Reply | str`` used when the queue is empty.
    ``latency``: seconds every request sleeps before it is answered.
    ``ft_outcome``: how fine-tuning jobs end, ``"succeeded"`` or ``"failed"``.
    """

    def __init__(
        self,
        replies: Iterable[Reply | str] | Responder | None = None,
        *,
        latency: float = 0.0,
        ft_outcome: str = "succeeded",
        batch_delay: float = 0.0,
    ) -> None:
        self.latency = latency
        self.ft_outcome = ft_outcome
        self.batch_delay = batch_delay
        self.hold_batches = False  # batches stay in progress until release_batches()
        self.batches: dict[str, dict[str, Any]] = {}  # OpenAI batch id -> batch object
        self.message_batches: dict[str, dict[str, Any]] = {}  # Anthropic batch id -> batch object (+ "_results")
        self.batch_requests: list[RecordedRequest] = []  # each request of every batch, as it was answered
        self._batch_input: dict[str, list[dict[str, Any]]] = {}
        self._batch_created: dict[str, float] = {}
        self.responder: Responder | None = None
        self._queue: collections.deque[Reply] = collections.deque()
        if callable(replies):
            self.responder = replies
        elif replies is not None:
            self.script(*replies)
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self._ids = itertools.count(1)
        self._in_flight = 0
        self.peak_concurrency = 0
        self.files: dict[str, dict[str, Any]] = {}  # id -> file object (+ "_content": bytes)
        self.jobs: dict[str, dict[str, Any]] = {}  # id -> job object
        self._job_stages: dict[str, list[str]] = {}
        self._job_events: dict[str, list[dict[str, Any]]] = {}
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> FakeLLMServer:
        if self._httpd is None:
            self._httpd = _Server(("127.0.0.1", 0), _Handler)
            self._httpd.owner = self
            self._thread = threading.Thread(
                target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> FakeLLMServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- addresses ---------------------------------------------------------------------------
    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("FakeLLMServer is not started")
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def openai_base_url(self) -> str:
        return self.url + "/v1"

    @property
    def anthropic_base_url(self) -> str:
        return self.url

    # -- scripting and inspection -------------------------------------------------------------
    def script(self, *replies: Reply | str) -> None:
        """Queue replies for the next chat / messages requests, in order."""
        self._queue.extend(Reply(text=r) if isinstance(r, str) else r for r in replies)

    @property
    def pending(self) -> int:
        """Scripted replies not yet used."""
        return len(self._queue)

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    @property
    def request_count(self) -> int:
        with self._lock:
            return len(self._requests)

    def count(self, path: str | None = None) -> int:
        """Requests seen, all of them or those to ``path`` (e.g. "/v1/messages")."""
        with self._lock:
            return sum(1 for r in self._requests if path is None or r.path == path)

    def last(self, path: str | None = None) -> RecordedRequest:
        """The latest request (to ``path``); IndexError if there is none."""
        return [r for r in self.requests if path is None or r.path == path][-1]

    def release_batches(self) -> None:
        """Let held batches end (at their next poll)."""
        self.hold_batches = False

    def reset(self) -> None:
        """Forget recorded requests and queued replies (files and jobs stay)."""
        with self._lock:
            self._requests.clear()
            self._queue.clear()
            self.peak_concurrency = 0

    # -- request handling ---------------------------------------------------------------------
    def _handle(self, h: _Handler, method: str) -> None:
        with self._lock:
            self._in_flight += 1
            self.peak_concurrency = max(self.peak_concurrency, self._in_flight)
        try:
            raw = h.read_body()
            path, _, query = h.path.partition("?")
            ctype = h.headers.get("content-type", "")
            body: Any = None
            if raw and ctype.startswith("multipart/form-data"):
                body = _parse_multipart(ctype, raw)
            elif raw:
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = raw.decode("utf-8", "replace")
            headers = {k.lower(): v for k, v in h.headers.items()}
            rec = RecordedRequest(
                method=method,
                path=path,
                query=query,
                headers={k: v for k, v in headers.items() if k not in _AUTH_HEADERS},
                body=body,
                has_auth=any(k in _AUTH_HEADERS for k in headers),
            )
            with self._lock:
                self._requests.append(rec)
            if self.latency > 0:
                time.sleep(self.latency)
            self._route(h, rec)
        finally:
            with self._lock:
                self._in_flight -= 1

    def _route(self, h: _Handler, rec: RecordedRequest) -> None:
        p, m = rec.path.rstrip("/"), rec.method
        parts = p.split("/")
        if m == "POST" and p == "/v1/chat/completions":
            return self._chat(h, rec, "openai")
        if m == "POST" and p == "/v1/messages":
            return self._chat(h, rec, "anthropic")
        if p.startswith("/v1/messages/batches"):
            return self._message_batches(h, rec, parts)
        if p.startswith("/v1/batches"):
            return self._batches(h, rec, parts)
        if m == "GET" and p == "/v1/models":
            data = [{"id": "fake-model", "object": "model", "created": 0, "owned_by": "curator"}]
            return self._json(h, 200, {"object": "list", "data": data})
        if p == "/v1/files" and m == "POST":
            return self._upload(h, rec)
        if p.startswith("/v1/files/") and m == "GET":
            f = self.files.get(parts[3])
            if f is None:
                return self._error(h, "openai", 404, f"No such file: {parts[3]}")
            if len(parts) == 5 and parts[4] == "content":
                return h.send(200, f["_content"])
            return self._json(h, 200, _public(f))
        if p.startswith("/v1/fine_tuning/jobs"):
            return self._fine_tuning(h, rec, parts)
        return self._error(h, "openai", 404, f"Unknown route {m} {rec.path}")

    def _next_reply(self, rec: RecordedRequest, n: int) -> Reply:
        with self._lock:
            reply: Reply | str | None = self._queue.popleft() if self._queue else None
        if reply is None and self.responder is not None:
            reply = self.responder(rec)
        if reply is None:
            reply = f"fake reply {n}"
        return Reply(text=reply) if isinstance(reply, str) else reply

    def _chat(self, h: _Handler, rec: RecordedRequest, flavour: str) -> None:
        n = next(self._ids)
        reply = self._next_reply(rec, n)
        if reply.delay > 0:
            time.sleep(reply.delay)
        if reply.fault == "drop":
            h.close_connection = True
            return
        if reply.fault == "malformed":
            return h.send(200, b'{"id": "broken", "choices": [{"message": ')
        if reply.fault == "html":
            page = b"<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1></body></html>"
            return h.send(reply.status, page, content_type="text/html")
        if reply.fault == "no-choices":
            return self._json(h, 200, {"id": f"chatcmpl-fake{n}", "object": "chat.completion", "choices": [],
                                       "usage": {"prompt_tokens": 1, "completion_tokens": 0, "total_tokens": 1}})
        if reply.fault == "echo-key":
            cred = h.headers.get("authorization") or h.headers.get("x-api-key") or ""
            key = cred.split(" ", 1)[1] if cred.lower().startswith("bearer ") else cred
            reply = Reply(text=reply.text.replace("{key}", key), finish_reason=reply.finish_reason)
        if reply.status != 200:
            extra = {} if reply.retry_after is None else {"Retry-After": str(reply.retry_after)}
            return self._error(h, flavour, reply.status, reply.message or "error", extra)
        if reply.body is not None:
            return self._json(h, 200, reply.body)
        out = self._completion(rec.body, reply, flavour, n)
        extra = {"x-request-id": f"req_fake{n}", "request-id": f"req_fake{n}"}
        if reply.fault in ("truncated", "drip"):
            data = json.dumps(out).encode()
            if reply.fault == "truncated":
                return h.send(200, data, extra, cut=len(data) // 2)
            return h.send(200, data, extra, drip=reply.drip)
        self._json(h, 200, out, extra)

    def _completion(self, request: Any, reply: Reply, flavour: str, n: int) -> dict[str, Any]:
        """The JSON body of a successful chat completion (openai) or message (anthropic) for ``reply``."""
        body = request if isinstance(request, dict) else {}
        model = str(body.get("model", "fake-model"))
        msgs = body.get("messages") or []
        tin = reply.input_tokens
        if tin is None:
            tin = sum(_words(m.get("content")) for m in msgs if isinstance(m, dict))
            tin += _words(body.get("system", ""))
        tout = reply.output_tokens if reply.output_tokens is not None else len(reply.text.split())
        usage: Any = reply.usage
        if flavour == "openai":
            out: dict[str, Any] = {
                "id": f"chatcmpl-fake{n}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": model,
                "system_fingerprint": "fp_fake",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": reply.text, "refusal": None},
                        "finish_reason": reply.finish_reason,
                        "logprobs": None,
                    }
                ],
                "usage": {"prompt_tokens": tin, "completion_tokens": tout, "total_tokens": tin + tout},
            }
        else:
            out = {
                "id": f"msg_fake{n}",
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": [{"type": "text", "text": reply.text}],
                "stop_reason": _ANTHROPIC_STOP.get(reply.finish_reason, reply.finish_reason),
                "stop_sequence": None,
                "usage": {"input_tokens": tin, "output_tokens": tout},
            }
        if usage is None:
            out.pop("usage")
        elif usage != "auto":
            out["usage"] = usage
        return out

    # -- batches: OpenAI's Batch API and Anthropic's Message Batches ---------------------------------
    def _due(self, bid: str) -> bool:
        return not self.hold_batches and time.monotonic() - self._batch_created[bid] >= self.batch_delay

    def _answer(self, path: str, body: Any, flavour: str) -> tuple[int, dict[str, Any]]:
        """One request of a batch, answered as the chat endpoint would: (status, body)."""
        rec = RecordedRequest(method="POST", path=path, query="", headers={}, body=body, has_auth=True)
        with self._lock:
            self.batch_requests.append(rec)
        n = next(self._ids)
        reply = self._next_reply(rec, n)
        if reply.status != 200:
            kind = "rate_limit_error" if reply.status == 429 else "invalid_request_error"
            if flavour == "anthropic":
                return reply.status, {"type": "error", "error": {"type": kind, "message": reply.message or "error"}}
            return reply.status, {"error": {"message": reply.message or "error", "type": kind, "param": None,
                                            "code": None}}
        return 200, reply.body if reply.body is not None else self._completion(body, reply, flavour, n)

    def _batch_list(self, h: _Handler, objects: list[dict[str, Any]]) -> None:
        data = [_public(b) for b in reversed(objects)]
        self._json(h, 200, {"object": "list", "data": data, "has_more": False,
                            "first_id": data[0]["id"] if data else None, "last_id": data[-1]["id"] if data else None})

    def _batches(self, h: _Handler, rec: RecordedRequest, parts: list[str]) -> None:
        m = rec.method
        if len(parts) == 3:  # /v1/batches
            if m == "GET":
                return self._batch_list(h, list(self.batches.values()))
            return self._create_batch(h, rec)
        batch = self.batches.get(parts[3])
        if batch is None:
            return self._error(h, "openai", 404, f"No batch found with id '{parts[3]}'.")
        if m == "GET" and len(parts) == 4:
            with self._lock:
                if batch["status"] == "in_progress" and self._due(batch["id"]):
                    batch["status"] = "finalizing"  # a poll meanwhile sees it finalizing, and does not run it again
                    self._run_batch(batch)
            return self._json(h, 200, _public(batch))
        if m == "POST" and parts[4:] == ["cancel"]:
            with self._lock:
                if batch["status"] in ("validating", "in_progress"):
                    batch.update(status="cancelled", cancelled_at=int(time.time()))
            return self._json(h, 200, _public(batch))
        return self._error(h, "openai", 404, f"Unknown route {m} {rec.path}")

    def _create_batch(self, h: _Handler, rec: RecordedRequest) -> None:
        body = rec.body if isinstance(rec.body, dict) else {}
        fid = body.get("input_file_id")
        if fid not in self.files:
            return self._error(h, "openai", 400, f"invalid input_file_id: {fid}")
        if body.get("endpoint") != "/v1/chat/completions" or body.get("completion_window") != "24h":
            return self._error(h, "openai", 400, "endpoint must be /v1/chat/completions, completion_window 24h")
        lines = [json.loads(x) for x in self.files[fid]["_content"].splitlines() if x.strip()]
        ids = [x.get("custom_id") for x in lines]
        if len(set(ids)) != len(ids) or not all(isinstance(i, str) and i for i in ids):
            return self._error(h, "openai", 400, "custom_id values must be unique non-empty strings")
        bid = f"batch_fake{next(self._ids)}"
        now = int(time.time())
        batch = {
            "id": bid, "object": "batch", "endpoint": "/v1/chat/completions", "errors": None,
            "input_file_id": fid, "completion_window": "24h", "status": "in_progress", "output_file_id": None,
            "error_file_id": None, "created_at": now, "in_progress_at": now, "expires_at": now + 86400,
            "finalizing_at": None, "completed_at": None, "failed_at": None, "expired_at": None,
            "cancelling_at": None, "cancelled_at": None,
            "request_counts": {"total": len(lines), "completed": 0, "failed": 0},
            "metadata": body.get("metadata"),
        }
        with self._lock:
            self.batches[bid] = batch
            self._batch_input[bid] = lines
            self._batch_created[bid] = time.monotonic()
        self._json(h, 200, batch)

    def _run_batch(self, batch: dict[str, Any]) -> None:
        """Answer every request of an OpenAI batch into an output file (200s) and an error file (others)."""
        out, err = [], []
        for line in self._batch_input[batch["id"]]:
            self._lock.release()  # a responder may take its time; the lock guards the lists only
            try:
                status, body = self._answer(line.get("url", "/v1/chat/completions"), line.get("body"), "openai")
            finally:
                self._lock.acquire()
            n = next(self._ids)
            entry = {"id": f"batch_req_fake{n}", "custom_id": line["custom_id"],
                     "response": {"status_code": status, "request_id": f"req_fake{n}", "body": body}, "error": None}
            (out if status == 200 else err).append(entry)
        for name, entries in (("output_file_id", out), ("error_file_id", err)):
            if entries:
                fid = f"file-fake{next(self._ids)}"
                content = "".join(json.dumps(e) + "\n" for e in entries).encode()
                self.files[fid] = {"id": fid, "object": "file", "bytes": len(content), "created_at": int(time.time()),
                                   "filename": f"{batch['id']}_{name.split('_')[0]}.jsonl", "purpose": "batch_output",
                                   "status": "processed", "_content": content}
                batch[name] = fid
        batch.update(status="completed", completed_at=int(time.time()), finalizing_at=int(time.time()),
                     request_counts={"total": len(out) + len(err), "completed": len(out), "failed": len(err)})

    def _message_batches(self, h: _Handler, rec: RecordedRequest, parts: list[str]) -> None:
        m = rec.method
        if len(parts) == 4:  # /v1/messages/batches
            if m == "GET":
                return self._batch_list(h, list(self.message_batches.values()))
            return self._create_message_batch(h, rec)
        batch = self.message_batches.get(parts[4])
        if batch is None:
            return self._error(h, "anthropic", 404, f"message batch {parts[4]} not found")
        with self._lock:
            if batch["processing_status"] == "in_progress" and not batch.get("_running") and self._due(batch["id"]):
                batch["_running"] = True
                self._run_message_batch(batch)
        if m == "GET" and len(parts) == 5:
            return self._json(h, 200, _public(batch))
        if m == "GET" and parts[5:] == ["results"]:
            if batch["processing_status"] != "ended":
                return self._error(h, "anthropic", 400, "the batch is still processing")
            data = "".join(json.dumps(r) + "\n" for r in batch["_results"]).encode()
            return h.send(200, data, content_type="application/binary")
        return self._error(h, "anthropic", 404, f"Unknown route {m} {rec.path}")

    def _create_message_batch(self, h: _Handler, rec: RecordedRequest) -> None:
        body = rec.body if isinstance(rec.body, dict) else {}
        reqs = body.get("requests")
        if not isinstance(reqs, list) or not reqs:
            return self._error(h, "anthropic", 400, "requests: a non-empty list is required")
        ids = [r.get("custom_id") for r in reqs if isinstance(r, dict)]
        if len(ids) != len(reqs) or len(set(ids)) != len(ids) or not all(
                isinstance(i, str) and 1 <= len(i) <= 64 and all(c.isalnum() or c in "-_" for c in i) for i in ids):
            return self._error(h, "anthropic", 400, "custom_id: unique, 1-64 characters of [a-zA-Z0-9_-]")
        bid = f"msgbatch_fake{next(self._ids)}"
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        later = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 86400))
        batch = {
            "id": bid, "type": "message_batch", "processing_status": "in_progress",
            "request_counts": {"processing": len(reqs), "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0},
            "ended_at": None, "created_at": now, "expires_at": later, "archived_at": None,
            "cancel_initiated_at": None, "results_url": None, "_results": [],
        }
        with self._lock:
            self.message_batches[bid] = batch
            self._batch_input[bid] = reqs
            self._batch_created[bid] = time.monotonic()
        self._json(h, 200, _public(batch))

    def _run_message_batch(self, batch: dict[str, Any]) -> None:
        results, ok, bad = [], 0, 0
        for item in self._batch_input[batch["id"]]:
            self._lock.release()
            try:
                status, body = self._answer("/v1/messages", item.get("params"), "anthropic")
            finally:
                self._lock.acquire()
            if status == 200:
                ok += 1
                results.append({"custom_id": item["custom_id"], "result": {"type": "succeeded", "message": body}})
            else:
                bad += 1
                results.append({"custom_id": item["custom_id"], "result": {"type": "errored", "error": body}})
        batch.update(processing_status="ended", _results=results,
                     ended_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                     results_url=f"{self.url}/v1/messages/batches/{batch['id']}/results",
                     request_counts={"processing": 0, "succeeded": ok, "errored": bad, "canceled": 0, "expired": 0})

    # -- files and fine-tuning jobs -----------------------------------------------------------
    def _upload(self, h: _Handler, rec: RecordedRequest) -> None:
        form = rec.body if isinstance(rec.body, dict) else {}
        upload = form.get("file")
        if not isinstance(upload, dict):
            return self._error(h, "openai", 400, "multipart field 'file' is required")
        fid = f"file-fake{next(self._ids)}"
        obj = {
            "id": fid,
            "object": "file",
            "bytes": len(upload["content"]),
            "created_at": int(time.time()),
            "filename": upload["filename"],
            "purpose": form.get("purpose", "fine-tune"),
            "status": "processed",
            "_content": upload["content"],
        }
        self.files[fid] = obj
        self._json(h, 200, _public(obj))

    def _event(self, job_id: str, message: str, level: str = "info") -> None:
        self._job_events[job_id].append(
            {
                "id": f"ftevent-fake{next(self._ids)}",
                "object": "fine_tuning.job.event",
                "created_at": int(time.time()),
                "level": level,
                "message": message,
                "type": "message",
                "data": None,
            }
        )

    def _fine_tuning(self, h: _Handler, rec: RecordedRequest, parts: list[str]) -> None:
        m = rec.method
        if len(parts) == 4:  # /v1/fine_tuning/jobs
            if m == "GET":
                data = [dict(j) for j in reversed(self.jobs.values())]
                return self._json(h, 200, {"object": "list", "data": data, "has_more": False})
            return self._create_job(h, rec)
        job = self.jobs.get(parts[4])
        if job is None:
            return self._error(h, "openai", 404, f"No such fine-tuning job: {parts[4]}")
        jid = job["id"]
        action = parts[5] if len(parts) > 5 else ""
        if m == "GET" and action == "":
            with self._lock:
                stages = self._job_stages[jid]
                if job["status"] not in _TERMINAL and stages:
                    self._set_status(job, stages.pop(0))
            return self._json(h, 200, job)
        if m == "GET" and action == "events":
            events = list(reversed(self._job_events[jid]))
            return self._json(h, 200, {"object": "list", "data": events, "has_more": False})
        if m == "POST" and action == "cancel":
            with self._lock:
                if job["status"] not in _TERMINAL:
                    self._set_status(job, "cancelled")
            return self._json(h, 200, job)
        return self._error(h, "openai", 404, f"Unknown route {m} {rec.path}")

    def _create_job(self, h: _Handler, rec: RecordedRequest) -> None:
        body = rec.body if isinstance(rec.body, dict) else {}
        training = body.get("training_file")
        if training not in self.files:
            return self._error(h, "openai", 400, f"invalid training_file: {training}")
        if not body.get("model"):
            return self._error(h, "openai", 400, "model is required")
        method = body.get("method") or {"type": "supervised"}
        hyper = body.get("hyperparameters") or (method.get(method.get("type", ""), {}) or {}).get(
            "hyperparameters"
        )
        jid = f"ftjob-fake{next(self._ids)}"
        job: dict[str, Any] = {
            "id": jid,
            "object": "fine_tuning.job",
            "created_at": int(time.time()),
            "model": body["model"],
            "organization_id": "org-fake",
            "status": "validating_files",
            "training_file": training,
            "validation_file": body.get("validation_file"),
            "hyperparameters": hyper
            or {"n_epochs": "auto", "batch_size": "auto", "learning_rate_multiplier": "auto"},
            "method": method,
            "seed": int(body.get("seed") or 42),
            "suffix": body.get("suffix"),
            "metadata": body.get("metadata"),
            "result_files": [],
            "fine_tuned_model": None,
            "finished_at": None,
            "trained_tokens": None,
            "error": None,
        }
        with self._lock:
            self.jobs[jid] = job
            self._job_stages[jid] = ["queued", "running", self.ft_outcome]
            self._job_events[jid] = []
            self._event(jid, f"Created fine-tuning job: {jid}")
            self._event(jid, "Validating training file")
        self._json(h, 200, job)

    def _set_status(self, job: dict[str, Any], status: str) -> None:
        job["status"] = status
        jid = job["id"]
        if status == "queued":
            self._event(jid, "Fine-tuning job queued")
        elif status == "running":
            self._event(jid, "Fine-tuning job started")
        elif status == "succeeded":
            suffix = job.get("suffix") or "curator"
            job["fine_tuned_model"] = f"ft:{job['model']}:{suffix}::{jid[-8:]}"
            job["finished_at"] = int(time.time())
            job["trained_tokens"] = int(self.files[job["training_file"]]["bytes"]) // 4
            self._event(jid, "The job has successfully completed")
        elif status == "failed":
            job["finished_at"] = int(time.time())
            job["error"] = {"code": "fake_failure", "message": "Scripted failure", "param": None}
            self._event(jid, "The job failed: Scripted failure", level="error")
        elif status == "cancelled":
            job["finished_at"] = int(time.time())
            self._event(jid, "Fine-tuning job cancelled")

    # -- responses ----------------------------------------------------------------------------
    def _json(self, h: _Handler, status: int, obj: Any, headers: dict[str, str] | None = None) -> None:
        h.send(status, json.dumps(obj).encode(), headers)

    def _error(
        self, h: _Handler, flavour: str, status: int, message: str, headers: dict[str, str] | None = None
    ) -> None:
        kind = {
            400: "invalid_request_error",
            401: "authentication_error",
            404: "not_found_error",
            429: "rate_limit_error",
            529: "overloaded_error",
        }.get(status, "api_error" if status >= 500 else "invalid_request_error")
        if flavour == "anthropic":
            body: dict[str, Any] = {"type": "error", "error": {"type": kind, "message": message}}
        else:
            body = {"error": {"message": message, "type": kind, "param": None, "code": None}}
        self._json(h, status, body, headers)


def _public(obj: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if not k.startswith("_")}


def _parse_multipart(ctype: str, raw: bytes) -> dict[str, Any]:
    """Form fields as strings; file fields as {"filename", "content" (bytes), "bytes"}."""
    msg = BytesParser(policy=policy.default).parsebytes(
        b"Content-Type: " + ctype.encode("latin-1") + b"\r\n\r\n" + raw
    )
    form: dict[str, Any] = {}
    for part in msg.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        data = part.get_payload(decode=True) or b""
        assert isinstance(data, bytes)
        filename = part.get_filename()
        if filename is not None:
            form[name] = {"filename": filename, "content": data, "bytes": len(data)}
        else:
            form[name] = data.decode("utf-8", "replace")
    return form


def isolate_llm_env(monkeypatch: Any, server: FakeLLMServer, tmp_path: Any, *, openai_key: str, file_key: str) -> None:
    """The provider environment of a test: OPENAI_* pointing at ``server``, a keys file holding ``file_key``,
    no other key, price file or proxy from the machine."""
    keys = tmp_path / "keys.yaml"
    keys.write_text(f"ANTHROPIC_API_KEY: {file_key}\n")
    monkeypatch.setenv("CURATOR_KEYS_FILE", str(keys))
    monkeypatch.setenv("OPENAI_API_KEY", openai_key)
    monkeypatch.setenv("OPENAI_BASE_URL", server.openai_base_url)
    for var in ("ANTHROPIC_API_KEY", "CURATOR_COMPATIBLE_API_KEY", "CURATOR_PRICES", "HTTP_PROXY", "HTTPS_PROXY",
                "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
