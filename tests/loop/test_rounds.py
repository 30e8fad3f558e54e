"""Two rounds end to end on the tiny model, with the real openai SDK talking to a local fake teacher.

Round 1: snapshot -> train (base model) -> dev decision against the base model -> test report -> dev
weaknesses -> targeted data.  Round 2: feedback ingested -> a new snapshot -> training continues from
the champion -> evaluated against the champion (whose predictions on the unchanged splits are reused).
The test split never reaches the teacher (canary test); a round is reproducible (same metrics twice).
"""

from __future__ import annotations

import hashlib
import json
import random
import sys
from pathlib import Path
from typing import Any

import pytest
from fakeserver import FakeLLMServer, RecordedRequest

from curator.data.ingest import ingest_file
from curator.loop.rounds import list_rounds, run_round
from curator.workspace import Workspace

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

ROOT = Path(__file__).resolve().parents[2]
SEEDS = ROOT / "seeds" / "support"
sys.path.insert(0, str(ROOT / "tests" / "trainer"))

from trainer_helpers import tiny_overrides  # noqa: E402

WORDS = "bucket quota invoice replica webhook subnet gateway certificate volume alarm tenant cron".split()


def _teacher_reply(rec: RecordedRequest) -> str:
    """A new, valid question/answer pair per request (seeded by the request, so reruns agree)."""
    body = rec.body if isinstance(rec.body, dict) else {}
    rng = random.Random(hashlib.sha256(json.dumps(body.get("messages"), sort_keys=True).encode()).hexdigest())
    w = rng.sample(WORDS, 6)
    return json.dumps({
        "question": f"My {w[0]} stopped working after I changed the {w[1]} and the {w[2]} {rng.randint(1, 10**6)}.",
        "answer": f"Diagnosis: the {w[0]} lost its {w[3]}.\n1. Open the console.\n2. Restore the {w[4]}.\n"
                  f"3. Check the {w[5]}.\nEscalation: open a ticket at support.nimbus.example.",
    })


