"""Provider batch APIs: many requests as one OpenAI Batch or Anthropic Message Batch, at batch prices.

::

    runner = Runner(store, job=job, budget=Budget(5.0))
    runner.batch = BatchSession(poll_interval=30)
    teacher = Endpoint("openai:gpt-4o-mini", prices=table, batch=True)   # priced at batch prices
    await runner.run(teacher, requests)            # submit, poll, file the results; then cache hits

:meth:`BatchSession.fetch` takes the requests the cache (the ``requests`` table) does not answer and:

1. finds the batches an earlier run submitted for any of them (the ``llm_batches`` table, whichever
   job): those are polled, not submitted again, so a rerun after a crash or a ``kill -9`` pays once;
   their reservation is held in the budget again;
2. splits the others into batches within the provider's limits (requests and bytes per batch), and
   for each reserves its worst case at batch prices (a batch that does not fit is cut to what fits;
   the rest is not started and the run stops at the budget), records it (its requests with their
   keys, status ``submitting``) *before* asking the provider, then submits it and records the
   provider's batch id (``submitted``).  The custom id of each request is its cache key;
3. polls every live batch each ``poll_interval`` seconds, with progress (:mod:`curator.progress`);
4. files the results of an ended batch in the request cache under the same keys, with the same rows
   as live requests (usage clamped, cost at batch prices, secrets scrubbed: :meth:`Runner.outcome`):
   a later live run, or a run with another batch setting, finds them.  A request that failed in the
   batch leaves a ``failed`` row, which the next run asks again.  The batch's reservation is settled
   with what its requests cost, and only then is the batch marked ``done``.

A kill between submitting and recording the provider's id leaves a ``submitting`` row: for OpenAI
the next run finds the batch by the tag in its metadata; Anthropic's batches carry no such tag, so
such a batch is marked ``lost`` and its requests go out again (the window is one HTTP round trip).
"""

from __future__ import annotations

import asyncio
import functools
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import duckdb
import orjson

from curator.errors import ConfigError, ProviderError
from curator.llm.providers import Completion, GenParams, Provider, RetryableError
from curator.progress import Progress, progress

if TYPE_CHECKING:
    from curator.llm.runner import Endpoint, Request, Runner

__all__ = ["BATCH_KINDS", "DEFAULT_POLL_INTERVAL", "BatchRecord", "BatchSession", "batch_records"]

#: Provider kinds with a batch API.
BATCH_KINDS = ("openai", "anthropic")
DEFAULT_POLL_INTERVAL = 30.0
#: Poll errors in a row (429, 5xx, timeouts) after which a batch is left for the next run.
MAX_POLL_ERRORS = 20


@dataclass
class BatchRecord:
    """One row of ``llm_batches`` with the keys of its requests."""

    id: str  # curator's
    provider: str
    model: str
    job: str
    batch_id: str | None  # the provider's
    status: str  # submitting | submitted | done | failed | lost
    keys: list[str]
    reserved_usd: float
    provider_status: str | None = None
    error: str | None = None
    requests: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False)  # key -> stored request


def batch_records(con: duckdb.DuckDBPyConnection, *, live_only: bool = False, provider: str | None = None,
                  model: str | None = None) -> list[BatchRecord]:
    """The recorded provider batches (oldest first), their request keys included."""
    conds, args = [], []
    if live_only:
        conds.append("b.status IN ('submitting', 'submitted')")
    if provider is not None:
        conds.append("b.provider = ?")
        args.append(provider)
    if model is not None:
        conds.append("b.model = ?")
        args.append(model)
    where = f"WHERE {' AND '.join(conds)}" if conds else ""
    rows = con.execute(
        f"""SELECT b.id, b.provider, b.model, b.job, b.batch_id, b.status, b.reserved_usd, b.provider_status, b.error,
                   list(r.key ORDER BY r.key)
            FROM llm_batches b LEFT JOIN llm_batch_requests r ON r.batch = b.id {where}
            GROUP BY ALL ORDER BY min(b.created_at), b.id""", args).fetchall()
    return [BatchRecord(r[0], r[1], r[2], r[3], r[4], r[5], [k for k in (r[9] or []) if k], float(r[6] or 0.0),
                        r[7], r[8]) for r in rows]


def _stored_requests(con: duckdb.DuckDBPyConnection, batch: str) -> dict[str, dict[str, Any]]:
    rows = con.execute("SELECT key, request::VARCHAR FROM llm_batch_requests WHERE batch = ?", [batch]).fetchall()
    return {k: orjson.loads(r) for k, r in rows}


