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


# -- the review gate ------------------------------------------------------------------------------------------------
@pytest.fixture
def reviewed(ws, tmp_path: Path):
    """10 seed examples and 10 synthetic ones (train/eval only), nothing reviewed yet."""
    ws.set_setting("split_ratios", [0.8, 0.2, 0.0])
    ingest_file(ws, write_jsonl(tmp_path / "s.jsonl", [chat(f"seed question {i}", f"seed answer {i}") for i in range(10)]),
                origin="seed")
    ingest_file(ws, write_jsonl(tmp_path / "g.jsonl", [chat(f"generated prompt {i}", f"generated reply {i}")
                                                       for i in range(10)]), origin="synthetic")
    return ws


def _ids(ws, origin: str) -> list[str]:
    with ws.connect() as con:
        return [r[0] for r in con.execute("SELECT id FROM examples WHERE origin = ? ORDER BY id", [origin]).fetchall()]


def _decide(ws, example_id: str, kind: str, at: str = "2026-12-01 10:00:00") -> None:
    """What `curator review` writes: accept (a decision), reject (decision + exclusion), edit (+ a child example)."""
    with ws.transaction() as con:
        con.execute("INSERT INTO decisions (example_id, kind, reason, reviewer, created_at) VALUES (?, ?, 'r', 'ann', ?)",
                    [example_id, kind, at])
        if kind in ("review_reject", "edited"):
            con.execute("UPDATE examples SET status = 'excluded', excluded_reason = ? WHERE id = ?", [kind, example_id])
        if kind == "edited":
            con.execute("""INSERT INTO examples (id, messages, task, origin, source, parent_id, meta, group_key)
                           SELECT 'ed' || id, messages, task, 'edited', source, id, meta, 'ed' || group_key
                           FROM examples WHERE id = ?""", [example_id])
            con.execute("INSERT INTO splits (example_id, split) SELECT 'ed' || example_id, split FROM splits "
                        "WHERE example_id = ?", [example_id])


def test_require_review_refuses_until_every_example_is_accepted(reviewed) -> None:
    from click.testing import CliRunner

    from curator.cli import main

    with pytest.raises(SnapshotError, match=r"synthetic: 10 of 10 active example\(s\) not accepted") as e:
        create_snapshot(reviewed, require_review=["synthetic"])
    assert "curator review" in str(e.value)
    syn = _ids(reviewed, "synthetic")
    for i in syn[:7]:
        _decide(reviewed, i, "review_accept")
    _decide(reviewed, syn[7], "review_reject")
    _decide(reviewed, syn[8], "edited")  # the edit (origin 'edited') was written by a reviewer: it counts as accepted
    _decide(reviewed, syn[9], "review_accept")
    with reviewed.connect() as con:      # ... but an undone accept does not
        con.execute("UPDATE decisions SET undone_at = current_timestamp WHERE example_id = ?", [syn[9]])
    res = CliRunner().invoke(main, ["snapshot", "create", "--require-review", "synthetic"])
    assert res.exit_code == 1
    assert res.stderr.startswith("Error: review gate: refusing the snapshot:")
    assert ("synthetic: 1 of 8 active example(s) not accepted by a reviewer (reviewed 9, accepted 7, needed 8 "
            "accepted)") in res.stderr and "`curator review`" in res.stderr
    assert list_snapshots(reviewed) == []
    _decide(reviewed, syn[9], "review_accept", at="2026-12-01 11:00:00")
    snap = create_snapshot(reviewed, require_review=["synthetic", "edited"])
    gate = json.loads(snap.path.read_text())["review_gate"]
    assert gate["require_review"] == ["edited", "synthetic"]
    assert gate["origins"]["synthetic"] == {"examples": 10, "active": 8, "reviewed": 10, "accepted": 8, "rejected": 1,
                                            "edited": 1, "unaccepted_active": 0}
    assert gate["origins"]["edited"]["accepted"] == 1 and snap.counts["by_origin"] == {"seed": 10, "synthetic": 8,
                                                                                      "edited": 1}
    # a later reject of an accepted example wins: it is no longer active, and the gate still passes
    _decide(reviewed, syn[0], "review_reject", at="2026-12-01 12:00:00")
    again = CliRunner().invoke(main, ["snapshot", "create", "--require-review", "synthetic", "--json"])
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["review_gate"]["origins"]["synthetic"]["rejected"] == 2
    # without a gate option nothing is recorded
    assert "review_gate" not in create_snapshot(reviewed).to_dict()


