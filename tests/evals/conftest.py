"""Fixtures of the evaluation tests: a fake LLM server, a small snapshot, stored evaluations built by hand."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

_TESTS = str(Path(__file__).resolve().parents[1])
if _TESTS not in sys.path:  # makes `from fakeserver import ...` work however pytest is started
    sys.path.insert(0, _TESTS)

from helpers import write_jsonl  # noqa: E402

SYSTEM = "You are the support assistant. Answer in one short line."

#: (task, user, answer) of the held-out examples of the small snapshot.
TEST_ROWS = [
    ("support", "How do I reset my password?", "Open Settings > Security and click Reset password."),
    ("support", "My bucket upload fails with 403.", "Grant the writer role with nimbus buckets grant."),
    ("support", "The instance is stuck in starting.", "Run nimbus compute stop --force, then start it again."),
    ("support", "How do I rotate an API key?", "Create a new key in Console > Keys, then delete the old one."),
    ("billing", "Why was I charged twice?", "A pending authorisation shows until the bank releases it."),
    ("billing", "How do I download an invoice?", "Open Billing > Invoices and click Download PDF."),
]
TRAIN_ROWS = [
    ("support", f"Question number {i} about the nimbus CLI?", f"Answer {i}: run nimbus help {i}.") for i in range(8)
]


def _rows(rows: list[tuple[str, str, str]]) -> list[dict[str, Any]]:
    return [{"messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": u},
                          {"role": "assistant", "content": a}]} for _, u, a in rows]


@pytest.fixture
def snap_ws(ws: Any, tmp_path: Path) -> Any:
    """A workspace with one snapshot: 6 test examples over two tasks, 8 train examples."""
    from curator.data.ingest import ingest_file
    from curator.snapshots import create_snapshot

    for task in ("support", "billing"):
        path = write_jsonl(tmp_path / f"test-{task}.jsonl", _rows([r for r in TEST_ROWS if r[0] == task]))
        ingest_file(ws, path, task=task, split="test")
    ingest_file(ws, write_jsonl(tmp_path / "train.jsonl", _rows(TRAIN_ROWS)), task="support", split="train")
    create_snapshot(ws, name="s1")
    return ws


@pytest.fixture
def make_eval(snap_ws: Any) -> Callable[..., str]:
    """Store an evaluation by hand: ``make_eval(run_id, {example_id: scores}, predictions=None, params=None)``."""
    counter = iter(range(10_000))

    def make(run_id: str, scores: dict[str, dict[str, Any]], predictions: dict[str, str] | None = None,
             params: dict[str, Any] | None = None, snapshot_id: str | None = None) -> str:
        from curator.snapshots import resolve_snapshot

        snap = snapshot_id or resolve_snapshot(snap_ws, "latest").id
        eid = f"ev{next(counter):04d}{run_id}"[:16]
        p = {"max_new_tokens": 8, "temperature": 0.0, "seed": 0, "limit": None, "scorer_version": 1,
             "base_model": "tiny", "base_model_fingerprint": "tiny", **(params or {})}
        with snap_ws.connect() as con:
            con.execute("INSERT INTO evals (id, run_id, snapshot_id, split, params, summary, status) "
                        "VALUES (?, ?, ?, 'test', ?, ?, 'complete')",
                        [eid, run_id, snap, json.dumps(p), json.dumps({"overall": {"n": len(scores)}})])
            for ex, sc in scores.items():
                con.execute("INSERT INTO eval_results (eval_id, run_id, example_id, prediction, scores, meta) "
                            "VALUES (?, ?, ?, ?, ?, ?)",
                            [eid, run_id, ex, (predictions or {}).get(ex, f"prediction of {run_id}"),
                             json.dumps(sc), json.dumps({"finish_reason": "stop"})])
        return eid

    return make


@pytest.fixture
def test_ids(snap_ws: Any) -> list[str]:
    """The ids of the snapshot's test examples, sorted."""
    from curator.snapshots import read_split

    return sorted(r["id"] for r in read_split(snap_ws, "latest", "test"))
