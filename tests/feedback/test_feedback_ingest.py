"""Feedback ingestion end to end on a real workspace: seeds, generated logs, OASST, HH-RLHF, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from gen_chatlog import PII_VALUES, generate, write_chatlog
from helpers import write_jsonl

from curator.cli import main
from curator.data.ingest import ingest_file
from curator.errors import CuratorError, InputError
from curator.feedback import ingest_feedback

ROOT = Path(__file__).resolve().parents[2]
SEEDS = ROOT / "seeds" / "support"
FAST = ("exact", "near")  # the semantic gate loads the embedding model: one slow test covers it


def scalar(ws, sql: str, params: list[object] | None = None) -> object:
    with ws.connect() as con:
        return con.execute(sql, params or []).fetchall()[0][0]


def seeded(ws) -> None:
    ingest_file(ws, SEEDS / "seeds.jsonl", task="support", origin="seed")
    ingest_file(ws, SEEDS / "test.jsonl", task="support", split="test", origin="seed")


def test_seed_feedback_pairs_pii_and_idempotence(ws) -> None:
    seeded(ws)
    r = ingest_feedback(ws, SEEDS / "feedback.jsonl", task="support", gates=FAST)
    assert (r.format, r.events, r.new_events, r.positive, r.negative) == ("chat", 24, 24, 14, 10)
    assert (r.examples_added, r.pairs_added) == (14, 4)
    assert r.pii == {"EMAIL": 3, "PHONE": 3, "API_KEY": 1, "PERSON": 2}  # "Hi, this is Priya (+44 ...)" twice
    # the 4 prompts asked twice: chosen is the liked answer, margin the rating difference
    with ws.connect() as con:
        pairs = con.execute("SELECT meta->>'chosen_trace', meta->>'rejected_trace', margin FROM preferences ORDER BY 1").fetchall()
        origins = con.execute("SELECT origin, task, count(*) FROM examples WHERE origin = 'feedback' GROUP BY ALL").fetchall()
        meta = json.loads(con.execute("SELECT meta FROM examples WHERE meta->>'trace_id' = 'tr-0001'").fetchall()[0][0])
        negatives_as_examples = con.execute(
            "SELECT count(*) FROM feedback f JOIN examples e ON e.id = f.example_id WHERE f.label = 'negative'").fetchall()[0][0]
    assert [(c, rj) for c, rj, _ in pairs] == [("tr-0006", "tr-0017"), ("tr-0012", "tr-0002"),
                                               ("tr-0020", "tr-0009"), ("tr-0023", "tr-0014")]
    assert all(m is not None and m >= 2 for _, _, m in pairs)
    assert origins == [("feedback", "support", 14)]
    assert (meta["trace_id"], meta["rating"]) == ("tr-0001", 5.0)
    assert negatives_as_examples == 0
    # nothing personal in any stored text, nor in the database file's bytes
    raw = [json.loads(line) for line in (SEEDS / "feedback.jsonl").read_text().splitlines()]
    secrets = ["jane.doe@example.com", "mark.ellis@example.com", "+1 415 555 0199", "+44 20 7946 0958"]
    secrets += [w.rstrip(".,") for row in raw for m in row["messages"] for w in m["content"].split() if w.startswith("sk-proj-")]
    assert len(secrets) == 5
    for table in ("feedback", "examples", "preferences"):
        assert scalar(ws, f"SELECT count(*) FROM {table} t WHERE contains(t::VARCHAR, 'Nimbus')") > 0  # the probe works
        for s in secrets:
            assert scalar(ws, f"SELECT count(*) FROM {table} t WHERE contains(t::VARCHAR, ?)", [s]) == 0
    data = ws.db_path.read_bytes() + (ws.db_path.with_name(ws.db_path.name + ".wal").read_bytes()
                                      if ws.db_path.with_name(ws.db_path.name + ".wal").exists() else b"")
    for s in secrets:
        assert s.encode() not in data
    assert scalar(ws, "SELECT count(*) FROM feedback WHERE messages::VARCHAR LIKE '%[EMAIL]%'") == 2
    # the same file again adds nothing
    again = ingest_feedback(ws, SEEDS / "feedback.jsonl", task="support", gates=FAST)
    assert (again.new_events, again.already_present, again.examples_added, again.pairs_added) == (0, 24, 0, 0)


def test_chat_log_1000_events_twice_then_grown(ws, tmp_path: Path) -> None:
    log = write_chatlog(tmp_path / "log.jsonl", 1000)
    first = ingest_feedback(ws, log, gates=FAST)
    assert (first.events, first.new_events) == (1000, 1000)
    assert first.positive + first.negative == 1000 and first.pairs_added == 100
    assert first.examples_added + len(first.positives_rejected) == first.positive
    assert first.pii and set(first.pii) <= {"EMAIL", "PHONE", "CREDIT_CARD", "API_KEY"}
    counts = (scalar(ws, "SELECT count(*) FROM feedback"), scalar(ws, "SELECT count(*) FROM examples"),
              scalar(ws, "SELECT count(*) FROM preferences"))
    second = ingest_feedback(ws, log, gates=FAST)
    assert (second.new_events, second.already_present, second.examples_added, second.pairs_added) == (0, 1000, 0, 0)
    assert counts == (scalar(ws, "SELECT count(*) FROM feedback"), scalar(ws, "SELECT count(*) FROM examples"),
                      scalar(ws, "SELECT count(*) FROM preferences"))
    assert generate(1200)[:1000] == generate(1000)
    grown = ingest_feedback(ws, write_chatlog(tmp_path / "log.jsonl", 1200), gates=FAST)
    assert (grown.events, grown.new_events, grown.already_present, grown.pairs_added) == (1200, 200, 1000, 20)
    for s in PII_VALUES:
        assert scalar(ws, "SELECT count(*) FROM feedback WHERE contains(messages::VARCHAR, ?)", [s]) == 0


def test_pairs_across_two_ingests(ws, tmp_path: Path) -> None:
    conv = [{"role": "user", "content": "Why is my bucket public?"}]
    good = write_jsonl(tmp_path / "a.jsonl", [{"trace_id": "g", "messages": [*conv, {"role": "assistant", "content": "Check the ACL."}], "rating": 5}])
    bad = write_jsonl(tmp_path / "b.jsonl", [{"trace_id": "b", "messages": [*conv, {"role": "assistant", "content": "No idea."}], "thumbs": "down"}])
    assert ingest_feedback(ws, good, gates=FAST).pairs_added == 0
    r = ingest_feedback(ws, bad, gates=FAST)
    assert r.pairs_added == 1
    with ws.connect() as con:
        row = con.execute("SELECT chosen, rejected, margin FROM preferences").fetchall()[0]
    assert row == ("Check the ACL.", "No idea.", None)  # a 1-5 rating against a thumb: no common scale


def test_gates_keep_test_items_and_duplicates_out(ws, tmp_path: Path) -> None:
    seeded(ws)
    test_item = json.loads((SEEDS / "test.jsonl").read_text().splitlines()[0])
    seed_item = json.loads((SEEDS / "seeds.jsonl").read_text().splitlines()[0])
    fresh = [{"role": "user", "content": "How do I rename a Nimbus DNS zone?"},
             {"role": "assistant", "content": "Diagnosis: zones cannot be renamed.\n1. Export it.\n2. Create the new zone.\n3. Import."}]
    rows = [
        {"trace_id": "leak", "messages": test_item["messages"], "rating": 5},
        {"trace_id": "dup", "messages": [{**m, "content": m["content"] + " "} for m in seed_item["messages"]][1:], "rating": 5},
        {"trace_id": "new", "messages": fresh, "rating": 5},
        {"trace_id": "new-again", "messages": fresh, "rating": 4},
    ]
    r = ingest_feedback(ws, write_jsonl(tmp_path / "log.jsonl", rows), task="support", gates=FAST)
    reasons = {x["trace_id"]: x["reason"] for x in r.positives_rejected}
    assert set(reasons) == {"leak", "dup"}
    assert reasons["leak"].startswith("leakage (exact) into test example")
    assert reasons["dup"].startswith("duplicate (exact) of")
    assert r.examples_added == 1
    with ws.connect() as con:
        fb = dict(con.execute("SELECT trace_id, coalesce(example_id, gate_reason) FROM feedback").fetchall())
    assert fb["new"] == fb["new-again"] and len(fb["new"]) == 64  # one example, both events point at it
    assert fb["leak"] == reasons["leak"]
    # without gates a duplicate goes in
    more = [{"trace_id": "dup2", "messages": rows[1]["messages"], "rating": 5}]
    assert ingest_feedback(ws, write_jsonl(tmp_path / "more.jsonl", more), gates=False).examples_added == 1


def test_bad_line_rejects_file_or_is_skipped(ws, tmp_path: Path) -> None:
    conv = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]
    f = write_jsonl(tmp_path / "log.jsonl", [{"trace_id": "1", "messages": conv, "rating": 5}, "{not json",
                                             {"trace_id": "3", "messages": conv}])
    with pytest.raises(InputError, match=r"log\.jsonl:2: invalid JSON"):
        ingest_feedback(ws, f, gates=FAST)
    assert scalar(ws, "SELECT count(*) FROM feedback") == 0 and scalar(ws, "SELECT count(*) FROM examples") == 0
    r = ingest_feedback(ws, f, skip_invalid=True, gates=FAST)
    assert [s["line"] for s in r.skipped] == [2, 3] and "no rating" in r.skipped[1]["reason"]
    assert (r.new_events, r.examples_added) == (1, 1)


def test_deterministic_trace_ids(ws, tmp_path: Path) -> None:
    conv = [{"role": "user", "content": "Mail me at bob@corp.example"}, {"role": "assistant", "content": "Sure."}]
    f = write_jsonl(tmp_path / "log.jsonl", [{"messages": conv, "rating": 5}, {"messages": conv, "rating": 5},
                                             {"messages": conv, "rating": 1}])
    r = ingest_feedback(ws, f, gates=FAST)
    assert (r.events, r.duplicates_in_file, r.new_events) == (3, 1, 2)
    with ws.connect() as con:
        ids = [row[0] for row in con.execute("SELECT trace_id FROM feedback ORDER BY 1").fetchall()]
    assert all(i.startswith("chat-") for i in ids)
    assert ingest_feedback(ws, f, gates=FAST).new_events == 0


def test_oasst_tree_file(ws, shared_data: Path) -> None:
    path = shared_data / "feedback/oasst/en_100_tree.jsonl"
    r = ingest_feedback(ws, path, gates=FAST)
    assert (r.format, r.records, r.events) == ("oasst", 100, 687)
    assert (r.positive, r.negative, r.neutral) == (407, 99, 181)
    assert r.positives_not_for_sft == {"an earlier assistant turn on this path was voted down": 40}
    assert r.examples_added + len(r.positives_rejected) == 407 - 40
    assert r.pairs_added == 429
    assert scalar(ws, "SELECT count(*) FROM preferences WHERE meta->>'basis' = 'rank'") > 400
    assert ingest_feedback(ws, path, gates=FAST).new_events == 0


def test_hh_rlhf_gzip(ws, shared_data: Path) -> None:
    path = shared_data / "feedback/hh_rlhf/harmless-base_test.jsonl.gz"
    r = ingest_feedback(ws, path, gates=FAST)
    assert (r.format, r.records, r.events) == ("hh-rlhf", 2312, 4624)
    assert r.examples_added == 0 and r.pairs_added == 2303 and len(r.unpaired) == 9
    assert scalar(ws, "SELECT count(*) FROM examples") == 0
    assert ingest_feedback(ws, path, gates=FAST).pairs_added == 0


def test_cli_ingest_stats_list_pairs(tmp_path: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(main, ["feedback", "ingest", str(SEEDS / "feedback.jsonl"), "--task", "support",
                               "--gates", "exact,near"])
    assert res.exit_code == 0, res.output
    assert "24 events, 24 new" in res.output and "preference pairs: 4 added" in res.output
    assert "PII replaced: EMAIL 3, PHONE 3, API_KEY 1, PERSON 2" in res.output
    res = runner.invoke(main, ["feedback", "ingest", str(SEEDS / "feedback.jsonl"), "--json", "--gates", "exact,near"])
    assert res.exit_code == 0 and json.loads(res.output)["new_events"] == 0
    res = runner.invoke(main, ["feedback", "stats", "--json"])
    stats = json.loads(res.output)
    assert (stats["events"], stats["pairs"], stats["positives_as_examples"]) == (24, 4, 14)
    res = runner.invoke(main, ["feedback", "pairs", "--limit", "1"])
    assert res.exit_code == 0 and "chosen:" in res.output and "rejected:" in res.output
    res = runner.invoke(main, ["feedback", "list", "--label", "negative", "--limit", "3"])
    assert res.exit_code == 0 and res.output.count("negative") == 3
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"messages": [{"role": "user", "content": "x"}], "rating": 5}])
    res = runner.invoke(main, ["feedback", "ingest", str(bad)])
    assert res.exit_code == 1
    assert "Error: " in res.output and "bad.jsonl:1: \"messages\" has no assistant message" in res.output
    res = runner.invoke(main, ["feedback", "ingest", str(bad), "--positive-threshold", "2", "--negative-threshold", "3"])
    assert res.exit_code == 1 and "must be above" in res.output


@pytest.mark.slow
def test_semantic_gates(ws) -> None:
    seeded(ws)
    r = ingest_feedback(ws, SEEDS / "feedback.jsonl", task="support")
    assert r.gates == ["prompt group vs eval/test", "leakage exact+ngram+semantic vs eval/test",
                       "duplicates exact+near+semantic"]
    assert r.examples_added + len(r.positives_rejected) == 14


def test_pii_backend_from_the_argument_or_the_workspace_setting(ws, tmp_path: Path) -> None:
    pytest.importorskip("presidio_analyzer")
    text = "Please ask Maria Garcia in Berlin about my refund, my SSN is 123-45-6789"
    rows = [{"trace_id": "p1", "messages": [{"role": "user", "content": text},
                                            {"role": "assistant", "content": "Sure, I will."}], "rating": 5}]
    first = ingest_feedback(ws, write_jsonl(tmp_path / "a.jsonl", rows), gates=False)
    assert first.pii == {"SSN": 1}  # the default backend: patterns (no name without a cue, no city)
    ws.set_setting("pii_backend", "presidio")
    rows[0]["trace_id"] = "p2"
    second = ingest_feedback(ws, write_jsonl(tmp_path / "b.jsonl", rows), gates=False)
    assert second.pii == {"SSN": 1, "PERSON": 1, "LOCATION": 1}
    with ws.connect() as con:
        stored = con.execute("SELECT messages FROM feedback WHERE trace_id = 'p2'").fetchall()[0][0]
    assert "Maria" not in stored and "Berlin" not in stored and "[PERSON]" in stored
    rows[0]["trace_id"] = "p3"  # the argument wins over the setting
    third = ingest_feedback(ws, write_jsonl(tmp_path / "c.jsonl", rows), gates=False, pii_backend="patterns")
    assert third.pii == {"SSN": 1}
    ws.set_setting("pii_backend", "spacy")
    with pytest.raises(CuratorError, match="unknown PII backend 'spacy'"):
        ingest_feedback(ws, write_jsonl(tmp_path / "d.jsonl", rows), gates=False)
