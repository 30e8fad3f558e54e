"""The one request runner: teacher requests of generation and judge requests of evaluation alike.

::

    store = RequestStore(ws)                      # the cache: short connections, never held while waiting
    runner = Runner(store, job="...", budget=Budget(2.0), retry=RetryPolicy())
    teacher = Endpoint("openai:gpt-4o-mini", prices=load_prices(), concurrency=16, limiter=RateLimiter(rpm=500))
    reply = await runner.call(teacher, Request(messages, GenParams()))   # CachedResponse | None

For each request :meth:`Runner.call`:

1. answers from the cache (the ``requests`` table, :mod:`curator.llm.cache`) when the same request
   was answered before, or shares the answer of the same request in flight;
2. waits for a slot of the endpoint (``concurrency`` requests in flight) and for its rate limits
   (:class:`~curator.llm.limits.RateLimiter`, requests and tokens per minute);
3. reserves the request's worst-case cost in the :class:`~curator.llm.budget.Budget`: a request that
   could cross the cap waits for the requests in flight to settle and tries again; the run stops
   at the budget only when nothing is in flight and the request still does not fit;
4. asks the provider, each try within the policy's overall ``deadline`` (a reply dripping a byte at a
   time cannot hold it forever), retrying 429 / 5xx / timeouts with backoff and ``Retry-After``, both
   capped at ``max_delay`` (:class:`~curator.llm.limits.RetryPolicy`); ``stop_after_failures`` failed
   requests in a row stop the run; failures are counted by reason (:attr:`RunStats.failures`);
5. clamps the reply's ``usage`` into ``[0, bound]`` (a missing or invalid count is charged at the
   bound, so no reply can take spend below zero or past the cap, or overflow a column), settles the
   budget with that cost and commits the response (or the failure) to the cache *before* returning
   it, with every known API key (:mod:`curator.llm.keys`, and the provider's own) scrubbed from what
   is stored: the request, the response, its text and the error.

:func:`run_requests` is the whole thing for a list of requests, from synchronous code (the judge).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import random
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from curator.errors import ConfigError, MissingKeyError, ProviderError
from curator.llm.budget import (
    Budget,
    Price,
    PriceTable,
    PriceUnknownError,
    estimate_input_tokens,
    max_input_tokens,
)
from curator.llm.cache import CachedResponse, RequestRow, RequestStore, request_key
from curator.llm.keys import api_key, keys_file, known_secrets, scrub, scrub_value
from curator.llm.limits import RateLimiter, RetryPolicy
from curator.llm.providers import (
    Completion,
    GenParams,
    Provider,
    RetryableError,
    failure_reason,
    make_provider,
    parse_spec,
)
from curator.workspace import Workspace

if TYPE_CHECKING:
    from curator.llm.batch import BatchSession

__all__ = [
    "REMOTE_CONCURRENCY",
    "Endpoint",
    "Request",
    "RunResult",
    "RunStats",
    "Runner",
    "open_provider",
    "run_async",
    "run_requests",
]

REMOTE_CONCURRENCY = 16
MAX_TOKENS_STORED = 2**31 - 1  # the INTEGER columns of ``requests``
T = TypeVar("T")


@dataclass
class Request:
    """One request: the chat, its sampling parameters, and ``extra`` (what sets it apart in the cache key).

    ``key`` is the cache key (:func:`curator.llm.cache.request_key`); :meth:`Endpoint.keyed` fills it in.
    """

    messages: list[dict[str, Any]]
    params: GenParams
    extra: dict[str, Any] = field(default_factory=dict)
    key: str = ""


def open_provider(spec: str, **kw: Any) -> Provider:
    """:func:`~curator.llm.providers.make_provider`, with the key from the keys file when its variable is unset."""
    kind, _, _ = parse_spec(spec)
    key = api_key(kind)
    if key:
        kw.setdefault("api_key", key)
    try:
        return make_provider(spec, **kw)
    except MissingKeyError as e:
        e.args = (f"{e} (or add '{e.variable}: ...' to {keys_file()})",)
        raise


class Endpoint:
    """A provider (made on first use from a spec, or given), with its price, concurrency and rate limits.

    ``batch=True``: its requests go through the provider's batch API (:mod:`curator.llm.batch`), so its
    price is the batch price.  ``provider_options`` go to the provider's constructor (``engine`` of a
    local model).
    """

    def __init__(self, spec: str | Provider, *, prices: PriceTable | None = None, concurrency: int | None = None,
                 limiter: RateLimiter | None = None, batch: bool = False,
                 provider_options: dict[str, Any] | None = None) -> None:
        from curator.llm.providers.local import DEFAULT_BATCH_SIZE

        if isinstance(spec, Provider):
            self._provider: Provider | None = spec
            self.kind, self.model, self.spec, self.remote = spec.name, spec.model, spec.spec, spec.remote
        else:
            self._provider = None
            self.kind, self.model, _ = parse_spec(spec)
            self.spec, self.remote = spec.strip(), self.kind != "local"
        self.owned = self._provider is None
        self.batch = batch
        self.provider_options = dict(provider_options or {})
        self.price: Price | None = prices.lookup(self.kind, self.model, batch=batch) if prices is not None else None
        self.concurrency = concurrency or (REMOTE_CONCURRENCY if self.remote else DEFAULT_BATCH_SIZE)
        if self.concurrency < 1:
            raise ConfigError("--concurrency must be >= 1")
        self.limiter = limiter or RateLimiter()
        self._sem: asyncio.Semaphore | None = None

    def provider(self) -> Provider:
        """The provider, made now when it was given as a spec (a missing key or bad model fails here)."""
        if self._provider is None:
            kw: dict[str, Any] = {"batch_size": self.concurrency} if self.kind == "local" else {}
            kw.update(self.provider_options)
            self._provider = open_provider(self.spec, **kw)
        return self._provider

    def key(self, messages: list[dict[str, Any]], params: GenParams, extra: dict[str, Any] | None = None) -> str:
        return request_key(self.kind, self.model, messages, params.to_dict(), extra)

    def keyed(self, req: Request) -> Request:
        """``req`` with its cache key for this endpoint filled in (when it has none)."""
        if not req.key:
            req.key = self.key(req.messages, req.params, req.extra)
        return req

    def reservation(self, req: Request) -> float:
        """The most ``req`` can cost: its input at the byte bound, its output at ``max_tokens``."""
        return self.price.cost(max_input_tokens(req.messages), req.params.max_tokens) if self.price else 0.0

    def slot(self) -> asyncio.Semaphore:
        if self._sem is None:
            self._sem = asyncio.Semaphore(self.concurrency)
        return self._sem

    async def aclose(self, *, given_too: bool = False) -> None:
        """Close the provider if this endpoint made it (or ``given_too``); a later call makes a new one."""
        if self._provider is not None and (self.owned or given_too):
            await self._provider.aclose()
            if self.owned:
                self._provider = None
        self._sem = None


@dataclass
class RunStats:
    """What a runner did.  A request counts once (``made``, ``cached``, ``failed`` or ``not_started``)."""

    made: int = 0  # answered by the provider in this run
    cached: int = 0  # answered from the cache (or by the same request in flight)
    failed: int = 0  # still failing after retries (recorded; retried by the next run)
    not_started: int = 0  # not started because the run stopped (budget, failing provider)
    api_calls: int = 0  # provider calls, retries included
    retries: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    spent_usd: float | None = 0.0  # this run; None once a price is unknown
    stopped: str | None = None  # "budget" | "failing"
    message: str = ""
    consecutive_failures: int = 0
    last_error: str = ""  # of the last failed request (secrets scrubbed)
    failures: dict[str, dict[str, Any]] = field(default_factory=dict)  # reason -> {"count", "example"}
    usage_invalid: int = 0  # replies whose usage was missing or invalid (charged at the bound)
    usage_clamped: int = 0  # replies that claimed more tokens than the request allows (clamped)
    retry_after_capped: int = 0  # waits a server's Retry-After asked to be longer than max_delay
    retry_after_max: float = 0.0  # the longest Retry-After asked for (seconds)
    deadline_hits: int = 0  # tries cut off at the policy's deadline
    batches_submitted: int = 0  # provider batches submitted by this run (curator.llm.batch)
    batches_resumed: int = 0  # provider batches an earlier run submitted, polled and collected by this one
    batch_ids: list[str] = field(default_factory=list)  # the provider's ids of those batches

    def warnings(self, policy: RetryPolicy) -> list[str]:
        """What a user should know about the replies (usage, Retry-After, deadlines), one line each."""
        out = []
        if self.retry_after_capped:
            out.append(f"the server asked to wait up to {self.retry_after_max:g} s (Retry-After) before "
                       f"{self.retry_after_capped} retr{'y' if self.retry_after_capped == 1 else 'ies'}; curator "
                       f"waited at most {policy.max_delay:g} s each (its cap on backoff)")
        if self.deadline_hits:
            out.append(f"{self.deadline_hits} tr{'y' if self.deadline_hits == 1 else 'ies'} got no complete "
                       f"reply within the deadline of {policy.deadline:g} s per request and "
                       f"{'was' if self.deadline_hits == 1 else 'were'} cut off")
        if self.usage_invalid:
            out.append(f"{self.usage_invalid} repl{'y' if self.usage_invalid == 1 else 'ies'} had a missing or "
                       "invalid token usage: charged at the request's bound (input bytes, max tokens)")
        if self.usage_clamped:
            out.append(f"{self.usage_clamped} repl{'y' if self.usage_clamped == 1 else 'ies'} claimed more tokens "
                       "than the request allows: counted at the request's bound")
        return out


class Runner:
    """Runs requests through the cache, the budget, retries and rate limits (see the module docstring).

    ``job`` labels the rows it writes; ``secrets`` defaults to :func:`~curator.llm.keys.known_secrets`.
    One runner may serve several endpoints (a teacher and its judge): they share the budget, the
    stop and the counts.  With ``batch`` (a :class:`~curator.llm.batch.BatchSession`), the requests of
    endpoints that have a batch API go through provider batches instead of live calls (:meth:`run`
    submits them together; :meth:`call` of a request no batch has seen submits a batch of one).
    """

    def __init__(self, store: RequestStore, *, job: str, budget: Budget | None = None, retry: RetryPolicy | None = None,
                 secrets: list[str] | None = None) -> None:
        self.store, self.job = store, job
        self.budget = budget if budget is not None else Budget(None)
        self.policy = retry or RetryPolicy()
        self.secrets = known_secrets() if secrets is None else secrets
        self.stats = RunStats()
        self.spend_known = True
        self.rng = random.Random()
        self._inflight: dict[str, asyncio.Future[CachedResponse | None]] = {}
        self._settled: asyncio.Event | None = None  # set (and replaced) whenever a reservation settles
        self._refused = 0.0  # the reservation the budget stop refused
        self._provider_secrets: dict[int, list[str]] = {}
        self.batch: BatchSession | None = None

    def stop(self, why: str, message: str) -> None:
        """Start no more requests (those in flight finish); the first reason stays."""
        if self.stats.stopped is None:
            self.stats.stopped, self.stats.message = why, message

    def budget_message(self) -> str:
        """The budget stop's message, with the spend as it is now (the report's amount)."""
        b = self.budget
        return (f"stopped at the budget of ${b.cap or 0:.4f}: ${b.spent:.4f} spent for the job "
                f"(${b.spent_this_run:.4f} by this run), and the next request could cost up to "
                f"${self._refused:.4f}, more than the ${b.left or 0:.4f} left")

    def _secrets(self, provider: Provider) -> list[str]:
        """The known secrets plus the provider's own credentials, longest first."""
        got = self._provider_secrets.get(id(provider))
        if got is None:
            extra = [k.strip() for k in provider.secrets() if k and len(k.strip()) >= 6 and k.strip() not in
                     ("not-needed", "none", "EMPTY")]
            got = sorted(set(self.secrets) | set(extra), key=len, reverse=True)
            self._provider_secrets[id(provider)] = got
        return got

    def _settle(self, reserve: float, cost: float) -> None:
        self.budget.settle(reserve, cost)
        if self._settled is not None:
            self._settled.set()
            self._settled = None
        if self.stats.stopped == "budget":
            self.stats.message = self.budget_message()

    async def _reserve(self, amount: float) -> bool:
        """Reserve ``amount``, waiting for requests in flight to settle while it does not fit; False
        (and the run stops at the budget) when it does not fit with nothing in flight."""
        st = self.stats
        while True:
            if st.stopped:
                return False
            if self.budget.try_reserve(amount):
                return True
            if self.budget.holds == 0:
                self.refuse_budget(amount)
                return False
            if self._settled is None:
                self._settled = asyncio.Event()
            await self._settled.wait()

    def refuse_budget(self, amount: float) -> None:
        """Stop at the budget: the next request (or provider batch), which could cost ``amount``, does not fit."""
        self._refused, self.budget.exhausted = amount, True
        self.stop("budget", "")
        self.stats.message = self.budget_message()

    def note_failure(self, err: BaseException, count: int = 1) -> None:
        """Count ``count`` requests as failed with ``err`` (a provider batch refused as a whole)."""
        msg = self.stats.last_error = str(err)
        for _ in range(count):
            self._fail(failure_reason(err), msg)
        self.stats.failed += count

    def _fail(self, reason: str, message: str) -> None:
        st = self.stats
        entry = st.failures.setdefault(reason, {"count": 0, "example": message})
        entry["count"] += 1

    async def call(self, endpoint: Endpoint, req: Request) -> CachedResponse | None:
        """The response to ``req``: from the cache, or asked (with retries) and committed before returning.

        None when the request failed after its retries or was not started (the run stopped).
        """
        key = endpoint.keyed(req).key
        hit = await self.store.lookup(key)
        batch = self.batch if self.batch is not None and self.batch.handles(endpoint) else None
        if hit is not None:
            if batch is None or key not in batch.answered:  # a batch of this run counted it as made
                self.stats.cached += 1
            return hit
        if batch is not None:  # no live call: through a batch (counted there), or not at all
            if key not in batch.handled:
                await batch.fetch(self, endpoint, [req])
            return self.store.get(key, query=False)
        if key in self._inflight:  # the same request is being asked right now: share its answer
            self.stats.cached += 1
            return await asyncio.shield(self._inflight[key])
        fut: asyncio.Future[CachedResponse | None] = asyncio.get_running_loop().create_future()
        self._inflight[key] = fut
        try:
            res = await self._ask(endpoint, req)
        except BaseException as e:
            fut.set_exception(e)
            fut.exception()  # retrieved: waiters (if any) re-raise it
            raise
        finally:
            self._inflight.pop(key, None)
        fut.set_result(res)
        return res

    async def run(self, endpoint: Endpoint, requests: Sequence[Request],
                  on_done: Callable[[RunStats], None] | None = None) -> list[CachedResponse | None]:
        """:meth:`call` for every request, concurrently (bounded by the endpoint); results in order.

        With a batch session for the endpoint, the requests not in the cache go out as provider batches first.
        """
        if self.batch is not None and self.batch.handles(endpoint):
            await self.batch.fetch(self, endpoint, list(requests))

        async def one(req: Request) -> CachedResponse | None:
            try:
                return await self.call(endpoint, req)
            finally:
                if on_done is not None:
                    on_done(self.stats)

        return list(await asyncio.gather(*(one(r) for r in requests)))

    async def _ask(self, endpoint: Endpoint, req: Request) -> CachedResponse | None:
        st, params, messages = self.stats, req.params, req.messages
        async with endpoint.slot():
            reserve = endpoint.reservation(req)
            if st.stopped or not await self._reserve(reserve):
                st.not_started += 1
                return None
            try:
                provider = endpoint.provider()
            except BaseException:
                self._settle(reserve, 0.0)
                raise
            attempts, comp = 0, None
            err: ProviderError | None = None
            try:
                while True:
                    attempts += 1
                    await endpoint.limiter.acquire(estimate_input_tokens(messages) + params.max_tokens)
                    st.api_calls += 1
                    try:
                        comp = await self._try(endpoint, provider, messages, params)
                        break
                    except RetryableError as e:
                        err = e
                        if attempts >= self.policy.max_attempts:
                            break
                        if e.retry_after is not None and self.policy.caps(e.retry_after):
                            st.retry_after_capped += 1
                            st.retry_after_max = max(st.retry_after_max, e.retry_after)
                        st.retries += 1
                        await asyncio.sleep(self.policy.delay(attempts, e.retry_after, self.rng))
                    except ProviderError as e:
                        err = e
                        break
            except BaseException:
                self._settle(reserve, 0.0)  # cancelled (Ctrl-C): nothing was received, nothing counted
                raise
            # Count and settle while the slot is held (the next request sees a stop at once); the
            # slot is free before the write, so the next request is on its way while DuckDB commits.
            row = self.outcome(endpoint, req, provider, comp, err, attempts, reserve=reserve)
        await self.store.put(row)  # committed before anyone parses it
        return self.store.get(req.key, query=False) if row.status == "ok" else None

    def request_record(self, req: Request, provider: Provider) -> dict[str, Any]:
        """What the cache stores as the request: the chat, the parameters and ``extra``, secrets scrubbed."""
        return scrub_value({"messages": req.messages, "params": req.params.to_dict(), "extra": req.extra},
                           self._secrets(provider))

    def outcome(self, endpoint: Endpoint, req: Request, provider: Provider, comp: Completion | None,
                err: BaseException | None, attempts: int, *, reserve: float | None) -> RequestRow:
        """The cache row of a finished request (the reply, or the error of the last try), counted in the stats.

        Usage is clamped (:meth:`_usage`), the cost is at the endpoint's price, secrets are scrubbed from
        everything stored.  ``reserve``: the request's reservation, settled here with its cost; None for a
        request of a provider batch (the batch's reservation is settled once, for all its requests, and a
        failed request of a finished batch is not a failure in a row of live calls).
        """
        st = self.stats
        secrets = self._secrets(provider)
        request = self.request_record(req, provider)
        attempts += self.store.previous_attempts(req.key)
        if comp is None:
            msg = st.last_error = scrub(str(err), secrets)
            self._fail(failure_reason(err) if err is not None else "error", msg)
            row = RequestRow(req.key, endpoint.kind, endpoint.model, request, "failed", self.job, attempts, error=msg)
            st.failed += 1
            if reserve is not None:
                self._settle(reserve, 0.0)
                st.consecutive_failures += 1
                if st.consecutive_failures >= self.policy.stop_after_failures:
                    self.stop("failing", f"{st.consecutive_failures} requests in a row failed; last error: {msg}")
            return row
        tin, tout = self._usage(endpoint, req, comp)
        cost = endpoint.price.cost(tin, tout) if endpoint.price else None
        row = RequestRow(req.key, endpoint.kind, endpoint.model, request, "ok", self.job, attempts,
                         response=_storable(scrub_value(comp.raw, secrets)) or None,
                         text=scrub(comp.text, secrets), finish_reason=comp.finish_reason, input_tokens=tin,
                         output_tokens=tout, cost_usd=cost)
        if reserve is not None:
            self._settle(reserve, cost or 0.0)
        st.consecutive_failures = 0
        st.made += 1
        st.input_tokens += tin
        st.output_tokens += tout
        if cost is None:
            self.spend_known = False
        st.spent_usd = self.budget.spent_this_run if self.spend_known else None
        return row

    def settle(self, reserve: float, cost: float) -> None:
        """Swap a reservation for what it cost (a provider batch's, once its results are in)."""
        self._settle(reserve, cost)
        self.stats.spent_usd = self.budget.spent_this_run if self.spend_known else None

    async def _try(self, endpoint: Endpoint, provider: Provider, messages: list[dict[str, Any]],
                   params: GenParams) -> Completion:
        """One try, cut off at the policy's deadline (remote providers; a local batch is not cut)."""
        if not endpoint.remote:
            return await provider.complete(messages, params)
        try:
            async with asyncio.timeout(self.policy.deadline):
                return await provider.complete(messages, params)
        except TimeoutError:
            self.stats.deadline_hits += 1
            raise RetryableError(f"{endpoint.spec}: no complete reply within the {self.policy.deadline:g} s "
                                 "deadline per request", reason="deadline") from None

    def _usage(self, endpoint: Endpoint, req: Request, comp: Completion) -> tuple[int, int]:
        """The reply's token counts, clamped into ``[0, bound]``; a missing or invalid one is the bound.

        The bound is the request's reservation: its input bytes (:func:`max_input_tokens`) and
        ``max_tokens``.  A local model's counts are its own tokenizer's (only kept in the column's range).
        """
        st = self.stats
        if not endpoint.remote:
            return (min(max(comp.input_tokens or 0, 0), MAX_TOKENS_STORED),
                    min(max(comp.output_tokens or 0, 0), MAX_TOKENS_STORED))
        bound_in, bound_out = min(max_input_tokens(req.messages), MAX_TOKENS_STORED), req.params.max_tokens
        if comp.input_tokens is None or comp.output_tokens is None:
            st.usage_invalid += 1
        tin = bound_in if comp.input_tokens is None else comp.input_tokens
        tout = bound_out if comp.output_tokens is None else comp.output_tokens
        if tin > bound_in or tout > bound_out:
            st.usage_clamped += 1
        return min(tin, bound_in), min(tout, bound_out)


