"""Feedback readers: rating rules, each format's shape, detection, gzip, and the messages of bad records."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from helpers import write_jsonl

from curator.data.readers.shapes import RowError
from curator.errors import CuratorError, InputError
from curator.feedback.events import RatingRules
from curator.feedback.readers import read_feedback
from curator.feedback.readers.hhrlhf import parse_transcript

CONV = [{"role": "user", "content": "How do I reset my key?"}, {"role": "assistant", "content": "Rotate it in Console > Keys."}]


def parsed(path: Path, fmt: str = "auto", **rules: object) -> tuple[str, list[object]]:
    src, items = read_feedback(path, fmt, RatingRules(**rules))  # type: ignore[arg-type]
    return src.format, [item for _, item in items]


# -- rating rules -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "kind", "label"),
    [(5, "rating", "positive"), (4, "rating", "positive"), (3, "rating", "neutral"), (2, "rating", "negative"),
     (1, "rating", "negative"), (0.7, "score", "positive"), (0.5, "score", "neutral"), (0.3, "score", "negative"),
     ("up", "thumbs", "positive"), ("Down", "thumbs", "negative"), (True, "rating", "positive"),
     ("👎", "thumbs", "negative"), (1, "thumbs", "positive"), (-1, "thumbs", "negative"), ("4", "rating", "positive"),
     (0.9, "auto", "positive"), (-1, "auto", "negative"), (5, "auto", "positive")],
)
def test_default_labels(value: object, kind: str, label: str) -> None:
    assert RatingRules().label(value, kind, "x")[1] == label


def test_thresholds_override_and_validate() -> None:
    rules = RatingRules(positive_threshold=5, negative_threshold=1)
    assert [rules.label(v, "rating", "x")[1] for v in (5, 4, 2, 1)] == ["positive", "neutral", "neutral", "negative"]
    assert RatingRules(positive_threshold=0.9).label(0.8, "score", "x")[1] == "neutral"
    with pytest.raises(CuratorError, match="must be above"):
        RatingRules(positive_threshold=2, negative_threshold=3)
    with pytest.raises(RowError, match="is not a rating"):
        RatingRules().label("meh", "thumbs", '"thumbs"')


# -- chat logs ----------------------------------------------------------------------------------------------------
def test_chat_log_fields(tmp_path: Path) -> None:
    f = write_jsonl(tmp_path / "log.jsonl", [
        {"trace_id": "t1", "timestamp": "2026-01-01T00:00:00Z", "model": "m1", "messages": CONV, "rating": 5},
        {"messages": CONV, "thumbs": "down"},
        {"messages": CONV, "feedback": {"score": 0.5}},
    ])
    fmt, items = parsed(f)
    assert fmt == "chat"
    events = [i.events[0] for i in items]  # type: ignore[attr-defined]
    assert [(e.trace_id, e.label, e.rating, e.rating_kind) for e in events] == [
        ("t1", "positive", 5.0, "rating"), (None, "negative", 0.0, "thumbs"), (None, "neutral", 0.5, "score")]
    assert (events[0].model, events[0].event_time) == ("m1", "2026-01-01T00:00:00Z")


def test_turns_after_the_answer_are_dropped(tmp_path: Path) -> None:
    f = write_jsonl(tmp_path / "log.jsonl", [{"messages": [*CONV, {"role": "user", "content": "thanks!"}], "rating": 5}])
    e = parsed(f)[1][0].events[0]  # type: ignore[attr-defined]
    assert e.messages == CONV and e.meta["turns_after_answer_dropped"] == 1


def test_field_options(tmp_path: Path) -> None:
    f = write_jsonl(tmp_path / "custom.jsonl", [{"id": 7, "conv": {"turns": CONV}, "eval": {"stars": 2}, "rid": "r-7"}])
    _, items = parsed(f, "chat", messages_field="conv.turns", rating_field="eval.stars", trace_field="rid")
    e = items[0].events[0]  # type: ignore[attr-defined]
    assert (e.trace_id, e.label, e.rating) == ("r-7", "negative", 2.0)


@pytest.mark.parametrize(
    ("row", "message"),
    [({"messages": CONV}, "no rating: expected one of rating"),
     ({"messages": CONV[:1], "rating": 5}, "has no assistant message"),
     ({"messages": [CONV[1], CONV[0]], "rating": 5}, "no user message before the answer"),
     ({"messages": [{"role": "tool", "content": "x"}], "rating": 5}, "unknown role 'tool'"),
     ({"messages": [CONV[0], {"role": "assistant", "content": " "}], "rating": 5}, "the assistant's answer is empty"),
     ({"messages": CONV, "rating": "great"}, "is not a rating")],
)
def test_chat_log_bad_rows(tmp_path: Path, row: dict[str, object], message: str) -> None:
    f = write_jsonl(tmp_path / "bad.jsonl", [{"messages": CONV, "rating": 4}, row])
    _, items = parsed(f)
    assert isinstance(items[1], RowError)
    assert message in str(items[1])


# -- traces -------------------------------------------------------------------------------------------------------
def test_langfuse_and_langsmith_traces(tmp_path: Path) -> None:
    f = write_jsonl(tmp_path / "traces.jsonl", [
        {"id": "lf-1", "timestamp": "2026-01-02", "input": {"messages": CONV[:1]}, "output": {"role": "assistant", "content": "A"},
         "scores": [{"name": "latency", "value": 800}, {"name": "user-feedback", "value": 1, "comment": "mail me at a@b.example.com"}],
         "metadata": {"model": "gpt-x"}},
        {"id": "ls-1", "run_type": "llm", "inputs": {"messages": [[{"type": "human", "content": "Q?"}]]},
         "outputs": {"generations": [[{"text": "B", "message": {"type": "ai", "content": "B"}}]]},
         "feedback": [{"key": "user_score", "score": 0}], "extra": {"metadata": {"ls_model_name": "m2"}}},
        {"id": "oa-1", "input": "Plain question", "output": {"choices": [{"message": {"role": "assistant", "content": "C"}}]},
         "feedback_stats": {"thumbs": {"n": 2, "avg": 1.0}}},
    ])
    fmt, items = parsed(f)
    assert fmt == "trace"
    events = [i.events[0] for i in items]  # type: ignore[attr-defined]
    assert [(e.trace_id, e.label, e.messages[-1]["content"], e.model) for e in events] == [
        ("lf-1", "positive", "A", "gpt-x"), ("ls-1", "negative", "B", "m2"), ("oa-1", "positive", "C", None)]
    assert events[0].meta["rating_field"] == "user-feedback"
    assert events[0].meta["comments"] == ["mail me at a@b.example.com"]  # scrubbed later, with everything else


def test_trace_without_scores_is_an_error(tmp_path: Path) -> None:
    f = write_jsonl(tmp_path / "t.jsonl", [{"input": "q", "output": "a"}])
    _, items = parsed(f)
    assert 'no rating: the trace has no "scores"' in str(items[0])


# -- OASST --------------------------------------------------------------------------------------------------------
def _msg(mid: str, role: str, text: str, *, rank: int | None = None, up: int = 0, down: int = 0,
         replies: list[dict[str, object]] | None = None, **kw: object) -> dict[str, object]:
    m: dict[str, object] = {"message_id": mid, "role": role, "text": text, "deleted": False, "review_result": True,
                            "emojis": {"+1": up, "-1": down}, "replies": replies or [], **kw}
    if rank is not None:
        m["rank"] = rank
    return m


def test_oasst_tree_rules(tmp_path: Path) -> None:
    tree = {"message_tree_id": "T", "prompt": _msg("p", "prompter", "Question?", replies=[
        _msg("a0", "assistant", "Best answer", rank=0, replies=[
            _msg("p2", "prompter", "Follow-up?", replies=[
                _msg("b0", "assistant", "Good follow-up", up=2), _msg("b1", "assistant", "Bad follow-up", down=3)])]),
        _msg("a1", "assistant", "Middle answer", rank=1, up=1),
        _msg("a2", "assistant", "Worst answer", rank=2, down=2, replies=[
            _msg("p3", "prompter", "Huh?", replies=[_msg("c0", "assistant", "Liked, below a disliked turn", up=1)])]),
        _msg("ax", "assistant", "Deleted answer", rank=3, deleted=True),
    ])}
    fmt, items = parsed(write_jsonl(tmp_path / "tree.jsonl", [tree]))
    assert fmt == "oasst"
    p = items[0]
    by_id = {e.trace_id: e for e in p.events}  # type: ignore[attr-defined]
    assert {k: e.label for k, e in by_id.items()} == {
        "a0": "positive", "a1": "positive", "a2": "negative", "b0": "positive", "b1": "negative", "c0": "positive"}
    assert [m["content"] for m in by_id["b0"].messages] == ["Question?", "Best answer", "Follow-up?", "Good follow-up"]
    assert not by_id["c0"].sft and "voted down" in by_id["c0"].sft_reason
    pairs = [(p.events[x.chosen].trace_id, p.events[x.rejected].trace_id, x.margin, x.basis) for x in p.pairs]  # type: ignore[attr-defined]
    assert pairs == [("a0", "a1", 1.0, "rank"), ("a0", "a2", 2.0, "rank"), ("b0", "b1", 5.0, "votes")]


# -- HH-RLHF and explicit pairs -------------------------------------------------------------------------------------
def test_hh_transcripts_gzip(tmp_path: Path) -> None:
    rows = [
        {"chosen": "\n\nHuman: Hi\n\nAssistant: Hello\n\nHuman: Help me\n\nAssistant: Sure, how?",
         "rejected": "\n\nHuman: Hi\n\nAssistant: Hello\n\nHuman: Help me\n\nAssistant: No."},
        {"chosen": "\n\nHuman: A\n\nAssistant: ", "rejected": "\n\nHuman: A\n\nAssistant: B"},
    ]
    path = tmp_path / "hh.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write("".join(json.dumps(r) + "\n" for r in rows))
    fmt, items = parsed(path)
    assert fmt == "hh-rlhf"
    first, second = items
    assert [m["role"] for m in first.events[0].messages] == ["user", "assistant", "user", "assistant"]  # type: ignore[attr-defined]
    assert first.events[0].trace_suffix == "chosen" and not first.events[0].sft  # type: ignore[attr-defined]
    assert len(first.pairs) == 1 and not second.pairs  # type: ignore[attr-defined]
    assert second.unpaired == ["the chosen reply is empty"]  # type: ignore[attr-defined]
    _, items = parsed(path, sft_chosen=True)
    assert items[0].events[0].sft  # type: ignore[attr-defined]


def test_explicit_prompt_chosen_rejected(tmp_path: Path) -> None:
    f = write_jsonl(tmp_path / "pairs.jsonl", [
        {"prompt": "Capital of France?", "chosen": [{"role": "user", "content": "Capital of France?"},
                                                     {"role": "assistant", "content": "Paris."}],
         "rejected": "Lyon."}])
    fmt, items = parsed(f)
    assert fmt == "hh-rlhf"
    c, r = items[0].events  # type: ignore[attr-defined]
    assert c.messages == [{"role": "user", "content": "Capital of France?"}, {"role": "assistant", "content": "Paris."}]
    assert r.messages[-1]["content"] == "Lyon." and r.messages[:-1] == c.messages[:-1]


def test_parse_transcript_rejects_prose() -> None:
    with pytest.raises(RowError, match="not a"):
        parse_transcript("just some text", '"chosen"')


# -- files --------------------------------------------------------------------------------------------------------
def test_unknown_shape_and_file_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"x\.jsonl:1: cannot tell the feedback format .*keys: \['foo'\]"):
        read_feedback(write_jsonl(tmp_path / "x.jsonl", [{"foo": 1}]))
    with pytest.raises(InputError, match="no such file"):
        read_feedback(tmp_path / "missing.jsonl")
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(InputError, match="file is empty"):
        read_feedback(tmp_path / "empty.jsonl")
    (tmp_path / "bad.gz").write_bytes(b"\x1f\x8bnot really gzip")
    with pytest.raises(InputError, match="cannot read the gzip file"):
        list(read_feedback(tmp_path / "bad.gz")[1])
