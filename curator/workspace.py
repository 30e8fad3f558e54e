"""The workspace: a folder holding one DuckDB file, snapshots, runs and reports.

One writer at a time.  DuckDB takes an exclusive lock on the database file, and a second
process that tries to open it fails at once; we turn that into
``WorkspaceLockedError`` ("workspace ... is in use by another process") instead of a hang.
Connections are opened per operation and closed after, so a long job (training) does not
hold the lock while it is not touching the database.

Schema changes are numbered migrations (``m001_initial``, ``m002_...``: one contiguous sequence)
applied once each, in order, and recorded by name in the ``_migrations`` table; a migration that
was renamed has its old record renamed first (:data:`curator.migrations.RENAMED`), so it is not
applied twice.
"""

from __future__ import annotations

import math
import os
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

import duckdb

from curator.errors import WorkspaceError, WorkspaceLockedError

__all__ = ["DB_NAME", "MIGRATIONS", "Workspace", "cursor", "default_workspace_path"]

DB_NAME = "curator.duckdb"
ENV_VAR = "CURATOR_WORKSPACE"
LOCK_WAIT_ENV = "CURATOR_LOCK_WAIT"
DEFAULT_LOCK_WAIT = 2.0
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


def default_workspace_path() -> Path:
    """``$CURATOR_WORKSPACE`` or ``./.curator``."""
    return Path(os.environ.get(ENV_VAR) or ".curator")


class Workspace:
    """A workspace folder.  ``with ws.connect() as con`` gives a migrated DuckDB connection."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else default_workspace_path()
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

    def exists(self) -> bool:
        return self.db_path.exists()

    # -- connections -------------------------------------------------------------------------------------
    def _open(self, read_only: bool) -> duckdb.DuckDBPyConnection:
        if self.path.exists() and not self.path.is_dir():
            raise WorkspaceError(f"workspace {self.path} is not a folder")
        if read_only and not self.db_path.exists():
            raise WorkspaceError(f"no workspace at {self.path} (run `curator ingest` first, or pass --workspace)")
        self.path.mkdir(parents=True, exist_ok=True)
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
        if not read_only:
            _migrate(con)
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
        """Open (or reuse, when nested) a connection; closed when the outermost block ends."""
        if self._con is None:
            self._con = self._open(read_only)
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


def _migrate(con: duckdb.DuckDBPyConnection) -> None:
    tables = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables() WHERE database_name = ?",
                                        [_ALIAS]).fetchall()}
    if tables and "_migrations" not in tables:
        # Somebody else's DuckDB file: migrating it would mix curator's tables into theirs (or fail on
        # a table of the same name).
        path = con.execute("SELECT path FROM duckdb_databases() WHERE database_name = ?", [_ALIAS]).fetchall()[0][0]
        raise WorkspaceError(f"{path} is not a curator workspace (it has tables {', '.join(sorted(tables)[:5])} but no "
                             "curator migration record); pass another --workspace folder")
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
