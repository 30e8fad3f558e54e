"""The workspace: a folder holding one DuckDB file, snapshots, runs and reports.

One writer at a time.  DuckDB takes an exclusive lock on the database file for a writer, and a
shared one for read-only connections (several readers at once, but no reader beside a writer).
Opening waits up to ``CURATOR_LOCK_WAIT`` seconds (default 2) for another process's hold, then
raises ``WorkspaceLockedError`` ("workspace ... is in use by another process") instead of hanging.
Connections are opened per operation and closed after, so a long job (training) does not
hold the lock while it is not touching the database.

A read-only workspace (``Workspace(path, read_only=True)``, what the read commands use) opens every
connection read-only: it never creates the database, never blocks another reader, and a migration
it finds pending is applied in one brief writer connection first.  A writer's connection, when
opened, removes temporary files that a killed process left in the workspace (``tmp/curator-ingest-PID-*``,
``snapshots/.ID.tmp-PID``): only those whose process is gone.

Schema changes are numbered migrations (``m001_initial``, ``m002_...``: one contiguous sequence)
applied once each, in order, and recorded by name in the ``_migrations`` table; a migration that
was renamed has its old record renamed first (:data:`curator.migrations.RENAMED`), so it is not
applied twice.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

import duckdb

from curator.errors import WorkspaceError, WorkspaceLockedError

__all__ = ["DB_NAME", "MIGRATIONS", "Workspace", "cursor", "default_workspace_path", "pid_alive", "sweep_stale_temp"]

DB_NAME = "curator.duckdb"
ENV_VAR = "CURATOR_WORKSPACE"
LOCK_WAIT_ENV = "CURATOR_LOCK_WAIT"
DEFAULT_LOCK_WAIT = 2.0
MEMORY_LIMIT_ENV = "CURATOR_MEMORY_LIMIT"
#: DuckDB's own memory (its buffer pool: sorts, joins, aggregates, inserts) per connection; past it,
#: DuckDB spills to ``curator.duckdb.tmp`` next to the workspace file.  DuckDB's default is 80 % of RAM,
#: which lets one large ingest or snapshot take most of a laptop's memory.  Python's own objects (a
#: dedup pool, a leakage index) are on top of it.
DEFAULT_MEMORY_LIMIT = "4GB"
#: Rows per storage row group of the workspace file (DuckDB's default is 122,880).  DuckDB compresses
#: and writes a bulk insert while it runs, on all cores, once it fills a row group; rows that do not
#: fill one wait in the write-ahead log and are compressed by a single thread at commit.  With the
#: default, a 100k-example ingest took the single-thread path: 0.45 s of its 0.60 s in the database
#: (measured, benchmarks/ingest.py); with 32,768 the same insert and commit took 0.25 s.
ROW_GROUP_SIZE = 32_768
_ALIAS = "workspace"  # the name the workspace file is attached under

def _load_migrations() -> list[tuple[str, str | Callable[[duckdb.DuckDBPyConnection], None]]]:
    """``curator/migrations/mNNN_name.py`` files, in number order; each defines ``SQL`` or ``apply(con)``."""
    import importlib
    import pkgutil

    from curator import migrations

    out: list[tuple[str, str | Callable[[duckdb.DuckDBPyConnection], None]]] = []
    names = sorted(m.name for m in pkgutil.iter_modules(migrations.__path__) if re.fullmatch(r"m\d{3}_\w+", m.name))
    for name in names:
        mod = importlib.import_module(f"{migrations.__name__}.{name}")
        out.append((name, getattr(mod, "apply", None) or mod.SQL))
    return out


#: Applied in order, once each.  Add a file; never edit a migration that has shipped.
MIGRATIONS = _load_migrations()


def lock_wait() -> float:
    """Seconds to wait for another process's hold on the workspace file: ``CURATOR_LOCK_WAIT``, default 2."""
    try:
        value = float(os.environ.get(LOCK_WAIT_ENV, "") or DEFAULT_LOCK_WAIT)
    except ValueError:
        value = DEFAULT_LOCK_WAIT
    return value if math.isfinite(value) and value >= 0 else DEFAULT_LOCK_WAIT