@dataclass
class BatchSession:
    """Requests through provider batches for the endpoints whose provider has a batch API (see the module docstring).

    ``poll_interval``: seconds between two polls of the live batches; ``max_requests``: the most requests
    per batch (default: the provider's limit); ``log``: a line per batch submitted or resumed.
    ``handled``: keys this session took care of (answered, failed or not started); ``answered``: those it
    filed a reply for (:meth:`Runner.call` does not count them again as cache hits).
    """

    poll_interval: float = DEFAULT_POLL_INTERVAL
    progress: bool = True
    max_requests: int | None = None
    log: Callable[[str], None] | None = None
    handled: set[str] = field(default_factory=set)
    answered: set[str] = field(default_factory=set)
    warnings: list[str] = field(default_factory=list)
    polls: int = 0

    def __post_init__(self) -> None:
        if not self.poll_interval >= 0:
            raise ConfigError(f"--poll-interval must be a number of seconds >= 0, got {self.poll_interval!r}")
        if self.max_requests is not None and self.max_requests < 1:
            raise ConfigError("the most requests per batch must be >= 1")

    @staticmethod
    def handles(endpoint: Endpoint) -> bool:
        """Whether ``endpoint``'s requests go through batches (its provider kind has a batch API)."""
        return endpoint.kind in BATCH_KINDS

    def _say(self, msg: str) -> None:
        if self.log is not None:
            self.log(msg)

    # -- the whole thing ---------------------------------------------------------------------------------------
    async def fetch(self, runner: Runner, endpoint: Endpoint, requests: list[Request]) -> None:
        """Get every request of ``requests`` that the cache lacks through provider batches (module docstring)."""
        store = runner.store
        by_key: dict[str, Request] = {}
        for r in requests:
            by_key.setdefault(endpoint.keyed(r).key, r)
        keys = [k for k in by_key if k not in self.handled]
        if not keys:
            return
        await store.apreload(keys)
        todo = [k for k in keys if store.get(k, query=False) is None]
        if not todo:
            self.handled.update(keys)
            return
        provider = endpoint.provider()
        if not provider.batch_api:
            raise ConfigError(f"{endpoint.spec} has no batch API (batches: {', '.join(BATCH_KINDS)})")
        want = set(todo)
        live = await self._resume(runner, endpoint, provider, want)
        covered = {k for rec in live for k in rec.keys}
        fresh = [by_key[k] for k in todo if k not in covered]
        live += await self._submit(runner, endpoint, provider, fresh)
        self.handled.update(keys)
        if live:
            await self._poll(runner, endpoint, provider, live)

    # -- 1. batches of earlier runs ----------------------------------------------------------------------------
    async def _resume(self, runner: Runner, endpoint: Endpoint, provider: Provider,
                      want: set[str]) -> list[BatchRecord]:
        records = await runner.store.execute(
            lambda con: batch_records(con, live_only=True, provider=endpoint.kind, model=endpoint.model))
        out = []
        for rec in records:
            if not want & set(rec.keys):
                continue
            if rec.batch_id is None:  # killed between submitting and recording the provider's id
                found = await provider.find_batch(rec.id)
                if found is None:
                    note = (f"batch {rec.id} of {len(rec.keys)} requests was being submitted when the run "
                            "stopped and the provider has no record of it: its requests are submitted again")
                    if endpoint.kind == "anthropic":
                        note += " (Anthropic's batches carry no tag to find them by: if it did reach Anthropic, "
                        note += "it is billed once more)"
                    self.warnings.append(note)
                    await self._mark(runner, rec.id, status="lost", error="not found at the provider")
                    continue
                rec.batch_id = found
                await self._mark(runner, rec.id, status="submitted", batch_id=found)
            runner.budget.hold(rec.reserved_usd)
            runner.stats.batches_resumed += 1
            runner.stats.batch_ids.append(rec.batch_id)
            self._say(f"{endpoint.spec}: resuming batch {rec.batch_id} ({len(rec.keys)} requests, submitted "
                      "by an earlier run)")
            out.append(rec)
        return out

    # -- 2. new batches ----------------------------------------------------------------------------------------
    def _chunks(self, provider: Provider, items: list[tuple[Request, bytes]]) -> list[list[tuple[Request, bytes]]]:
        most, most_bytes = provider.batch_limits
        if self.max_requests is not None:
            most = min(most, self.max_requests) if most else self.max_requests
        chunks: list[list[tuple[Request, bytes]]] = []
        size = 0
        for it in items:
            if not chunks or (most and len(chunks[-1]) >= most) or (most_bytes and size + len(it[1]) > most_bytes):
                chunks.append([])
                size = 0
            chunks[-1].append(it)
            size += len(it[1])
        return chunks

    async def _submit(self, runner: Runner, endpoint: Endpoint, provider: Provider,
                      requests: list[Request]) -> list[BatchRecord]:
        if not requests:
            return []
        st = runner.stats
        items = [(r, orjson.dumps(runner.request_record(r, provider))) for r in requests]
        out: list[BatchRecord] = []
        chunks = self._chunks(provider, items)
        for n, chunk in enumerate(chunks):
            if st.stopped:
                st.not_started += sum(len(c) for c in chunks[n:])
                break
            costs = [endpoint.reservation(r) for r, _ in chunk]
            fits, total = 0, 0.0
            for c in costs:  # the longest head of the chunk whose worst case fits the budget
                if not runner.budget.fits(total + c):
                    break
                fits, total = fits + 1, total + c
            last = fits < len(chunk)  # the budget stops the run after this (cut) batch
            if last:
                runner.refuse_budget(costs[fits])
                st.not_started += len(chunk) - fits + sum(len(c) for c in chunks[n + 1:])
                if not fits:
                    break
                chunk, costs = chunk[:fits], costs[:fits]
            reserve = sum(costs)
            runner.budget.try_reserve(reserve)
            rec = BatchRecord(f"cb-{uuid.uuid4().hex[:20]}", endpoint.kind, endpoint.model, runner.job, None,
                              "submitting", [r.key for r, _ in chunk], reserve)
            await runner.store.execute(functools.partial(_insert, rec=rec, chunk=chunk))
            try:
                batch_id, file_id = await self._submit_one(runner, provider, rec.id,
                                                           [(r.key, r.messages, r.params) for r, _ in chunk])
            except ProviderError as e:
                runner.settle(reserve, 0.0)
                await self._mark(runner, rec.id, status="failed", error=str(e))
                runner.note_failure(e, len(chunk))
                runner.stop("failing", f"the provider refused a batch of {len(chunk)} requests: {e}")
                st.not_started += sum(len(c) for c in chunks[n + 1:])
                break
            rec.batch_id, rec.status = batch_id, "submitted"
            await self._mark(runner, rec.id, status="submitted", batch_id=batch_id, input_file_id=file_id)
            st.batches_submitted += 1
            st.batch_ids.append(batch_id)
            price = endpoint.price
            self._say(f"{endpoint.spec}: submitted batch {batch_id} ({len(chunk)} requests"
                      + (f", at most ${reserve:.4f} at batch prices" if price is not None else "") + ")")
            out.append(rec)
            if last:
                break
        return out

    async def _submit_one(self, runner: Runner, provider: Provider, tag: str,
                          items: list[tuple[str, list[dict[str, Any]], GenParams]]) -> tuple[str, str | None]:
        """Submit one batch, retrying 429 / 5xx / timeouts; before a retry, ask whether the failed try created
        the batch after all (a timeout after the provider made it), so that a retry never makes a second one."""
        attempt = 0
        while True:
            attempt += 1
            try:
                return await provider.submit_batch(items, tag)
            except RetryableError as e:
                found = await provider.find_batch(tag)
                if found is not None:
                    return found, None
                if attempt >= runner.policy.max_attempts:
                    raise
                runner.stats.retries += 1
                await asyncio.sleep(runner.policy.delay(attempt, e.retry_after, runner.rng))

    async def _with_retries(self, runner: Runner, fn: Callable[[], Any]) -> Any:
        """``await fn()`` retried on RetryableError with the runner's backoff policy."""
        attempt = 0
        while True:
            attempt += 1
            try:
                return await fn()
            except RetryableError as e:
                if attempt >= runner.policy.max_attempts:
                    raise
                runner.stats.retries += 1
                await asyncio.sleep(runner.policy.delay(attempt, e.retry_after, runner.rng))

    # -- 3. polling --------------------------------------------------------------------------------------------
    async def _poll(self, runner: Runner, endpoint: Endpoint, provider: Provider, live: list[BatchRecord]) -> None:
        total = sum(len(r.keys) for r in live)
        done: dict[str, int] = {}
        errors: dict[str, int] = {}
        with progress(f"batch {endpoint.spec}", total, enabled=self.progress) as bar:
            while live:
                states: list[str] = []
                for rec in list(live):
                    assert rec.batch_id is not None
                    try:
                        state = await provider.poll_batch(rec.batch_id)
                    except RetryableError as e:  # a 429 or a 5xx: try again at the next poll
                        errors[rec.id] = errors.get(rec.id, 0) + 1
                        if errors[rec.id] < MAX_POLL_ERRORS:
                            states.append("poll error")
                            continue
                        await self._give_up(runner, rec, f"{errors[rec.id]} polls in a row failed: {e}", keep=True)
                        live.remove(rec)
                        continue
                    except ProviderError as e:  # 404 and the like: the provider does not know it (any more)
                        await self._give_up(runner, rec, str(e), keep=False)
                        live.remove(rec)
                        continue
                    errors.pop(rec.id, None)
                    self.polls += 1
                    done[rec.id] = min(state.done, len(rec.keys))
                    states.append(state.status)
                    if state.ended:
                        results = await self._with_retries(runner, functools.partial(provider.batch_results, state))
                        await self._land(runner, endpoint, provider, rec, state.status, results)
                        done[rec.id] = len(rec.keys)
                        live.remove(rec)
                    _progress(bar, sum(done.values()), states, len(live))
                if live:
                    await asyncio.sleep(self.poll_interval)

    async def _give_up(self, runner: Runner, rec: BatchRecord, why: str, *, keep: bool) -> None:
        """Stop polling a batch: ``keep`` it live for the next run (polls kept failing) or mark it ``lost``."""
        runner.settle(rec.reserved_usd, 0.0)
        runner.stats.not_started += len(rec.keys)
        if keep:
            self.warnings.append(f"batch {rec.batch_id}: {why}; run the same command again to collect it")
        else:
            self.warnings.append(f"batch {rec.batch_id} is lost ({why}): its {len(rec.keys)} requests go out again "
                                 "with the next run")
            await self._mark(runner, rec.id, status="lost", error=why)

    @staticmethod
    async def _mark(runner: Runner, rec_id: str, *, finished: bool = False, **fields: Any) -> None:
        """Update a batch's row (one short step on the store's thread); ``finished`` (or a final status) stamps
        ``finished_at``, a ``batch_id`` stamps ``submitted_at``."""
        fields = {k: v for k, v in fields.items() if v is not None}
        sets = [f"{k} = ?" for k in fields]
        if "batch_id" in fields:
            sets.append("submitted_at = current_timestamp")
        if finished or fields.get("status") in ("done", "failed", "lost"):
            sets.append("finished_at = current_timestamp")
        sql = f"UPDATE llm_batches SET {', '.join(sets)} WHERE id = ?"
        await runner.store.execute(lambda con: con.execute(sql, [*fields.values(), rec_id]))

    # -- 4. results into the cache -----------------------------------------------------------------------------
    async def _land(self, runner: Runner, endpoint: Endpoint, provider: Provider, rec: BatchRecord, status: str,
                    results: dict[str, Completion | ProviderError]) -> None:
        from curator.llm.runner import Request

        store = runner.store
        stored = await store.execute(lambda con: _stored_requests(con, rec.id))
        await store.apreload(rec.keys)
        whole = results.get("*")
        rows = []
        cost = 0.0
        for key in rec.keys:
            if store.get(key, query=False) is not None:  # filed already (a run killed after filing, before 'done')
                continue
            d = stored.get(key) or {}
            req = Request(list(d.get("messages") or []), GenParams(**(d.get("params") or {})),
                          dict(d.get("extra") or {}), key)
            got = results.get(key)
            if got is None:
                got = whole or ProviderError(f"{endpoint.spec}: batch {rec.batch_id} ended ({status}) without a "
                                             "result for this request")
            if isinstance(got, Completion):
                row = runner.outcome(endpoint, req, provider, got, None, 1, reserve=None)
                cost += row.cost_usd or 0.0
                self.answered.add(key)
            else:
                row = runner.outcome(endpoint, req, provider, None, got, 1, reserve=None)
            rows.append(row)
        await asyncio.gather(*(store.put(r) for r in rows))  # committed before the batch is marked done
        runner.settle(rec.reserved_usd, cost)
        await self._mark(runner, rec.id, status="done", provider_status=status)


def _progress(bar: Progress, done: int, states: list[str], live: int) -> None:
    counts: dict[str, int] = {}
    for s in states:
        counts[s] = counts.get(s, 0) + 1
    bar.update(completed=done, note=", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
               + (f"; {live} batch{'es' if live != 1 else ''} to go" if live else ""))


def _insert(con: duckdb.DuckDBPyConnection, rec: BatchRecord, chunk: list[tuple[Any, bytes]]) -> None:
    """The batch's row (``submitting``) and its requests, in one transaction, before the provider is asked."""
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute("INSERT INTO llm_batches (id, provider, model, job, status, requests, reserved_usd) "
                    "VALUES (?, ?, ?, ?, 'submitting', ?, ?)",
                    [rec.id, rec.provider, rec.model, rec.job, len(chunk), rec.reserved_usd])
        rows = [(rec.id, r.key, body.decode()) for r, body in chunk]
        for start in range(0, len(rows), 500):
            part = rows[start : start + 500]
            con.execute("INSERT INTO llm_batch_requests (batch, key, request) VALUES "
                        + ",".join(["(?, ?, ?)"] * len(part)), [v for row in part for v in row])
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")
