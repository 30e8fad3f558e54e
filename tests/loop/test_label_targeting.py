"""Targeting on a label task: the teacher is asked about the labels the model gets wrong on dev.

The task and teacher are ``benchmarks/ticket_teacher.py`` (six teams, a hidden product -> team rule,
a local OpenAI-compatible server that writes a correct ticket for the label a request names).  The
first test needs no training: a dev evaluation stored by hand misroutes the weak teams' tickets, and
the round's own targeting code (:func:`curator.loop.targets.targeted_batch`) must ask the teacher for
those teams.  The second runs a tiny-model round whose dev split is too small, so weaknesses come from
k-fold held-out predictions on train.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from curator.data.ingest import ingest_file
from curator.loop.targets import select_targets, targeted_batch
from curator.snapshots import create_snapshot, read_split
from curator.workspace import Workspace
from evals.weaknesses import weaknesses

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "tests" / "trainer"))

from ticket_teacher import RULE, TEAMS, WEAK, TicketTeacher, label_of, splits  # noqa: E402
from trainer_helpers import tiny_overrides  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _ingest(ws: Workspace, tmp: Path, data: dict[str, list[dict[str, Any]]]) -> str:
    for split, rows in data.items():
        path = tmp / f"{split}.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        ingest_file(ws, path, task="triage", split=split, origin="seed")
    return create_snapshot(ws).id


def _store_dev_eval(ws: Workspace, snap_id: str) -> str:
    """A dev evaluation as the runner stores it: weak teams' unseen products routed to 'amber' (and one
    slip of a strong team, 1 of 6, under the weak-label rate)."""
    from curator.snapshots import resolve_snapshot

    rows = read_split(ws, resolve_snapshot(ws, snap_id), "eval")
    slipped = False
    with ws.connect() as con:
        con.execute("INSERT INTO evals (id, run_id, snapshot_id, split, params, summary, status) "
                    "VALUES ('evdev', 'r1', ?, 'eval', '{}', '{}', 'complete')", [snap_id])
        for r in rows:
            gold, text = r["messages"][-1]["content"], r["messages"][1]["content"]
            pred = gold
            if gold in WEAK and RULE[gold][0] not in text:
                pred = "amber"
            elif gold == "slate" and not slipped:
                pred, slipped = "cobalt", True
            ok = float(pred == gold)
            con.execute("INSERT INTO eval_results (eval_id, run_id, example_id, prediction, scores, meta) "
                        "VALUES ('evdev', 'r1', ?, ?, ?, ?)",
                        [r["id"], pred, json.dumps({"accuracy": ok, "rougeL": ok, "exact_match": ok}),
                         json.dumps({"gold_label": gold, "pred_label": pred, "finish_reason": "stop"})])
    return "evdev"


def test_targeted_requests_name_the_weak_labels(ws: Workspace, tmp_path: Path) -> None:
    data = splits()
    snap = _ingest(ws, tmp_path, data)
    groups = weaknesses(ws, _store_dev_eval(ws, snap), metric="accuracy")
    targets, weak_labels = select_targets(groups)
    assert sorted(weak_labels) == [f"triage/{t}" for t in WEAK]  # slate's 1 of 6 is under the rate
    assert [g["label"] for g in targets] == sorted(WEAK)  # 4 errors of 6 each
    assert targets[0]["description"] == ("triage: label 'jade': 4 of 6 dev examples misclassified, mostly as "
                                         "'amber' (4); the correct answer of these is 'jade'")
    with TicketTeacher() as teacher:
        batch = targeted_batch(ws, groups, teacher=teacher.provider, n_generate=12, task="triage")
        requests = list(teacher.requests)
        named = [n for n, _ in teacher.written]
    assert len(requests) == 12 and batch["requested"] == 12
    assert sum(1 for n in named if n in WEAK) / len(named) >= 0.7 and set(named) == set(WEAK)
    # The weakness descriptions reach the teacher; nothing of the test split does.
    test_prompts = [r["messages"][1]["content"] for r in data["test"]]
    sent = [json.dumps(b["messages"]) for b in requests]
    assert all("label '" in s and "misclassified" in s for s in sent)
    assert not any(p in s for p in test_prompts for s in sent)
    with ws.connect() as con:
        made = [json.loads(m) for (m,) in con.execute(
            "SELECT messages::VARCHAR FROM examples WHERE origin = 'synthetic' "
            "AND json_extract_string(meta, '$.weakness_id') IS NOT NULL").fetchall()]
    assert made and batch["added"] == len(made)  # short label answers pass the filters
    landed = [label_of(m[-2]["content"]) for m in made]
    assert sum(1 for t in landed if t in WEAK) / len(landed) >= 0.7
    assert all(m[-1]["content"] == label_of(m[-2]["content"]) for m in made)  # correct by the hidden rule


def test_uniform_teacher_ignores_the_request(ws: Workspace, tmp_path: Path) -> None:
    snap = _ingest(ws, tmp_path, splits())
    groups = weaknesses(ws, _store_dev_eval(ws, snap), metric="accuracy")
    with TicketTeacher("uniform") as teacher:
        targeted_batch(ws, groups, teacher=teacher.provider, n_generate=12, task="triage")
        written = [t for _, t in teacher.written]
    assert sorted(written) == sorted(TEAMS * 2)  # the control: every team equally, whatever was asked


def test_small_dev_split_mines_weaknesses_on_held_out_train_folds(ws: Workspace, tmp_path: Path,
                                                                 tiny_model_dir: Path) -> None:
    from curator.loop.rounds import list_rounds, run_round

    data = splits(n_seed=4, n_dev=1, n_test=1)  # 24 train, 6 dev (< 8), 6 test
    _ingest(ws, tmp_path, data)
    overrides = tiny_overrides(tiny_model_dir, eval_steps=0, max_seq_length=96)
    logs: list[str] = []
    with TicketTeacher() as teacher:
        r1 = run_round(ws, task="triage", teacher=teacher.provider, overrides=overrides, n_generate=4,
                       max_new_tokens=4, baselines=(), folds=3, log=logs.append)
        sent = [json.dumps(b["messages"]) for b in teacher.requests]
    src = r1.batch["weaknesses_from"]
    assert src["split"] == "train" and src["folds"] == 3 and "fewer than 8" in src["why"]
    assert len(src["runs"]) == 3 and sum(f["held_out"] for f in src["runs"]) == 24
    assert all(f["train"] + f["held_out"] == 24 for f in src["runs"])
    assert any("3-fold held-out predictions on train" in line for line in logs)
    assert r1.promotion["metric"] == "accuracy"  # a label task decides on label accuracy
    assert set(r1.by_task) == {"triage"} and "accuracy" in r1.by_task["triage"]["run"]
    # The fold workspaces hold train examples only; the teacher saw no test prompt.
    train_ids = {r["messages"][1]["content"] for r in data["train"]}
    for f in src["runs"]:
        fold_ws = Workspace(Path(src["workspace"]) / f"fold-{f['fold']}")
        with fold_ws.connect() as con:
            users = {json.loads(m)[1]["content"] for (m,) in con.execute(
                "SELECT messages::VARCHAR FROM examples").fetchall()}
        assert users <= train_ids
    test_prompts = [r["messages"][1]["content"] for r in data["test"]]
    assert sent and not any(p in s for p in test_prompts for s in sent)
    assert all("held-out train examples misclassified" in s for s in sent if "label '" in s)
    history = list_rounds(ws)
    assert history[0]["by_task"]["triage"]["n"] == 6 and history[0]["headline_metric"] == "accuracy"

    from curator.loop.report import write_round_report

    html = write_round_report(ws).read_text()
    assert "mined on held-out folds of the train split, never on test: the dev split has 6 examples" in html
    assert "round 1 per task (test, baseline &rarr; run)" in html and "<th>accuracy</th>" in html
    assert "round 1 triage: label (test)" in html and "<td>jade</td>" in html
    assert "asked the teacher about the labels it misclassified" in html
