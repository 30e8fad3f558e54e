"""The demo's production traffic: ``curator serve`` as its own process, questions through the openai SDK, a
scripted user's ratings through ``POST /v1/feedback``, and the next round's trace ingest finding them."""

from __future__ import annotations

import json
from pathlib import Path

from serve_helpers import RUNS

from curator.feedback.tracelog import ingest_traces
from curator.loop.demo import rate_answer, serve_traffic
from curator.workspace import Workspace

SEEDS = Path(__file__).resolve().parents[2] / "seeds" / "support"


def test_served_answers_are_rated_and_reach_the_next_round(serve_ws: Path) -> None:
    ws = Workspace(serve_ws)
    lines: list[str] = []
    out = serve_traffic(ws, SEEDS / "traffic.jsonl", limit=4, max_tokens=12,
                        serve_args=("--adapter", f"a={RUNS['alpha'][0]}"), model="a", log=lines.append)
    assert out["answers"] == 4 and len(set(out["trace_ids"])) == 4
    assert sum(out["ratings"].values()) == 4
    assert any("scripted user rates" in line for line in lines)
    report = ingest_traces(ws, task="support")
    assert report.rated_traces == 4  # every answer was rated, and the server's log held them all
    with ws.connect(read_only=True) as con:
        rows = con.execute("SELECT id, rating, thumbs, run_id FROM traces ORDER BY id").fetchall()
    assert sorted(r[0] for r in rows) == sorted(out["trace_ids"])
    assert all(r[3] == RUNS["alpha"][0] for r in rows)
    by_id = {r[0]: r[1] for r in rows}
    assert sum(1 for t in out["trace_ids"] if by_id[t] is not None) == 4
    # The tiny model never writes the support format: every answer is rated 1 and corrected with the support
    # team's answer from traffic.jsonl, which becomes a training example and, against the served answer, a pair.
    assert out["ratings"] == {"1": 4} and out["corrections"] == 4
    assert any("corrections sent: 4" in line for line in lines)
    wanted = [json.loads(line)["correction"] for line in (SEEDS / "traffic.jsonl").read_text().splitlines()[:4]]
    with ws.connect(read_only=True) as con:
        learned = [r[0] for r in con.execute(
            "SELECT json_extract_string(messages, '$[#-1].content') FROM examples WHERE origin = 'feedback'").fetchall()]
        pairs = con.execute("SELECT chosen, rejected FROM preferences").fetchall()
    assert sorted(learned) == sorted(wanted)
    assert sorted(c for c, _ in pairs) == sorted(wanted) and all(r and r not in wanted for _, r in pairs)


def test_the_scripted_user_rates_the_support_format() -> None:
    good = json.loads((SEEDS / "seeds.jsonl").read_text().splitlines()[0])["messages"][-1]["content"]
    assert rate_answer(good) == 5
    assert rate_answer(good.replace("support.nimbus.example", "our help desk")) == 2  # format, no contact
    assert rate_answer("Please open a ticket at support.nimbus.example.") == 2  # contact, no format
    assert rate_answer("Try restarting it.") == 1
    two_steps = "Diagnosis: x.\n1. a\n2. b\nEscalation: support.nimbus.example"
    assert rate_answer(two_steps) == 2


def test_the_demo_finds_its_bundled_seeds() -> None:
    from curator.loop.demo import bundled_seeds

    assert (bundled_seeds() / "traffic.jsonl").exists() and (bundled_seeds() / "seeds.jsonl").exists()