def _storable(value: Any) -> Any:
    """``value`` with integers outside 64 bits (JSON allows them; orjson does not) made floats."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and not -(2**63) <= value < 2**64:
        return float(value)
    if isinstance(value, dict):
        return {k: _storable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_storable(v) for v in value]
    return value


def run_async(fn: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """``asyncio.run``, also from code that already runs an event loop (a notebook).

    (uvloop's loop was measured here too: no change at 32 requests in flight, where the time goes to
    the SDK's HTTP stack, not the loop.)
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(fn())
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(fn())).result()


@dataclass
class RunResult:
    """The responses of :func:`run_requests` (in order; None: failed or not started) and what it did."""

    responses: list[CachedResponse | None]
    stats: RunStats
    budget: Budget
    to_request: int  # requests the cache did not answer when the run began


def run_requests(
    ws: Workspace,
    provider: str | Provider | Endpoint,
    requests: Sequence[Request],
    *,
    job: str,
    budget_usd: float | None = None,
    retry: RetryPolicy | None = None,
    concurrency: int | None = None,
    rpm: float | None = None,
    tpm: float | None = None,
    prices: PriceTable | None = None,
    close_provider: bool = True,
    log: Callable[[str], None] | None = None,
) -> RunResult:
    """Run ``requests`` (from synchronous code) through one :class:`Runner`; see the module docstring.

    The cache is read in one short query first; during the run the workspace is opened only for the
    cache's short steps.  ``budget_usd`` needs the model's price (:class:`PriceUnknownError` otherwise).
    ``close_provider``: close a given provider at the end too (one made from a spec always is).
    """
    from curator.llm.budget import load_prices

    if isinstance(provider, Endpoint):
        endpoint = provider
    else:
        table = prices if prices is not None else load_prices(workspace_dir=ws.path)
        endpoint = Endpoint(provider, prices=table, concurrency=concurrency, limiter=RateLimiter(rpm, tpm))
    if budget_usd is not None and endpoint.price is None:
        raise PriceUnknownError(
            f"no price for {endpoint.spec}: add it to a prices file (--prices FILE, $CURATOR_PRICES or "
            f"{ws.path / 'prices.yaml'}) to use a budget")
    reqs = [endpoint.keyed(r) for r in requests]
    store = RequestStore(ws)
    store.preload([r.key for r in reqs])
    todo = sum(1 for r in reqs if store.get(r.key, query=False) is None)
    if log is not None and reqs:
        log(f"{endpoint.spec}: {len(reqs) - todo} cached, {todo} to request")
    runner = Runner(store, job=job, budget=Budget(budget_usd), retry=retry)
    if todo:
        endpoint.provider()  # fail fast on a missing key or a bad model

    async def main() -> list[CachedResponse | None]:
        try:
            return await runner.run(endpoint, reqs)
        finally:
            await endpoint.aclose(given_too=close_provider)

    try:
        responses = run_async(main) if todo else [store.get(r.key, query=False) for r in reqs]
    finally:
        store.close()
    if not todo:
        runner.stats.cached = len(reqs)
    return RunResult(responses, runner.stats, runner.budget, todo)