def test_review_sample_and_min_acceptance(reviewed) -> None:
    syn, seed = _ids(reviewed, "synthetic"), _ids(reviewed, "seed")
    for i in syn[:2]:
        _decide(reviewed, i, "review_accept")
    _decide(reviewed, syn[2], "review_reject")
    # every origin with active examples: seed has 0 of 10 reviewed, needs ceil(0.3 * 10) = 3
    with pytest.raises(SnapshotError) as e:
        create_snapshot(reviewed, review_sample=0.3)
    assert "seed: reviewed 0 of 10 example(s), needed 3 (--review-sample 0.3); accepted 0" in str(e.value)
    assert "synthetic" not in str(e.value)  # 3 of 10 reviewed is enough
    with pytest.raises(SnapshotError, match=r"synthetic: reviewed 3 of 10 example\(s\), needed 4"):
        create_snapshot(reviewed, review_sample=0.31)
    # only the --require-review origins when some are given ... which then also need every example accepted
    with pytest.raises(SnapshotError, match="synthetic: 7 of 9 active"):
        create_snapshot(reviewed, require_review=["synthetic"], review_sample=0.3)
    for i in seed[:3]:
        _decide(reviewed, i, "review_accept")
    # acceptance: synthetic 2 / 3 = 0.67
    with pytest.raises(SnapshotError) as e:
        create_snapshot(reviewed, review_sample=0.3, min_acceptance=0.7)
    assert ("synthetic: accepted 2 of 3 reviewed (acceptance 0.67), needed acceptance >= 0.7 (--min-acceptance)"
            in str(e.value)) and "seed:" not in str(e.value)
    snap = create_snapshot(reviewed, review_sample=0.3, min_acceptance=0.6)
    gate = json.loads(snap.path.read_text())["review_gate"]
    assert (gate["review_sample"], gate["min_acceptance"], sorted(gate["origins"])) == (0.3, 0.6, ["seed", "synthetic"])
    # an origin with nothing reviewed fails --min-acceptance
    ingest_file(reviewed, write_jsonl(reviewed.path.parent / "f.jsonl", [chat("fresh import", "x")]))
    with pytest.raises(SnapshotError, match=r"import: accepted 0 of 0 reviewed \(none reviewed\)"):
        create_snapshot(reviewed, min_acceptance=0.5)
    for bad in ({"review_sample": 0.0}, {"review_sample": 1.5}, {"min_acceptance": -0.1}):
        with pytest.raises(SnapshotError, match="must be in"):
            create_snapshot(reviewed, **bad)


# -- hardening: the manifest anchor, paths, names, leftovers of killed processes ---------------------------------------
def _manifest(snap) -> dict:  # noqa: ANN001
    return json.loads(snap.path.read_text())


def _rewrite_train(snap, manifest: dict) -> None:  # noqa: ANN001
    """A planted change: train.parquet loses a row, and the manifest gets the new file's sha256 and count."""
    import hashlib

    import pyarrow.parquet as pq

    f = snap.path.parent / "train.parquet"
    table = pq.read_table(f)
    pq.write_table(table.slice(1), f)
    manifest["files"]["train"].update(sha256=hashlib.sha256(f.read_bytes()).hexdigest(), rows=table.num_rows - 1)
    snap.path.write_text(json.dumps(manifest, indent=2) + "\n")


