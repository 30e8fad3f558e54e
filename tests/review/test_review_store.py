"""The review store on a real DuckDB workspace: filters and pagination, decisions and restore, edits through
the gates, ratings, blind A/B choices and preference pairs, progress and resume."""

from __future__ import annotations

from typing import Any

import pytest
from review_helpers import EVAL_A, EVAL_B, XSS_SCRIPT, add_eval, ids_by

from curator.quality.decisions import restore
from curator.review import store as S
from curator.review.store import ExampleFilter as F


def _one(ws: Any, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    with ws.connect(read_only=True) as con:
        return con.execute(sql, params or []).fetchall()


def test_pagination_is_stable_and_counts_the_filter(ws, built) -> None:
    everything = ids_by(ws)
    assert S.list_examples(ws, limit=500)["total"] == len(everything) == 19
    pages = [S.list_examples(ws, limit=5, offset=o) for o in range(0, 20, 5)]
    assert [e["id"] for p in pages for e in p["examples"]] == everything
    assert all(p["total"] == 19 for p in pages)
    assert S.list_examples(ws, limit=5, offset=100)["examples"] == []
    seeds = S.list_examples(ws, F(origin="seed"), limit=500)
    assert seeds["total"] == 12 and {e["origin"] for e in seeds["examples"]} == {"seed"}
    assert S.list_examples(ws, F(split="test"), limit=500)["total"] == 4
    assert S.list_examples(ws, F(task="qa", split="test"), limit=500)["total"] == 4
    assert S.list_examples(ws, F(task="qa", split="train"), limit=500)["total"] == 0
    first = S.list_examples(ws, limit=1)["examples"][0]
    assert first["messages"][0]["role"] == "user" and first["split"] == "train" and first["review"] is None


def test_audit_flags(ws, built) -> None:
    refusals = S.list_examples(ws, F(flag="refusal"))["examples"]
    assert [e["messages"][1]["content"] for e in refusals] == ["I'm sorry, but I can't help with that."]
    assert S.list_examples(ws, F(flag="empty"))["total"] == 0
    assert S.list_examples(ws, F(flag="long"))["total"] == 0
    assert S.list_examples(ws, F(flag="duplicate"))["total"] == 0
    a, b = ids_by(ws, "e.origin = 'seed'")[:2]
    with ws.transaction() as con:
        con.execute("INSERT INTO decisions (example_id, kind, other_id, reason) VALUES (?, 'dedup_near', ?, 'x')", [a, b])
    assert {e["id"] for e in S.list_examples(ws, F(flag="duplicate"))["examples"]} == {a, b}


@pytest.mark.parametrize(("kw", "field"), [({"origin": "nope"}, "origin"), ({"split": "dev"}, "split"),
                                           ({"status": "gone"}, "status"), ({"flag": "bad"}, "flag")])
def test_filter_values_are_checked(ws, built, kw, field) -> None:
    with pytest.raises(S.InvalidField) as e:
        S.list_examples(ws, F(**kw))
    assert e.value.field == field and e.value.status == 422


@pytest.mark.parametrize(("limit", "offset", "field"), [(0, 0, "limit"), (501, 0, "limit"), (5, -1, "offset"),
                                                        (True, 0, "limit")])
def test_page_bounds(ws, built, limit, offset, field) -> None:
    with pytest.raises(S.InvalidField) as e:
        S.list_examples(ws, limit=limit, offset=offset)
    assert e.value.field == field


def test_accept_reject_and_restore(ws, built) -> None:
    a, b, c = ids_by(ws, "e.origin = 'seed'")[:3]
    assert S.decide(ws, a, "accept", reviewer="ann")["status"] == "active"
    r = S.decide(ws, b, "reject", reviewer="ann", reason="off topic")
    assert r["kind"] == "review_reject" and r["status"] == "excluded"
    assert _one(ws, "SELECT status, excluded_reason FROM examples WHERE id = ?", [b]) == [
        ("excluded", "review_reject: off topic (ann)")]
    # a change of mind: the later decision counts, the earlier one is undone
    assert S.decide(ws, b, "accept", reviewer="bob")["status"] == "active"
    assert _one(ws, "SELECT kind, reviewer FROM decisions WHERE example_id = ? AND undone_at IS NULL", [b]) == [
        ("review_accept", "bob")]
    S.decide(ws, c, "reject", reviewer="ann", reason="wrong")
    assert restore(ws, "review_reject") == 1
    assert _one(ws, "SELECT status FROM examples WHERE id = ?", [c]) == [("active",)]


def test_a_live_accept_never_blocks_restoring_another_kind(ws, built) -> None:
    a, b = ids_by(ws, "e.origin = 'seed'")[:2]
    S.decide(ws, a, "accept", reviewer="ann")
    with ws.transaction() as con:
        con.execute("UPDATE examples SET status = 'excluded' WHERE id = ?", [a])
        con.execute("INSERT INTO decisions (example_id, kind, other_id, reason) VALUES (?, 'dedup_near', ?, 'x')", [a, b])
    assert restore(ws, "dedup") == 1
    assert _one(ws, "SELECT status FROM examples WHERE id = ?", [a]) == [("active",)]
    # the accept is still live (restore undid only the dedup decision)
    assert _one(ws, "SELECT kind FROM decisions WHERE example_id = ? AND undone_at IS NULL", [a]) == [("review_accept",)]


def test_edit_makes_a_child_in_the_same_split_and_restore_edited(ws, built) -> None:
    old = S.get_example(ws, ids_by(ws, "e.origin = 'seed'")[0])
    msgs = [dict(m) for m in old["messages"]]
    msgs[-1]["content"] += " Then sign in again."
    r = S.decide(ws, old["id"], "edit", reviewer="ann", messages=msgs, reason="incomplete")
    new = S.get_example(ws, r["new_id"])
    assert (new["origin"], new["parent_id"], new["task"], new["split"], new["status"]) == (
        "edited", old["id"], old["task"], old["split"], "active")
    assert new["messages"][-1]["content"].endswith("Then sign in again.")
    assert ("edited from", old["id"]) in new["provenance"]
    again = S.get_example(ws, old["id"])
    assert again["status"] == "excluded" and again["edits"] == [r["new_id"]]
    assert [(d["kind"], d["other_id"], d["reviewer"]) for d in again["decisions"]] == [("edited", r["new_id"], "ann")]
    with pytest.raises(S.Conflict):
        S.decide(ws, old["id"], "edit", reviewer="ann", messages=msgs)
    with pytest.raises(S.Conflict):
        S.decide(ws, old["id"], "accept", reviewer="ann")
    assert restore(ws, "edited") == 1
    assert S.get_example(ws, old["id"])["status"] == "active"


def test_edit_refused_by_the_gates(ws, built) -> None:
    seeds = ids_by(ws, "e.origin = 'seed'")
    other = S.get_example(ws, seeds[1])
    # exact duplicate of another active example (case and punctuation folded)
    dup = [{"role": m["role"], "content": m["content"].upper() + "!"} for m in other["messages"]]
    with pytest.raises(S.InvalidField) as e:
        S.decide(ws, seeds[0], "edit", reviewer="ann", messages=dup)
    assert e.value.field == "messages" and "duplicate (exact)" in str(e.value) and seeds[1] in str(e.value)
    # a train example edited into a copy of a test example: leakage
    test = S.get_example(ws, built["test_ids"][0])
    copy = [{"role": m["role"], "content": m["content"].lower() + " ..."} for m in test["messages"]]
    with pytest.raises(S.InvalidField) as e:
        S.decide(ws, seeds[0], "edit", reviewer="ann", messages=copy)
    assert "leakage" in str(e.value) and "test" in str(e.value)
    # a punctuation-only fix of itself is fine (the old copy is not counted against it)
    mine = S.get_example(ws, seeds[0])
    fixed = [dict(m) for m in mine["messages"]]
    fixed[-1]["content"] = fixed[-1]["content"].rstrip(".") + "!"
    assert S.decide(ws, seeds[0], "edit", reviewer="ann", messages=fixed)["status"] == "excluded"
    assert _one(ws, "SELECT count(*) FROM examples WHERE status = 'active' AND origin = 'edited'") == [(1,)]


@pytest.mark.parametrize(("messages", "field"), [
    (None, "messages"), ([], "messages"), ("hi", "messages"), ([{"role": "user"}], "messages[0]"),
    ([{"role": "robot", "content": "x"}], "messages[0].role"),
    ([{"role": "user", "content": "only a question"}], "messages"),
])
def test_edit_messages_are_checked(ws, built, messages, field) -> None:
    eid = ids_by(ws)[0]
    with pytest.raises(S.InvalidField) as e:
        S.decide(ws, eid, "edit", reviewer="ann", messages=messages)
    assert e.value.field == field


def test_edit_that_changes_nothing_and_unknown_ids(ws, built) -> None:
    ex = S.get_example(ws, ids_by(ws)[0])
    with pytest.raises(S.InvalidField, match="changes nothing"):
        S.decide(ws, ex["id"], "edit", reviewer="ann", messages=ex["messages"])
    with pytest.raises(S.NotFound):
        S.decide(ws, "f" * 64, "accept", reviewer="ann")
    with pytest.raises(S.NotFound):
        S.get_example(ws, "f" * 64)
    with pytest.raises(S.InvalidField) as e:
        S.decide(ws, ex["id"], "maybe", reviewer="ann")
    assert e.value.field == "action"


def test_progress_and_resume(ws, built) -> None:
    seeds = ids_by(ws, "e.origin = 'seed'")
    f = F(origin="seed")
    assert S.examples_progress(ws, f) == {"total": 12, "reviewed": 0} and S.resume_offset(ws, f) == 0
    S.decide(ws, seeds[0], "accept", reviewer="ann")
    S.decide(ws, seeds[1], "reject", reviewer="ann", reason="x")
    S.decide(ws, seeds[3], "accept", reviewer="ann")
    assert S.examples_progress(ws, f) == {"total": 12, "reviewed": 3}
    assert S.resume_offset(ws, f) == 2
    for eid in seeds:
        S.decide(ws, eid, "accept", reviewer="ann")
    assert S.resume_offset(ws, f) is None
    page = S.list_examples(ws, f, limit=2)["examples"]
    assert [e["review"]["kind"] for e in page] == ["review_accept", "review_accept"]


def test_ratings_replace_per_reviewer_and_resume(ws, built) -> None:
    tests = built["test_ids"]
    first = S.list_answers(ws, EVAL_A, "ann", limit=10)
    assert first["total"] == 4 and first["rated"] == 0 and first["resume"] == 0
    item = first["answers"][0]
    assert item["prediction"] == "alpha answer 0" and item["reference"].startswith("Reference answer")
    assert item["prompt"][-1]["role"] == "user" and item["scores"]["exact_match"] == 0.0
    S.rate(ws, EVAL_A, tests[0], 4, reviewer="ann", note="fine")
    S.rate(ws, EVAL_A, tests[0], 2, reviewer="ann")
    S.rate(ws, EVAL_A, tests[0], 5, reviewer="bob")
    assert _one(ws, "SELECT reviewer, rating, note FROM human_ratings ORDER BY reviewer") == [
        ("ann", 2, None), ("bob", 5, None)]
    again = S.list_answers(ws, EVAL_A, "ann", limit=10)
    assert again["rated"] == 1 and again["resume"] == 1 and again["answers"][0]["rating"] == 2
    assert [e["rated"] for e in S.list_evals(ws, "ann")] == [1, 0]


@pytest.mark.parametrize("rating", [0, 6, 3.5, "4", True, None])
def test_rating_must_be_1_to_5(ws, built, rating) -> None:
    with pytest.raises(S.InvalidField) as e:
        S.rate(ws, EVAL_A, built["test_ids"][0], rating, reviewer="ann")
    assert e.value.field == "rating"


def test_rating_unknown_ids(ws, built) -> None:
    with pytest.raises(S.NotFound):
        S.rate(ws, "ev-none", built["test_ids"][0], 3, reviewer="ann")
    with pytest.raises(S.NotFound):
        S.rate(ws, EVAL_A, "f" * 64, 3, reviewer="ann")
    with pytest.raises(S.NotFound):
        S.list_answers(ws, "ev-none", "ann")


def test_ab_is_blind_and_choices_map_to_eval_order(ws, built) -> None:
    page = S.list_pairs(ws, EVAL_A, EVAL_B, "ann", limit=10)
    assert page["total"] == 4 and page["resume"] == 0
    for it in page["items"]:
        left, right = f"alpha answer {page['items'].index(it)}", it["a"] if it["swapped"] else it["b"]
        assert (it["b"] if it["swapped"] else it["a"]) == left and right.startswith("bravo answer")
        assert it["swapped"] == S.is_swapped(EVAL_A, EVAL_B, it["example_id"])
    assert len({it["swapped"] for it in page["items"]}) == 2  # both orders occur on these four items
    eid = page["items"][0]["example_id"]
    r = S.prefer(ws, EVAL_A, EVAL_B, eid, "right", reviewer="ann")
    assert r["preference_id"]
    (chosen, rejected, basis, source), = _one(
        ws, "SELECT chosen, rejected, meta->>'basis', source FROM preferences WHERE id = ?", [r["preference_id"]])
    assert chosen.startswith("bravo answer 0") and XSS_SCRIPT in chosen and rejected == "alpha answer 0"
    assert (basis, source) == ("human", "review:ann")
    # changing the choice replaces the row and its pair; a tie stores no pair
    S.prefer(ws, EVAL_A, EVAL_B, eid, "tie", reviewer="ann")
    assert _one(ws, "SELECT choice, preference_id FROM human_choices") == [("tie", None)]
    assert _one(ws, "SELECT count(*) FROM preferences") == [(0,)]
    S.prefer(ws, EVAL_A, EVAL_B, eid, "left", reviewer="ann")
    assert _one(ws, "SELECT chosen FROM preferences") == [("alpha answer 0",)]
    nxt = S.list_pairs(ws, EVAL_A, EVAL_B, "ann")
    assert nxt["chosen"] == 1 and nxt["resume"] == 1


def test_ab_checks(ws, built) -> None:
    eid = built["test_ids"][0]
    with pytest.raises(S.InvalidField) as e:
        S.prefer(ws, EVAL_A, EVAL_B, eid, "A", reviewer="ann")
    assert e.value.field == "choice"
    with pytest.raises(S.InvalidField) as e:
        S.prefer(ws, EVAL_A, EVAL_A, eid, "left", reviewer="ann")
    assert e.value.field == "right_eval"
    with pytest.raises(S.NotFound):
        S.prefer(ws, EVAL_A, "ev-none", eid, "left", reviewer="ann")
    add_eval(ws, "ev-partial", "r-c", built["test_ids"][:2], lambda i: f"c {i}")
    assert S.list_pairs(ws, EVAL_A, "ev-partial", "ann", limit=10)["total"] == 2
    with pytest.raises(S.NotFound):
        S.prefer(ws, EVAL_A, "ev-partial", built["test_ids"][3], "left", reviewer="ann")


def test_a_locked_workspace_is_waited_for_then_busy(ws, built, tmp_path) -> None:
    import subprocess
    import sys
    import textwrap

    holder = textwrap.dedent(f"""
        import sys, time
        from curator.workspace import Workspace
        with Workspace({str(ws.path)!r}).connect():
            print("locked", flush=True)
            time.sleep(float(sys.argv[1]))
    """)
    eid = ids_by(ws)[0]
    # held briefly: the click waits and goes through
    p = subprocess.Popen([sys.executable, "-c", holder, "0.8"], stdout=subprocess.PIPE, text=True)
    assert p.stdout is not None and p.stdout.readline().strip() == "locked"
    assert S.decide(ws, eid, "accept", reviewer="ann")["status"] == "active"
    p.wait(30)
    # held for longer than the retry window: Busy (503), nothing written
    p = subprocess.Popen([sys.executable, "-c", holder, "30"], stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout is not None and p.stdout.readline().strip() == "locked"
        with pytest.raises(S.Busy) as e:
            S.retrying(lambda: S.decide(ws, eid, "reject", reviewer="ann", reason="x"), 0.3)
        assert e.value.status == 503 and "in use by another process" in str(e.value)
    finally:
        p.kill()
        p.wait(30)
    assert _one(ws, "SELECT kind FROM decisions WHERE example_id = ? AND undone_at IS NULL", [eid]) == [("review_accept",)]
