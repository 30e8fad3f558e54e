"""The ``curator review`` web app: FastAPI on uvicorn, server-rendered pages and the JSON API they use.

Pages (Jinja2, ``templates/``, extending the HTML kit's ``base.html`` and its chat macro; autoescaped):
``/`` (the queues and their progress), ``/examples`` (the filtered, paginated examples queue),
``/examples/resume`` (to the first example nobody reviewed), ``/examples/<id>`` (one example: turns,
provenance, decisions; with ``pos`` it is a place in the queue and j/k move), ``/answers`` (pick an
evaluation; ``?eval=ID`` rates its answers, resuming at the first this reviewer has not rated), ``/ab``
(pick two evaluations; ``?left=A&right=B`` compares their answers blind).  ``/static/`` serves
``review.js`` and ``review.css`` from the package: nothing comes from the network.

JSON API: ``GET /api/examples?origin=&task=&split=&status=&job=&flag=&limit=&offset=`` ->
``{"examples": [...], "total", "limit", "offset"}``; ``GET /api/examples/<id>``;
``POST /api/examples/<id>/decision`` ``{"action": "accept"|"reject"|"edit", "reason"?, "messages"?}``;
``GET /api/evals``; ``GET /api/answers?eval_id=&limit=&offset=``; ``POST /api/ratings``
``{"eval_id", "example_id", "rating", "note"?}``; ``GET /api/ab?left_eval=&right_eval=&limit=&offset=``;
``POST /api/preferences`` ``{"left_eval", "right_eval", "example_id", "choice": "left"|"right"|"tie"}``.
Errors are ``{"error": {"message", "field", "code"}}``: 422 names the field, 404 an unknown id, 409 a state
that does not allow the action, 503 a workspace another command kept locked (nothing saved; the page says so).
Bodies are read as JSON by hand (no form parsing, so no python-multipart).

Safety: state changes (POST) need the page's CSRF token (random per process, embedded in each page, sent
back by the script as ``X-CSRF-Token``) or ``Authorization: Bearer T`` when a token is set.  With a token
every request but ``/health`` needs the bearer header or the cookie that opening any page with ``?token=T``
sets (HttpOnly, SameSite=Strict).  Bound to loopback, requests must name a loopback ``Host`` (no DNS
rebinding).  Tokens are compared in constant time.  Pages send a CSP that allows only this server's script.

The workspace is opened per request (read-only for reads, a short transaction per write) under one
process lock, so the app holds no connection, and no lock, between clicks.
"""

from __future__ import annotations

import hmac
import secrets
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any
from urllib.parse import urlencode

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from curator.review import store
from curator.review.store import ExampleFilter, InvalidField, NotFound, ReviewError
from curator.workspace import Workspace

__all__ = ["ReviewConfig", "check_reviewer", "create_app", "environment", "prepare", "serve"]

_STATIC = {"review.js": "text/javascript; charset=utf-8", "review.css": "text/css; charset=utf-8"}
_CSP = ("default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
COOKIE = "curator_review_token"
MAX_BODY = 1 << 20
_LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}


@dataclass
class ReviewConfig:
    """One review server: whose clicks these are, the optional token, where it listens."""

    reviewer: str = "reviewer"
    token: str | None = None
    host: str = "127.0.0.1"
    port: int = 8765
    page_size: int = 50
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))

    def __repr__(self) -> str:  # the secrets never reach a log line
        return (f"ReviewConfig(reviewer={self.reviewer!r}, token={'set' if self.token else None}, "
                f"host={self.host!r}, port={self.port})")


@cache
def environment() -> Any:
    """The HTML kit's Jinja2 environment, with this package's templates in front of the kit's."""
    from jinja2 import ChoiceLoader, PackageLoader

    from curator.html import environment as kit

    base = kit()
    assert base.loader is not None
    return base.overlay(loader=ChoiceLoader([PackageLoader("curator.review", "templates"), base.loader]))


@cache
def _static(name: str) -> bytes:
    return resources.files("curator.review").joinpath("static", name).read_bytes()


class _Refused(Exception):
    def __init__(self, status: int, message: str, code: str) -> None:
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


def _error(status: int, message: str, field: str | None = None, code: str | None = None) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "field": field, "code": code}}, status_code=status)


def _int(params: Any, name: str, default: int) -> int:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise InvalidField(name, f"must be an integer (got {raw!r})") from None


def _filter(params: Any) -> ExampleFilter:
    return ExampleFilter(**{k: (params.get(k) or None) for k in ("origin", "task", "split", "status", "job", "flag")})


