"""Workspace: migrations recorded once, and a second writer gets a clear error (no hang, no corruption)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import chat, count_rows, write_jsonl

from curator.data.ingest import ingest_file
from curator.errors import InputError, WorkspaceError, WorkspaceLockedError
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


def _hold(db: Path, read_only: bool) -> subprocess.Popen[str]:
    """Another process holding the workspace file (a writer, or a reader such as ``duckdb -readonly``)."""
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time, duckdb; c = duckdb.connect(sys.argv[1], read_only=sys.argv[2] == '1'); "
         "print('ready', flush=True); time.sleep(60)", str(db), "1" if read_only else "0"],
        stdout=subprocess.PIPE, text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
    return holder


def test_read_commands_open_read_only_beside_an_outside_reader(ws, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from curator.cli import main
    from curator.snapshots import create_snapshot

    monkeypatch.setenv("CURATOR_LOCK_WAIT", "0")
    ingest_file(ws, write_jsonl(tmp_path / "a.jsonl", [chat(f"q{i}", f"a{i}") for i in range(10)]))
    create_snapshot(ws, allow_leakage=True)
    holder = _hold(ws.db_path, read_only=True)
    try:
        for args in (["stats", "--no-tokens"], ["snapshot", "list"], ["snapshot", "show", "latest"],
                     ["rounds", "list"], ["traces", "stats"], ["feedback", "stats"], ["runs", "list"]):
            res = CliRunner().invoke(main, ["-w", str(ws.path), *args])
            assert res.exit_code == 0, (args, res.output)
        # a writing command still needs the file to itself
        res = CliRunner().invoke(main, ["-w", str(ws.path), "ingest", str(write_jsonl(tmp_path / "b.jsonl", [chat("x", "y")]))])
        assert res.exit_code == 1 and "in use by another process" in res.output
    finally:
        holder.kill()
        holder.wait()


def test_a_read_only_workspace_never_writes_and_upgrades_an_old_schema(ws, tmp_path: Path) -> None:
    ingest_file(ws, write_jsonl(tmp_path / "a.jsonl", [chat("q", "a")]))
    last = MIGRATIONS[-1][0]
    with ws.connect() as con:  # an older workspace: the last migration not applied yet
        con.execute("DELETE FROM _migrations WHERE name = ?", [last])
    ro = Workspace(ws.path, read_only=True)
    with ro.connect() as con:  # the pending migration is applied in a brief writer connection, then read-only
        assert con.execute("SELECT count(*) FROM _migrations WHERE name = ?", [last]).fetchall()[0][0] == 1
        assert con.execute("SELECT count(*) FROM examples").fetchall()[0][0] == 1
        import duckdb

        with pytest.raises(duckdb.Error, match="read-only"):
            con.execute("DELETE FROM examples")
    with pytest.raises(WorkspaceError, match="no workspace at"):
        with Workspace(tmp_path / "nothing", read_only=True).connect():
            pass
    assert not (tmp_path / "nothing").exists()


def test_stats_counts_tokens_without_the_write_lock(ws, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``curator stats`` beside a reader: the token counts are computed, only their cache is skipped."""
    from curator.stats import workspace_stats

    monkeypatch.setenv("CURATOR_LOCK_WAIT", "0")
    ingest_file(ws, write_jsonl(tmp_path / "a.jsonl", [chat(f"q{i}", f"a{i}") for i in range(4)]))
    holder = _hold(ws.db_path, read_only=True)
    try:
        d = workspace_stats(Workspace(ws.path, read_only=True), tokens=True)
    finally:
        holder.kill()
        holder.wait()
    assert sum(t["n"] for t in d["tokens"].values()) == 4
    with ws.connect() as con:
        assert con.execute("SELECT count(*) FROM token_counts").fetchall()[0][0] == 0
    workspace_stats(Workspace(ws.path, read_only=True), tokens=True)  # nobody else: cached this time
    with ws.connect() as con:
        assert con.execute("SELECT count(*) FROM token_counts").fetchall()[0][0] == 4


