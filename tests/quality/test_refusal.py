"""The one refusal detector: what it flags, what it leaves alone, and that the audit and the
generation filter agree on every example."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import chat, write_jsonl

from curator.data.ingest import ingest_file
from curator.quality.audit import audit
from curator.quality.refusal import find_refusal, is_refusal
from curator.records import Example
from curator.synth.filters import FilterConfig, check_text

REFUSALS = [
    "I'm sorry, but I can't help with that.",
    "I’m sorry, but I cannot share internal pricing.",  # typographic apostrophe
    "I am afraid, but I won't write that for you.",
    "I'm sorry but I will not do this.",
    "As an AI language model, I do not have access to your account.",
    "As a large language model, I have no opinions on elections.",
    "I'm just an AI, so I don't know what you should choose.",
    "I cannot assist with that request.",
    "I can not provide that information.",
    "I won't comply with this request.",
    "I'm unable to help with deleting other people's accounts.",
    "I'm not able to assist with that.",
    "I am unable to answer that question.",
    "I apologize, but this is something I must decline.",
    "My knowledge cutoff is 2021, so I cannot tell you the latest version.",
    "I don't have access to the internet, so please check the status page.",
    "I do not have personal opinions about programming languages.",
]
ANSWERS = [
    "I can't find that order, please check the number.",
    "I'm sorry to hear that. Restart the instance from the console and it will come back in a minute.",
    "I apologize for the delay: your refund was issued today and arrives in 3-5 days.",
    "Sorry for the delay: here is the recipe.",
    "I am like a moth to a flame; I can't help but be drawn to her.",
    "You can't access the console without MFA; enable it under Settings > Security.",
    "I can help with that: open Billing and choose Download invoice.",
    "Our assistant answers billing questions around the clock.",
    "I'm afraid the export is limited to 10,000 rows; split it by month to get everything.",
]


@pytest.mark.parametrize("text", REFUSALS)
def test_refusals_are_caught(text: str) -> None:
    assert is_refusal(text)
    phrase = find_refusal(text)
    assert phrase and phrase in text


@pytest.mark.parametrize("text", ANSWERS)
def test_normal_support_answers_are_not_refusals(text: str) -> None:
    assert not is_refusal(text) and find_refusal(text) is None


def test_audit_flags_exactly_what_the_generation_filter_rejects(ws, tmp_path: Path) -> None:  # noqa: ANN001
    texts = REFUSALS + ANSWERS
    rows = [chat(f"Support question number {i}: what should I do about case {i}?", t) for i, t in enumerate(texts)]
    ingest_file(ws, write_jsonl(tmp_path / "a.jsonl", rows))
    d = audit(ws, worst=len(texts)).to_dict()
    flagged = {r["id"] for r in d["refusals"]["worst"]}
    assert d["refusals"]["examples"] == len(flagged)

    cfg = FilterConfig(skip=frozenset({"length"}))
    rejected = set()
    for row in rows:
        question, answer = row["messages"][0]["content"], row["messages"][1]["content"]
        rej = check_text(question, answer, "stop", cfg)
        assert rej is None or rej.reason == "refusal"
        if rej is not None:
            rejected.add(Example.from_messages(row["messages"]).id)
    expected = {Example.from_messages(r["messages"]).id for r in rows[: len(REFUSALS)]}
    assert flagged == rejected == expected
