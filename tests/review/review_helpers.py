"""Helpers for the review tests: a small workspace with examples of every origin, planted markup, and two
evaluations written straight into ``evals`` / ``eval_results`` (the real schema; no model runs)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from curator.data.ingest import ingest_file
from curator.workspace import Workspace

XSS_SCRIPT = "<script>window.__pwned = 1</script>"
XSS_IMG = '"><img src=x onerror="window.__pwned=2">'
EVAL_A, EVAL_B = "ev-alpha", "ev-bravo"


def _write(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def chat(q: str, a: str) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}


def build(ws: Workspace, root: Path, n: int = 12) -> dict[str, Any]:
    """Seeds, imports (one with planted markup, one refusal) and test examples; two evaluations on the test ones."""
    root.mkdir(parents=True, exist_ok=True)
    seeds = [chat(f"How do I reset password number {i}?", f"Open settings and choose reset, step {i}.")
             for i in range(n)]
    imports = [chat(f"{XSS_SCRIPT} question {XSS_IMG}", f"answer {XSS_IMG}"),
               chat("Can you hack my neighbour's wifi?", "I'm sorry, but I can't help with that."),
               chat("Where is my parcel 42?", "It left the depot this morning.")]
    tests = [chat(f"Test question about topic {w} please", f"Reference answer about {w}.")
             for w in ("alpha", "bravo", "charlie", "delta")]
    ingest_file(ws, _write(root / "seeds.jsonl", seeds), origin="seed", task="support", split="train")
    ingest_file(ws, _write(root / "imports.jsonl", imports), origin="import", task="support", split="train")
    ingest_file(ws, _write(root / "test.jsonl", tests), origin="import", task="qa", split="test")
    with ws.connect() as con:
        test_ids = [r[0] for r in con.execute(
            "SELECT example_id FROM splits WHERE split = 'test' ORDER BY example_id").fetchall()]
    add_eval(ws, EVAL_A, "r-alpha", test_ids, lambda i: f"alpha answer {i}")
    add_eval(ws, EVAL_B, "r-bravo", test_ids, lambda i: f"bravo answer {i} {XSS_SCRIPT}" if i == 0 else f"bravo answer {i}")
    return {"test_ids": test_ids}


def add_eval(ws: Workspace, eval_id: str, run_id: str, ids: list[str], answer: Any) -> None:
    with ws.transaction() as con:
        con.execute("INSERT INTO evals (id, run_id, snapshot_id, split, params, summary, status) "
                    "VALUES (?, ?, 'snap-1', 'test', '{}', '{}', 'complete')", [eval_id, run_id])
        con.executemany(
            "INSERT INTO eval_results (eval_id, run_id, example_id, prediction, scores, meta) VALUES (?, ?, ?, ?, ?, ?)",
            [(eval_id, run_id, eid, answer(i), json.dumps({"exact_match": float(i % 2), "rougeL": 0.5 + i / 10}),
              json.dumps({"finish_reason": "stop"})) for i, eid in enumerate(ids)])


def ids_by(ws: Workspace, where: str = "true") -> list[str]:
    with ws.connect() as con:
        return [r[0] for r in con.execute(
            f"SELECT e.id FROM examples e JOIN splits s ON s.example_id = e.id WHERE {where} "
            "ORDER BY e.created_at, e.rowid").fetchall()]


class AppServer:
    """The review app on a real uvicorn (a thread of this process) on 127.0.0.1 and a free port."""

    def __init__(self, ws: Workspace, reviewer: str = "ann", token: str | None = None) -> None:
        import socket

        from curator.review.app import ReviewConfig, prepare

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        self.config = ReviewConfig(reviewer=reviewer, token=token, port=self.port)
        self.app = prepare(ws, self.config)
        self.url = f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> AppServer:
        import threading
        import time

        import uvicorn

        self.server = uvicorn.Server(uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning",
                                                    access_log=False, lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the review server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.should_exit = True
        self.thread.join(10)

    def request(self, method: str, path: str, body: Any = None, *, csrf: bool = True,
                headers: dict[str, str] | None = None, raw: bytes | None = None) -> tuple[int, Any, dict[str, str]]:
        """(status, parsed JSON or text, headers) of one request; the page's CSRF token is sent unless ``csrf=False``."""
        import urllib.error
        import urllib.request

        hdrs = {"Content-Type": "application/json", **(headers or {})}
        if csrf:
            hdrs["X-CSRF-Token"] = self.config.csrf
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=hdrs)
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                status, text, h = r.status, r.read().decode(), dict(r.headers)
        except urllib.error.HTTPError as e:
            status, text, h = e.code, e.read().decode(), dict(e.headers)
        try:
            return status, json.loads(text), h
        except ValueError:
            return status, text, h
