"""Splits: deterministic, grouped by first user turn, frozen once stored."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import chat, write_jsonl

from curator.data.ingest import ingest_file
from curator.data.splits import hash_split, parse_ratios
from curator.errors import CuratorError
from curator.snapshots import create_snapshot
from curator.workspace import Workspace


def _splits(ws) -> dict[str, str]:
    with ws.connect() as con:
        return dict(con.execute("SELECT example_id, split FROM splits").fetchall())


def test_assignment_is_deterministic_across_workspaces(tmp_path: Path) -> None:
    f = write_jsonl(tmp_path / "d.jsonl", [chat(f"question {i}", f"answer {i}") for i in range(300)])
    a, b = Workspace(tmp_path / "a"), Workspace(tmp_path / "b")
    ingest_file(a, f)
    ingest_file(b, f)
    sa = _splits(a)
    assert sa == _splits(b)
    counts = {s: list(sa.values()).count(s) for s in ("train", "eval", "test")}
    assert 200 < counts["train"] < 280 and counts["eval"] > 10 and counts["test"] > 10


def test_group_spans_one_split_even_across_files(ws, tmp_path: Path) -> None:
    ingest_file(ws, write_jsonl(tmp_path / "t.jsonl", [chat("Reset my password", "Click reset.")]), split="test")
    # Same first user turn (case and spacing differ): joins the test split, though unpinned.
    ingest_file(ws, write_jsonl(tmp_path / "u.jsonl", [chat("reset  my PASSWORD", "Use the link.")]))
    assert set(_splits(ws).values()) == {"test"}


def test_existing_examples_never_move(ws, tmp_path: Path) -> None:
    ingest_file(ws, write_jsonl(tmp_path / "a.jsonl", [chat(f"q{i}", "a") for i in range(50)]))
    before = _splits(ws)
    create_snapshot(ws)
    ws.set_setting("split_ratios", [0.0, 0.0, 1.0])  # new ratios only affect new groups
    ingest_file(ws, write_jsonl(tmp_path / "b.jsonl", [chat(f"new {i}", "a") for i in range(10)]))
    after = _splits(ws)
    assert {k: after[k] for k in before} == before
    assert {after[k] for k in after if k not in before} == {"test"}


def test_ratios() -> None:
    assert parse_ratios("80/10/10") == pytest.approx((0.8, 0.1, 0.1))
    assert parse_ratios("0.9,0.05,0.05") == pytest.approx((0.9, 0.05, 0.05))
    with pytest.raises(CuratorError):
        parse_ratios("80/20")
    assert hash_split("g", (1.0, 0.0, 0.0)) == "train"


def _store_by_origin(ws, ratios: list[float], origins: list[str], answer: str = "a") -> list[str]:
    """Store one new example per origin (prompts ``p 0``, ``p 1``, ...) at ``ratios``; their splits."""
    from curator.data.ingest import store_examples
    from curator.records import Example

    ws.set_setting("split_ratios", ratios)
    exs = [Example.from_messages([{"role": "user", "content": f"p {i}"}, {"role": "assistant", "content": answer}],
                                 origin=origin) for i, origin in enumerate(origins)]
    with ws.transaction() as con:
        store_examples(con, ws, exs)
    splits = _splits(ws)
    return [splits[e.id] for e in exs]


def test_generated_and_logged_data_never_hash_into_test(ws) -> None:
    # everything new would go to test
    assert _store_by_origin(ws, [0.0, 0.0, 1.0], ["synthetic", "feedback", "import"]) == ["train", "train", "test"]


def test_feedback_never_hashes_into_dev(ws) -> None:
    """A served answer as a dev reference would score the champion against itself when a round decides."""
    # everything new would go to eval
    assert _store_by_origin(ws, [0.0, 1.0, 0.0], ["synthetic", "feedback", "import"]) == ["eval", "train", "eval"]
    # the group rule still wins: a feedback prompt already in dev joins dev (so it never sits in two splits)
    assert _store_by_origin(ws, [0.0, 1.0, 0.0], ["feedback"] * 3, answer="b") == ["eval", "train", "eval"]


def test_pinned_file_takes_existing_examples_into_the_held_out_split(ws, tmp_path: Path) -> None:
    ws.set_setting("split_ratios", [1.0, 0.0, 0.0])
    ingest_file(ws, write_jsonl(tmp_path / "train.jsonl", [chat("Top up my card", "ok"), chat("other", "x")]))
    rep = ingest_file(ws, write_jsonl(tmp_path / "test.jsonl", [chat("Top up my card ", "ok")]), split="test")
    assert rep.already_present == 1 and rep.moved_to_pinned_split == {"train": 1}
    assert sorted(_splits(ws).values()) == ["test", "train"]
    with ws.connect() as con:
        assert con.execute("SELECT kind FROM decisions").fetchall() == [("split_moved",)]
    # A train file never pulls a test example back.
    rep = ingest_file(ws, write_jsonl(tmp_path / "again.jsonl", [chat("Top up my card", "ok")]), split="train")
    assert rep.moved_to_pinned_split == {} and sorted(_splits(ws).values()) == ["test", "train"]