def _host_name(value: str) -> str:
    """The host of a ``Host`` header (port dropped; an IPv6 literal keeps its brackets)."""
    if value.startswith("["):
        return value.split("]", 1)[0] + "]"
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


def _snippet(messages: list[dict[str, Any]] | None, n: int = 140) -> str:
    user = next((m.get("content") or "" for m in messages or [] if m.get("role") == "user"), "")
    text = " ".join(str(user).split())
    return text if len(text) <= n else text[: n - 1] + "…"


def _position(request: Request, first: dict[str, Any]) -> int:
    """The queue position a page asks for (``?pos=``), or where this reviewer stopped (``first["resume"]``)."""
    if request.query_params.get("pos") in (None, ""):
        return int(first["resume"]) if first["resume"] is not None else 0
    pos = _int(request.query_params, "pos", 0)
    if pos < 0:
        raise InvalidField("pos", "must be an integer >= 0")
    return pos


def create_app(ws: Workspace, config: ReviewConfig) -> FastAPI:
    """The ASGI app over ``ws`` (opened per request: reads through :class:`~curator.review.store.ReviewWorkspace`)."""
    if not isinstance(ws, store.ReviewWorkspace):
        ws = store.ReviewWorkspace(ws.path)
    app = FastAPI(title="curator review", docs_url=None, redoc_url=None, openapi_url=None)
    db_lock = threading.Lock()
    token = config.token.encode("utf-8") if config.token else None
    csrf = config.csrf.encode("utf-8")
    loopback_only = config.host in _LOOPBACK_HOSTS or config.host.startswith("127.")

    async def call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        def locked() -> Any:
            with db_lock:
                return fn(*args, **kwargs)

        return await run_in_threadpool(locked)

    # -- guard: host, token, CSRF, security headers ------------------------------------------------------------
    def _bearer_ok(request: Request) -> bool:
        auth = request.headers.get("authorization", "")
        given = auth[7:].strip().encode("utf-8") if auth[:7].lower() == "bearer " else b""
        return token is not None and hmac.compare_digest(given, token)

    def _check(request: Request) -> None:
        if loopback_only:
            if _host_name(request.headers.get("host") or "") not in _LOOPBACK_HOSTS | {config.host}:
                raise _Refused(403, "this review server answers requests for 127.0.0.1 / localhost only", "bad_host")
        if request.url.path == "/health":
            return
        if token is not None and not _bearer_ok(request):
            cookie = request.cookies.get(COOKIE, "").encode("utf-8")
            if not hmac.compare_digest(cookie, token):
                raise _Refused(401, "this review server needs its token: send Authorization: Bearer T, or open "
                               "any page once with ?token=T", "token_required")
        if request.method not in ("GET", "HEAD"):
            sent = request.headers.get("x-csrf-token", "").encode("utf-8")
            if not hmac.compare_digest(sent, csrf) and not _bearer_ok(request):
                raise _Refused(403, "missing or wrong CSRF token: reload the page (or send Authorization: Bearer T)",
                               "csrf")

    @app.middleware("http")
    async def guard(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        given = request.query_params.get("token")
        if token is not None and given is not None and request.method == "GET":
            if not hmac.compare_digest(given.encode("utf-8"), token):
                return _error(401, "wrong token", "token", "token_required")
            rest = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
            resp: Response = RedirectResponse(request.url.path + ("?" + urlencode(rest) if rest else ""), 303)
            resp.set_cookie(COOKIE, config.token or "", httponly=True, samesite="strict")
            return resp
        try:
            _check(request)
        except _Refused as e:
            resp = _error(e.status, e.message, None, e.code)
        else:
            resp = await call_next(request)
        resp.headers["content-security-policy"] = _CSP
        resp.headers["x-content-type-options"] = "nosniff"
        resp.headers["referrer-policy"] = "no-referrer"
        resp.headers["cache-control"] = "no-store"
        return resp

    # -- errors --------------------------------------------------------------------------------------------------
    def _wants_json(request: Request) -> bool:
        return request.url.path.startswith("/api/") or request.method != "GET"

    def _page_error(status: int, message: str) -> HTMLResponse:
        html = environment().get_template("error.html").render(title=f"{status}", message=message,
                                                               page=_page_data("error"), reviewer=config.reviewer)
        return HTMLResponse(html, status_code=status)

    @app.exception_handler(ReviewError)
    async def _review_error(request: Request, exc: ReviewError) -> Response:
        if _wants_json(request):
            return _error(exc.status, exc.message, exc.field, type(exc).__name__)
        return _page_error(exc.status, exc.message)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        message = "not found" if exc.status_code == 404 else str(exc.detail)
        if _wants_json(request):
            return _error(exc.status_code, message, None, "not_found" if exc.status_code == 404 else None)
        return _page_error(exc.status_code, message)

    async def _body(request: Request) -> dict[str, Any]:
        raw = await request.body()
        if len(raw) > MAX_BODY:
            raise InvalidField("body", f"is over {MAX_BODY} bytes")
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise InvalidField("body", "is not valid JSON") from None
        if not isinstance(body, dict):
            raise InvalidField("body", "must be a JSON object")
        return body

    def _unknown(body: dict[str, Any], allowed: tuple[str, ...]) -> None:
        extra = sorted(set(body) - set(allowed))
        if extra:
            raise InvalidField(extra[0], "unknown field")

    # -- pages ----------------------------------------------------------------------------------------------------
    def _page_data(kind: str, **extra: Any) -> dict[str, Any]:
        return {"kind": kind, "csrf": config.csrf, "reviewer": config.reviewer, **extra}

    def render(name: str, **context: Any) -> HTMLResponse:
        return HTMLResponse(environment().get_template(name).render(reviewer=config.reviewer, **context))

    def _qs(params: dict[str, Any]) -> str:
        clean = {k: v for k, v in params.items() if v is not None and v != ""}
        return ("?" + urlencode(clean)) if clean else ""

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "reviewer": config.reviewer, "workspace": str(ws.path)}

    @app.get("/static/{name}")
    async def static(name: str) -> Response:
        if name not in _STATIC:
            raise NotFound(f"no static file {name}")
        return Response(_static(name), media_type=_STATIC[name])

    @app.get("/", response_class=HTMLResponse)
    async def home() -> HTMLResponse:
        progress = await call(store.examples_progress, ws)
        evals = await call(store.list_evals, ws, config.reviewer)
        return render("home.html", title="Review queues", progress=progress, evals=evals,
                      page=_page_data("home"))

    @app.get("/examples", response_class=HTMLResponse)
    async def examples_page(request: Request) -> HTMLResponse:
        f = _filter(request.query_params).check()
        limit = _int(request.query_params, "limit", config.page_size)
        offset = _int(request.query_params, "offset", 0)
        data = await call(store.list_examples, ws, f, limit=limit, offset=offset)
        progress = await call(store.examples_progress, ws, f)
        rows = [{**e, "snippet": _snippet(e["messages"]), "pos": offset + i,
                 "href": f"/examples/{e['id']}" + _qs({**f.params(), "pos": offset + i})}
                for i, e in enumerate(data["examples"])]
        pages = {"prev": "/examples" + _qs({**f.params(), "offset": max(offset - limit, 0), "limit": limit})
                 if offset > 0 else None,
                 "next": "/examples" + _qs({**f.params(), "offset": offset + limit, "limit": limit})
                 if offset + limit < data["total"] else None}
        return render("examples.html", title="Examples", rows=rows, total=data["total"], offset=offset,
                      limit=limit, filters=f.params(), origins=store.ORIGINS, splits=("train", "eval", "test"),
                      statuses=store.STATUSES, flags=store.FLAGS, progress=progress, pages=pages,
                      resume="/examples/resume" + _qs(f.params()),
                      page=_page_data("list", rows=[r["href"] for r in rows]))

    @app.get("/examples/resume")
    async def examples_resume(request: Request) -> Response:
        f = _filter(request.query_params).check()
        pos = await call(store.resume_offset, ws, f)
        if pos is None:
            return RedirectResponse("/examples" + _qs({**f.params(), "done": 1}), 303)
        data = await call(store.list_examples, ws, f, limit=1, offset=pos)
        return RedirectResponse(f"/examples/{data['examples'][0]['id']}" + _qs({**f.params(), "pos": pos}), 303)

    @app.get("/examples/{eid}", response_class=HTMLResponse)
    async def example_page(eid: str, request: Request) -> HTMLResponse:
        ex = await call(store.get_example, ws, eid)
        f = _filter(request.query_params).check()
        raw_pos = request.query_params.get("pos")
        nav: dict[str, Any] = {"prev": None, "next": None, "pos": None, "total": None, "list": "/examples" + _qs(f.params())}
        if raw_pos not in (None, ""):
            pos = _int(request.query_params, "pos", 0)
            if pos < 0:
                raise InvalidField("pos", "must be an integer >= 0")
            around = await call(store.list_examples, ws, f, limit=3, offset=max(pos - 1, 0))
            ids = [e["id"] for e in around["examples"]]
            nav.update(pos=pos, total=around["total"])
            me = 1 if pos > 0 else 0
            if pos > 0 and ids:
                nav["prev"] = f"/examples/{ids[0]}" + _qs({**f.params(), "pos": pos - 1})
            if len(ids) > me + 1:
                nav["next"] = f"/examples/{ids[me + 1]}" + _qs({**f.params(), "pos": pos + 1})
            nav["list"] = "/examples" + _qs({**f.params(), "offset": pos - pos % config.page_size})
        progress = await call(store.examples_progress, ws, f)
        return render("example.html", title=f"Example {ex['id'][:12]}", ex=ex, nav=nav, progress=progress,
                      filters=f.params(),
                      page=_page_data("example", id=ex["id"], messages=ex["messages"], status=ex["status"],
                                      prev=nav["prev"], next=nav["next"], list=nav["list"],
                                      here=f"/examples/{ex['id']}" + _qs({**f.params(), "pos": nav["pos"]})))

    @app.get("/answers", response_class=HTMLResponse)
    async def answers_page(request: Request) -> HTMLResponse:
        eval_id = request.query_params.get("eval")
        if not eval_id:
            evals = await call(store.list_evals, ws, config.reviewer)
            return render("answers.html", title="Answers", evals=evals, item=None, data=None, nav=None,
                          page=_page_data("pick"))
        first = await call(store.list_answers, ws, eval_id, config.reviewer, limit=1, offset=0)
        pos = _position(request, first)
        data = await call(store.list_answers, ws, eval_id, config.reviewer, limit=1, offset=pos) if pos else first
        if not data["answers"] and data["total"]:
            raise NotFound(f"evaluation {eval_id} has {data['total']} answers; there is none at position {pos}")
        item = data["answers"][0] if data["answers"] else None
        nav = {"pos": pos,
               "prev": "/answers" + _qs({"eval": eval_id, "pos": pos - 1}) if pos > 0 else None,
               "next": "/answers" + _qs({"eval": eval_id, "pos": pos + 1}) if pos + 1 < data["total"] else None}
        return render("answers.html", title=f"Answers of {eval_id}", evals=None, item=item, data=data, nav=nav,
                      page=_page_data("answers", eval_id=eval_id, example_id=item["example_id"] if item else None,
                                      prev=nav["prev"], next=nav["next"],
                                      here="/answers" + _qs({"eval": eval_id, "pos": pos})))

    @app.get("/ab", response_class=HTMLResponse)
    async def ab_page(request: Request) -> HTMLResponse:
        left, right = request.query_params.get("left"), request.query_params.get("right")
        if not left or not right:
            evals = await call(store.list_evals, ws, config.reviewer)
            return render("ab.html", title="A/B", evals=evals, item=None, data=None, nav=None, page=_page_data("pick"))
        first = await call(store.list_pairs, ws, left, right, config.reviewer, limit=1, offset=0)
        pos = _position(request, first)
        data = await call(store.list_pairs, ws, left, right, config.reviewer, limit=1, offset=pos) if pos else first
        if not data["items"] and data["total"]:
            raise NotFound(f"the two evaluations share {data['total']} examples; there is none at position {pos}")
        item = data["items"][0] if data["items"] else None
        base = {"left": left, "right": right}
        nav = {"pos": pos, "prev": "/ab" + _qs({**base, "pos": pos - 1}) if pos > 0 else None,
               "next": "/ab" + _qs({**base, "pos": pos + 1}) if pos + 1 < data["total"] else None}
        shown = None
        if item and item["choice"]:
            shown = "tie" if item["choice"] == "tie" else (
                "A" if (item["choice"] == "right") == item["swapped"] else "B")
        return render("ab.html", title="A/B", evals=None, item=item, data=data, nav=nav, shown=shown,
                      page=_page_data("ab", left_eval=left, right_eval=right,
                                      example_id=item["example_id"] if item else None,
                                      swapped=item["swapped"] if item else False, prev=nav["prev"], next=nav["next"],
                                      here="/ab" + _qs({**base, "pos": pos})))

    # -- the JSON API ---------------------------------------------------------------------------------------------
    @app.get("/api/examples")
    async def api_examples(request: Request) -> dict[str, Any]:
        f = _filter(request.query_params)
        limit = _int(request.query_params, "limit", config.page_size)
        offset = _int(request.query_params, "offset", 0)
        result: dict[str, Any] = await call(store.list_examples, ws, f, limit=limit, offset=offset)
        return result

    @app.get("/api/examples/{eid}")
    async def api_example(eid: str) -> dict[str, Any]:
        ex: dict[str, Any] = await call(store.get_example, ws, eid)
        ex["provenance"] = [list(p) for p in ex["provenance"]]
        return ex

    @app.post("/api/examples/{eid}/decision")
    async def api_decision(eid: str, request: Request) -> dict[str, Any]:
        body = await _body(request)
        _unknown(body, ("action", "reason", "messages"))
        if "action" not in body:
            raise InvalidField("action", "is required")
        result: dict[str, Any] = await call(store.decide, ws, eid, body["action"], reviewer=config.reviewer,
                                            reason=body.get("reason"), messages=body.get("messages"))
        return result

    @app.get("/api/evals")
    async def api_evals() -> dict[str, Any]:
        return {"evals": await call(store.list_evals, ws, config.reviewer)}

    @app.get("/api/answers")
    async def api_answers(request: Request) -> dict[str, Any]:
        eval_id = request.query_params.get("eval_id")
        if not eval_id:
            raise InvalidField("eval_id", "is required")
        result: dict[str, Any] = await call(store.list_answers, ws, eval_id, config.reviewer,
                                            limit=_int(request.query_params, "limit", config.page_size),
                                            offset=_int(request.query_params, "offset", 0))
        return result

    @app.post("/api/ratings")
    async def api_ratings(request: Request) -> dict[str, Any]:
        body = await _body(request)
        _unknown(body, ("eval_id", "example_id", "rating", "note"))
        for name in ("eval_id", "example_id", "rating"):
            if name not in body:
                raise InvalidField(name, "is required")
        result: dict[str, Any] = await call(store.rate, ws, body["eval_id"], body["example_id"], body["rating"],
                                            reviewer=config.reviewer, note=body.get("note"))
        return result

    @app.get("/api/ab")
    async def api_ab(request: Request) -> dict[str, Any]:
        q = request.query_params
        for name in ("left_eval", "right_eval"):
            if not q.get(name):
                raise InvalidField(name, "is required")
        result: dict[str, Any] = await call(store.list_pairs, ws, q["left_eval"], q["right_eval"], config.reviewer,
                                            limit=_int(q, "limit", config.page_size), offset=_int(q, "offset", 0))
        return result

    @app.post("/api/preferences")
    async def api_preferences(request: Request) -> dict[str, Any]:
        body = await _body(request)
        _unknown(body, ("left_eval", "right_eval", "example_id", "choice"))
        for name in ("left_eval", "right_eval", "example_id", "choice"):
            if name not in body:
                raise InvalidField(name, "is required")
        result: dict[str, Any] = await call(store.prefer, ws, body["left_eval"], body["right_eval"],
                                            body["example_id"], body["choice"], reviewer=config.reviewer)
        return result

    return app


