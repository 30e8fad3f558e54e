"""Snapshots: content-addressed, immutable (verified on read), diff, export in three formats."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import chat, write_jsonl

from curator.data.ingest import ingest_file
from curator.errors import IntegrityError, SnapshotError
from curator.snapshots import (
    create_snapshot,
    diff_snapshots,
    export_snapshot,
    list_snapshots,
    read_split,
    resolve_snapshot,
)


@pytest.fixture
def filled(ws, tmp_path: Path):
    ws.set_setting("split_ratios", [0.9, 0.1, 0.0])  # the test split holds only the pinned file
    ingest_file(ws, write_jsonl(tmp_path / "a.jsonl", [chat(f"question {i}", f"answer {i}") for i in range(40)]))
    ingest_file(ws, write_jsonl(tmp_path / "t.jsonl", [chat(f"held out {i}", "x") for i in range(5)]), split="test")
    return ws


def test_create_is_content_addressed_and_idempotent(filled, tmp_path: Path) -> None:
    s1 = create_snapshot(filled, name="v1")
    assert s1.created and len(s1.id) == 16
    again = create_snapshot(filled)
    assert (again.id, again.created) == (s1.id, False)
    manifest = json.loads(s1.path.read_text())
    assert manifest["counts"]["total"] == 45 and manifest["counts"]["by_split"]["test"] == 5
    assert set(manifest["files"]) == {"train", "eval", "test"}
    assert all(len(f["sha256"]) == 64 for f in manifest["files"].values())
    assert manifest["tool"].startswith("curator-loop ")
    # A second workspace with the same content gets the same id.
    from curator.workspace import Workspace

    other = Workspace(tmp_path / "other")
    other.set_setting("split_ratios", [0.9, 0.1, 0.0])
    ingest_file(other, tmp_path / "t.jsonl", split="test")
    ingest_file(other, tmp_path / "a.jsonl")
    assert create_snapshot(other).id == s1.id


def test_names_prefixes_latest_and_parent(filled, tmp_path: Path) -> None:
    s1 = create_snapshot(filled, name="v1")
    ingest_file(filled, write_jsonl(tmp_path / "b.jsonl", [chat("another", "one")]))
    s2 = create_snapshot(filled, name="v2")
    assert s2.parent_id == s1.id
    assert resolve_snapshot(filled, "v1").id == s1.id
    assert resolve_snapshot(filled, s2.id[:6]).id == s2.id
    assert resolve_snapshot(filled, "latest").id == s2.id
    assert [s.id for s in list_snapshots(filled)] == [s1.id, s2.id]
    with pytest.raises(SnapshotError, match="already used"):
        ingest_file(filled, write_jsonl(tmp_path / "c.jsonl", [chat("third", "x")]))
        create_snapshot(filled, name="v1")
    with pytest.raises(SnapshotError, match="no snapshot 'nope'"):
        resolve_snapshot(filled, "nope")
    with pytest.raises(SnapshotError, match="invalid snapshot name"):
        create_snapshot(filled, name="../evil")


def test_tampered_file_is_detected(filled) -> None:
    snap = create_snapshot(filled)
    assert len(read_split(filled, snap, "test")) == 5
    f = snap.path.parent / "train.parquet"
    f.chmod(0o644)
    f.write_bytes(f.read_bytes() + b"x")
    with pytest.raises(IntegrityError, match="modified after the snapshot was written"):
        read_split(filled, snap.id, "train")


def test_diff_added_removed_moved_with_reasons(filled, tmp_path: Path) -> None:
    a = create_snapshot(filled)
    with filled.connect() as con:
        victim = con.execute("SELECT id FROM examples WHERE origin = 'import' ORDER BY id LIMIT 1").fetchall()[0][0]
        con.execute("UPDATE examples SET status = 'excluded', excluded_reason = 'test exclusion' WHERE id = ?", [victim])
        con.execute("INSERT INTO decisions (example_id, kind, reason) VALUES (?, 'manual', 'looked wrong')", [victim])
    ingest_file(filled, write_jsonl(tmp_path / "b.jsonl", [chat("brand new", "x"), chat("newer", "y")]))
    b = create_snapshot(filled)
    d = diff_snapshots(filled, a.id, b.id)
    assert d["added"] == {"import": 2} and d["removed"] == {"import": 1} and d["moved"] == {}
    assert d["removed_examples"][0]["id"] == victim
    assert d["removed_examples"][0]["reason"] == "manual: looked wrong"


def test_export_formats(filled, tmp_path: Path) -> None:
    snap = create_snapshot(filled)
    out = tmp_path / "oa"
    res = export_snapshot(filled, snap.id, "openai", out)
    lines = (out / "test.jsonl").read_text().splitlines()
    assert len(lines) == res["files"]["test"]["rows"] == 5
    assert json.loads(lines[0])["messages"][-1]["role"] == "assistant"
    with pytest.raises(SnapshotError, match="pass --force"):
        export_snapshot(filled, snap.id, "openai", out)
    export_snapshot(filled, snap.id, "openai", out, force=True)

    from datasets import load_from_disk

    export_snapshot(filled, snap.id, "hf", tmp_path / "hf")
    dd = load_from_disk(str(tmp_path / "hf"))
    assert dd["test"].num_rows == 5 and dd["train"][0]["messages"][0]["role"] == "user"

    export_snapshot(filled, snap.id, "parquet", tmp_path / "pq", split="train")
    import pyarrow.parquet as pq

    assert pq.read_table(tmp_path / "pq" / "train.parquet").num_rows == snap.counts["by_split"]["train"]
    assert not (tmp_path / "pq" / "test.parquet").exists()


def test_export_refuses_paths_escaping_the_folder(filled, tmp_path: Path) -> None:
    snap = create_snapshot(filled)
    out = tmp_path / "esc"
    out.mkdir()
    outside = tmp_path / "outside.jsonl"
    (out / "train.jsonl").symlink_to(outside)
    with pytest.raises(SnapshotError, match="outside"):
        export_snapshot(filled, snap.id, "openai", out, force=True)
    assert not outside.exists()


def test_empty_workspace_cannot_snapshot(ws) -> None:
    with pytest.raises(SnapshotError, match="no active examples"):
        create_snapshot(ws)
