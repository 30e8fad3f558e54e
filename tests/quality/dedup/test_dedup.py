"""Dedup on the workspace: keeper rule, decisions, dry run, restore, candidates, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from click.testing import CliRunner
from helpers import chat, write_jsonl

from curator.cli import main
from curator.data.ingest import ingest_file, store_examples
from curator.errors import CuratorError
from curator.quality.decisions import restore
from curator.quality.dedup import dedup, exact_pairs, find_duplicates_of, near_pairs
from curator.quality.dedup.run import write_exclusions
from curator.quality.fold import fold
from curator.records import Example

LONG = ("Write a short poem about the sea at night, mentioning the moon, the tide and a lighthouse keeper "
        "who has not slept for three days because the storm kept him awake.")


def _status(ws) -> dict[str, tuple[str, str | None]]:
    with ws.connect() as con:
        return {r[0]: (r[1], r[2]) for r in con.execute("SELECT id, status, excluded_reason FROM examples").fetchall()}


def _decisions(ws) -> list[tuple]:
    with ws.connect() as con:
        return con.execute(
            "SELECT example_id, kind, other_id, score, reason, undone_at FROM decisions ORDER BY kind, example_id"
        ).fetchall()


def _ids(ws, user: str) -> list[str]:
    with ws.connect() as con:
        rows = con.execute("SELECT id, messages FROM examples").fetchall()
    return [i for i, m in rows if json.loads(m)[0]["content"] == user]


def _store(ws, examples: list[Example]) -> None:
    with ws.transaction() as con:
        store_examples(con, ws, examples)


# -- pure pieces ----------------------------------------------------------------------------------------------------
def test_fold_turns_punctuation_into_spaces() -> None:
    assert fold("  Is there an auto TOP-UP option?? ") == "is there an auto top up option"
    assert fold("is there an auto top up option") == fold("Is there an auto top-up option?")
    assert fold("Ｆｕｌｌ\u3000width…") == "full width"
    assert fold("a+b") != fold("a b")  # symbols are kept
    pairs, scores = exact_pairs(["Hello, world!", "other", "hello world", "HELLO   WORLD."])
    assert pairs.tolist() == [[0, 2], [0, 3]] and scores.tolist() == [1.0, 1.0]


def test_near_pairs_catch_one_typo_in_a_long_text_and_respect_the_threshold() -> None:
    typo = LONG.replace("lighthouse", "lighthuose")
    other = "Explain how a lighthouse works and why the keeper has to stay awake during a storm at sea."
    pairs, scores = near_pairs([LONG, other, typo])
    assert pairs.tolist() == [[0, 2]] and 0.8 <= scores[0] < 1.0
    assert near_pairs([LONG, other, typo], threshold=0.99)[0].size == 0
    with pytest.raises(ValueError):
        near_pairs([LONG, typo], threshold=0)


# -- workspace ------------------------------------------------------------------------------------------------------
def test_exact_dedup_keeps_by_origin_and_records_decisions(ws) -> None:
    seed = Example.from_messages(chat("How do I reset my password?", "Use the reset link.")["messages"], origin="seed")
    imp = Example.from_messages(chat("how do I reset my password", "Use the reset link!")["messages"], origin="import")
    syn = Example.from_messages(chat("HOW DO I RESET MY PASSWORD?", "use the reset link")["messages"],
                                origin="synthetic")
    other = Example.from_messages(chat("What is the capital of France?", "Paris.")["messages"], origin="import")
    _store(ws, [syn, imp])  # stored first: earlier, yet the seed still wins
    _store(ws, [seed, other])
    report = dedup(ws, ["exact"])
    assert report.excluded == 2 and report.written == 2
    status = _status(ws)
    assert status[seed.id][0] == "active" and status[other.id][0] == "active"
    assert status[imp.id][0] == status[syn.id][0] == "excluded"
    assert status[imp.id][1].startswith("dedup_exact: exact duplicate of " + seed.id[:12])
    rows = _decisions(ws)
    assert {(r[0], r[1], r[2], r[3]) for r in rows} == {(imp.id, "dedup_exact", seed.id, 1.0),
                                                         (syn.id, "dedup_exact", seed.id, 1.0)}
    assert "cluster of 3" in rows[0][4]
    # A second run finds nothing new.
    assert dedup(ws, ["exact"]).excluded == 0


def test_dry_run_changes_nothing_and_shows_samples(ws, tmp_path: Path) -> None:
    ingest_file(ws, write_jsonl(tmp_path / "a.jsonl", [chat("Hi there!", "Hello."), chat("hi there", "hello")]))
    before = _status(ws)
    report = dedup(ws, ["exact", "near"], dry_run=True)
    assert report.excluded == 1 and report.written == 0
    assert _status(ws) == before and _decisions(ws) == []
    sample = report.methods[0].samples[0]
    assert {sample["example_text"], sample["kept_text"]} == {"Hi there!\nHello.", "hi there\nhello"}
    d = report.to_dict()
    assert d["by_method"]["exact"]["excluded"] == 1 and d["by_method"]["near"]["excluded"] == 0


def test_pinned_test_examples_are_never_excluded_and_train_copies_go(ws, tmp_path: Path) -> None:
    ingest_file(ws, write_jsonl(tmp_path / "tr.jsonl", [chat("Translate 'cat' to French.", "chat")]),
                split="train", origin="seed")
    ingest_file(ws, write_jsonl(tmp_path / "te.jsonl", [chat("translate cat to french", "Chat."),
                                                        chat("Translate: cat -> French", "chat")]), split="test")
    report = dedup(ws, ["exact"])
    assert report.excluded == 1  # the seed train copy; the two pinned test copies both stay
    (d,) = report.decisions
    assert _ids(ws, "Translate 'cat' to French.") == [d.example_id]
    assert "train copy of a test example" in d.reason
    status = _status(ws)
    assert sum(s == "active" for s, _ in status.values()) == 2


def test_restore_undoes_one_kind(ws, tmp_path: Path) -> None:
    rows = [chat("Hi there!", "Hello."), chat("hi there", "hello"), chat(LONG, "A poem."),
            chat(LONG.replace("sea", "ocean"), "A poem.")]
    ingest_file(ws, write_jsonl(tmp_path / "a.jsonl", rows))
    report = dedup(ws, ["exact", "near"])
    assert [m.excluded for m in report.methods] == [1, 1]
    assert restore(ws, "dedup_near") == 1
    kinds = {(r[1], r[5] is None) for r in _decisions(ws)}
    assert kinds == {("dedup_exact", True), ("dedup_near", False)}
    assert sum(s == "active" for s, _ in _status(ws).values()) == 3
    assert restore(ws, "dedup") == 1
    assert all(s == "active" and r is None for s, r in _status(ws).values())
    assert restore(ws, "dedup") == 0
    with pytest.raises(CuratorError, match="unknown decision kind"):
        restore(ws, "nonsense")


def test_write_is_all_or_nothing(ws, tmp_path: Path) -> None:
    ingest_file(ws, write_jsonl(tmp_path / "a.jsonl", [chat("a", "b"), chat("A!", "B!")]))
    ids = list(_status(ws))
    bad = pa.table({"example_id": ids, "kind": ["dedup_exact", "dedup_exact"], "other_id": ids,
                    "score": [1.0, 1.0]})  # no reason column: the insert fails after the update
    with pytest.raises(Exception):  # noqa: B017  (DuckDB's binder error)
        write_exclusions(ws, bad)
    assert all(s == "active" for s, _ in _status(ws).values()) and _decisions(ws) == []


def test_semantic_dedup_embeds_once(ws, tmp_path: Path) -> None:
    rows = [chat("How can I reset my password?", "Click 'Forgot password' on the login page."),
            chat("How do I reset my password?", "Click 'Forgot password' on the login page."),
            chat("What's the weather like on Mars?", "Cold, dusty and thin-aired.")]
    ingest_file(ws, write_jsonl(tmp_path / "a.jsonl", rows))
    first = dedup(ws, ["semantic"], semantic_threshold=0.9, dry_run=True)
    assert first.embedded == 3 and first.excluded == 1
    assert 0.9 <= first.decisions[0].score <= 1.0
    second = dedup(ws, ["semantic"], semantic_threshold=0.9)
    assert second.embedded == 0 and second.written == 1
    with ws.connect() as con:
        assert con.execute("SELECT count(*) FROM embeddings").fetchall()[0][0] == 3


def test_find_duplicates_of_checks_store_and_batch_and_writes_nothing(ws, tmp_path: Path) -> None:
    ingest_file(ws, write_jsonl(tmp_path / "a.jsonl", [chat("Hi there!", "Hello."), chat(LONG, "A poem.")]))
    with ws.connect() as con:
        stored = {json.loads(m)[0]["content"]: i for i, m in con.execute("SELECT id, messages FROM examples").fetchall()}
    cands = [Example.from_messages(chat(u, a)["messages"], origin="synthetic") for u, a in [
        ("HI THERE", "hello"),                          # 0: exact of stored
        (LONG.replace("keeper", "kepper"), "A poem."),  # 1: near of stored
        ("Name three primes.", "2, 3, 5."),             # 2: new
        ("name three primes", "2 3 5"),                 # 3: exact of candidate 2
    ]]
    before = (_status(ws), _decisions(ws))
    matches = find_duplicates_of(ws, cands, methods=("exact", "near"))
    got = {(m.candidate, m.kind): m.other_id for m in matches}
    assert got[(0, "exact")] == stored["Hi there!"]
    assert got[(1, "near")] == stored[LONG]
    assert got[(3, "exact")] == "candidate:2"
    assert not any(m.candidate == 2 for m in matches)
    assert (_status(ws), _decisions(ws)) == before
    assert find_duplicates_of(ws, []) == []


def test_find_duplicates_of_semantic(ws, tmp_path: Path) -> None:
    ingest_file(ws, write_jsonl(tmp_path / "a.jsonl", [chat("How can I reset my password?", "Use the link.")]))
    cands = [Example.from_messages(chat("How do I reset my password?", "Use the link.")["messages"]),
             Example.from_messages(chat("Best pizza toppings?", "Basil.")["messages"])]
    matches = find_duplicates_of(ws, cands, methods=("semantic",), semantic_threshold=0.9)
    assert [(m.candidate, m.kind) for m in matches] == [(0, "semantic")]
    assert matches[0].score >= 0.9 and not matches[0].other_id.startswith("candidate:")


# -- CLI ------------------------------------------------------------------------------------------------------------
def test_cli_dedup_restore(ws, tmp_path: Path) -> None:
    ingest_file(ws, write_jsonl(tmp_path / "a.jsonl", [chat("Hi there!", "Hello."), chat("hi there", "hello"),
                                                       chat(LONG, "A poem."), chat(LONG + " Please.", "A poem.")]))
    runner = CliRunner()
    r = runner.invoke(main, ["dedup", "--exact", "--near", "0.7", "--dry-run", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)  # stage lines go to stderr
    assert out["dry_run"] and out["excluded"] == 2 and out["by_method"]["near"]["threshold"] == 0.7
    r = runner.invoke(main, ["dedup", "--exact"])
    assert r.exit_code == 0, r.output
    assert "1 of 4 active examples excluded; undo with `curator restore dedup`" in r.output
    assert r.stdout.splitlines()[0].split() == ["method", "threshold", "pairs", "clusters", "excluded", "time"]
    r = runner.invoke(main, ["restore", "dedup_exact"])
    assert (r.exit_code, r.output) == (0, "1 example restored (dedup_exact)\n")
    r = runner.invoke(main, ["restore", "bogus"])
    assert r.exit_code == 1 and r.output.startswith("Error: unknown decision kind 'bogus'")
    for cmd in ("dedup", "restore"):
        help_text = runner.invoke(main, [cmd, "--help"]).output
        assert "curator " + cmd in help_text


def test_semantic_pairs_ivf_path_matches_exact() -> None:
    from curator.quality.dedup.semantic import semantic_pairs

    rng = np.random.default_rng(0)
    base = rng.normal(size=(3000, 32)).astype(np.float32)
    dups = base[:50] + 0.05 * rng.normal(size=(50, 32)).astype(np.float32)
    x = np.concatenate([base, dups])
    exact = semantic_pairs(x, 0.95)[0]
    ivf = semantic_pairs(x, 0.95, exact_max=100)[0]
    assert {tuple(p) for p in exact.tolist()} >= {(i, 3000 + i) for i in range(50)}
    assert len({tuple(p) for p in ivf.tolist()} & {tuple(p) for p in exact.tolist()}) >= 0.95 * len(exact)