def test_ingest_takes_the_lock_before_reading_the_file(ws, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A second ingest fails on the lock, not after converting: the bad line 2 is never reached (with --ratios
    given, nothing else would have opened the workspace before the conversion)."""
    monkeypatch.setenv("CURATOR_LOCK_WAIT", "0")
    ingest_file(ws, write_jsonl(tmp_path / "a.jsonl", [chat("q", "a")]))
    bad = write_jsonl(tmp_path / "b.jsonl", [chat("q2", "a2"), '{"messages": 3}'])
    holder = _hold(ws.db_path, read_only=False)
    try:
        with pytest.raises(WorkspaceLockedError):
            ingest_file(ws, bad, ratios=(0.8, 0.1, 0.1))
    finally:
        holder.kill()
        holder.wait()
    with pytest.raises(InputError, match=r"b.jsonl:2: "):
        ingest_file(ws, bad)
    # a missing file is refused before the workspace is even created
    with pytest.raises(InputError, match="no such file"):
        ingest_file(Workspace(tmp_path / "new"), tmp_path / "absent.jsonl")
    assert not (tmp_path / "new").exists()


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_a_writer_removes_temp_files_of_killed_processes(ws, tmp_path: Path) -> None:
    from curator.workspace import sweep_stale_temp

    ingest_file(ws, write_jsonl(tmp_path / "a.jsonl", [chat("q", "a")]))
    dead = _dead_pid()
    stale = [ws.tmp_dir / f"curator-ingest-{dead}-abc", ws.snapshots_dir / f".0123456789abcdef.tmp-{dead}",
             ws.tmp_dir / f"curator-leakage-{dead}-def"]
    live = [ws.tmp_dir / f"curator-ingest-{os.getpid()}-xyz", ws.snapshots_dir / f".fedcba9876543210.tmp-{os.getpid()}",
            ws.snapshots_dir / "0123456789abcdef", ws.tmp_dir / "somebody-elses-file"]
    for d in stale + live:
        d.mkdir(parents=True)
        (d / "part0.arrow").write_bytes(b"x" * 1000)
    with ws.connect():  # a writer's connection sweeps
        pass
    assert [d.exists() for d in stale] == [False, False, False]
    assert all(d.exists() for d in live)
    with Workspace(ws.path, read_only=True).connect():  # a reader leaves everything alone
        pass
    assert sweep_stale_temp(ws) == []


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc")
def test_ingest_workers_die_with_their_parent(tmp_path: Path) -> None:
    """kill -9 of the ingest process takes its busy conversion workers with it."""
    script = (
        "import os, sys, time, multiprocessing as mp\n"
        "from curator.data import ingest\n"
        "pool = mp.get_context('fork').Pool(2, initializer=ingest._die_with_parent, initargs=(os.getpid(),))\n"
        "print(' '.join(str(p.pid) for p in pool._pool), flush=True)\n"
        "pool.map(time.sleep, [60, 60])\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    workers = [int(p) for p in proc.stdout.readline().split()]
    proc.kill()
    proc.wait()

    def running(pid: int) -> bool:
        try:
            state = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            return False
        return "\nState:\tZ" not in state  # a zombie has ended (nobody reaps it in some containers)

    deadline = time.monotonic() + 30
    while any(running(w) for w in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    alive = [w for w in workers if running(w)]
    for w in alive:
        os.kill(w, 9)
    assert alive == []


def test_traces_commands_import_the_logs_from_a_read_only_workspace(ws, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """`curator traces list` is a read command, but it imports new trace logs first: through a writer of its own,
    and, when another process holds the file, it shows what was imported before instead of failing."""
    import json

    from click.testing import CliRunner

    from curator.cli import main

    monkeypatch.setenv("CURATOR_LOCK_WAIT", "0")
    ingest_file(ws, write_jsonl(tmp_path / "a.jsonl", [chat("q", "a")]))
    trace = {"type": "trace", "v": 1, "id": "t1", "created_at": "2026-12-01 10:00:00.000001", "model": "base",
             "run_id": None, "adapter": "base", "ab_name": None, "ab_arm": None, "user_id": None,
             "messages": [{"role": "user", "content": "Q?"}, {"role": "assistant", "content": "A."}],
             "params": {}, "latency_ms": 1.0, "prompt_tokens": 1, "completion_tokens": 1, "finish_reason": "stop",
             "meta": {}}
    (ws.path / "traces").mkdir()
    (ws.path / "traces" / "20261201-100000-1.jsonl").write_text(json.dumps(trace) + "\n")
    holder = _hold(ws.db_path, read_only=True)
    try:
        res = CliRunner().invoke(main, ["-w", str(ws.path), "traces", "list"])
        assert res.exit_code == 0 and "trace logs not imported now" in res.output, res.output
    finally:
        holder.kill()
        holder.wait()
    res = CliRunner().invoke(main, ["-w", str(ws.path), "traces", "list", "--json"])
    assert res.exit_code == 0, res.output
    assert [t["id"] for t in json.loads(res.stdout)] == ["t1"]


def test_memory_limit_caps_duckdb_and_reads_the_environment(tmp_path, monkeypatch):
    from curator.workspace import Workspace

    ws = Workspace(tmp_path / "ws")
    monkeypatch.delenv("CURATOR_MEMORY_LIMIT", raising=False)
    with ws.connect() as con:
        assert con.execute("SELECT current_setting('memory_limit')").fetchone()[0] == "3.7 GiB"  # 4GB
    monkeypatch.setenv("CURATOR_MEMORY_LIMIT", "512MB")
    with ws.connect() as con:
        assert con.execute("SELECT current_setting('memory_limit')").fetchone()[0] == "488.2 MiB"
    monkeypatch.setenv("CURATOR_MEMORY_LIMIT", "lots")
    from curator.errors import CuratorError

    with pytest.raises(CuratorError, match="CURATOR_MEMORY_LIMIT='lots' is not a size"):
        with ws.connect():
            pass
