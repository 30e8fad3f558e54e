"""The request cache: every teacher / judge request, keyed by what was asked, in the ``requests`` table.

``key = sha256(provider kind, model, messages, generation params, extra)``.  ``extra`` carries
what makes otherwise identical requests different on purpose (the index of request *i* of a
job, so *n* samples of one prompt are *n* entries) or what a follow-up answers (the key of the
request a repair turn continues).  The base URL of a ``compatible:`` server is not part of the
key: the same model behind another address is the same request.

A response is committed here **before** anything parses it, so a crash at any point loses no
paid response: the next run finds it and parses it again.  One ``ok`` row per key; a failed
request leaves a ``failed`` row (with the error and the number of attempts) that the next run
retries and replaces.

Reads and writes from the event loop (:meth:`RequestStore.lookup`, :meth:`RequestStore.put`) are
batched without delay: one database step is in flight at a time, on a thread of the store's own,
and the rows and lookups that arrive while it runs go together in the next one; each waiter resumes
once its row is committed (or read).  DuckDB releases the GIL while it inserts and commits, so the
loop keeps sending requests meanwhile (measured with 32 requests in flight on 2 cores: the request
phase went from 1.13-1.26 s to 1.01-1.07 s, against 0.97 s for the bare SDK with no cache at all).

A store over a :class:`~curator.workspace.Workspace` opens the workspace for each step and closes it
after, so a run that waits on the network does not hold the workspace: another process may read or
write between two steps.  (Its thread attaches the file to a DuckDB instance of its own and detaches
it after each step: a new connection costs a new instance too, 44 ms of CPU against 8 ms.)  When another process holds the workspace at the moment of a step, the
step waits for it (up to ``lock_wait`` seconds, then :class:`~curator.errors.WorkspaceLockedError`).
A store over an open connection uses that connection (its thread steps use a cursor of it).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import duckdb
import orjson

from curator.errors import WorkspaceLockedError
from curator.workspace import ROW_GROUP_SIZE, Workspace, cursor

__all__ = ["CachedResponse", "RequestRow", "RequestStore", "request_key"]

KEY_VERSION = 1
T = TypeVar("T")


def request_key(
    kind: str, model: str, messages: list[dict[str, Any]], params: dict[str, Any], extra: dict[str, Any] | None = None
) -> str:
    """sha256 hex of the canonical JSON of what is asked (see the module docstring)."""
    payload = {
        "v": KEY_VERSION,
        "provider": kind,
        "model": model,
        "messages": [{"role": m["role"], "content": m["content"]} for m in messages],
        "params": params,
        "extra": extra or {},
    }
    return hashlib.sha256(orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)).hexdigest()


@dataclass
class CachedResponse:
    """A stored ``ok`` response (what a :class:`~curator.llm.providers.Completion` needs, minus ``raw``)."""

    key: str
    text: str
    input_tokens: int
    output_tokens: int
    finish_reason: str
    cost_usd: float | None


@dataclass
class RequestRow:
    """One row of ``requests`` to write."""

    key: str
    provider: str
    model: str
    request: dict[str, Any]
    status: str  # "ok" | "failed"
    job: str
    attempts: int
    response: dict[str, Any] | None = None
    text: str | None = None
    finish_reason: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost_usd: float | None = None
    error: str | None = None

    def values(self) -> list[Any]:
        return [
            self.key, self.provider, self.model, orjson.dumps(self.request).decode(),
            None if self.response is None else orjson.dumps(self.response).decode(),
            self.text, self.finish_reason, self.input_tokens, self.output_tokens, self.cost_usd,
            self.status, self.error, self.attempts, self.job,
        ]


_COLUMNS = ("key, provider, model, request, response, text, finish_reason, input_tokens, output_tokens, "
            "cost_usd, status, error, attempts, job")
_MAX_ROWS_PER_INSERT = 200
_ALIAS = "workspace"  # the name the workspace file is attached under (as curator.workspace does)


class RequestStore:
    """Reads and (batched) writes of the ``requests`` table (see the module docstring).

    ``db``: a :class:`~curator.workspace.Workspace` (a short connection per step) or an open
    DuckDB connection of the workspace (used as it is).
    """

    def __init__(self, db: Workspace | duckdb.DuckDBPyConnection, *, lock_wait: float = 60.0) -> None:
        self.db = db
        self.lock_wait = lock_wait
        self._ok: dict[str, CachedResponse] = {}
        self._failed_attempts: dict[str, int] = {}
        self._checked: set[str] = set()  # keys whose rows are known (preloaded, queried or written)
        self._pending: list[tuple[RequestRow, asyncio.Future[None]]] = []
        self._reads: dict[str, list[asyncio.Future[CachedResponse | None]]] = {}
        self._scheduled = False
        self.writes = 0  # INSERT statements issued (batches)
        self.steps = 0  # database steps of the store's thread (each a connection when db is a Workspace)
        self.lock_waits = 0  # times a step found the workspace held by another process and waited
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._mem: duckdb.DuckDBPyConnection | None = None  # the thread's own instance (see _attached)
        self._ready = False  # the workspace was opened (and migrated) by this store once

    # -- connections -----------------------------------------------------------------------------------------
    @contextmanager
    def _connection(self, *, thread: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection for one step: the workspace's (opened now, closed after) or the given one."""
        if not isinstance(self.db, Workspace):
            if not thread:
                yield self.db
                return
            cur = cursor(self.db)
            try:
                yield cur
            finally:
                cur.close()
            return
        with ExitStack() as stack:
            if thread and self._ready:
                try:
                    con = self._enter(stack, self._attached)
                except duckdb.Error as e:
                    if "already attached" not in str(e):
                        raise
                    con = self._enter(stack, self.db.connect)  # open in this process already: share it
            else:
                con = self._enter(stack, self.db.connect)
                self._ready = True  # Workspace.connect migrated the file
            yield con

    @contextmanager
    def _attached(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """The thread's own DuckDB instance with the workspace file attached for one step, detached after.

        Detaching releases the file as closing a connection does, but a new connection also builds a
        new DuckDB instance: 44 ms of CPU a step against 8 ms (measured here).
        """
        assert isinstance(self.db, Workspace)
        if self._mem is None:
            self._mem = duckdb.connect()
        mem, path = self._mem, str(self.db.db_path).replace("'", "''")
        mem.execute(f"ATTACH '{path}' AS {_ALIAS} (ROW_GROUP_SIZE {ROW_GROUP_SIZE})")
        try:
            mem.execute(f"USE {_ALIAS}")
            yield mem
        finally:
            mem.execute("USE memory")
            mem.execute(f"DETACH {_ALIAS}")

    def _enter(self, stack: ExitStack,
               opener: Callable[[], AbstractContextManager[duckdb.DuckDBPyConnection]]) -> duckdb.DuckDBPyConnection:
        """``stack.enter_context(opener())``, tried again while another process holds the workspace
        (up to ``lock_wait`` seconds; then the lock error)."""
        deadline, pause = time.monotonic() + self.lock_wait, 0.02
        while True:
            try:
                return stack.enter_context(opener())
            except (WorkspaceLockedError, duckdb.IOException) as e:
                if isinstance(e, duckdb.IOException) and "lock" not in str(e).lower():
                    raise
                if time.monotonic() >= deadline:
                    raise
                self.lock_waits += 1
                time.sleep(pause)  # another process is in a short step of its own
                pause = min(pause * 2, 0.5)

    # -- reads -----------------------------------------------------------------------------------------------
    def preload(self, keys: list[str]) -> None:
        """Fetch the rows of ``keys`` in one query (ok responses and attempts of failed ones)."""
        want = sorted(set(keys) - self._checked)
        if not want:
            return
        with self._connection() as con:
            rows = _select(con, want)
        self._absorb(rows)
        self._checked.update(want)

    async def apreload(self, keys: list[str]) -> None:
        """:meth:`preload` from the event loop: one query on the store's thread."""
        want = sorted(set(keys) - self._checked)
        if not want:
            return
        rows = await self.execute(lambda con: _select(con, want))
        self._absorb(rows)
        self._checked.update(want)

    def _absorb(self, rows: list[tuple[Any, ...]]) -> None:
        for key, status, text, tin, tout, finish, cost, attempts in rows:
            if status == "ok":
                self._ok[key] = CachedResponse(key, text or "", int(tin or 0), int(tout or 0), finish or "unknown", cost)
            else:
                self._failed_attempts[key] = max(self._failed_attempts.get(key, 0), int(attempts or 0))

    def known(self, key: str) -> bool:
        """Whether the row of ``key`` (or its absence) is known without asking the database."""
        return key in self._ok or key in self._checked

    def get(self, key: str, *, query: bool = True) -> CachedResponse | None:
        """The stored ok response of ``key``; asks the database (now, blocking) when it was not preloaded."""
        if self.known(key) or not query:
            return self._ok.get(key)
        self.preload([key])
        return self._ok.get(key)

    async def lookup(self, key: str) -> CachedResponse | None:
        """:meth:`get` from the event loop: an unknown key is read on the store's thread, batched with others."""
        if self.known(key):
            return self._ok.get(key)
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[CachedResponse | None] = loop.create_future()
        self._reads.setdefault(key, []).append(fut)
        self._schedule(loop)
        return await fut

    def previous_attempts(self, key: str) -> int:
        return self._failed_attempts.get(key, 0)

    # -- writes ----------------------------------------------------------------------------------------------
    def write(self, rows: list[RequestRow]) -> None:
        """Write rows now (replacing failed rows of the same keys)."""
        with self._connection() as con:
            self._insert(con, rows, self._replacing(rows))
        self._remember(rows)

    def _replacing(self, rows: list[RequestRow]) -> set[str]:
        """Keys of ``rows`` whose stored row is a failed attempt (deleted by the insert)."""
        return {r.key for r in rows if r.key in self._failed_attempts}

    def _insert(self, con: duckdb.DuckDBPyConnection, rows: list[RequestRow], failed: set[str]) -> None:
        """One transaction per chunk: delete the failed rows being replaced (keys in ``failed``), insert the new ones."""
        for start in range(0, len(rows), _MAX_ROWS_PER_INSERT):
            chunk = rows[start : start + _MAX_ROWS_PER_INSERT]
            marks = ",".join(["(?,?,?,?,?,?,?,?,?,?,?,?,?,?)"] * len(chunk))
            replaced = [r.key for r in chunk if r.key in failed]
            con.execute("BEGIN TRANSACTION")
            try:
                if replaced:
                    con.execute(f"DELETE FROM requests WHERE status <> 'ok' AND key IN ({','.join('?' * len(replaced))})",
                                replaced)
                con.execute(f"INSERT INTO requests ({_COLUMNS}) VALUES {marks}", [v for r in chunk for v in r.values()])
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")
            self.writes += 1

    def _remember(self, rows: list[RequestRow]) -> None:
        for r in rows:
            self._checked.add(r.key)
            if r.status == "ok":
                self._ok[r.key] = CachedResponse(r.key, r.text or "", int(r.input_tokens or 0),
                                                 int(r.output_tokens or 0), r.finish_reason or "unknown", r.cost_usd)
                self._failed_attempts.pop(r.key, None)
            else:
                self._failed_attempts[r.key] = r.attempts

    async def put(self, row: RequestRow) -> None:
        """Queue ``row``; returns once it is committed.  One step is in flight at a time, on the store's
        thread (DuckDB releases the GIL while it inserts and commits); rows that arrive meanwhile go
        together in the next step."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        self._pending.append((row, fut))
        self._schedule(loop)
        await fut

    async def execute(self, fn: Callable[[duckdb.DuckDBPyConnection], T]) -> T:
        """``fn(connection)`` on the store's thread, in turn with its batched steps (one step at a time), for
        the other tables a long job keeps beside the cache (the provider batches of :mod:`curator.llm.batch`)."""
        loop = asyncio.get_running_loop()
        if self._executor is None:
            self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="curator-cache")

        def step() -> T:
            with self._connection(thread=True) as con:
                return fn(con)

        return await loop.run_in_executor(self._executor, step)

    # -- the store's thread ----------------------------------------------------------------------------------
    def _schedule(self, loop: asyncio.AbstractEventLoop) -> None:
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._start_step, loop)

    def _start_step(self, loop: asyncio.AbstractEventLoop) -> None:
        batch, self._pending = self._pending, []
        reads, self._reads = self._reads, {}
        if not batch and not reads:
            self._scheduled = False
            return
        rows = [r for r, _ in batch]
        failed = self._replacing(rows)  # read here, on the loop's thread, not by the store's thread
        if self._executor is None:
            self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="curator-cache")
        job = loop.run_in_executor(self._executor, self._step, sorted(reads), rows, failed)
        job.add_done_callback(lambda f: self._stepped(loop, batch, reads, rows, f))

    def _step(self, keys: list[str], rows: list[RequestRow], failed: set[str]) -> list[tuple[Any, ...]]:
        """On the store's thread: read the rows of ``keys``, then write ``rows``, over one connection."""
        with self._connection(thread=True) as con:
            found = _select(con, keys) if keys else []
            if rows:
                self._insert(con, rows, failed)
        self.steps += 1
        return found

    def _stepped(self, loop: asyncio.AbstractEventLoop, batch: list[tuple[RequestRow, asyncio.Future[None]]],
                 reads: dict[str, list[asyncio.Future[CachedResponse | None]]], rows: list[RequestRow],
                 done: asyncio.Future[list[tuple[Any, ...]]]) -> None:
        exc = done.exception()
        if exc is None:
            self._absorb(done.result())
            self._checked.update(reads)
            self._remember(rows)
        for _, fut in batch:
            if not fut.done():
                if exc is None:
                    fut.set_result(None)
                else:  # the waiters see the database error
                    fut.set_exception(exc)
        for key, futs in reads.items():
            for rfut in futs:
                if not rfut.done():
                    if exc is None:
                        rfut.set_result(self._ok.get(key))
                    else:
                        rfut.set_exception(exc)
        self._scheduled = False
        self._schedule(loop)  # what arrived during this step (or stop)

    def close(self) -> None:
        """Stop the store's thread (after :meth:`put` and :meth:`lookup` calls have returned)."""
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
        if self._mem is not None:
            self._mem.close()
            self._mem = None


def _select(con: duckdb.DuckDBPyConnection, keys: list[str]) -> list[tuple[Any, ...]]:
    """The rows of ``keys`` (one query; an Arrow table of keys to join when there are many)."""
    cols = "r.key, r.status, r.text, r.input_tokens, r.output_tokens, r.finish_reason, r.cost_usd, r.attempts"
    if len(keys) <= 50:
        return con.execute(f"SELECT {cols} FROM requests r WHERE r.key IN ({','.join('?' * len(keys))})",
                           keys).fetchall()
    import pyarrow as pa

    con.register("_want_keys", pa.table({"key": keys}))
    try:
        return con.execute(f"SELECT {cols} FROM requests r JOIN _want_keys w ON w.key = r.key").fetchall()
    finally:
        con.unregister("_want_keys")
