"""Text filters, duplicates and leaks of generated candidates."""

from __future__ import annotations

import pytest
from synth.synth_helpers import seeded_workspace

from curator.records import Example
from curator.synth.filters import Candidate, FilterConfig, check_text, find_duplicates, find_leaks

SYSTEM = "You are the support assistant for Nimbus Cloud."
ANSWER = "Diagnosis: x.\n1. a step\n2. b step\n3. c step\nEscalation: open a ticket."
NO_SEMANTIC = FilterConfig(skip=frozenset({"semantic"}))


def cand(i: int, question: str, answer: str = ANSWER) -> Candidate:
    ex = Example.from_messages([{"role": "system", "content": SYSTEM}, {"role": "user", "content": question},
                                {"role": "assistant", "content": answer}], task="support", origin="synthetic")
    return Candidate(i, ex, f"key{i}", None, question, answer)


@pytest.mark.parametrize(
    ("question", "answer", "finish", "reason"),
    [
        ("How do I rotate my API token?", ANSWER, "length", "truncated"),
        ("How do I rotate my API token?", "  ", "stop", "empty"),
        ("Help?", ANSWER, "stop", "length"),
        ("How do I rotate my API token?", "Ok.", "stop", "length"),
        ("How do I rotate my API token?", "I'm sorry, but I can't help with that request.", "stop", "refusal"),
        ("How do I rotate my API token?", "As an AI language model, I do not have access.", "stop", "refusal"),
        ("<the new user question>", ANSWER, "stop", "refusal"),
    ],
)
def test_check_text_rejects(question: str, answer: str, finish: str, reason: str) -> None:
    rej = check_text(question, answer, finish, FilterConfig())
    assert rej is not None and rej.reason == reason


def test_check_text_passes_and_can_be_switched_off() -> None:
    assert check_text("How do I rotate my API token?", ANSWER, "stop", FilterConfig()) is None
    assert check_text("Help?", ANSWER, "stop", FilterConfig(skip=frozenset({"length"}))) is None


def test_duplicates_of_stored_and_of_each_other(ws) -> None:  # noqa: ANN001
    find = find_duplicates
    seeded_workspace(ws)
    seed_q = "My Nimbus Compute instance i-0a41 has been stuck in 'starting' for 20 minutes. What should I do?"
    cands = [
        cand(0, "How do I move a bucket between regions without downtime for my users?"),
        cand(1, seed_q.upper()),  # exact (folded) copy of a seed question
        cand(2, "How do I move a bucket between regions without downtime for my users, please?"),  # near #0
        cand(3, "How do I move a bucket between regions without downtime for my users?", "Different. " + ANSWER),
        cand(4, "Why is my invoice higher than the plan price this month?"),
    ]
    found = find(ws, cands, NO_SEMANTIC)
    assert {i: r.reason for i, r in found.items()} == {
        1: "duplicate-exact", 2: "duplicate-near", 3: "duplicate-exact"}
    assert found[3].other_id == cands[0].example.id and found[2].other_id == cands[0].example.id
    assert found[1].other_id is not None and found[1].other_id != cands[0].example.id
    assert find(ws, cands, FilterConfig(skip=frozenset({"exact", "near", "semantic"}))) == {}


def test_leaks_into_test_split(ws) -> None:  # noqa: ANN001
    find = find_leaks
    seeded_workspace(ws)
    test_q = "I can't delete an old instance; the console says 'Deletion protection is enabled'."
    cands = [cand(0, test_q), cand(1, "Why is my invoice higher than the plan price this month?")]
    found = find(ws, cands, NO_SEMANTIC)
    assert list(found) == [0] and found[0].reason == "leak-exact"
    assert find(ws, cands, FilterConfig(skip=frozenset({"leak"}))) == {}


@pytest.mark.slow  # loads the sentence embedder: seconds idle, a minute on a loaded machine
def test_semantic_paraphrase_of_a_test_item_is_a_leak_and_near_copies_are_duplicates(ws) -> None:  # noqa: ANN001
    seeded_workspace(ws)
    paraphrase = "The console won't let me delete an old instance because deletion protection is enabled."
    fresh = "Why is my invoice higher than the plan price this month?"
    cands = [cand(0, paraphrase), cand(1, fresh), cand(2, "Why is this month's invoice higher than my plan's price?")]
    found = find_leaks(ws, cands, FilterConfig())
    assert list(found) == [0] and found[0].reason == "leak-semantic" and found[0].score >= 0.85
    found = find_duplicates(ws, cands[1:], FilterConfig())
    assert list(found) == [1] and found[1].reason == "duplicate-semantic"
    assert found[1].other_id == cands[1].example.id