def check_reviewer(name: str) -> str:
    """A usable reviewer name (1-100 printable characters), stripped."""
    from curator.errors import CuratorError

    name = (name or "").strip()
    if not name or len(name) > 100 or not name.isprintable():
        raise CuratorError(f"--reviewer {name!r}: give a name of 1 to 100 printable characters")
    return name


def _open_once(ws: Workspace) -> None:
    with ws.connect():  # applies any pending migration (the review tables), then closes
        pass


def prepare(ws: Workspace, config: ReviewConfig) -> FastAPI:
    """Check the options, migrate the workspace once (then close it), and build the app."""
    from curator.errors import CuratorError, require
    from curator.serve.server import is_loopback

    require("fastapi", "review", "curator review")
    require("uvicorn", "review", "curator review")
    if not is_loopback(config.host) and not config.token:
        raise CuratorError(f"reviewing on {config.host} (not this machine only) needs a token: pass --token "
                           "or set CURATOR_REVIEW_TOKEN")
    if config.token is not None and len(config.token) < 8:
        raise CuratorError("--token: use at least 8 characters")
    config.reviewer = check_reviewer(config.reviewer)
    if not ws.exists():
        raise CuratorError(f"no workspace at {ws.path} (run `curator ingest` first, or pass --workspace)")
    store.retrying(lambda: _open_once(ws))
    return create_app(ws, config)


def serve(ws: Workspace, config: ReviewConfig, log: Callable[[str], None] = lambda m: None,
          log_level: str = "warning") -> None:
    """Run the app on uvicorn until interrupted."""
    app = prepare(ws, config)
    import uvicorn

    log(f"curator review: http://{config.host}:{config.port}/ (reviewer {config.reviewer}; "
        + ("token required" if config.token else "no token: this machine only") + "; Ctrl-C stops)")
    uv = uvicorn.Config(app, host=config.host, port=config.port, log_level=log_level, access_log=False,
                        timeout_graceful_shutdown=5)
    try:
        uvicorn.Server(uv).run()
    except KeyboardInterrupt:
        pass
    log("curator review: stopped")
