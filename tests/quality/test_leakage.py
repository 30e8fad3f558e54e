"""Leakage between splits: exact / n-gram / semantic, --fix, the snapshot gate, candidates."""

from __future__ import annotations

import csv
import json
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from helpers import chat, write_jsonl

from curator import snapshots
from curator.cli import main
from curator.data.ingest import ingest_file
from curator.errors import SnapshotError
from curator.quality import leakage
from curator.quality.decisions import restore
from curator.quality.dedup.engine import LocalEngine
from curator.quality.leakage import (
    MAX_DF,
    exact_leak_pairs,
    find_leakage,
    find_leaks_of,
    fix_leakage,
    fix_leakage_until_clean,
    leakage_gate,
    ngram_index,
    ngram_leak_pairs,
    ngram_sizes,
)
from curator.records import Example
from curator.snapshots import create_snapshot
from curator.workspace import Workspace

LONG = ("Summarise the following paragraph about the history of the printing press in Europe, "
        "paying attention to Gutenberg, movable type, the spread of literacy and the Reformation.")


def _split_status(ws) -> dict[str, tuple[str, str]]:
    with ws.connect() as con:
        rows = con.execute("SELECT e.id, s.split, e.status FROM examples e JOIN splits s ON s.example_id = e.id")
        return {r[0]: (r[1], r[2]) for r in rows.fetchall()}


@pytest.fixture
def leaky(ws, tmp_path: Path):
    ingest_file(ws, write_jsonl(tmp_path / "train.jsonl", [
        chat("Is there an auto top-up option?", "Yes, in Settings."),         # exact leak (folded)
        chat("Please. " + LONG, "Gutenberg's press spread literacy."),   # n-gram leak
        chat("What is the capital of Peru?", "Lima."),
    ]), split="train")
    ingest_file(ws, write_jsonl(tmp_path / "test.jsonl", [
        chat("is there an auto top up option", "Yes, in settings"),
        chat(LONG, "Gutenberg's press spread literacy."),
        chat("What is the capital of Chile?", "Santiago."),
    ]), split="test")
    return ws


def test_cores_exact_and_ngram_rules() -> None:
    pairs, _ = exact_leak_pairs(["Top-up, please!", "x"], ["a", "top up please"])
    assert pairs.tolist() == [[1, 0]]
    # Long texts: 13-gram coverage of the eval text; the train text contains it all.
    p, s = ngram_leak_pairs([LONG + " And more words here."], [LONG])
    assert p.tolist() == [[0, 0]] and s[0] == 1.0
    # A shared long instruction with different inputs does not cover enough of the example.
    head = "Rewrite the sentence to make it clearer and more concise, breaking long sentences up where needed."
    p, _ = ngram_leak_pairs([head + " The cat, which was black, sat on the mat that was red."],
                            [head + " Our quarterly revenue, despite headwinds, rose by a surprising twelve percent."])
    assert p.size == 0
    # Short texts (under 13 words) are left to the exact rule.
    assert ngram_leak_pairs(["I lost my card yesterday help"], ["I lost my card"])[0].size == 0


def test_find_and_fix_leakage(leaky) -> None:
    before = _split_status(leaky)
    report = find_leakage(leaky, ("exact", "ngram"))
    assert report.by_method == {"exact": 1, "ngram": 1} and report.compared == {"eval": 0, "test": 3}
    exact = report.pairs[0]
    assert exact.method == "exact" and exact.score == 1.0 and exact.other_split == "test"
    assert exact.train_text.startswith("Is there an auto top-up option?")
    assert exact.other_text.startswith("is there an auto top up option")
    assert report.pairs[1].method == "ngram" and report.pairs[1].score >= 0.8
    assert fix_leakage(leaky, report) == 2
    after = _split_status(leaky)
    for eid, (split, status) in after.items():
        assert split == before[eid][0]
        assert status == ("excluded" if eid in report.train_ids else "active")
    with leaky.connect() as con:
        kinds = sorted(r[0] for r in con.execute("SELECT kind FROM decisions").fetchall())
    assert kinds == ["leakage_exact", "leakage_ngram"]
    assert find_leakage(leaky, ("exact", "ngram")).pairs == []
    assert restore(leaky, "leakage") == 2


