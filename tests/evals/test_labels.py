"""Label tasks: detection, label extraction, accuracy / macro-F1, the runner's label scores, weaknesses by label."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from helpers import write_jsonl

from curator.errors import CuratorError
from curator.workspace import Workspace
from evals.metrics import extract_label, label_metrics, label_set
from evals.runner import _label_scores, eval_rows, evaluate, label_tasks
from evals.weaknesses import weaknesses

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

LABELS = ["billing", "shipping", "login"]


def test_label_set_detects_small_sets_of_short_answers_only() -> None:
    refs = ["Billing", "shipping.", "login", "billing", "Shipping", "LOGIN"] * 3
    assert label_set(refs) == ["billing", "login", "shipping"]
    # free text: long answers
    assert label_set(["Open Settings > Security and click Reset password."] * 10) is None
    # short but all different (a QA task with short answers): fewer than two references per label
    assert label_set([f"answer {i}" for i in range(12)]) is None
    # too many labels, and too little coverage by the short ones
    assert label_set([f"l{i}" for i in range(21)] * 2) is None
    assert label_set(["yes", "no"] * 4 + ["it depends on many things you did not say"] * 2) is None
    assert label_set(["yes", "no"] * 9 + ["it depends on many things you did not say"] * 2) == ["no", "yes"]
    assert label_set([]) is None


def test_extract_label_exact_first_mentioned_then_pattern() -> None:
    assert extract_label("Billing.", LABELS) == "billing"
    assert extract_label("This is a shipping issue, not billing", LABELS) == "shipping"  # first mentioned
    assert extract_label("I think: LOGIN", LABELS) == "login"
    assert extract_label("relogin", LABELS) is None  # whole words only
    assert extract_label("no idea", LABELS) is None
    assert extract_label("Category: refunds (sure)", LABELS, r"category:\s*(\w+)") == "refunds"
    assert extract_label("team amber", [], r"team (\w+)") == "amber"
    assert extract_label("mail team", ["mail", "mail team"]) == "mail team"  # exact match first
    assert extract_label("the mail team said", ["mail", "mail team"]) == "mail team"  # longer label at a tie


def test_label_metrics_accuracy_macro_f1_per_label() -> None:
    gold = ["billing", "billing", "billing", "billing", "shipping", "shipping", "login", "login", None]
    pred = ["billing", "billing", "shipping", None, "shipping", "shipping", "login", "billing", "login"]
    m = label_metrics(pred, gold)
    assert m["n"] == 8 and m["accuracy"] == pytest.approx(5 / 8)
    b, s, lg = m["per_label"]["billing"], m["per_label"]["shipping"], m["per_label"]["login"]
    assert (b["precision"], b["recall"], b["support"]) == (pytest.approx(2 / 3), 0.5, 4)
    assert (s["precision"], s["recall"], s["support"]) == (pytest.approx(2 / 3), 1.0, 2)
    assert (lg["precision"], lg["recall"], lg["support"]) == (1.0, 0.5, 2)
    f1 = [2 * p * r / (p + r) for p, r in ((2 / 3, 0.5), (2 / 3, 1.0), (1.0, 0.5))]
    assert m["macro_f1"] == pytest.approx(sum(f1) / 3)
    empty = label_metrics([None], [None])
    assert empty["n"] == 0 and math.isnan(empty["accuracy"])
    with pytest.raises(ValueError):
        label_metrics(["a"], [])


def test_label_scores_of_one_example() -> None:
    task = {"labels": LABELS, "pattern": None}
    assert _label_scores(task, "Shipping", "shipping") == ({"accuracy": 1.0},
                                                           {"gold_label": "shipping", "pred_label": "shipping"})
    assert _label_scores(task, "no clue", "login") == ({"accuracy": 0.0}, {"gold_label": "login", "pred_label": None})
    assert _label_scores(None, "x", "y") == ({}, {})


def _chat(user: str, answer: str) -> dict[str, Any]:
    return {"messages": [{"role": "system", "content": "Route the ticket."}, {"role": "user", "content": user},
                         {"role": "assistant", "content": answer}]}


@pytest.fixture
def label_ws(ws: Workspace, tmp_path: Path) -> Workspace:
    """A triage task (labels) and a support task (free text), each with train and test examples."""
    from curator.data.ingest import ingest_file
    from curator.snapshots import create_snapshot

    train = [_chat(f"Ticket {i} about my {LABELS[i % 3]} problem", LABELS[i % 3].title()) for i in range(9)]
    test = [_chat(f"Test ticket {i}: something with {LABELS[i % 3]}", LABELS[i % 3]) for i in range(6)]
    ingest_file(ws, write_jsonl(tmp_path / "tr.jsonl", train), task="triage", split="train", origin="seed")
    ingest_file(ws, write_jsonl(tmp_path / "te.jsonl", test), task="triage", split="test", origin="seed")
    free = [_chat(f"How do I do thing {i}?", f"Open the console and press button number {i} twice.") for i in range(3)]
    ingest_file(ws, write_jsonl(tmp_path / "free.jsonl", free), task="support", split="test", origin="seed")
    create_snapshot(ws)
    return ws


def test_runner_scores_label_tasks_and_summarises_them(label_ws: Workspace, tiny_model_dir: Path) -> None:
    from curator.snapshots import read_split, resolve_snapshot
    from evals.runner import _items

    snap = resolve_snapshot(label_ws, "latest")
    tasks = label_tasks(label_ws, snap, _items(read_split(label_ws, snap, "test")))
    assert tasks == {"triage": {"labels": sorted(LABELS), "pattern": None}}  # support is free text
    res = evaluate(label_ws, "base", base_model=str(tiny_model_dir), max_new_tokens=4, batch_size=4, progress=False)
    rows = {r.example_id: r for r in eval_rows(label_ws, res.id)}
    with label_ws.connect() as con:
        task_of = dict(con.execute("SELECT id, task FROM examples").fetchall())
    for eid, r in rows.items():
        if task_of[eid] == "triage":
            assert r.scores["accuracy"] in (0.0, 1.0) and r.meta["gold_label"] in LABELS
            assert r.scores["accuracy"] == float(r.meta["pred_label"] == r.meta["gold_label"])
        else:
            assert "accuracy" not in r.scores and "gold_label" not in r.meta
    tri = res.summary["by_task"]["triage"]
    assert set(tri["labels"]) == set(LABELS) and sum(v["support"] for v in tri["labels"].values()) == 6
    assert 0 <= tri["accuracy"] <= 1 and 0 <= tri["macro_f1"] <= 1
    assert "accuracy" not in res.summary["by_task"]["support"]
    assert res.params["labels"]["triage"]["labels"] == sorted(LABELS)


def test_label_pattern_setting_makes_a_label_task(label_ws: Workspace) -> None:
    from curator.snapshots import read_split, resolve_snapshot
    from evals.runner import _items

    snap = resolve_snapshot(label_ws, "latest")
    items = _items(read_split(label_ws, snap, "test"))
    label_ws.set_setting("label_patterns", {"support": r"button number (\d+)"})
    tasks = label_tasks(label_ws, snap, items)
    assert tasks["support"] == {"labels": ["0", "1", "2"], "pattern": r"button number (\d+)"}
    label_ws.set_setting("label_patterns", {"support": "("})
    with pytest.raises(CuratorError, match="not a valid regex"):
        label_tasks(label_ws, snap, items)


def test_weaknesses_group_by_gold_label_first(label_ws: Workspace) -> None:
    """Label groups (most errors first) name the label and what was predicted instead, then the clusters."""
    from curator.snapshots import read_split, resolve_snapshot

    snap = resolve_snapshot(label_ws, "latest")
    ids = {r["id"]: r for r in read_split(label_ws, snap, "test") if r["task"] == "triage"}
    wrong_as = {"billing": "shipping", "login": None}  # every billing and login ticket wrong, shipping right
    with label_ws.connect() as con:
        con.execute("INSERT INTO evals (id, run_id, snapshot_id, split, params, summary, status) "
                    "VALUES ('evlab', 'r1', ?, 'test', '{}', '{}', 'complete')", [snap.id])
        for eid, r in ids.items():
            gold = r["messages"][-1]["content"]
            pred = wrong_as.get(gold, gold)
            con.execute("INSERT INTO eval_results (eval_id, run_id, example_id, prediction, scores, meta) "
                        "VALUES ('evlab', 'r1', ?, ?, ?, ?)",
                        [eid, pred or "?", json.dumps({"accuracy": float(pred == gold), "rougeL": float(pred == gold)}),
                         json.dumps({"gold_label": gold, "pred_label": pred})])
    groups = weaknesses(label_ws, "evlab", metric="accuracy", fraction=1.0, encoder=lambda t: _unit(len(t)))
    labels = [g for g in groups if g.get("kind") == "label"]
    assert [g["label"] for g in labels] == ["billing", "login"]  # 2 errors each: error rate, then name
    assert labels[0]["description"] == ("triage: label 'billing': 2 of 2 dev examples misclassified, mostly as "
                                        "'shipping' (2); the correct answer of these is 'billing'")
    assert "no label (2)" in labels[1]["description"]
    assert labels[0]["confused_with"] == {"shipping": 2} and labels[0]["errors"] == 2 and labels[0]["n"] == 2
    assert groups[: len(labels)] == labels and len(groups) > len(labels)  # cluster groups follow
    assert all("kind" not in g for g in groups[len(labels):])
    assert not any("ticket" in g["description"] for g in labels)  # labels, not the prompts' topic words


def _unit(n: int) -> Any:
    import numpy as np

    v = np.ones((n, 4), dtype=np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)