def memory_limit() -> str:
    """DuckDB's ``memory_limit`` for workspace connections: ``CURATOR_MEMORY_LIMIT`` (``4GB``, ``512MB``, ``50%``), default 4GB."""
    value = (os.environ.get(MEMORY_LIMIT_ENV) or DEFAULT_MEMORY_LIMIT).strip()
    if not re.fullmatch(r"\d+(\.\d+)?\s*(%|[KMGT]i?B)", value, re.IGNORECASE):
        raise WorkspaceError(f"{MEMORY_LIMIT_ENV}={value!r} is not a size (write it like 4GB, 512MB or 50%)")
    return value


_SIZE = re.compile(r"\s*([\d.]+)\s*(bytes|[KMGT]?i?B)?\s*", re.IGNORECASE)
_UNITS = {"bytes": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
          "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


def _size_bytes(text: str) -> float | None:
    """Bytes of a DuckDB size (``256MB``, ``3.7 GiB``), or None when it is not one."""
    m = _SIZE.fullmatch(text)
    if not m:
        return None
    return float(m.group(1)) * _UNITS[(m.group(2) or "b").lower()]


@contextmanager
def capped_memory(con: duckdb.DuckDBPyConnection, limit: str | None) -> Iterator[None]:
    """DuckDB's memory limit lowered to ``limit`` inside the block (never raised), then set back.

    For long scans (dedup's pool, leakage's train side): DuckDB keeps every block it has read cached up
    to its limit until the connection closes. ``None`` leaves the limit as it is; a limit DuckDB cannot
    take (it holds more than that already) is left out.
    """
    before = str(con.execute("SELECT current_setting('memory_limit')").fetchall()[0][0])
    now, cap = _size_bytes(before), _size_bytes(limit) if limit else None
    lowered = False
    if cap is not None and now is not None and cap < now:
        try:
            con.execute(f"SET memory_limit = '{limit}'")
            lowered = True
        except duckdb.Error:
            pass
    try:
        yield
    finally:
        if lowered:
            # The workspace's own setting, exactly (the value DuckDB shows is rounded), unless that is not
            # what this connection had.
            con.execute(f"SET memory_limit = '{memory_limit()}'")
            if str(con.execute("SELECT current_setting('memory_limit')").fetchall()[0][0]) != before:
                con.execute(f"SET memory_limit = '{before}'")


def default_workspace_path() -> Path:
    """``$CURATOR_WORKSPACE`` or ``./.curator``."""
    return Path(os.environ.get(ENV_VAR) or ".curator")


class Workspace:
    """A workspace folder.  ``with ws.connect() as con`` gives a migrated DuckDB connection.

    ``read_only``: every connection of this object is read-only (``connect(read_only=False)`` included);
    the database must exist already (``WorkspaceError`` otherwise).
    """

    def __init__(self, path: str | Path | None = None, *, read_only: bool = False) -> None:
        self.path = Path(path) if path is not None else default_workspace_path()
        self.read_only = read_only
        self._con: duckdb.DuckDBPyConnection | None = None
        self._depth = 0

    # -- folders -----------------------------------------------------------------------------------------
    @property
    def db_path(self) -> Path:
        return self.path / DB_NAME

    @property
    def snapshots_dir(self) -> Path:
        return self.path / "snapshots"

    @property
    def runs_dir(self) -> Path:
        return self.path / "runs"

    @property
    def reports_dir(self) -> Path:
        return self.path / "reports"

    @property
    def tmp_dir(self) -> Path:
        """Scratch folders of running commands (``curator-ingest-PID-*``); a writer removes dead processes' ones."""
        return self.path / "tmp"

    def exists(self) -> bool:
        return self.db_path.exists()

    # -- connections -------------------------------------------------------------------------------------
    def _open(self, read_only: bool) -> duckdb.DuckDBPyConnection:
        if self.path.exists() and not self.path.is_dir():
            raise WorkspaceError(f"workspace {self.path} is not a folder")
        if read_only and not self.db_path.exists():
            raise WorkspaceError(f"no workspace at {self.path} (run `curator ingest` first, or pass --workspace)")
        if not read_only:
            self.path.mkdir(parents=True, exist_ok=True)
        con = self._attach_waiting(read_only)
        try:
            if not read_only:
                _migrate(con)
                sweep_stale_temp(self)
                return con
            if not _pending(con):
                return con
        except BaseException:
            con.close()
            raise
        # An older workspace under a read-only command: upgrade it in one brief writer connection, then read.
        con.close()
        writer = self._attach_waiting(False)
        try:
            _migrate(writer)
        finally:
            writer.close()
        return self._attach_waiting(True)

    def _attach_waiting(self, read_only: bool) -> duckdb.DuckDBPyConnection:
        """Attach the file, waiting up to ``CURATOR_LOCK_WAIT`` seconds while another process holds it."""
        deadline = time.monotonic() + lock_wait()
        delay = 0.02
        while True:
            try:
                con = _attach(self.db_path, read_only)
                break
            except duckdb.IOException as e:
                # Another process holds the file: servers and review take it for milliseconds at a time, so
                # wait a moment (``CURATOR_LOCK_WAIT`` seconds) before saying so.
                if "lock" in str(e).lower() and time.monotonic() + delay < deadline:
                    time.sleep(delay)
                    delay = min(delay * 2, 0.25)
                    continue
                self._raise_open_error(e)
            except duckdb.Error as e:
                raise WorkspaceError(f"cannot open workspace {self.path}: {e}") from None
        return con

    def _raise_open_error(self, e: duckdb.IOException) -> NoReturn:
        if "lock" in str(e).lower():
            m = re.search(r"PID (\d+)", str(e))
            who = f" (PID {m.group(1)})" if m else ""
            raise WorkspaceLockedError(
                f"workspace {self.path} is in use by another process{who}; wait for it to finish"
            ) from None
        raise WorkspaceError(f"cannot open workspace {self.path}: {e}") from None

    @contextmanager
    def connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        """Open (or reuse, when nested) a connection; closed when the outermost block ends.

        Read-only when ``read_only`` or the workspace is.  A nested block reuses the open connection.
        """
        if self._con is None:
            self._con = self._open(read_only or self.read_only)
        self._depth += 1
        try:
            yield self._con
        finally:
            self._depth -= 1
            if self._depth == 0:
                self._con.close()
                self._con = None

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """All or nothing: the block's writes are committed together or rolled back on any error."""
        with self.connect() as con:
            con.execute("BEGIN TRANSACTION")
            try:
                yield con
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")

    # -- settings ----------------------------------------------------------------------------------------
    def get_setting(self, key: str, default: Any = None) -> Any:
        import json

        with self.connect() as con:
            rows = con.execute("SELECT value FROM settings WHERE key = ?", [key]).fetchall()
        return json.loads(rows[0][0]) if rows else default

    def set_setting(self, key: str, value: Any) -> None:
        import json

        with self.connect() as con:
            con.execute(
                "INSERT OR REPLACE INTO settings VALUES (?, ?)", [key, json.dumps(value)]
            )


def _attach(db_path: Path, read_only: bool) -> duckdb.DuckDBPyConnection:
    """A connection whose default database is the workspace file (attached with our row group size)."""
    con = duckdb.connect()
    try:
        options = f"ROW_GROUP_SIZE {ROW_GROUP_SIZE}" + (", READ_ONLY" if read_only else "")
        path = str(db_path).replace("'", "''")
        con.execute(f"ATTACH '{path}' AS {_ALIAS} ({options})")
        con.execute(f"USE {_ALIAS}")
        # Spill files next to the workspace file, as a connection opened on the file would put them
        # (an in-memory default database would use ./.tmp in the current directory).
        con.execute(f"SET temp_directory = '{path}.tmp'")
        con.execute(f"SET memory_limit = '{memory_limit()}'")
    except BaseException:
        con.close()
        raise
    return con


def cursor(con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    """A second connection to the same workspace (e.g. for a writer thread).

    Use this, not ``con.cursor()``: a bare cursor starts in DuckDB's in-memory default database, where the
    workspace tables are not.
    """
    cur = con.cursor()
    cur.execute(f"USE {_ALIAS}")
    return cur


def _rename_recorded(con: duckdb.DuckDBPyConnection, done: set[str]) -> set[str]:
    """Rewrite records of renamed migrations (old name -> new name, ``applied_at`` kept), in one transaction."""
    from curator.migrations import RENAMED

    stale = [old for old in RENAMED if old in done]
    if not stale:
        return done
    con.execute("BEGIN TRANSACTION")
    try:
        for old in stale:
            new = RENAMED[old]
            if new not in done:
                con.execute("INSERT INTO _migrations SELECT ?, applied_at FROM _migrations WHERE name = ?", [new, old])
            con.execute("DELETE FROM _migrations WHERE name = ?", [old])
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")
    return (done - set(stale)) | {RENAMED[old] for old in stale}


def _check_ours(con: duckdb.DuckDBPyConnection) -> set[str]:
    """The workspace file's tables; ``WorkspaceError`` when it has tables but no curator migration record."""
    tables = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables() WHERE database_name = ?",
                                        [_ALIAS]).fetchall()}
    if tables and "_migrations" not in tables:
        # Somebody else's DuckDB file: migrating it would mix curator's tables into theirs (or fail on
        # a table of the same name).
        path = con.execute("SELECT path FROM duckdb_databases() WHERE database_name = ?", [_ALIAS]).fetchall()[0][0]
        raise WorkspaceError(f"{path} is not a curator workspace (it has tables {', '.join(sorted(tables)[:5])} but no "
                             "curator migration record); pass another --workspace folder")
    return tables