def _forget_anchor(ws, snap) -> None:  # noqa: ANN001
    """What a snapshot made before manifest hashes were stored looks like."""
    with ws.connect() as con:
        con.execute("UPDATE snapshots SET manifest_sha256 = NULL WHERE id = ?", [snap.id])


def test_rewritten_file_with_updated_manifest_hash_is_caught(filled) -> None:
    from click.testing import CliRunner

    from curator.cli import main

    snap = create_snapshot(filled)
    _rewrite_train(snap, _manifest(snap))
    for call in (lambda: read_split(filled, snap.id, "test"),
                 lambda: export_snapshot(filled, snap.id, "parquet", filled.path.parent / "x")):
        with pytest.raises(IntegrityError, match=r"manifest .* was modified after the snapshot was written"):
            call()
    res = CliRunner().invoke(main, ["snapshot", "show", snap.id])
    assert res.exit_code == 1 and res.stderr.startswith("Error: snapshot ") and "modified" in res.stderr
    assert not (filled.path.parent / "x").exists()


def test_manifest_paths_outside_the_folder_and_corrupt_manifests_are_refused(filled, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from curator.cli import main

    snap = create_snapshot(filled)
    _forget_anchor(filled, snap)  # even unanchored (an old snapshot), the manifest cannot point outside
    good = _manifest(snap)
    secret = tmp_path / "secret.txt"
    secret.write_text("not yours")
    for path in ("../../../etc/hostname", str(secret), "sub/../../x.parquet"):
        bad = json.loads(json.dumps(good))
        bad["files"]["test"]["path"] = path
        snap.path.write_text(json.dumps(bad))
        with pytest.raises(IntegrityError, match="not a file inside the snapshot folder"):
            export_snapshot(filled, snap.id, "parquet", tmp_path / "out", force=True)
    assert not (tmp_path / "out").exists()
    snap.path.write_text(json.dumps(good))
    link = snap.path.parent / "test.parquet"
    link.unlink()
    link.symlink_to(secret)
    with pytest.raises(IntegrityError, match="outside the snapshot folder"):
        read_split(filled, snap.id, "test", verify=False)
    for body, problem in (("{not json", "not valid JSON"), ("[]", "not a JSON object"),
                          (json.dumps({**good, "files": {"train": {"path": "train.parquet"}}}), "no valid sha256"),
                          (json.dumps({**good, "id": "0" * 16}), "names snapshot")):
        snap.path.write_text(body)
        res = CliRunner().invoke(main, ["snapshot", "show", snap.id])
        assert res.exit_code == 1 and "is corrupt (" in res.stderr and problem in res.stderr, res.output
        assert "Traceback" not in res.output


def test_old_snapshot_is_anchored_on_its_first_verified_read(filled) -> None:
    snap = create_snapshot(filled)
    recorded = resolve_snapshot(filled, snap.id).manifest_sha256
    assert recorded and len(recorded) == 64
    _forget_anchor(filled, snap)
    old = resolve_snapshot(filled, snap.id)
    assert old.manifest_sha256 is None
    assert len(read_split(filled, old, "train", verify=False)) == old.counts["by_split"]["train"]  # not verified
    assert resolve_snapshot(filled, snap.id).manifest_sha256 is None
    read_split(filled, old, "train")  # verified: files match the manifest and the recorded members
    assert resolve_snapshot(filled, snap.id).manifest_sha256 == recorded
    _forget_anchor(filled, snap)  # a read command (read-only workspace) records it too, in a brief writer
    from click.testing import CliRunner

    from curator.cli import main

    assert CliRunner().invoke(main, ["snapshot", "show", snap.id]).exit_code == 0
    assert resolve_snapshot(filled, snap.id).manifest_sha256 == recorded
    _rewrite_train(snap, _manifest(snap))
    with pytest.raises(IntegrityError, match="manifest .* was modified"):
        read_split(filled, snap.id, "train")


def test_old_snapshot_whose_files_lost_members_is_not_anchored(filled) -> None:
    snap = create_snapshot(filled)
    _forget_anchor(filled, snap)
    _rewrite_train(snap, _manifest(snap))  # consistent with its manifest, but a member is gone
    with pytest.raises(IntegrityError, match=r"do not hold the examples the workspace recorded for it \(0 not "
                                             r"recorded, 1 missing\)"):
        read_split(filled, snap.id, "eval")
    assert resolve_snapshot(filled, snap.id).manifest_sha256 is None


def test_same_content_under_a_new_name_becomes_an_alias(filled, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from curator.cli import main

    s1 = create_snapshot(filled, name="v1")
    res = CliRunner().invoke(main, ["snapshot", "create", "--name", "v2"])
    assert res.exit_code == 0, res.output
    assert f"snapshot {s1.id} unchanged, same content as (v1, v2)" in res.stdout
    assert "'v2' added as another name" in res.stdout
    assert create_snapshot(filled, name="v2").alias_added is None  # already one of its names
    assert resolve_snapshot(filled, "v2").id == s1.id
    assert resolve_snapshot(filled, "v2").aliases == ["v2"]
    show = CliRunner().invoke(main, ["snapshot", "show", "v2"])
    assert show.exit_code == 0 and show.stdout.startswith(f"snapshot {s1.id} (v1, v2)")
    assert "v1, v2" in CliRunner().invoke(main, ["snapshot", "list"]).stdout
    ingest_file(filled, write_jsonl(tmp_path / "more.jsonl", [chat("one more", "x")]))
    with pytest.raises(SnapshotError, match=f"'v2' is already used by snapshot {s1.id}"):
        create_snapshot(filled, name="v2")
    s3 = create_snapshot(filled, name="v3")
    assert (s3.name, s3.aliases) == ("v3", [])


def test_temporary_folders_of_killed_processes_are_removed(filled) -> None:
    import subprocess
    import sys

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        dead_tmp = filled.snapshots_dir / f".{'a' * 16}.tmp-{gone.pid}"
        live_tmp = filled.snapshots_dir / f".{'b' * 16}.tmp-{alive.pid}"
        for d in (dead_tmp, live_tmp):
            d.mkdir(parents=True)
            (d / "train.parquet").write_bytes(b"half written")
        create_snapshot(filled)
        assert not dead_tmp.exists() and live_tmp.exists()
    finally:
        alive.kill()
        alive.wait()


# -- hardening: export folders ----------------------------------------------------------------------------------------
def test_force_replaces_only_what_curator_wrote(filled, tmp_path: Path) -> None:
    from datasets import load_from_disk

    snap = create_snapshot(filled)
    out = tmp_path / "hf"
    out.mkdir()
    (out / "dataset_dict.json").write_text("{}")  # an older export (or anything) named like one
    (out / "notes.txt").write_text("mine")
    (out / "keep").mkdir()
    (out / "keep" / "data.bin").write_bytes(b"\x00")
    with pytest.raises(SnapshotError, match=r"already holds dataset_dict.json; pass --force"):
        export_snapshot(filled, snap.id, "hf", out)
    res = export_snapshot(filled, snap.id, "hf", out, force=True)
    assert res["replaced"] == ["dataset_dict.json"]
    assert (out / "notes.txt").read_text() == "mine" and (out / "keep" / "data.bin").exists()
    assert sorted(load_from_disk(str(out))) == ["test", "train", "validation"]

    # The test examples leave: a later snapshot has no test split; --force removes the old export's test/.
    with filled.connect() as con:
        con.execute("UPDATE examples SET status = 'excluded' WHERE id IN (SELECT example_id FROM splits "
                    "WHERE split = 'test')")
    later = create_snapshot(filled)
    res = export_snapshot(filled, later.id, "hf", out, force=True)
    assert (res["left_out"], res["removed"]) == (["test"], ["test"])
    assert sorted(p.name for p in out.iterdir()) == [".curator-export.json", "dataset_dict.json", "keep",
                                                    "notes.txt", "train", "validation"]
    assert sorted(load_from_disk(str(out))) == ["train", "validation"]


def test_export_never_writes_through_a_link_out_of_the_folder(filled, tmp_path: Path) -> None:
    snap = create_snapshot(filled)
    outside = tmp_path / "outside"
    outside.mkdir()
    out = tmp_path / "hf"
    out.mkdir()
    (out / "train").symlink_to(outside, target_is_directory=True)
    with pytest.raises(SnapshotError, match="is a link to .*outside"):
        export_snapshot(filled, snap.id, "hf", out, force=True)
    assert list(outside.iterdir()) == [] and sorted(p.name for p in out.iterdir()) == ["train"]
    # A link that stays inside the folder is replaced by the file itself (the link, not its target).
    pq_out = tmp_path / "pq"
    pq_out.mkdir()
    (pq_out / "mine.parquet").write_bytes(b"keep me")
    (pq_out / "train.parquet").symlink_to(pq_out / "mine.parquet")
    export_snapshot(filled, snap.id, "parquet", pq_out, force=True)
    assert (pq_out / "mine.parquet").read_bytes() == b"keep me" and not (pq_out / "train.parquet").is_symlink()


def test_export_removes_staging_folders_of_killed_exports(filled, tmp_path: Path) -> None:
    import subprocess
    import sys

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    snap = create_snapshot(filled)
    out = tmp_path / "oa"
    stale = out / f".curator-export-tmp-{gone.pid}"
    stale.mkdir(parents=True)
    (stale / "train.jsonl").write_text("half")
    res = export_snapshot(filled, snap.id, "openai", out, split="validation")
    assert not stale.exists() and list(res["files"]) == ["eval"]
    assert sorted(p.name for p in out.iterdir()) == [".curator-export.json", "eval.jsonl"]


def test_content_hash_and_exports_stream_in_batches(filled, tmp_path: Path, monkeypatch) -> None:
    """Batches of 3 rows give the same snapshot id (the sha256 of every ``id TAB split`` line) and byte-identical
    JSON Lines / row-identical Parquet exports as one batch holding the whole split."""
    import hashlib

    import pyarrow.parquet as pq

    import curator.snapshots as snapshots

    with filled.connect() as con:
        members = con.execute("SELECT e.id, s.split FROM examples e JOIN splits s ON s.example_id = e.id "
                              "WHERE e.status = 'active' ORDER BY e.id").fetchall()
    whole = hashlib.sha256("\n".join(f"{i}\t{s}" for i, s in members).encode()).hexdigest()
    monkeypatch.setattr(snapshots, "BATCH_ROWS", 3)
    snap = create_snapshot(filled, name="small-batches")
    assert snap.id == whole[:16]
    export_snapshot(filled, snap.id, "openai", tmp_path / "small")
    export_snapshot(filled, snap.id, "parquet", tmp_path / "small")
    monkeypatch.setattr(snapshots, "BATCH_ROWS", 1 << 16)
    export_snapshot(filled, snap.id, "openai", tmp_path / "big")
    export_snapshot(filled, snap.id, "parquet", tmp_path / "big")
    for name in ("train.jsonl", "eval.jsonl", "test.jsonl"):
        assert (tmp_path / "small" / name).read_bytes() == (tmp_path / "big" / name).read_bytes()
    small, big = pq.read_table(tmp_path / "small" / "train.parquet"), pq.read_table(tmp_path / "big" / "train.parquet")
    assert small.num_rows > 6 and small.equals(big) and small.schema.metadata == big.schema.metadata
    assert pq.ParquetFile(tmp_path / "small" / "train.parquet").metadata.num_row_groups > 1