def test_snapshot_gate_refuses_then_allows(leaky) -> None:
    assert snapshots.leakage_gate is leakage_gate  # the snapshot calls the gate directly (no registry)
    with pytest.raises(SnapshotError) as e:
        create_snapshot(leaky)
    assert str(e.value) == (
        "train overlaps eval/test: 2 leaking pairs (1 exact, 1 n-gram); run `curator leakage` to see them, "
        "`curator leakage --fix` to exclude the train copies, or pass --allow-leakage"
    )
    assert create_snapshot(leaky, allow_leakage=True).created
    fix_leakage(leaky, methods=("exact", "ngram"))
    assert create_snapshot(leaky).created


def test_cli_leakage_and_snapshot(leaky) -> None:
    runner = CliRunner()
    r = runner.invoke(main, ["snapshot", "create"])
    assert r.exit_code == 1 and "2 leaking pairs" in r.output and "--allow-leakage" in r.output
    r = runner.invoke(main, ["leakage", "--methods", "exact,ngram", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)  # stage lines go to stderr
    assert out["leaking_pairs"] == 2 and out["by_method"] == {"exact": 1, "ngram": 1}
    assert {"train_id", "other_id", "method", "score", "train_text", "other_text"} <= set(out["pairs"][0])
    r = runner.invoke(main, ["leakage", "--methods", "exact,ngram", "--fix"])
    assert r.exit_code == 0 and "2 train examples excluded" in r.output
    assert runner.invoke(main, ["snapshot", "create"]).exit_code == 0
    r = runner.invoke(main, ["leakage", "--methods", "bogus"])
    assert r.exit_code == 1 and "unknown method bogus" in r.output


def test_semantic_leakage(ws, tmp_path: Path) -> None:
    ingest_file(ws, write_jsonl(tmp_path / "tr.jsonl", [chat("How can I reset my password?", "Use the link.")]),
                split="train")
    ingest_file(ws, write_jsonl(tmp_path / "te.jsonl", [chat("How do I reset my password?", "Use the link.")]),
                split="test")
    report = find_leakage(ws, ("exact", "ngram", "semantic"), semantic_threshold=0.9)
    assert report.by_method == {"exact": 0, "ngram": 0, "semantic": 1} and report.embedded == 2


def test_find_leaks_of(leaky) -> None:
    cands = [Example.from_messages(chat(u, a)["messages"], origin="synthetic") for u, a in [
        ("What is the capital of Chile?", "Santiago!"),
        ("What is the capital of Peru?", "Lima."),   # overlaps train only: not a leak
        ("In three sentences: " + LONG, "Gutenberg's press spread literacy."),
    ]]
    matches = find_leaks_of(leaky, cands, methods=("exact", "ngram"))
    assert [(m.candidate, m.kind, m.split) for m in matches] == [(0, "exact", "test"), (2, "ngram", "test")]
    with leaky.connect() as con:
        assert con.execute("SELECT count(*) FROM decisions").fetchall()[0][0] == 0


def test_banking77_must_find_the_26_folded_matches(ws, shared_data: Path) -> None:
    folder = shared_data / "customer_support" / "banking77"
    train = [r["text"] for r in csv.DictReader((folder / "train.csv").open(encoding="utf-8"))]
    test = [r["text"] for r in csv.DictReader((folder / "test.csv").open(encoding="utf-8"))]
    assert not set(train) & set(test)  # none are raw-exact
    pairs, _ = exact_leak_pairs(train, test)
    # 25 with punctuation -> space, plus "My top-up isn't working." == "My top up isnt working"
    # (the fold deletes apostrophes); deleting all punctuation would find 11.
    assert len({o for o, _ in pairs.tolist()}) == 26
    assert ("My top-up isn't working.", "My top up isnt working") in {(test[o], train[t]) for o, t in pairs.tolist()}
    # In the workspace: ingest stores an example once, so the 6 test rows equal to a train row after
    # curator's own normalisation (surrounding whitespace) are "already present"; the other 20 leak.
    ingest_file(ws, folder / "train.csv", split="train")
    rep = ingest_file(ws, folder / "test.csv", split="test")
    report = find_leakage(ws, ("exact", "ngram"))
    assert rep.already_present + report.by_method["exact"] == 26
    assert report.by_method["exact"] == 20


def test_self_instruct_whole_example_matching_has_no_false_positives(ws, shared_data: Path) -> None:
    folder = shared_data / "instruct" / "self_instruct"
    seeds = [json.loads(line) for line in (folder / "seed_tasks.jsonl").open(encoding="utf-8")]
    user = [json.loads(line) for line in (folder / "user_oriented_instructions.jsonl").open(encoding="utf-8")]
    instr = exact_leak_pairs([s["instruction"] for s in seeds], [u["instruction"] for u in user])[0]
    flagged = {user[o]["instruction"] for o, _ in instr.tolist()}
    assert flagged == {"Answer the following question."}  # instruction-only: false positives
    ingest_file(ws, folder / "seed_tasks.jsonl", split="train", origin="seed")
    ingest_file(ws, folder / "user_oriented_instructions.jsonl", split="test")
    for on in ("conversation", "prompt"):
        assert find_leakage(ws, ("exact", "ngram"), on=on).pairs == []


def test_fix_repeats_until_clean_when_exclusions_bring_ngrams_under_the_boilerplate_cutoff(ws, tmp_path: Path) -> None:
    """N-grams in more than MAX_DF train texts are ignored; excluding the exact copies brings them under it."""
    question = "My invoice for the last three months shows a charge I do not recognise at all"
    answer = "Open Billing, then Invoices, and dispute the line."
    variants = [chat(f"Note {k}: {question}", answer) for k in range(MAX_DF - 1)]
    copies = [chat(question.upper(), answer), chat(question + "?", answer)]  # two exact (folded) copies
    ingest_file(ws, write_jsonl(tmp_path / "train.jsonl", variants + copies), split="train")
    ingest_file(ws, write_jsonl(tmp_path / "test.jsonl", [chat(question, answer)]), split="test")
    r = CliRunner().invoke(main, ["leakage", "--methods", "exact,ngram", "--fix", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    # pass 1: the 2 exact copies (the n-grams are in MAX_DF + 1 texts: boilerplate); pass 2: the rest; pass 3: clean
    assert out["pairs_per_pass"] == [2, MAX_DF - 1, 0] and out["excluded"] == MAX_DF + 1
    assert CliRunner().invoke(main, ["snapshot", "create"]).exit_code == 0


# -- the streamed search gives the pairs of the whole-pool search ------------------------------------------------
def _templated(seed: int, n_train: int, n_other: int, templates: int) -> tuple[list[str], list[str]]:
    """Texts sharing templates (so n-grams sit around a small boilerplate cutoff), non-ASCII words included,
    and train copies of other texts: exact (case, punctuation), one word dropped, one word added."""
    rng = random.Random(seed)
    vocab = [f"w{i}" for i in range(40)] + ["Top-up", "don't", "Straße", "ＡＢＣ", "café"]
    heads = [" ".join(rng.choice(vocab) for _ in range(rng.randint(5, 30))) for _ in range(templates)]

    def text() -> str:
        if rng.random() < 0.5:
            return rng.choice(heads) + " " + " ".join(rng.choice(vocab) for _ in range(rng.randint(0, 12)))
        return " ".join(rng.choice(vocab) for _ in range(rng.randint(3, 40)))

    other = [text() for _ in range(n_other)]
    train = []
    for _ in range(n_train):
        if rng.random() < 0.15:
            words = rng.choice(other).split()
            kind = rng.random()
            if kind < 0.3:
                words = [w.upper() + "!" for w in words]
            elif kind < 0.7 and len(words) > 3:
                words.pop(rng.randrange(len(words)))
            else:
                words.append(rng.choice(vocab))
            train.append(" ".join(words))
        else:
            train.append(text())
    return train, other


class _PoolEngine(LocalEngine):
    """The whole-pool path (every example loaded, one sorted n-gram index of all the train texts)."""

    name = "pool"

    def ngram_leak_pairs(self, train: Any, other: Any, **params: Any) -> Any:
        index = {n: ngram_index(train, n) for n in ngram_sizes(params["ngram"], params["short_ngram"])}
        return ngram_leak_pairs(train, other, folded=True, index=index, max_df=leakage.MAX_DF, **params)


@pytest.mark.parametrize("seed", [0, 1])
def test_blocked_ngram_pairs_equal_the_whole_train_index(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(leakage, "BLOCK_ROWS", 97)  # many blocks
    train, other = _templated(seed, 2_000, 500, 25)
    train, other = [leakage.fold(t) for t in train], [leakage.fold(t) for t in other]
    for params in ({"max_df": 5}, {"max_df": 20, "coverage": 0.5, "ngram": 6, "short_ngram": 3},
                   {"max_df": 3, "coverage": 1.0, "ngram": 4, "short_ngram": 4}, {}):
        index = {n: ngram_index(train, n) for n in ngram_sizes(params.get("ngram", 13), params.get("short_ngram", 8))}
        want = ngram_leak_pairs(train, other, folded=True, index=index, **params)
        got = ngram_leak_pairs(train, other, folded=True, **params)
        assert len(want[0]) > 10, params
        assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1]), params


def _leaky_workspace(path: Path, seed: int) -> Workspace:
    train, other = _templated(seed, 3_000, 800, 250)
    ws = Workspace(path)
    ingest_file(ws, write_jsonl(path.parent / f"{path.name}-train.jsonl", [chat(t, "ok") for t in train]), split="train")
    ingest_file(ws, write_jsonl(path.parent / f"{path.name}-eval.jsonl", [chat(t, "ok") for t in other[:400]]),
                split="eval")
    ingest_file(ws, write_jsonl(path.parent / f"{path.name}-test.jsonl", [chat(t, "ok") for t in other[400:]]),
                split="test")
    return ws


def _decisions(ws: Workspace) -> list[tuple[Any, ...]]:
    with ws.connect() as con:
        return con.execute("SELECT example_id, kind, other_id, score, reason FROM decisions ORDER BY example_id").fetchall()


def test_streamed_passes_equal_whole_pool_passes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The local search (train streamed in blocks, later passes re-checking only what the fix changed)
    reports and excludes what the whole-pool search of every pass does, when exclusions bring n-grams
    under the boilerplate cutoff (so that later passes find pairs)."""
    monkeypatch.setattr(leakage, "MAX_DF", 5)
    monkeypatch.setattr(leakage, "BLOCK_ROWS", 700)
    source = _leaky_workspace(tmp_path / "source", seed=12)
    reads: list[str] = []
    rows = leakage._rows

    def counting_rows(con: Any, sql: str, *args: Any) -> Any:
        reads.append(sql)
        return rows(con, sql, *args)

    monkeypatch.setattr(leakage, "_rows", counting_rows)
    results = {}
    for name, engine, on in (("pool", _PoolEngine(), "conversation"), ("streamed", None, "conversation"),
                             ("pool-prompt", _PoolEngine(), "prompt"), ("streamed-prompt", None, "prompt")):
        reads.clear()
        ws = Workspace(shutil.copytree(source.path, tmp_path / name))
        first, excluded, passes = fix_leakage_until_clean(ws, lambda ws=ws, e=engine, on=on: find_leakage(
            ws, ("exact", "ngram"), on=on, engine=e))
        results[name] = ([p.to_dict() for p in first.pairs], first.train, first.compared, excluded, passes,
                         _decisions(ws))
        if engine is None:  # the train examples were read from the workspace once, in the first pass
            assert reads.count(leakage._TRAIN_SQL) == 1
            assert not list(ws.tmp_dir.glob("curator-leakage-*"))  # the spill is gone
    assert results["streamed"] == results["pool"]
    assert results["streamed-prompt"] == results["pool-prompt"]
    passes = results["streamed"][4]
    assert len(passes) >= 3 and passes[1] > 0 and passes[-1] == 0, passes  # later passes found pairs
    assert {p["method"] for p in results["streamed"][0]} == {"exact", "ngram"}


def test_a_pass_after_other_changes_checks_everything(leaky, tmp_path: Path) -> None:
    """Between two passes the workspace changed by more than the fix (a new leaking train example): the
    next pass is a full one, not the re-check of what the exclusions changed (which finds no exact pair)."""
    calls = []

    def find() -> Any:
        if len(calls) == 1:
            ingest_file(leaky, write_jsonl(tmp_path / "late.jsonl", [chat("What is the capital of CHILE", "Santiago")]),
                        split="train")
        calls.append(1)
        return find_leakage(leaky, ("exact", "ngram"))

    first, excluded, passes = fix_leakage_until_clean(leaky, find)
    assert passes == [2, 1, 0] and excluded == 3
    assert first.by_method == {"exact": 1, "ngram": 1}


def test_the_search_leaves_duckdb_memory_and_tmp_as_they_were(leaky) -> None:
    with leaky.connect() as con:
        before = con.execute("SELECT current_setting('memory_limit')").fetchall()
        assert len(find_leakage(leaky, ("exact", "ngram")).pairs) == 2
        assert leakage_gate(con, leaky) is not None
        assert con.execute("SELECT current_setting('memory_limit')").fetchall() == before
    assert not list(leaky.tmp_dir.glob("curator-leakage-*"))