def _rows(ws: Workspace, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    with ws.connect() as con:
        return con.execute(sql, params or []).fetchall()


def test_two_rounds_end_to_end(ws: Workspace, tiny_model_dir: Path) -> None:
    ws.set_setting("split_ratios", [0.85, 0.15, 0.0])  # the test split is the pinned file, as in the demo
    ingest_file(ws, SEEDS / "seeds.jsonl", task="support", origin="seed")
    ingest_file(ws, SEEDS / "test.jsonl", task="support", split="test", origin="seed")
    overrides = tiny_overrides(tiny_model_dir, eval_steps=0, max_seq_length=384)
    logs: list[str] = []
    with FakeLLMServer(_teacher_reply) as srv:
        teacher = f"compatible:{srv.openai_base_url}:teacher"
        # min_dev=1: this test is about mining on the dev split (its 6 dev examples would use the k-fold fallback)
        common: dict[str, Any] = {"task": "support", "teacher": teacher, "overrides": overrides, "max_new_tokens": 6,
                                  "min_dev": 1,
                                  "log": logs.append}
        r1 = run_round(ws, n_generate=4, **common)
        asked_round_1 = srv.request_count
        # Production traffic between the rounds: `curator serve --champion` answers, a scripted user rates.
        from curator.loop.demo import serve_traffic

        served = serve_traffic(ws, SEEDS / "traffic.jsonl", limit=3, max_tokens=8, log=logs.append)
        r2 = run_round(ws, n_generate=0, feedback=[SEEDS / "feedback.jsonl"], **common)
        assert srv.request_count == asked_round_1  # round 2 asked the teacher nothing

    # Round 1: trained from the base model, compared with the base model it trained from.
    assert (r1.round, r1.baseline) == (1, "base")
    eval_r1 = json.loads(_rows(ws, "SELECT eval FROM rounds WHERE round = 1")[0][0])
    base_params = json.loads(_rows(ws, "SELECT params FROM evals WHERE id = ?", [eval_r1["baseline_eval_id"]])[0][0])
    assert base_params["base_model"] == str(tiny_model_dir)
    assert r1.summary["n"] == 30 and r1.baseline_summary["n"] == 30
    assert r1.batch["weaknesses"] >= 1 and r1.batch["added"] >= 1
    targeted = _rows(ws, "SELECT count(*) FROM examples WHERE origin = 'synthetic' "
                         "AND json_extract_string(meta, '$.weakness_id') IS NOT NULL")[0][0]
    assert targeted == r1.batch["added"]

    # Round 1's decision on the dev split, with its evidence; the champion after it follows from it.
    assert r1.dev_eval_id and r1.promotion["criterion"] == "bootstrap" and r1.promotion["n"] >= 1
    assert r1.champion == (r1.run_id if r1.promoted else "base")
    assert r1.batch["weaknesses_from"]["split"] == "eval"
    dev_split = _rows(ws, "SELECT split FROM evals WHERE id = ?", [r1.dev_eval_id])[0][0]
    assert dev_split == "eval"

    # Round 2 first ingested the three rated traces the server logged (once: they are marked ingested).
    assert r2.feedback is not None and r2.feedback["traces"]["rated_traces"] == 3
    assert any("rated traces of curator serve: 3 ingested" in line for line in logs)
    traced = _rows(ws, "SELECT count(*) FROM traces WHERE ingested_at IS NOT NULL AND run_id IS NOT DISTINCT FROM ?",
                   [r1.champion if r1.champion != "base" else None])[0][0]
    assert traced == 3 and sorted(served["trace_ids"]) == sorted(r[0] for r in _rows(ws, "SELECT id FROM traces"))

    # Round 2: new data (targeted + feedback) in a new snapshot, training continued from the champion.
    assert (r2.round, r2.baseline) == (2, r1.champion)
    assert r2.snapshot_id != r1.snapshot_id and r2.feedback is not None
    meta = json.loads(_rows(ws, "SELECT meta FROM runs WHERE id = ?", [r2.run_id])[0][0])
    assert meta.get("base_run") == (r1.run_id if r1.promoted else None)
    assert any(f"continues from the adapter of the champion {r1.run_id}" in line for line in logs) == r1.promoted
    # The champion's predictions on the same 30 test examples were reused, not generated again.
    eval_r2 = json.loads(_rows(ws, "SELECT eval FROM rounds WHERE round = 2")[0][0])
    reused_from = r1.eval_id if r1.promoted else eval_r1["baseline_eval_id"]
    reused = _rows(ws, "SELECT count(*) FROM eval_results WHERE eval_id = ? "
                       "AND json_extract_string(meta, '$.reused_from') = ?", [eval_r2["baseline_eval_id"], reused_from])
    assert reused[0][0] == 30

    from curator.loop.report import write_round_report

    html = write_round_report(ws).read_text()
    assert "Round 1 on the dev split: " in html and f"champion after it: {r1.champion}" in html
    assert "mined on the eval (dev) split, never on test" in html and "prompting baseline" in html
    assert r1.baselines.keys() == {"zero_shot", "few_shot", "retrieval_few_shot"}
    assert f"<td>{r1.run_id}</td><td>base model</td>" in html  # the lineage: round 1 from the base model,
    if r1.promoted:
        assert f"<td>{r2.run_id}</td><td>{r1.run_id}</td>" in html  # round 2 from round 1's adapter

    history = list_rounds(ws)
    assert [h["round"] for h in history] == [1, 2] and all(h["status"] == "done" for h in history)
    assert history[1]["baseline"] == r1.champion and "rougeL" in history[1]["summary"]
    assert [h["promoted"] for h in history] == [r1.promoted, r2.promoted]
    assert history[1]["champion"] == (r2.run_id if r2.promoted else r1.champion)


CANARY = "zqxcanaryvole"


def test_nothing_from_the_test_split_reaches_the_teacher(ws: Workspace, tiny_model_dir: Path, tmp_path: Path) -> None:
    """A canary word planted in every test prompt (and only there) is in no teacher request."""
    ws.set_setting("split_ratios", [0.8, 0.2, 0.0])
    ingest_file(ws, SEEDS / "seeds.jsonl", task="support", origin="seed")
    planted = tmp_path / "test.jsonl"
    rows = [json.loads(line) for line in (SEEDS / "test.jsonl").read_text().splitlines() if line.strip()]
    for r in rows:
        user = next(m for m in r["messages"] if m["role"] == "user")
        user["content"] = f"{user['content']} ({CANARY} account {CANARY}-7)"
    planted.write_text("".join(json.dumps(r) + "\n" for r in rows))
    ingest_file(ws, planted, task="support", split="test", origin="seed")
    with FakeLLMServer(_teacher_reply) as srv:
        r = run_round(ws, task="support", teacher=f"compatible:{srv.openai_base_url}:teacher", n_generate=6,
                      overrides=tiny_overrides(tiny_model_dir, eval_steps=0, max_seq_length=384), max_new_tokens=4,
                      log=lambda m: None)
        bodies = [json.dumps(rec.body) for rec in srv.requests]
    assert r.batch["weaknesses"] >= 1 and len(bodies) >= 1  # the teacher was asked about weaknesses...
    assert not [b for b in bodies if CANARY in b]  # ...and never saw a word of the test split
    # the canary is in the test evaluation (so the test split was evaluated), and in no training example
    assert _rows(ws, "SELECT count(*) FROM examples WHERE origin = 'synthetic' AND messages::VARCHAR LIKE ?",
                 [f"%{CANARY}%"])[0][0] == 0


def test_a_round_is_reproducible(tmp_path: Path, tiny_model_dir: Path) -> None:
    """Same data, seed and commit: every metric of the round is the same, to the last digit."""
    results = []
    for name in ("a", "b"):
        w = Workspace(tmp_path / name)
        w.set_setting("split_ratios", [0.85, 0.15, 0.0])
        ingest_file(w, SEEDS / "seeds.jsonl", task="support", origin="seed")
        ingest_file(w, SEEDS / "test.jsonl", task="support", split="test", origin="seed")
        r = run_round(w, task="support", n_generate=0, max_new_tokens=6, max_eval=10, log=lambda m: None,
                      overrides=tiny_overrides(tiny_model_dir, eval_steps=0, max_seq_length=384))
        dev = json.loads(_rows(w, "SELECT eval FROM rounds WHERE round = 1")[0][0])["dev"]
        results.append((r.summary, r.baseline_summary, dev["summary"], r.promotion["delta"], r.promoted))
    assert results[0] == results[1]



def test_an_interrupted_round_resumes_without_training_again(
    ws: Workspace, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import evals.runner

    ws.set_setting("split_ratios", [0.85, 0.15, 0.0])
    ingest_file(ws, SEEDS / "seeds.jsonl", task="support", origin="seed")
    ingest_file(ws, SEEDS / "test.jsonl", task="support", split="test", origin="seed")
    kw: dict[str, Any] = {"task": "support", "overrides": tiny_overrides(tiny_model_dir, eval_steps=0, max_seq_length=384),
                          "n_generate": 0, "max_new_tokens": 4, "max_eval": 5}

    def crash(*a: Any, **k: Any) -> Any:
        raise KeyboardInterrupt  # the user pressed Ctrl-C while the test split was being evaluated

    real = evals.runner.evaluate
    monkeypatch.setattr(evals.runner, "evaluate", crash)
    with pytest.raises(KeyboardInterrupt):
        run_round(ws, log=lambda m: None, **kw)
    assert _rows(ws, "SELECT round, status FROM rounds") == [(1, "trained")]
    (first_run,) = [r[0] for r in _rows(ws, "SELECT id FROM runs WHERE status = 'succeeded'")]

    monkeypatch.setattr(evals.runner, "evaluate", real)
    logs: list[str] = []
    done = run_round(ws, log=logs.append, **kw)
    assert "[round 1] resuming" in logs
    assert done.round == 1 and done.run_id == first_run  # the finished training was reused, not redone
    assert _rows(ws, "SELECT count(*) FROM runs")[0][0] == 1
    assert _rows(ws, "SELECT round, status FROM rounds") == [(1, "done")]


@pytest.mark.parametrize("bad", [{"max_new_tokens": 0}, {"max_eval": 0}, {"n_generate": -1}, {"eval_batch_size": 0}])
def test_bad_settings_fail_before_anything_runs(ws: Workspace, bad: dict[str, Any]) -> None:
    from curator.errors import CuratorError

    ingest_file(ws, SEEDS / "seeds.jsonl", task="support", origin="seed")
    with pytest.raises(CuratorError, match=f"{next(iter(bad))} must be at least"):
        run_round(ws, log=lambda m: None, **bad)
    assert _rows(ws, "SELECT count(*) FROM rounds")[0][0] == 0
    assert _rows(ws, "SELECT count(*) FROM snapshots")[0][0] == 0
