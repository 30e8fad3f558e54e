"""Snapshot exports the ecosystem reads natively, and the round trip of every format.

ingest -> snapshot -> export -> ingest (into a fresh workspace) gives the same example ids, splits,
loss weights, tasks and meta, hence the same snapshot id; the pair formats give the same preference
pairs (ids and splits).  The exports are read by the real readers: ``datasets.load_dataset`` /
``load_from_disk``, DuckDB, TRL's conversational check, curator's OpenAI format checks.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import duckdb
import pytest
from helpers import TOOLS, tool_chat, write_jsonl

from curator.data.ingest import ingest_file
from curator.errors import SnapshotError
from curator.feedback import ingest_feedback
from curator.snapshots import create_snapshot, export_snapshot, read_split
from curator.workspace import Workspace

RATIOS = [0.6, 0.2, 0.2]
SEEDS = Path(__file__).resolve().parents[1] / "seeds" / "support"


def _record(i: int) -> dict[str, Any]:
    """Multi-turn examples with loss weights, a named user, and meta whose keys and types vary per example."""
    msgs: list[dict[str, Any]] = [{"role": "system", "content": "You answer tickets."}] if i % 3 == 0 else []
    msgs += [
        {"role": "user", "content": f"Ticket {i}: my bucket is gone", **({"name": "ann"} if i % 4 == 0 else {})},
        {"role": "assistant", "content": f"Which region, for ticket {i}?", "weight": 0},
        {"role": "user", "content": "eu-west"},
        {"role": "assistant", "content": f"Restore it with `nimbus bucket restore b{i}`.", "weight": 1},
    ]
    rec: dict[str, Any] = {"messages": msgs, "task": "support" if i % 2 else "triage"}
    if i % 5 == 0:
        rec["key_phrases"] = ["nimbus bucket restore", f"b{i}"]
    if i % 5 == 1:
        rec["key_phrases"] = "a string this time"  # the same key with another type
    if i % 7 == 0:
        rec["ticket"] = {"id": i, "tags": ["storage", None], "score": 0.25, "ok": True, "note": None}
    if i == 3:
        rec["huge"] = 123456789012345678901234567890  # over 64 bits: kept exactly
        rec["lang"] = "français, 日本語"
    return rec


@pytest.fixture
def source(ws: Workspace, tmp_path: Path) -> Workspace:
    ws.set_setting("split_ratios", RATIOS)
    ingest_file(ws, write_jsonl(tmp_path / "main.jsonl", [_record(i) for i in range(60)]))
    ingest_file(ws, write_jsonl(tmp_path / "held.jsonl", [_record(i) for i in range(100, 106)]), split="test")
    return ws


def _state(ws: Workspace) -> dict[str, Any]:
    """id -> (split, task, weights, names, meta without ``source``, the ingest's own provenance)."""
    with ws.connect() as con:
        rows = con.execute(
            """SELECT e.id, s.split, e.task, e.messages::VARCHAR, e.meta::VARCHAR FROM examples e
               JOIN splits s ON s.example_id = e.id WHERE e.status = 'active'"""
        ).fetchall()
    out = {}
    for eid, split, task, messages, meta in rows:
        msgs = json.loads(messages)
        m = json.loads(meta)
        m.pop("source")
        out[eid] = (split, task, [x.get("weight") for x in msgs], [x.get("name") for x in msgs], m)
    return out


def _fresh(tmp_path: Path, name: str) -> Workspace:
    ws = Workspace(tmp_path / name)
    ws.set_setting("split_ratios", RATIOS)
    return ws


def _ingest_export(ws: Workspace, fmt: str, out: Path) -> list[str]:
    """Ingest an export the way the docs say; returns the formats ingest reported."""
    if fmt == "openai":
        return [ingest_file(ws, out / f"{s}.jsonl", split=s).format for s in ("train", "eval", "test")]
    if fmt == "parquet":
        return [ingest_file(ws, out / f"{s}.parquet").format for s in ("train", "validation", "test")]
    return [ingest_file(ws, out).format]


@pytest.mark.parametrize("fmt", ["openai", "parquet", "hf"])
def test_round_trip_keeps_ids_splits_weights_and_meta(source: Workspace, tmp_path: Path, fmt: str) -> None:
    snap = create_snapshot(source)
    before = _state(source)
    assert {v[0] for v in before.values()} == {"train", "eval", "test"}
    assert any(v[2] == [None, 0, None, 1] for v in before.values()) and any("ann" in v[3] for v in before.values())
    res = export_snapshot(source, snap.id, fmt, tmp_path / fmt)
    assert sum(f["rows"] for f in res["files"].values()) == snap.counts["total"] and res["left_out"] == []

    again = _fresh(tmp_path, f"again-{fmt}")
    formats = _ingest_export(again, fmt, tmp_path / fmt)
    after = _state(again)
    assert after == before  # ids, splits, tasks, weights, names, meta
    assert create_snapshot(again).id == snap.id
    print(f"\n{fmt}: {len(after)} examples read back as {sorted(set(formats))}: ids, splits "
          f"{dict(sorted(snap.counts['by_split'].items()))}, weights and meta equal; snapshot id {snap.id} again")


@pytest.mark.parametrize("fmt", ["openai", "parquet", "hf"])
def test_round_trip_of_tool_calling_examples(ws: Workspace, tmp_path: Path, fmt: str) -> None:
    """Tool calls, tool messages, text parts, ``content: null`` and the ``tools`` list come back with the same ids."""
    ws.set_setting("split_ratios", RATIOS)
    rows = [tool_chat(i, final=i % 2 == 0) for i in range(30)] + [_record(i) for i in range(10)]
    ingest_file(ws, write_jsonl(tmp_path / "tools.jsonl", rows))
    snap = create_snapshot(ws)
    export_snapshot(ws, snap.id, fmt, tmp_path / fmt)
    again = _fresh(tmp_path, f"again-{fmt}")
    _ingest_export(again, fmt, tmp_path / fmt)

    def stored(w: Workspace) -> dict[str, Any]:
        with w.connect() as con:
            got = con.execute("SELECT e.id, s.split, e.messages::VARCHAR, e.meta::VARCHAR FROM examples e "
                              "JOIN splits s ON s.example_id = e.id").fetchall()
        return {i: (sp, json.loads(m), {k: v for k, v in json.loads(meta).items() if k != "source"})
                for i, sp, m, meta in got}

    before, after = stored(ws), stored(again)
    assert after == before and create_snapshot(again).id == snap.id
    called = [v for v in before.values() if any(m.get("tool_calls") for m in v[1])]
    assert len(called) == 30 and all(v[2]["tools"] == TOOLS for v in called)
    assert sum(1 for v in called if v[1][-1]["role"] == "tool" or v[1][-2]["role"] == "tool") == 15
    if fmt == "openai":
        from curator.data.validate import validate_file

        bare = export_snapshot(ws, snap.id, "openai", tmp_path / "bare", messages_only=True)
        for f in bare["files"].values():
            assert validate_file(f["path"]).ok
        recs = [json.loads(x) for x in (tmp_path / "bare" / "train.jsonl").read_text().splitlines()]
        first = next(r for r in recs if "tools" in r)
        assert set(first) == {"messages", "tools", "parallel_tool_calls"} and first["messages"][2]["content"] is None
    print(f"\n{fmt}: {len(after)} examples ({len(called)} with tool calls) read back with the same ids, "
          f"tool calls and tools; snapshot id {snap.id} again")


def test_parquet_is_typed_for_datasets_and_duckdb(source: Workspace, tmp_path: Path) -> None:
    from datasets import load_dataset

    snap = create_snapshot(source)
    out = tmp_path / "pq"
    export_snapshot(source, snap.id, "parquet", out)
    assert sorted(p.name for p in out.iterdir()) == [".curator-export.json", "test.parquet", "train.parquet",
                                                    "validation.parquet"]
    files = {s: str(out / f"{s}.parquet") for s in ("train", "validation", "test")}
    dd = load_dataset("parquet", data_files=files)
    feats = dd["train"].features
    assert type(feats["meta"]).__name__ == "Json"
    fields = feats["messages"].feature
    assert list(fields) == ["role", "content", "name", "weight", "tool_calls", "tool_call_id"]
    assert {k: fields[k].dtype for k in ("role", "content", "name", "weight", "tool_call_id")} == {
        "role": "string", "content": "string", "name": "string", "weight": "int64", "tool_call_id": "string"}
    n = {s: dd[s].num_rows for s in dd}
    assert n == {"train": snap.counts["by_split"]["train"], "validation": snap.counts["by_split"]["eval"],
                 "test": snap.counts["by_split"]["test"]}
    row = next(r for s in dd for r in dd[s] if r["meta"].get("key_phrases") == ["nimbus bucket restore", "b0"])
    assert [m["weight"] for m in row["messages"]][-3:] == [0, None, 1] and row["task"] == "triage"
    # The folder loads by name too (datasets reads "validation" as the dev split, and skips the hidden list).
    assert sorted(load_dataset("parquet", data_dir=str(out))) == ["test", "train", "validation"]

    con = duckdb.connect()
    first = con.execute(f"SELECT messages[1].content, typeof(meta) FROM '{files['train']}' ORDER BY id LIMIT 1"
                        ).fetchall()
    assert first[0][0] and first[0][1] == "JSON"
    phrases = con.execute(f"SELECT meta->>'$.key_phrases[0]' FROM '{out}/*.parquet' WHERE id = ?",
                          [row["id"]]).fetchall()
    assert phrases == [("nimbus bucket restore",)]
    by_split = dict(con.execute(f"SELECT split, count(*) FROM '{out}/*.parquet' GROUP BY ALL").fetchall())
    assert by_split == n
    weights = con.execute(f"""SELECT count(*) FROM (SELECT unnest(messages) AS m FROM '{out}/*.parquet')
                              WHERE m.weight = 0""").fetchall()[0][0]
    assert weights == 66
    print(f"\nload_dataset('parquet'): {n}, messages {feats['messages']}, meta {feats['meta']}; "
          f"DuckDB: messages[1].content = {first[0][0]!r}, meta {first[0][1]}, by split {by_split}")


def test_hf_datasetdict_leaves_empty_splits_out(ws: Workspace, tmp_path: Path) -> None:
    """A feedback-only workspace has no test split: the folder loads, and curator ingests it back."""
    from datasets import load_from_disk

    ingest_feedback(ws, SEEDS / "feedback.jsonl", task="support", gates=("exact", "near"))
    snap = create_snapshot(ws)
    assert "test" not in snap.counts["by_split"]
    res = export_snapshot(ws, snap.id, "hf", tmp_path / "hf")
    assert "test" in res["left_out"] and res["left_out"] == [s for s in ("train", "eval", "test")
                                                             if not snap.counts["by_split"].get(s)]
    dd = load_from_disk(str(tmp_path / "hf"))
    assert sorted(dd) == sorted({"train": "train", "eval": "validation"}[s] for s in snap.counts["by_split"])
    row = dd["train"][0]
    assert row["meta"]["trace_id"] and row["messages"][-1]["role"] == "assistant" and row["origin"] == "feedback"
    again = _fresh(tmp_path, "again")
    again.set_setting("split_ratios", ws.get_setting("split_ratios", RATIOS))
    ingest_file(again, tmp_path / "hf")
    assert _state(again) == _state(ws)
    print(f"\nload_from_disk: { {k: v.num_rows for k, v in dd.items()} } ({', '.join(res['left_out'])} left out, "
          f"empty); meta {row['meta']}")


def test_openai_jsonl_passes_openai_checks(source: Workspace, tmp_path: Path) -> None:
    from curator.data.validate import validate_file

    snap = create_snapshot(source)
    export_snapshot(source, snap.id, "openai", tmp_path / "oa")
    export_snapshot(source, snap.id, "openai", tmp_path / "bare", messages_only=True)
    for folder in ("oa", "bare"):
        report = validate_file(tmp_path / folder / "train.jsonl")
        assert report.ok, report.errors
    rich = [json.loads(line) for line in (tmp_path / "oa" / "test.jsonl").read_text().splitlines()]
    bare = [json.loads(line) for line in (tmp_path / "bare" / "test.jsonl").read_text().splitlines()]
    assert all(set(r) == {"messages"} for r in bare) and all(r["task"] for r in rich)
    assert [r["messages"] for r in rich] == [r["messages"] for r in bare]
    assert any(m.get("weight") == 0 for r in bare for m in r["messages"])
    with pytest.raises(SnapshotError, match="applies to --format openai only"):
        export_snapshot(source, snap.id, "parquet", tmp_path / "x", messages_only=True)


# -- preference pairs -----------------------------------------------------------------------------------------------
@pytest.fixture
def with_pairs(ws: Workspace, tmp_path: Path) -> Workspace:
    """The seeds and their rated log, plus explicit pairs (one with an e-mail address, scrubbed on ingest)."""
    ws.set_setting("split_ratios", [0.6, 0.3, 0.1])
    ingest_file(ws, SEEDS / "seeds.jsonl", task="support", origin="seed")
    ingest_file(ws, SEEDS / "test.jsonl", task="support", split="test", origin="seed")
    ingest_feedback(ws, SEEDS / "feedback.jsonl", task="support", gates=("exact", "near"))
    explicit = [{"prompt": [{"role": "system", "content": "Be brief."},
                            {"role": "user", "content": f"Question {i}: mail bob{i}@example.com the invoice?"}],
                 "chosen": f"Sent invoice {i}.", "rejected": "No."} for i in range(20)]
    ingest_feedback(ws, write_jsonl(tmp_path / "pairs.jsonl", explicit), gates=("exact",))
    return ws


def _pairs(ws: Workspace) -> dict[str, str]:
    from curator.feedback.preferences import pair_splits

    with ws.connect() as con:
        splits = pair_splits(con)
        rows = con.execute("SELECT id, group_key FROM preferences").fetchall()
    return {pid: splits[g] for pid, g in rows if splits[g] != "test"}


@pytest.mark.parametrize("fmt", ["openai-dpo", "trl-dpo"])
def test_pair_formats_round_trip(with_pairs: Workspace, tmp_path: Path, fmt: str) -> None:
    snap = create_snapshot(with_pairs)
    pairs = _pairs(with_pairs)
    assert len(pairs) >= 20 and set(pairs.values()) == {"train", "eval"}
    export_snapshot(with_pairs, snap.id, "hf", tmp_path / "examples")
    res = export_snapshot(with_pairs, snap.id, fmt, tmp_path / fmt)
    assert {s: f["rows"] for s, f in res["files"].items()} == {
        s: sum(1 for v in pairs.values() if v == s) for s in ("train", "eval")}
    rows = [json.loads(line) for line in (tmp_path / fmt / "train.jsonl").read_text().splitlines()]
    if fmt == "openai-dpo":
        assert all(set(r) == {"input", "preferred_output", "non_preferred_output"} for r in rows)
        assert all(r["input"]["messages"][-1]["role"] == "user" and len(r["preferred_output"]) == 1
                   and r["non_preferred_output"][0]["role"] == "assistant" for r in rows)
    else:
        from trl.data_utils import is_conversational

        assert all(set(r) == {"prompt", "chosen", "rejected"} and is_conversational(r) for r in rows)

    again = _fresh(tmp_path, "again")
    again.set_setting("split_ratios", with_pairs.get_setting("split_ratios"))
    ingest_file(again, tmp_path / "examples")
    for s in ("train", "eval"):
        report = ingest_feedback(again, tmp_path / fmt / f"{s}.jsonl", gates=("exact",))
        assert report.format == "hh-rlhf" and report.pairs_added == res["files"][s]["rows"]
    assert _pairs(again) == pairs
    assert create_snapshot(again).id == snap.id
    print(f"\n{fmt}: {len(pairs)} pairs read back with the same ids and splits; snapshot id {snap.id} again")


def test_read_split_of_a_round_tripped_snapshot(source: Workspace, tmp_path: Path) -> None:
    """The re-ingested workspace's snapshot reads back the same rows (messages and meta) as the original."""
    snap = create_snapshot(source)
    export_snapshot(source, snap.id, "parquet", tmp_path / "pq")
    again = _fresh(tmp_path, "again")
    _ingest_export(again, "parquet", tmp_path / "pq")
    other = create_snapshot(again)

    def rows(ws: Workspace, sid: str) -> list[tuple[str, Any, Any]]:
        return [(r["id"], r["messages"], {k: v for k, v in r["meta"].items() if k != "source"})
                for r in read_split(ws, sid, "eval")]

    assert rows(again, other.id) == rows(source, snap.id)


def test_a_bad_row_of_an_export_layout_names_its_row(ws: Workspace, tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from curator.data.exchange import export_table
    from curator.errors import InputError

    good = {"id": "x", "task": "t", "origin": "import", "source": None, "parent_id": None,
            "messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a", "weight": 1}],
            "meta": '{"k": 1}'}
    table = export_table([good, {**good, "meta": "[1, 2]"}], split="eval")
    pq.write_table(table, tmp_path / "bad.parquet")
    with pytest.raises(InputError, match=r'bad.parquet: row 2: "meta" must be a JSON object, got list'):
        ingest_file(ws, tmp_path / "bad.parquet")
    pq.write_table(table.slice(0, 1), tmp_path / "ok.parquet")
    assert ingest_file(ws, tmp_path / "ok.parquet").by_split == {"eval": 1}
    assert pa.types.is_list(table.schema.field("messages").type)
    with pytest.raises(ValueError, match="weight 0.5 is not 0 or 1"):
        export_table([{**good, "messages": [{"role": "assistant", "content": "a", "weight": 0.5}]}])
