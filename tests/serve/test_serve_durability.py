"""kill -9 after a feedback was acknowledged loses nothing; the next round's ingest counts it once."""

from __future__ import annotations

from pathlib import Path

import httpx2 as httpx
import openai
from serve_helpers import RUNS, Server


def test_kill_9_after_feedback_then_restart_and_ingest_once(serve_ws: Path, tiny_model_dir: Path) -> None:
    args = ["--base-model", str(tiny_model_dir), "--adapter", f"alpha={RUNS['alpha'][0]}"]
    messages = [{"role": "user", "content": "The nightly export to my bucket failed again."}]
    server = Server(serve_ws, args).start()
    try:
        client = openai.OpenAI(base_url=server.url + "/v1", api_key="none", max_retries=0)
        c = client.chat.completions.create(model="alpha", messages=messages, max_tokens=6, temperature=0)
        r = httpx.post(server.url + "/v1/feedback", json={"trace_id": c.id, "rating": 1,
                                                           "correction": "Check the export job's credentials."})
        assert r.status_code == 200
    finally:
        server.kill9()  # no shutdown, no flush: only what was acknowledged counts

    from curator.feedback.query import feedback_stats, list_pairs
    from curator.feedback.tracelog import get_trace, ingest_traces
    from curator.workspace import Workspace

    ws = Workspace(serve_ws)
    t = get_trace(ws, c.id)
    assert t["rating"] == 1 and t["correction"] == "Check the export job's credentials."
    assert t["messages"][-1]["content"] == c.choices[0].message.content

    # a restarted server still accepts feedback for traces of the earlier run (from the workspace)
    with Server(serve_ws, args) as again:
        r = httpx.post(again.url + "/v1/feedback", json={"trace_id": c.id, "thumbs": "down"})
        assert r.status_code == 200

    rep = ingest_traces(ws, gates=("exact",)).to_dict()
    assert rep["rated_traces"] == 1
    fb = rep["feedback"]
    assert fb["format"] == "serve" and fb["new_events"] == 2  # the served answer and the correction
    assert fb["negative"] == 1 and fb["positive"] == 1 and fb["examples_added"] == 1 and fb["pairs_added"] == 1
    pairs = list_pairs(ws, basis="correction")
    assert [(p["chosen"], p["rejected"]) for p in pairs] == [("Check the export job's credentials.",
                                                              c.choices[0].message.content)]
    again_rep = ingest_traces(ws).to_dict()
    assert again_rep["rated_traces"] == 0 and again_rep["feedback"] is None  # nothing counted twice
    stats = feedback_stats(ws)
    assert stats["events"] == 2 and stats["pairs"] == 1
    # each field keeps its latest value: the thumbs from the restart, the rating and correction from before
    t = get_trace(ws, c.id)
    assert (t["rating"], t["thumbs"], len(t["feedback"])) == (1, "down", 2) and t["ingested_at"]