def _pending(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether a migration is still to be applied (read-only connections check before reading)."""
    from curator.migrations import RENAMED

    if "_migrations" not in _check_ours(con):
        return True
    done = {r[0] for r in con.execute("SELECT name FROM _migrations").fetchall()}
    return bool(done & set(RENAMED)) or any(name not in done for name, _ in MIGRATIONS)


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists (on this machine); our own process counts as alive."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # somebody else's process
        return True
    except OverflowError:
        return False
    return True


_STALE = (("tmp", re.compile(r"curator-(?:ingest|leakage)-(\d+)-.*")), ("snapshots", re.compile(r"\..+\.tmp-(\d+)")))


def sweep_stale_temp(ws: Workspace) -> list[Path]:
    """Remove the temporary files and folders that killed processes left in the workspace; returns them.

    Only entries named with the id of a process that no longer runs: ``tmp/curator-ingest-PID-*`` (an
    ingest's conversion of a large file), ``tmp/curator-leakage-PID-*`` (the n-gram spill of a leakage
    check) and ``snapshots/.ID.tmp-PID`` (a snapshot being written).
    """
    removed: list[Path] = []
    for folder, pattern in _STALE:
        d = ws.path / folder
        try:
            entries = list(d.iterdir())
        except OSError:  # no such folder (the usual case)
            continue
        for p in entries:
            m = pattern.fullmatch(p.name)
            if m is None or pid_alive(int(m.group(1))):
                continue
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)
            removed.append(p)
    return removed


def _migrate(con: duckdb.DuckDBPyConnection) -> None:
    _check_ours(con)
    con.execute("CREATE TABLE IF NOT EXISTS _migrations (name VARCHAR PRIMARY KEY, applied_at TIMESTAMP)")
    done = {r[0] for r in con.execute("SELECT name FROM _migrations").fetchall()}
    done = _rename_recorded(con, done)
    for name, step in MIGRATIONS:
        if name in done:
            continue
        con.execute("BEGIN TRANSACTION")
        try:
            if callable(step):
                step(con)
            else:
                con.execute(step)
            con.execute("INSERT INTO _migrations VALUES (?, current_timestamp)", [name])
        except BaseException:
            con.execute("ROLLBACK")
            raise
        con.execute("COMMIT")
