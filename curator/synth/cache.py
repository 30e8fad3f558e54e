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

Writes from the event loop (:meth:`RequestStore.put`) are batched without delay: responses that
arrive in the same turn of the loop are written by one multi-row ``INSERT`` at the end of that turn,
then their waiters resume.  (A writer thread was measured too: it contends for the GIL and was
slower with 32 requests in flight.)
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass
from typing import Any

import orjson

__all__ = ["CachedResponse", "RequestRow", "RequestStore", "request_key"]

KEY_VERSION = 1


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
    """A stored ``ok`` response (what a :class:`~curator.synth.providers.Completion` needs, minus ``raw``)."""

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


class RequestStore:
    """Reads and (batched) writes of the ``requests`` table over one open connection."""

    def __init__(self, con: Any) -> None:
        self.con = con
        self._ok: dict[str, CachedResponse] = {}
        self._failed_attempts: dict[str, int] = {}
        self._checked: set[str] = set()  # keys whose rows are known (preloaded, queried or written)
        self._pending: list[tuple[RequestRow, asyncio.Future[None]]] = []
        self._scheduled = False
        self.writes = 0  # INSERT statements issued (batches)

    # -- reads -----------------------------------------------------------------------------------------------
    def preload(self, keys: list[str]) -> None:
        """Fetch the rows of ``keys`` in one query (ok responses and attempts of failed ones)."""
        if not keys:
            return
        import pyarrow as pa

        self.con.register("_want_keys", pa.table({"key": sorted(set(keys))}))
        try:
            rows = self.con.execute(
                """SELECT r.key, r.status, r.text, r.input_tokens, r.output_tokens, r.finish_reason, r.cost_usd,
                          r.attempts
                   FROM requests r JOIN _want_keys w ON w.key = r.key"""
            ).fetchall()
        finally:
            self.con.unregister("_want_keys")
        self._absorb(rows)
        self._checked.update(keys)

    def _absorb(self, rows: list[tuple[Any, ...]]) -> None:
        for key, status, text, tin, tout, finish, cost, attempts in rows:
            if status == "ok":
                self._ok[key] = CachedResponse(key, text or "", int(tin or 0), int(tout or 0), finish or "unknown", cost)
            else:
                self._failed_attempts[key] = max(self._failed_attempts.get(key, 0), int(attempts or 0))

    def get(self, key: str, *, query: bool = True) -> CachedResponse | None:
        """The stored ok response of ``key``; asks the database when it was not preloaded."""
        if key in self._ok or key in self._checked or not query:
            return self._ok.get(key)
        rows = self.con.execute(
            """SELECT key, status, text, input_tokens, output_tokens, finish_reason, cost_usd, attempts
               FROM requests WHERE key = ?""",
            [key],
        ).fetchall()
        self._absorb(rows)
        self._checked.add(key)
        return self._ok.get(key)

    def previous_attempts(self, key: str) -> int:
        return self._failed_attempts.get(key, 0)

    # -- writes ----------------------------------------------------------------------------------------------
    def write(self, rows: list[RequestRow]) -> None:
        """Write rows now, on this store's connection (replacing failed rows of the same keys)."""
        self._insert(self.con, rows)
        self._remember(rows)

    def _insert(self, con: Any, rows: list[RequestRow]) -> None:
        """One transaction per chunk: delete the failed rows being replaced, insert the new ones."""
        for start in range(0, len(rows), _MAX_ROWS_PER_INSERT):
            chunk = rows[start : start + _MAX_ROWS_PER_INSERT]
            marks = ",".join(["(?,?,?,?,?,?,?,?,?,?,?,?,?,?)"] * len(chunk))
            replaced = [r.key for r in chunk if r.key in self._failed_attempts]
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
        """Queue ``row``; returns once it is committed.  Rows queued in the same turn of the event loop
        share one write, which runs at the end of that turn (a few milliseconds for dozens of rows)."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        self._pending.append((row, fut))
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush)
        await fut

    def _flush(self) -> None:
        self._scheduled = False
        batch, self._pending = self._pending, []
        if not batch:
            return
        rows = [r for r, _ in batch]
        try:
            self._insert(self.con, rows)
        except BaseException as e:  # the waiters see the database error
            for _, fut in batch:
                if not fut.done():
                    fut.set_exception(e)
            return
        self._remember(rows)
        for _, fut in batch:
            if not fut.done():
                fut.set_result(None)

    def close(self) -> None:
        """Nothing to release today (writes run on the event loop's thread); kept for callers."""
