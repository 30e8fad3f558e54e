"""Workspace: migrations recorded once, and a second writer gets a clear error (no hang, no corruption)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import chat, count_rows, write_jsonl

from curator.data.ingest import ingest_file
from curator.errors import WorkspaceError, WorkspaceLockedError
from curator.workspace import MIGRATIONS, Workspace


def test_migrations_applied_once(ws) -> None:
    with ws.connect() as con:
        names = [r[0] for r in con.execute("SELECT name FROM _migrations ORDER BY name").fetchall()]
    assert names == [m[0] for m in MIGRATIONS]
    with Workspace(ws.path).connect() as con:
        assert con.execute("SELECT count(*) FROM _migrations").fetchall()[0][0] == len(MIGRATIONS)


def test_connection_settings_of_the_attached_workspace_file(tmp_path: Path) -> None:
    """The file is attached (for its row group size): tables, spill files and cursors must still be the workspace's."""
    from curator.workspace import ROW_GROUP_SIZE, cursor

    ws = Workspace(tmp_path / "it's here")  # a quote in the path
    with ws.connect() as con:
        assert con.execute("SELECT current_setting('temp_directory')").fetchall()[0][0] == f"{ws.db_path}.tmp"
        con.execute("CREATE TABLE t AS SELECT range AS i FROM range(70000)")
        assert cursor(con).execute("SELECT count(*) FROM t").fetchall()[0][0] == 70000
        row_groups = con.execute("SELECT count(DISTINCT row_group_id) FROM pragma_storage_info('t')").fetchall()[0][0]
    assert row_groups == -(-70000 // ROW_GROUP_SIZE)
    with Workspace(ws.path).connect(read_only=True) as con:
        assert con.execute("SELECT count(*) FROM t").fetchall()[0][0] == 70000


def test_second_process_gets_locked_error(ws, tmp_path: Path) -> None:
    ingest_file(ws, write_jsonl(tmp_path / "a.jsonl", [chat("q", "a")]))
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time, duckdb; c = duckdb.connect(sys.argv[1]); print('ready', flush=True); time.sleep(30)",
         str(ws.db_path)],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "ready"
        t0 = time.time()
        with pytest.raises(WorkspaceLockedError, match=r"workspace .* is in use by another process \(PID \d+\)"):
            ingest_file(ws, write_jsonl(tmp_path / "b.jsonl", [chat("q2", "a2")]))
        assert time.time() - t0 < 5  # fails at once, does not hang
    finally:
        holder.kill()
        holder.wait()
    assert count_rows(ws)["examples"] == 1


def test_cli_reports_lock(ws, tmp_path: Path) -> None:
    ingest_file(ws, write_jsonl(tmp_path / "a.jsonl", [chat("q", "a")]))
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time, duckdb; c = duckdb.connect(sys.argv[1]); print('ready', flush=True); time.sleep(30)",
         str(ws.db_path)],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        holder.stdout.readline()
        r = subprocess.run([sys.executable, "-m", "curator", "--workspace", str(ws.path), "ingest",
                            str(write_jsonl(tmp_path / "b.jsonl", [chat("q2", "a2")]))],
                           capture_output=True, text=True, timeout=60)
    finally:
        holder.kill()
        holder.wait()
    assert r.returncode == 1
    assert r.stderr.startswith("Error: workspace ") and "in use by another process" in r.stderr
    assert "Traceback" not in r.stderr


def test_workspace_path_is_a_file(tmp_path: Path) -> None:
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(WorkspaceError, match="is not a folder"), Workspace(f).connect():
        pass


def test_a_foreign_duckdb_file_is_refused_untouched(tmp_path: Path) -> None:
    import duckdb

    db = tmp_path / "curator.duckdb"
    con = duckdb.connect(str(db))
    con.execute("CREATE TABLE examples (x INTEGER)")
    con.close()
    with pytest.raises(WorkspaceError, match="not a curator workspace .*examples"):
        with Workspace(tmp_path).connect():
            pass
    con = duckdb.connect(str(db), read_only=True)
    assert [r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()] == ["examples"]
    con.close()


def test_a_quote_in_the_workspace_path(tmp_path: Path) -> None:
    from curator.snapshots import create_snapshot, read_split

    ws = Workspace(tmp_path / "it's a workspace")
    ingest_file(ws, write_jsonl(tmp_path / "a.jsonl", [chat(f"question {i}", f"answer {i}") for i in range(20)]))
    snap = create_snapshot(ws)
    assert sum(len(read_split(ws, snap, s)) for s in ("train", "eval", "test")) == 20


def test_a_brief_hold_by_another_process_is_waited_out(ws, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CURATOR_LOCK_WAIT", "20")
    ingest_file(ws, write_jsonl(tmp_path / "a.jsonl", [chat("q", "a")]))
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time, duckdb; c = duckdb.connect(sys.argv[1]); print('ready', flush=True); time.sleep(1.5)",
         str(ws.db_path)],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        ingest_file(ws, write_jsonl(tmp_path / "b.jsonl", [chat("q2", "a2")]))  # waits for the holder to exit
    finally:
        holder.kill()
        holder.wait()
    assert count_rows(ws)["examples"] == 2
