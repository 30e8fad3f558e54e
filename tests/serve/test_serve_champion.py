"""``curator serve --champion`` follows promotions live: a round that promotes another run switches the
``champion`` name (``/v1/models``, the answering run in the response headers and the trace) without a restart."""

from __future__ import annotations

import time
from pathlib import Path

import openai

from tests.serve.serve_helpers import RUNS, Server


def _promote(ws: Path, round_no: int, run_id: str) -> None:
    from curator.workspace import Workspace

    with Workspace(ws).transaction() as con:
        con.execute("INSERT INTO rounds (round, status, run_id, promoted, champion) VALUES (?, 'done', ?, true, ?)",
                    [round_no, run_id, run_id])


def _champion_run(url: str) -> str | None:
    client = openai.OpenAI(base_url=url + "/v1", api_key="none")
    cards = {m.id: m for m in client.models.list().data}
    return (cards["champion"].model_extra or {}).get("run_id")


def test_champion_follows_a_promotion(serve_ws: Path, tiny_model_dir: Path) -> None:
    alpha, bravo = RUNS["alpha"][0], RUNS["bravo"][0]
    _promote(serve_ws, 1, alpha)
    with Server(serve_ws, ["--champion", "--champion-poll", "0.2", "--base-model", str(tiny_model_dir)]) as srv:
        client = openai.OpenAI(base_url=srv.url + "/v1", api_key="none")
        assert _champion_run(srv.url) == alpha
        msgs = [{"role": "user", "content": "hello"}]
        first = client.chat.completions.with_raw_response.create(model="champion", messages=msgs, max_tokens=4,
                                                                  temperature=0)
        assert first.headers["x-curator-run-id"] == alpha
        _promote(serve_ws, 2, bravo)  # the server holds no lock: this write goes through while it is up
        deadline = time.monotonic() + 60
        while _champion_run(srv.url) != bravo and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _champion_run(srv.url) == bravo, srv.log()
        second = client.chat.completions.with_raw_response.create(model="champion", messages=msgs, max_tokens=4,
                                                                   temperature=0)
        assert second.headers["x-curator-run-id"] == bravo
        trace_id = second.parse().id
    from curator.feedback.tracelog import get_trace
    from curator.workspace import Workspace

    trace = get_trace(Workspace(serve_ws), trace_id)
    assert trace["run_id"] == bravo and trace["model"] == "champion"
