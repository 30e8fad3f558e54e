"""Putting ``curator serve`` together: what is served, the engine, the app, uvicorn.

Start-up is the only time the server opens the workspace database: it resolves the runs (adapter
folders, base model), reads the trace ids feedback may name, and closes it.  From then on it writes only
its trace log (:mod:`curator.serve.traces`), so ``curator round``, ``stats`` and ``review`` run while it is up.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from curator.errors import CuratorError, ModelError, require
from curator.feedback.tracelog import known_trace_ids, log_dir
from curator.models import DEFAULT_CHAT_MODEL
from curator.quality.pii import DEFAULT_BACKEND, PII_BACKEND_SETTING, prepare_backend
from curator.serve.ab import ABRoute, parse_ab
from curator.serve.app import ServeConfig, ServedModel, create_app
from curator.serve.traces import TraceWriter
from curator.workspace import Workspace

__all__ = ["BASE", "ChampionWatcher", "ServeOptions", "build", "is_loopback", "resolve_served", "serve"]

#: The base model is always served under this name.
BASE = "base"


@dataclass
class ServeOptions:
    """Everything ``curator serve`` was asked for."""

    adapters: Sequence[str] = ()  # "NAME=RUN"
    runs: Sequence[str] = ()
    champion: bool = False
    ab: Sequence[str] = ()
    base_model: str | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    engine: str = "auto"
    max_batch: int = 32
    batch_wait_ms: float = 100.0
    mixed_batches: bool = True
    dtype: str = "auto"  # of the model under --engine transformers (curator.models.load_model)
    traces: bool = True
    config: ServeConfig = field(default_factory=ServeConfig)
    vllm_args: Sequence[str] = ()
    log_level: str = "warning"
    champion_poll_s: float = 5.0


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass
class Served:
    models: dict[str, ServedModel]
    ab: dict[str, tuple[ABRoute, dict[str, ServedModel]]]
    base_model: str


def _check_name(name: str, taken: dict[str, Any], what: str) -> None:
    if not name or any(c.isspace() for c in name) or "/" in name:
        raise CuratorError(f"{what}: {name!r} is not a usable model name (no spaces or slashes)")
    if name in taken:
        raise CuratorError(f"{what}: the name {name!r} is served twice")


def resolve_served(ws: Workspace, opts: ServeOptions) -> Served:
    """Names -> runs -> adapter folders (checked), all on one base model."""
    from trainer.runs import get_run

    wanted: list[tuple[str, str, str]] = []  # (name, run ref, option)
    for spec in opts.adapters:
        if "=" not in spec:
            raise CuratorError(f"--adapter {spec!r}: expected NAME=RUN")
        name, ref = (s.strip() for s in spec.split("=", 1))
        wanted.append((name, ref, "--adapter"))
    for ref in opts.runs:
        wanted.append(("", ref, "--run"))
    if opts.champion:
        wanted.append(("champion", _champion(ws), "--champion"))
    routes = [parse_ab(spec) for spec in opts.ab]

    runs: dict[str, Any] = {}

    def run_of(ref: str, option: str) -> Any:
        if ref == BASE:
            return None
        if not ws.exists():
            raise CuratorError(f"{option} {ref}: no workspace at {ws.path} (pass --workspace)")
        run = get_run(ws, ref)
        if run.kind == "openai":
            raise CuratorError(f"{option} {ref}: run {run.id} is an OpenAI fine-tune; it has no local adapter")
        if run.status != "succeeded" or not run.adapter_path:
            raise CuratorError(f"{option} {ref}: run {run.id} has no adapter (status {run.status})")
        if not (ws.path / run.adapter_path / "adapter_config.json").exists():
            raise ModelError(f"{option} {ref}: the adapter folder {ws.path / run.adapter_path} is missing or incomplete")
        runs[run.id] = run
        return run

    def model_for(name: str, run: Any) -> ServedModel:
        if run is None:
            return ServedModel(name, "")
        return ServedModel(name, run.base_model, run.id, run.id, ws.path / run.adapter_path)

    models: dict[str, ServedModel] = {BASE: ServedModel(BASE, "")}
    for name, ref, option in wanted:
        run = run_of(ref, option)
        name = name or (run.id if run is not None else BASE)
        if name == BASE and run is None:
            continue
        _check_name(name, models, option)
        models[name] = model_for(name, run)
    ab: dict[str, tuple[ABRoute, dict[str, ServedModel]]] = {}
    for route in routes:
        _check_name(route.name, {**models, **ab}, "--ab")
        arms = {route.name: model_for(route.name, run_of(route.run_a, "--ab")),
                route.arm_b: model_for(route.arm_b, run_of(route.run_b, "--ab"))}
        ab[route.name] = (route, arms)

    bases = {r.base_model for r in runs.values()}
    if len(bases) > 1:
        raise ModelError("the runs to serve use different base models ("
                         + ", ".join(f"{r.id}: {r.base_model}" for r in runs.values())
                         + "); one server holds one base model")
    base = opts.base_model or (bases.pop() if bases else DEFAULT_CHAT_MODEL)

    def fill(m: ServedModel) -> ServedModel:
        return ServedModel(m.name, base, m.run_id, m.adapter, m.adapter_path)

    return Served({n: fill(m) for n, m in models.items()},
                  {n: (r, {a: fill(m) for a, m in arms.items()}) for n, (r, arms) in ab.items()}, base)


def _champion(ws: Workspace) -> str:
    if not ws.exists():
        raise CuratorError("no champion yet: run `curator round`")
    with ws.connect() as con:
        done = con.execute("SELECT count(*) FROM rounds WHERE status = 'done'").fetchall()[0][0]
    if not done:
        raise CuratorError("no champion yet: run `curator round`")
    from curator.loop.rounds import champion

    return champion(ws)


class ChampionWatcher:
    """Follows promotions for ``--champion``: every ``interval`` seconds, when the workspace file changed
    (a cheap ``stat``), it reads the champion with one short read-only connection (a locked file -- a
    round writing -- is skipped until the next poll), loads the new run's adapter into the engine while
    the old one keeps answering, then points the ``champion`` name at it.  A trace records the run of the
    model it was routed to, so it names the run that actually answered."""

    def __init__(self, ws: Workspace, models: dict[str, ServedModel], engine: Any, interval: float = 5.0,
                 log: Callable[[str], None] = lambda m: None) -> None:
        import threading

        self.ws, self.models, self.engine, self.interval, self.log = ws, models, engine, interval, log
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._seen: tuple[float, int] | None = self._stamp()
        self.switches = 0

    def _stamp(self) -> tuple[float, int] | None:
        try:
            st = self.ws.db_path.stat()
        except OSError:
            return None
        wal = self.ws.db_path.with_name(self.ws.db_path.name + ".wal")
        return (st.st_mtime, st.st_size + (wal.stat().st_size if wal.exists() else 0))

    def check(self) -> bool:
        """One poll; True when the served champion changed."""
        stamp = self._stamp()
        if stamp is None or stamp == self._seen:
            return False
        from curator.errors import WorkspaceLockedError
        from trainer.runs import get_run

        ws = Workspace(self.ws.path)
        try:
            with ws.connect(read_only=True) as con:
                rows = con.execute(
                    "SELECT champion FROM rounds WHERE status = 'done' AND champion IS NOT NULL "
                    "ORDER BY round DESC LIMIT 1").fetchall()
                ref = rows[0][0] if rows and rows[0][0] else BASE
                current = self.models.get("champion")
                if current is None or ref == (current.run_id or BASE):
                    self._seen = stamp
                    return False
                run = get_run(ws, ref) if ref != BASE else None
        except WorkspaceLockedError:
            return False  # a writer is at work: look again at the next poll
        self._seen = stamp
        base = self.models[BASE].base_model
        if run is None:
            new = ServedModel("champion", base)
        else:
            if run.base_model != base or not run.adapter_path:
                self.log(f"curator serve: champion {run.id} cannot be served here (base {run.base_model}); "
                         f"keeping {current.run_id}")
                return False
            path = self.ws.path / run.adapter_path
            self.engine.add_adapter(run.id, str(path))
            new = ServedModel("champion", base, run.id, run.id, path)
        self.models["champion"] = new
        self.switches += 1
        self.log(f"curator serve: champion is now {new.run_id or BASE} (was {current.run_id or BASE})")
        return True

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.check()
            except Exception as e:  # keep serving the old champion
                self.log(f"curator serve: could not follow the champion: {type(e).__name__}: {e}")

    def start(self) -> None:
        import threading

        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="curator-champion", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()


def _engine_kind(requested: str) -> str:
    if requested in ("transformers", "vllm"):
        return requested
    if requested != "auto":
        raise CuratorError(f"unknown engine {requested!r} (auto, transformers, vllm)")
    import importlib.util

    if importlib.util.find_spec("torch") is None or importlib.util.find_spec("vllm") is None:
        return "transformers"
    import torch

    return "vllm" if torch.cuda.is_available() else "transformers"


def build(ws: Workspace, opts: ServeOptions, log: Callable[[str], None] = lambda m: None) -> tuple[Any, dict[str, Any]]:
    """(ASGI app, a description of what it serves); loads the model.  The database is closed on return."""
    require("fastapi", "serve", "curator serve")
    require("uvicorn", "serve", "curator serve")
    cfg = opts.config
    if not is_loopback(opts.host) and not cfg.api_key:
        raise CuratorError(f"serving on {opts.host} (not this machine only) needs an API key: pass --api-key "
                           "or set CURATOR_SERVE_KEY")
    served = resolve_served(ws, opts)
    known = known_trace_ids(ws)
    if cfg.pii_backend is None:  # traces are scrubbed with the workspace's PII backend unless --pii-backend says
        cfg.pii_backend = ws.get_setting(PII_BACKEND_SETTING, DEFAULT_BACKEND) if ws.exists() else DEFAULT_BACKEND
    prepare_backend(cfg.pii_backend)  # a missing [pii] extra fails now, and Presidio loads before the first request
    kind = _engine_kind(opts.engine)
    cfg.engine = kind
    adapters: dict[str, Path] = {}
    for m in [*served.models.values(), *(a for _, arms in served.ab.values() for a in arms.values())]:
        if m.adapter and m.adapter_path:
            adapters[m.adapter] = m.adapter_path
    if kind == "vllm":
        from curator.serve.vllm import GatewayBackend

        backend: Any = GatewayBackend.launch(served.base_model, adapters, extra_args=opts.vllm_args, log=log)
    else:
        require("torch", "train", "curator serve --engine transformers")
        require("peft", "train", "curator serve --engine transformers")
        from curator.llm.continuous import Engine
        from curator.models import load_model
        from curator.serve.backends import LocalBackend

        log(f"loading {served.base_model}" + (f" with {len(adapters)} adapter(s)" if adapters else "") + " ...")
        model, tok = load_model(served.base_model, adapters={k: str(p) for k, p in adapters.items()} or None,
                                dtype=opts.dtype)
        engine = Engine(model, tok, max_batch=opts.max_batch, batch_wait_ms=opts.batch_wait_ms,
                        mixed=opts.mixed_batches)
        backend = LocalBackend(engine)
    writer = TraceWriter(log_dir(ws), enabled=opts.traces)
    watcher = (ChampionWatcher(ws, served.models, backend.engine, opts.champion_poll_s, log)
               if opts.champion and kind == "transformers" else None)

    def on_startup() -> None:
        if kind == "transformers":
            backend.engine.start()
        if watcher is not None:
            watcher.start()

    app = create_app(backend, served.models, served.ab, writer, known, cfg, on_startup=on_startup,
                     on_shutdown=watcher.stop if watcher is not None else None)
    info = {
        "url": f"http://{opts.host}:{opts.port}/v1", "engine": kind, "base_model": served.base_model,
        "models": {n: m.run_id or "base" for n, m in served.models.items()},
        "ab": {n: {"arms": {a: m.run_id or "base" for a, m in arms.items()}, "fraction": r.fraction}
               for n, (r, arms) in served.ab.items()},
        "traces": str(writer.path) if opts.traces else None, "auth": bool(cfg.api_key),
        "pii_backend": cfg.pii_backend,
    }
    return app, info


def serve(ws: Workspace, opts: ServeOptions, log: Callable[[str], None] = lambda m: None) -> None:
    """Build the app and run it until interrupted (Ctrl-C / SIGTERM finish the batch and flush the traces)."""
    app, info = build(ws, opts, log)
    import uvicorn

    models = ", ".join(f"{n} ({r})" if r != n else n for n, r in info["models"].items())
    for n, d in info["ab"].items():
        models += f", {n} (A/B: " + ", ".join(f"{a}={r}" for a, r in d["arms"].items()) + f", {d['fraction']:g})"
    log(f"curator serve: {info['url']} ({info['engine']}, base model {info['base_model']}); models: {models}")
    log(f"  traces -> {info['traces'] or 'off'} (PII scrubbed with {info['pii_backend']}); "
        + ("API key required" if info["auth"] else "no API key (loopback only)"))
    config = uvicorn.Config(app, host=opts.host, port=opts.port, log_level=opts.log_level, access_log=False,
                            timeout_keep_alive=15, timeout_graceful_shutdown=10, lifespan="on")
    try:
        uvicorn.Server(config).run()
    except KeyboardInterrupt:  # uvicorn has shut down cleanly and re-raised Ctrl-C
        pass
    log("curator serve: stopped")
