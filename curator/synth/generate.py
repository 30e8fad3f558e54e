"""Synthetic generation: seed examples (or questions, or weaknesses) in, filtered new examples out.

Three modes, one pipeline::

    plan requests -> ask the teacher (cache, budget, retries, concurrency) -> parse (repair once)
      -> text filters -> leaks -> duplicates -> optional judge -> store examples + rejections

* ``seeds``: request *i* shows the teacher ``k`` train-split seed examples of the task, drawn with
  ``Random(f"{seed}:{i}")``, and asks for ONE new question/answer pair as JSON.  ``n`` is the number
  of requests, so at most ``n`` examples; the report says how many were accepted.
* ``answer``: each question (a JSONL line ``{"messages": [..., user]}`` or ``{"prompt": "..."}``) is
  sent as the conversation itself; the teacher's reply is the answer (distillation).
* ``targeted``: ``n`` requests spread over weakness groups ``{"id", "task", "description",
  "example_ids"}``; the teacher sees the description and, for failing examples in the train or
  eval split only, their question and reference answer (test items never reach the teacher).
  Each example records ``meta.weakness_id``.

Crash safety: every response is committed to ``requests`` before it is parsed; examples are
identified by content and stored with the job's rejections in one transaction at the end.  A
re-run of the same command finds every response in the cache (zero API calls), parses them
again, and stores what is not stored yet, so a ``kill -9`` at any point loses nothing and
duplicates nothing.  Generated examples are pinned to the train split.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import os
import random
import sys
import time
from collections.abc import Callable, Coroutine, Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import orjson

from curator.errors import ConfigError, CuratorError, InputError, MissingKeyError, ProviderError
from curator.llm.budget import (
    Budget,
    Price,
    PriceTable,
    PriceUnknownError,
    estimate_input_tokens,
    load_prices,
    max_input_tokens,
)
from curator.llm.cache import CachedResponse, RequestRow, RequestStore, request_key
from curator.llm.providers import GenParams, Provider, RetryableError, make_provider, parse_spec
from curator.models import DEFAULT_CHAT_MODEL
from curator.records import Example
from curator.synth.filters import Candidate, FilterConfig, Rejection, check_text, find_duplicates, find_leaks
from curator.synth.prompts import Template, format_demos, load_template, parse_pair, parse_score
from curator.workspace import Workspace

__all__ = [
    "DEFAULT_TEACHER",
    "KEYS_FILE_ENV",
    "MODES",
    "REMOTE_CONCURRENCY",
    "GenerateReport",
    "Judge",
    "RateLimiter",
    "RetryPolicy",
    "Weakness",
    "generate",
    "load_questions",
    "load_weaknesses",
]

MODES = ("seeds", "answer", "targeted")
DEFAULT_TEACHER = DEFAULT_CHAT_MODEL
REMOTE_CONCURRENCY = 16
DEFAULT_K = 3
TARGETED_PER_WEAKNESS = 5
KEYS_FILE_ENV = "CURATOR_KEYS_FILE"
_KEY_VARS = {"openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY", "compatible": "CURATOR_COMPATIBLE_API_KEY"}
T = TypeVar("T")


# -- options -------------------------------------------------------------------------------------------------------
@dataclass
class RetryPolicy:
    """Retries of one request on 429 / 5xx / timeouts / dropped connections.

    The wait is the server's ``Retry-After`` when it sends one, else ``base_delay * 2**(attempt-1)``
    (capped at ``max_delay``) times a random factor in [0.5, 1) (jitter).  After ``max_attempts`` the
    request is recorded as failed and the run goes on; ``stop_after_failures`` failed requests in a
    row (no success in between) stop the run, since the provider is then down or the key is wrong.
    """

    max_attempts: int = 6
    base_delay: float = 1.0
    max_delay: float = 60.0
    stop_after_failures: int = 10

    def delay(self, attempt: int, retry_after: float | None, rng: random.Random) -> float:
        if retry_after is not None:
            return min(max(retry_after, 0.0), 10 * self.max_delay) * rng.uniform(1.0, 1.1)
        return min(self.max_delay, self.base_delay * 2 ** (attempt - 1)) * rng.uniform(0.5, 1.0)


@dataclass
class Judge:
    """An LLM judge: candidates scoring below ``min_score`` (1-10) are rejected with reason ``judge``."""

    teacher: str | Provider
    min_score: float = 7.0
    params: GenParams = field(default_factory=lambda: GenParams(max_tokens=200, temperature=0.0))


@dataclass
class Weakness:
    """A group of examples the model got wrong (what ``evals/weaknesses.py`` produces)."""

    id: str
    task: str | None
    description: str
    example_ids: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, d: Weakness | dict[str, Any], where: str = "weakness") -> Weakness:
        if isinstance(d, Weakness):
            return d
        if not isinstance(d, dict) or not d.get("id") or not isinstance(d.get("description", ""), str):
            raise InputError(f"{where}: expected {{\"id\": str, \"task\": str, \"description\": str, "
                             "\"example_ids\": [str, ...]}")
        ids = d.get("example_ids") or []
        if not isinstance(ids, list) or not all(isinstance(x, str) for x in ids):
            raise InputError(f"{where}: example_ids must be a list of example ids")
        return cls(str(d["id"]), d.get("task"), d.get("description") or "", list(ids))


class RateLimiter:
    """Requests-per-minute and tokens-per-minute token buckets (None: no limit)."""

    def __init__(self, rpm: float | None = None, tpm: float | None = None) -> None:
        self.rpm, self.tpm = rpm, tpm
        self._req = self._req_cap = max(1.0, (rpm or 0) / 60.0)
        self._tok = self._tok_cap = max(1.0, (tpm or 0) / 60.0)
        self._t = time.monotonic()

    async def acquire(self, tokens: int) -> None:
        if not self.rpm and not self.tpm:
            return
        while True:
            now = time.monotonic()
            dt, self._t = now - self._t, now
            if self.rpm:
                self._req = min(self._req_cap, self._req + dt * self.rpm / 60.0)
            if self.tpm:
                self._tok = min(self._tok_cap, self._tok + dt * self.tpm / 60.0)
            need_tok = min(tokens, self._tok_cap)  # a request bigger than a second's worth waits for a full bucket
            ok_req = not self.rpm or self._req >= 1.0
            ok_tok = not self.tpm or self._tok >= need_tok
            if ok_req and ok_tok:
                if self.rpm:
                    self._req -= 1.0
                if self.tpm:
                    self._tok -= tokens  # may go negative: later requests wait it off
                return
            wait = 0.0
            if not ok_req:
                wait = max(wait, (1.0 - self._req) * 60.0 / self.rpm)  # type: ignore[operator]
            if not ok_tok:
                wait = max(wait, (need_tok - self._tok) * 60.0 / self.tpm)  # type: ignore[operator]
            await asyncio.sleep(min(max(wait, 0.001), 5.0))


# -- report --------------------------------------------------------------------------------------------------------
@dataclass
class GenerateReport:
    """What a run did.  Requests are counted once each (generation, repair and judge requests)."""

    job: str
    mode: str
    task: str | None
    teacher: str
    dry_run: bool = False
    requested: int = 0  # generation requests of the job (n in seeds / targeted mode)
    made: int = 0  # requests answered by the provider in this run
    cached: int = 0  # requests answered from the cache
    failed: int = 0  # requests still failing after retries (recorded; retried by the next run)
    not_started: int = 0  # requests not started because the run stopped (budget, failing provider)
    api_calls: int = 0  # HTTP / model calls, retries included
    retries: int = 0
    candidates: int = 0  # replies parsed into a question/answer pair
    added: int = 0  # new examples stored by this run
    already_present: int = 0  # accepted earlier (a resumed or repeated run)
    rejected: dict[str, int] = field(default_factory=dict)
    by_weakness: dict[str, int] = field(default_factory=dict)  # accepted examples per weakness id
    example_ids: list[str] = field(default_factory=list)  # ids added by this run
    input_tokens: int = 0
    output_tokens: int = 0
    spent_usd: float | None = 0.0  # this run; None when a price is unknown
    job_spent_usd: float | None = 0.0  # every run of this job
    budget_usd: float | None = None
    stopped: str | None = None  # "budget" | "failing"
    message: str = ""
    estimate: dict[str, Any] | None = None  # dry run
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def accepted(self) -> int:
        return self.added + self.already_present

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["accepted"] = self.accepted
        return d


# -- inputs --------------------------------------------------------------------------------------------------------
def load_questions(source: str | Path | Sequence[Any]) -> list[tuple[int, list[dict[str, Any]], str | None]]:
    """``(line, messages, task)`` per question: JSONL lines ``{"messages": [...]}`` (ending with a user turn)
    or ``{"prompt": "..."}``; a list of such dicts or of strings works too."""
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise InputError("file not found", path)
        items: list[tuple[int, Any]] = []
        for n, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), 1):
            if not line.strip():
                continue
            try:
                items.append((n, orjson.loads(line)))
            except orjson.JSONDecodeError as e:
                raise InputError(f"invalid JSON: {e}", path, n) from None
        where: str | None = str(path)
    else:
        items = list(enumerate(source, 1))
        where = None
    out = []
    for n, rec in items:
        if isinstance(rec, str):
            rec = {"prompt": rec}
        if not isinstance(rec, dict):
            raise InputError("expected a JSON object with \"messages\" or \"prompt\"", where, n)
        task = rec.get("task") if isinstance(rec.get("task"), str) else None
        if "messages" in rec:
            msgs = rec["messages"]
            if (not isinstance(msgs, list) or not msgs
                    or not all(isinstance(m, dict) and m.get("role") in ("system", "user", "assistant")
                               and isinstance(m.get("content"), str) for m in msgs)):
                raise InputError("\"messages\" must be a list of {role, content} with role system/user/assistant",
                                 where, n)
            if msgs[-1]["role"] != "user":
                raise InputError("the last message must be a user turn (the question to answer)", where, n)
            out.append((n, [{"role": m["role"], "content": m["content"]} for m in msgs], task))
        elif isinstance(rec.get("prompt"), str) and rec["prompt"].strip():
            out.append((n, [{"role": "user", "content": rec["prompt"]}], task))
        else:
            raise InputError("expected \"messages\" (ending with a user turn) or a non-empty \"prompt\"", where, n)
    if not out:
        raise InputError("no questions found", where)
    return out


def load_weaknesses(source: str | Path | Sequence[Weakness | dict[str, Any]]) -> list[Weakness]:
    """Weakness groups from a JSON file (a list, or ``{"weaknesses": [...]}``) or a list."""
    where = "weaknesses"
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise InputError("file not found", path)
        try:
            data: Any = orjson.loads(path.read_bytes())
        except orjson.JSONDecodeError as e:
            raise InputError(f"invalid JSON: {e}", path) from None
        where = str(path)
        if isinstance(data, dict):
            data = data.get("weaknesses")
        if not isinstance(data, list):
            raise InputError("expected a JSON list of weakness groups (or {\"weaknesses\": [...]})", path)
    else:
        data = list(source)
    out = [Weakness.of(d, f"{where}: group {i}") for i, d in enumerate(data, 1)]
    if not out:
        raise InputError(f"{where}: no weakness groups")
    if len({w.id for w in out}) != len(out):
        raise InputError(f"{where}: weakness ids must be unique")
    return out


def _keys_file() -> Path:
    return Path(os.environ.get(KEYS_FILE_ENV) or Path.home() / ".config" / "curator" / "keys.yaml")


def _api_key(kind: str) -> str | None:
    """The key of ``kind`` from its environment variable, else from the keys file (``VARIABLE: key``)."""
    var = _KEY_VARS.get(kind)
    if var is None:
        return None
    if os.environ.get(var, "").strip():
        return None  # the provider reads the variable itself
    path = _keys_file()
    if not path.is_file():
        return None
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"not valid YAML: {e}", str(path)) from None
    value = data.get(var) if isinstance(data, dict) else None
    return str(value).strip() if value else None


def _secrets() -> list[str]:
    out = [os.environ.get(v, "").strip() for v in _KEY_VARS.values()]
    out += [k for k in (_api_key(kind) for kind in _KEY_VARS) if k]
    return [s for s in out if len(s) >= 6]


def _scrub(text: str, secrets: list[str]) -> str:
    for s in secrets:
        text = text.replace(s, "[REDACTED]")
    return text


# -- the teacher (or judge) of a run -----------------------------------------------------------------------------
class _Teacher:
    """A provider made on first use, with its price, concurrency and rate limits."""

    def __init__(self, spec: str | Provider, prices: PriceTable, concurrency: int | None,
                 limiter: RateLimiter, batch_default: int) -> None:
        if isinstance(spec, Provider):
            self._provider: Provider | None = spec
            self.kind, self.model, self.spec = spec.name, spec.model, spec.spec
            self.remote = spec.remote
        else:
            self._provider = None
            self.kind, self.model, _ = parse_spec(spec)
            self.spec = spec.strip()
            self.remote = self.kind != "local"
        self.price: Price | None = prices.lookup(self.kind, self.model)
        self.concurrency = concurrency or (REMOTE_CONCURRENCY if self.remote else batch_default)
        if self.concurrency < 1:
            raise ConfigError("--concurrency must be >= 1")
        self.limiter = limiter
        self.sem: asyncio.Semaphore | None = None
        self.owned = self._provider is None

    def get(self) -> Provider:
        if self._provider is None:
            if self.kind == "local":
                self._provider = make_provider(self.spec, batch_size=self.concurrency)
            else:
                key = _api_key(self.kind)
                try:
                    self._provider = make_provider(self.spec, **({"api_key": key} if key else {}))
                except MissingKeyError as e:
                    e.args = (f"{e} (or add '{e.variable}: ...' to {_keys_file()})",)
                    raise
        return self._provider

    def semaphore(self) -> asyncio.Semaphore:
        if self.sem is None:
            self.sem = asyncio.Semaphore(self.concurrency)
        return self.sem

    async def aclose(self) -> None:
        if self._provider is not None and self.owned:
            await self._provider.aclose()
            self._provider = None


# -- planned requests ----------------------------------------------------------------------------------------------
@dataclass
class _Spec:
    index: int
    messages: list[dict[str, Any]]  # what the teacher is sent
    extra: dict[str, Any]
    task: str
    system: str | None  # system prompt of the generated example (seeds / targeted)
    parent_ids: list[str] = field(default_factory=list)
    weakness_id: str | None = None
    base: list[dict[str, Any]] | None = None  # answer mode: the conversation the answer completes
    line: int | None = None
    key: str = ""


@dataclass
class _Outcome:
    spec: _Spec
    candidate: Candidate | None = None
    rejection: Rejection | None = None
    failed: bool = False


def _first_pair(messages: list[dict[str, Any]]) -> tuple[str, str] | None:
    for i, m in enumerate(messages):
        if m["role"] == "user":
            for later in messages[i + 1 :]:
                if later["role"] == "assistant":
                    return m["content"], later["content"]
            return None
    return None


def _system_of(messages: list[dict[str, Any]]) -> str | None:
    parts = [m["content"] for m in messages if m["role"] == "system"]
    return "\n\n".join(parts) if parts else None


def _dominant_system(rows: list[list[dict[str, Any]]]) -> str | None:
    counts = collections.Counter(_system_of(m) for m in rows)
    if not counts:
        return None
    best, _ = max(counts.items(), key=lambda kv: (kv[1], kv[0] is not None, kv[0] or ""))
    return best


def _seed_pool(con: Any, task: str | None) -> tuple[str, list[tuple[str, list[dict[str, Any]]]]]:
    """(task, [(id, messages)]) of the train-split seed examples (origin 'seed', else 'import')."""
    rows = con.execute(
        """SELECT e.id, e.task, e.origin, e.messages FROM examples e
           WHERE e.status = 'active' AND e.origin IN ('seed', 'import')
             AND e.id IN (SELECT example_id FROM splits WHERE split = 'train')
             AND e.id NOT IN (SELECT example_id FROM splits WHERE split <> 'train')
           ORDER BY e.id"""
    ).fetchall()
    tasks = sorted({r[1] for r in rows})
    if task is None:
        if len(tasks) == 1:
            task = tasks[0]
        elif not tasks:
            raise CuratorError("no seed examples in the train split: ingest some first "
                               "(curator ingest FILE --origin seed --task TASK)")
        else:
            raise CuratorError(f"several tasks have seed examples ({', '.join(tasks)}): choose one with --task")
    mine = [r for r in rows if r[1] == task]
    if any(r[2] == "seed" for r in mine):
        mine = [r for r in mine if r[2] == "seed"]
    pool = [(r[0], orjson.loads(r[3])) for r in mine]
    pool = [(i, m) for i, m in pool if _first_pair(m) is not None]
    if not pool:
        known = f" (tasks with seeds: {', '.join(tasks)})" if tasks else ""
        raise CuratorError(f"no seed examples of task {task!r} in the train split{known}: "
                           f"ingest some with `curator ingest FILE --origin seed --task {task}`")
    return task, pool


def _demos(pool: list[tuple[str, list[dict[str, Any]]]], k: int, rng: random.Random) -> list[tuple[str, list[dict[str, Any]]]]:
    return rng.sample(pool, min(k, len(pool)))


def _plan_seeds(con: Any, task: str | None, n: int, seed: int, k: int, system: str | None,
                tmpl: Template) -> tuple[str, list[_Spec]]:
    task, pool = _seed_pool(con, task)
    sys_prompt = system if system is not None else _dominant_system([m for _, m in pool])
    specs = []
    for i in range(n):
        picked = _demos(pool, k, random.Random(f"{seed}:{i}"))
        pairs = [p for _, m in picked if (p := _first_pair(m)) is not None]
        msgs = tmpl.render(pairs, k=len(pairs), system=sys_prompt or "(none)", examples=format_demos(pairs))
        specs.append(_Spec(i, msgs, {"index": i}, task, sys_prompt, [pid for pid, _ in picked]))
    return task, specs


def _plan_answer(con: Any, questions: list[tuple[int, list[dict[str, Any]], str | None]], task: str | None,
                 system: str | None, n: int | None) -> list[_Spec]:
    items = questions[:n] if n is not None else questions
    task_system: dict[str, str | None] = {}
    specs = []
    for i, (line, msgs, line_task) in enumerate(items):
        t = task or line_task or "default"
        if system is not None:
            base = [{"role": "system", "content": system}] + [m for m in msgs if m["role"] != "system"]
        elif any(m["role"] == "system" for m in msgs):
            base = list(msgs)
        else:
            if t not in task_system:
                rows = con.execute("SELECT messages FROM examples WHERE task = ? AND status = 'active' LIMIT 1000",
                                   [t]).fetchall()
                task_system[t] = _dominant_system([orjson.loads(r[0]) for r in rows]) if rows else None
            sp = task_system[t]
            base = ([{"role": "system", "content": sp}] if sp else []) + list(msgs)
        specs.append(_Spec(i, base, {}, t, _system_of(base), [], None, base, line))
    return specs


def _plan_targeted(con: Any, weaknesses: list[Weakness], task: str | None, n: int | None, seed: int, k: int,
                   system: str | None, tmpl: Template) -> list[_Spec]:
    total = n if n is not None else TARGETED_PER_WEAKNESS * len(weaknesses)
    shares = [total // len(weaknesses) + (1 if g < total % len(weaknesses) else 0) for g in range(len(weaknesses))]
    all_ids = sorted({i for w in weaknesses for i in w.example_ids})
    info: dict[str, tuple[list[dict[str, Any]], set[str]]] = {}
    if all_ids:
        marks = ",".join("?" * len(all_ids))
        rows = con.execute(
            f"""SELECT e.id, e.messages, list(s.split) FROM examples e LEFT JOIN splits s ON s.example_id = e.id
                WHERE e.id IN ({marks}) GROUP BY e.id, e.messages""", all_ids).fetchall()
        info = {r[0]: (orjson.loads(r[1]), {s for s in (r[2] or []) if s}) for r in rows}
    specs: list[_Spec] = []
    index = 0
    pools: dict[str, list[tuple[str, list[dict[str, Any]]]]] = {}
    for w, share in zip(weaknesses, shares, strict=True):
        t = w.task or task
        if not t:
            raise InputError(f"weakness {w.id!r} has no task: give one in the file or with --task")
        # Only train / eval items may be shown; an unknown id or any test assignment keeps it hidden.
        shown = [(i, info[i][0]) for i in w.example_ids
                 if i in info and info[i][1] and info[i][1] <= {"train", "eval"} and _first_pair(info[i][0])]
        if t not in pools:
            try:
                pools[t] = _seed_pool(con, t)[1]
            except CuratorError:
                pools[t] = []
        if not shown and not pools[t]:
            raise CuratorError(f"weakness {w.id!r}: none of its examples may be shown (test split or unknown) and "
                               f"task {t!r} has no train seeds to show the format; ingest seeds first")
        sys_prompt = system if system is not None else _dominant_system(
            [m for _, m in shown] + [m for _, m in pools[t]])
        for j in range(share):
            rng = random.Random(f"{seed}:{w.id}:{j}")
            if shown:
                picked = rng.sample(shown, min(k, len(shown)))
                head = "Questions the assistant got wrong, with the correct reference answers:\n\n"
            else:
                picked = _demos(pools[t], k, rng)
                head = "Example conversations with the assistant (to show the format):\n\n"
            pairs = [p for _, m in picked if (p := _first_pair(m)) is not None]
            msgs = tmpl.render(pairs, weakness=w.description or w.id, system=sys_prompt or "(none)",
                               examples=head + format_demos(pairs), k=len(pairs))
            parents = [pid for pid, _ in picked]
            specs.append(_Spec(index, msgs, {"weakness": w.id, "index": j}, t, sys_prompt, parents, w.id))
            index += 1
    return specs


# -- the run -------------------------------------------------------------------------------------------------------
class _Progress:
    """A progress bar on a terminal; on a pipe, a line every tenth of the way (for logs)."""

    def __init__(self, enabled: bool, total: int, label: str, stack: ExitStack) -> None:
        self.total, self.label, self.done = total, label, 0
        self.lines = enabled and not sys.stderr.isatty()
        self.bar = None
        if enabled and not self.lines:
            from curator.output import progress

            self.bar = stack.enter_context(progress(label, total, enabled=True))
        self.step = max(1, total // 10)

    def tick(self, r: GenerateReport) -> None:
        self.done += 1
        spend = "unknown" if r.spent_usd is None else f"${r.spent_usd:.4f}"
        note = f"new {r.made}  cached {r.cached}  failed {r.failed}  {spend}"
        if self.bar is not None:
            self.bar.advance(1)
            self.bar.update(note=note)
        elif self.lines and (self.done % self.step == 0 or self.done == self.total):
            print(f"{self.label}: {self.done}/{self.total} requests ({note})", file=sys.stderr, flush=True)


class _Run:
    def __init__(self, *, store: RequestStore, budget: Budget, policy: RetryPolicy, report: GenerateReport,
                 job: str, secrets: list[str], cfg: FilterConfig) -> None:
        self.store, self.budget, self.policy, self.report = store, budget, policy, report
        self.job, self.secrets, self.cfg = job, secrets, cfg
        self.inflight: dict[str, asyncio.Future[CachedResponse | None]] = {}
        self.rng = random.Random()
        self.consecutive_failures = 0
        self.progress: _Progress | None = None
        self.spend_known = True

    def stop(self, why: str, message: str) -> None:
        if self.report.stopped is None:
            self.report.stopped, self.report.message = why, message

    async def call(self, t: _Teacher, key: str, messages: list[dict[str, Any]], params: GenParams,
                   extra: dict[str, Any]) -> CachedResponse | None:
        """The response to a request: from the cache, or asked (with retries) and committed before returning."""
        hit = self.store.get(key)
        if hit is not None:
            self.report.cached += 1
            return hit
        if key in self.inflight:  # the same request is being asked right now: share its answer
            self.report.cached += 1
            return await asyncio.shield(self.inflight[key])
        fut: asyncio.Future[CachedResponse | None] = asyncio.get_running_loop().create_future()
        self.inflight[key] = fut
        try:
            res = await self._fetch(t, key, messages, params, extra)
        except BaseException as e:
            fut.set_exception(e)
            fut.exception()  # retrieved: waiters (if any) re-raise it
            raise
        finally:
            self.inflight.pop(key, None)
        fut.set_result(res)
        return res

    async def _fetch(self, t: _Teacher, key: str, messages: list[dict[str, Any]], params: GenParams,
                     extra: dict[str, Any]) -> CachedResponse | None:
        async with t.semaphore():
            if self.report.stopped:
                self.report.not_started += 1
                return None
            reserve = t.price.cost(max_input_tokens(messages), params.max_tokens) if t.price else 0.0
            if not self.budget.try_reserve(reserve):
                self.stop("budget", f"stopped at the budget of ${self.budget.cap:.4f}: ${self.budget.spent:.4f} spent, "
                                    "and the next request could cost more than what is left")
                self.report.not_started += 1
                return None
            provider = t.get()
            attempts, err, comp = 0, None, None
            while True:
                attempts += 1
                await t.limiter.acquire(estimate_input_tokens(messages) + params.max_tokens)
                self.report.api_calls += 1
                try:
                    comp = await provider.complete(messages, params)
                    break
                except RetryableError as e:
                    err = e
                    if attempts >= self.policy.max_attempts:
                        break
                    self.report.retries += 1
                    await asyncio.sleep(self.policy.delay(attempts, e.retry_after, self.rng))
                except ProviderError as e:
                    err = e
                    break
            # Count and settle while the slot is held (the next request sees a stop at once); the
            # slot is free before the write, so the next request is on its way while DuckDB commits.
            request = {"messages": messages, "params": params.to_dict(), "extra": extra}
            attempts += self.store.previous_attempts(key)
            if comp is None:
                msg = _scrub(str(err), self.secrets)
                row = RequestRow(key, t.kind, t.model, request, "failed", self.job, attempts, error=msg)
                self.budget.settle(reserve, 0.0)
                self.report.failed += 1
                self.consecutive_failures += 1
                if self.consecutive_failures >= self.policy.stop_after_failures:
                    self.stop("failing", f"{self.consecutive_failures} requests in a row failed; last error: {msg}")
            else:
                cost = t.price.cost(comp.input_tokens, comp.output_tokens) if t.price else None
                row = RequestRow(key, t.kind, t.model, request, "ok", self.job, attempts, response=comp.raw,
                                 text=comp.text, finish_reason=comp.finish_reason, input_tokens=comp.input_tokens,
                                 output_tokens=comp.output_tokens, cost_usd=cost)
                self.budget.settle(reserve, cost or 0.0)
                self.consecutive_failures = 0
                self.report.made += 1
                self.report.input_tokens += comp.input_tokens
                self.report.output_tokens += comp.output_tokens
                if cost is None:
                    self.spend_known = False
                self.report.spent_usd = self.budget.spent_this_run if self.spend_known else None
        await self.store.put(row)  # committed before anyone parses it
        return self.store.get(key, query=False) if row.status == "ok" else None


def _candidate_meta(spec: _Spec, teacher: str, mode: str, tmpl_name: str, tmpl_hash: str, params: GenParams,
                    key: str, job: str) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "teacher": teacher, "mode": mode, "job": job, "template": tmpl_name, "template_hash": tmpl_hash,
        "params": params.to_dict(), "parent_ids": spec.parent_ids, "request_key": key,
    }
    if spec.weakness_id is not None:
        meta["weakness_id"] = spec.weakness_id
    if spec.line is not None:
        meta["question_line"] = spec.line
    return meta


async def _ask_all(run: _Run, teacher: _Teacher, specs: list[_Spec], *, mode: str, params: GenParams,
                   repair: Template, tmpl_name: str, tmpl_hash: str) -> list[_Outcome]:
    async def one(spec: _Spec) -> _Outcome:
        try:
            return await handle(spec)
        finally:
            if run.progress is not None:
                run.progress.tick(run.report)

    async def handle(spec: _Spec) -> _Outcome:
        pd = params.to_dict()
        resp = await run.call(teacher, spec.key, spec.messages, params, spec.extra)
        if resp is None:
            return _Outcome(spec, failed=True)
        key = spec.key
        if mode == "answer":
            assert spec.base is not None
            question = "\n".join(m["content"] for m in spec.base if m["role"] == "user")
            answer = resp.text.strip()
            msgs = spec.base + [{"role": "assistant", "content": answer}]
            rej = check_text(question, answer, resp.finish_reason, run.cfg)
        else:
            pair = parse_pair(resp.text)
            if pair is None:
                fix = spec.messages + [{"role": "assistant", "content": resp.text}] + repair.render()
                rkey = request_key(teacher.kind, teacher.model, fix, pd, {"repair_of": spec.key})
                again = await run.call(teacher, rkey, fix, params, {"repair_of": spec.key})
                if again is None:
                    return _Outcome(spec, failed=True)
                resp, key, pair = again, rkey, parse_pair(again.text)
            if pair is None:
                return _Outcome(spec, rejection=Rejection("parse", "no question/answer pair in the reply",
                                                          request_key=key, candidate={"reply": resp.text[:4000]},
                                                          weakness_id=spec.weakness_id))
            question, answer = pair
            msgs = (([{"role": "system", "content": spec.system}] if spec.system else [])
                    + [{"role": "user", "content": question}, {"role": "assistant", "content": answer}])
            rej = check_text(question, answer, _finish(resp.text, answer, resp.finish_reason), run.cfg)
        meta = _candidate_meta(spec, teacher.spec, mode, tmpl_name, tmpl_hash, params, key, run.job)
        ex = Example.from_messages(msgs, task=spec.task, origin="synthetic", source=teacher.spec,
                                   parent_id=spec.parent_ids[0] if spec.parent_ids else None, meta=meta)
        if rej is not None:
            rej.request_key, rej.candidate, rej.weakness_id = key, {"messages": ex.messages}, spec.weakness_id
            return _Outcome(spec, rejection=rej)
        return _Outcome(spec, candidate=Candidate(spec.index, ex, key, spec.weakness_id, question, answer))

    return list(await asyncio.gather(*(one(s) for s in specs)))


def _finish(reply: str, answer: str, finish_reason: str) -> str:
    """``stop`` when the reply went on after a complete answer (a model starting a second pair
    until max_tokens), else the provider's finish reason."""
    if finish_reason != "length":
        return finish_reason
    end = reply.find(answer)
    return "stop" if end != -1 and reply[end + len(answer) :].strip() else finish_reason


async def _judge_all(run: _Run, judge: Judge, jt: _Teacher, tmpl: Template,
                     cands: list[Candidate]) -> dict[int, Rejection]:
    out: dict[int, Rejection] = {}

    async def one(pos: int, c: Candidate) -> None:
        system = _system_of(c.example.messages) or "(none)"
        msgs = tmpl.render(system=system, question=c.question, answer=c.answer)
        pd = judge.params.to_dict()
        extra = {"judge_of": c.example.id}
        resp = await run.call(jt, request_key(jt.kind, jt.model, msgs, pd, extra), msgs, judge.params, extra)
        score, reason = parse_score(resp.text) if resp is not None else (None, "")
        c.example.meta["judge"] = {"model": jt.spec, "score": score, "reason": reason}
        if score is None:
            out[pos] = Rejection("judge-failed", "the judge gave no score" if resp else "the judge request failed")
        elif score < judge.min_score:
            out[pos] = Rejection("judge", f"score {score:g} < {judge.min_score:g}: {reason}".rstrip(": "),
                                 score=score)

    await asyncio.gather(*(one(i, c) for i, c in enumerate(cands)))
    return out


def _run_async(fn: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """``asyncio.run``, also from code that already runs an event loop (a notebook).

    (uvloop's loop was measured here too: no change at 32 requests in flight, where the time goes to
    the SDK's HTTP stack, not the loop.)
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(fn())
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(fn())).result()


def _job_id(**parts: Any) -> str:
    return hashlib.sha256(orjson.dumps(parts, option=orjson.OPT_SORT_KEYS, default=str)).hexdigest()[:16]


def generate(
    ws: Workspace,
    *,
    mode: str = "seeds",
    teacher: str | Provider = DEFAULT_TEACHER,
    n: int | None = None,
    task: str | None = None,
    system: str | None = None,
    questions: str | Path | Sequence[Any] | None = None,
    weaknesses: str | Path | Sequence[Weakness | dict[str, Any]] | None = None,
    concurrency: int | None = None,
    budget: float | None = None,
    dry_run: bool = False,
    seed: int = 0,
    params: GenParams | None = None,
    templates_dir: str | Path | None = None,
    judge: str | Provider | Judge | None = None,
    progress: bool = True,
    k: int = DEFAULT_K,
    filters: FilterConfig | None = None,
    retry: RetryPolicy | None = None,
    rpm: float | None = None,
    tpm: float | None = None,
    prices: str | Path | PriceTable | None = None,
) -> GenerateReport:
    """Generate examples with a teacher model and store those that pass the filters (see the module docstring).

    ``n``: requests to make (seeds: one new example each; targeted: spread over the weaknesses,
    default 5 each; answer: the first ``n`` questions, default all).  ``budget``: hard cap in USD for
    the job (earlier runs of the same job count).  ``concurrency``: requests in flight (default 16
    remote; local: the batch size, 8).  ``judge``: a provider spec / Provider / :class:`Judge`.
    """
    t0 = time.monotonic()
    if mode not in MODES:
        raise ConfigError(f"unknown mode {mode!r} (choose from {', '.join(MODES)})")
    params = params or GenParams()
    cfg = filters or FilterConfig()
    policy = retry or RetryPolicy()
    if n is not None and n < 1:
        raise ConfigError("--n must be >= 1")
    if k < 1:
        raise ConfigError("k (seed examples per request) must be >= 1")
    if mode == "seeds" and n is None:
        raise ConfigError("seeds mode needs n, the number of examples to ask for (--n)")
    if mode == "answer" and questions is None:
        raise ConfigError("answer mode needs questions (--questions FILE)")
    if mode == "targeted" and not weaknesses:
        raise ConfigError("targeted mode needs weakness groups (--weaknesses FILE)")
    qs = load_questions(questions) if mode == "answer" and questions is not None else None
    ws_list = load_weaknesses(weaknesses) if mode == "targeted" and weaknesses is not None else None
    table = prices if isinstance(prices, PriceTable) else load_prices(prices, ws.path)
    limiter = RateLimiter(rpm, tpm)
    from curator.llm.providers.local import DEFAULT_BATCH_SIZE

    t = _Teacher(teacher, table, concurrency, limiter, DEFAULT_BATCH_SIZE)
    jdg = Judge(judge) if isinstance(judge, (str, Provider)) else judge
    jt = _Teacher(jdg.teacher, table, concurrency, RateLimiter(rpm, tpm), DEFAULT_BATCH_SIZE) if jdg else None
    warnings: list[str] = []
    for who in [t] + ([jt] if jt else []):
        if who.price is None:
            if budget is not None:
                raise PriceUnknownError(
                    f"no price for {who.kind}:{who.model}, so --budget cannot be enforced: add "
                    f"'{who.kind}: {{{who.model}: {{input: USD_PER_1M, output: USD_PER_1M}}}}' to {table.where()} "
                    "(see curator/synth/prices.yaml)")
            warnings.append(f"no price for {who.kind}:{who.model}: its cost is unknown (add it to a prices file)")

    tmpl_name = {"seeds": "seeds", "targeted": "targeted", "answer": "answer"}[mode]
    gen_tmpl = load_template(tmpl_name, templates_dir) if mode != "answer" else None
    repair = load_template("repair", templates_dir)
    judge_tmpl = load_template("judge", templates_dir) if jdg else None
    tmpl_hash = hashlib.sha256("".join(x.hash for x in (gen_tmpl, repair, judge_tmpl) if x).encode()).hexdigest()[:16]
    secrets = _secrets()

    with ws.connect() as con:
        if mode == "seeds":
            assert gen_tmpl is not None and n is not None
            task, specs = _plan_seeds(con, task, n, seed, k, system, gen_tmpl)
            inputs: Any = None
        elif mode == "answer":
            assert qs is not None
            specs = _plan_answer(con, qs, task, system, n)
            inputs = hashlib.sha256(orjson.dumps([s.base for s in specs])).hexdigest()
        else:
            assert gen_tmpl is not None and ws_list is not None
            specs = _plan_targeted(con, ws_list, task, n, seed, k, system, gen_tmpl)
            inputs = [asdict(w) for w in ws_list]
        pd = params.to_dict()
        for s in specs:
            s.key = request_key(t.kind, t.model, s.messages, pd, s.extra)
        job = _job_id(mode=mode, task=task, teacher=f"{t.kind}:{t.model}", n=n, seed=seed, k=k, templates=tmpl_hash,
                      params=pd, system=system, inputs=inputs,
                      judge=None if not jt else [jt.kind, jt.model, jdg.min_score if jdg else None])
        report = GenerateReport(job=job, mode=mode, task=task, teacher=t.spec, dry_run=dry_run,
                                requested=len(specs), budget_usd=budget, warnings=warnings)
        store = RequestStore(con)
        store.preload([s.key for s in specs])
        earlier = con.execute("SELECT sum(cost_usd) FROM requests WHERE job = ? AND status = 'ok'", [job]).fetchall()
        already_spent = float(earlier[0][0] or 0.0)
        uncached = [s for s in specs if store.get(s.key, query=False) is None]
        if dry_run:
            report.estimate = _estimate(specs, uncached, params, t, jdg, jt, judge_tmpl)
            report.job_spent_usd = already_spent
            report.seconds = time.monotonic() - t0
            return report
        bud = Budget(budget, already_spent)
        run = _Run(store=store, budget=bud, policy=policy, report=report, job=job, secrets=secrets, cfg=cfg)
        if uncached:
            t.get()  # fail fast on a missing key or bad model, before anything is asked
            if jt:
                jt.get()

        async def main() -> tuple[list[_Outcome], dict[int, Rejection], list[Candidate]]:
            try:
                with ExitStack() as stack:
                    run.progress = _Progress(progress, len(specs), "generate", stack)
                    outcomes = await _ask_all(run, t, specs, mode=mode, params=params, repair=repair,
                                              tmpl_name=tmpl_name, tmpl_hash=tmpl_hash)
                cands, pre = _filter(ws, con, outcomes, cfg, report)
                if jdg and jt and judge_tmpl and cands and not report.stopped:
                    judged = await _judge_all(run, jdg, jt, judge_tmpl, cands)
                    pre.update({id(cands[i]): r for i, r in judged.items()})
                elif jdg and cands:
                    pre.update({id(c): Rejection("judge-failed", "not judged: the run stopped") for c in cands})
                return outcomes, pre, cands
            finally:
                await t.aclose()
                if jt:
                    await jt.aclose()

        try:
            outcomes, rejected_by_id, cands = _run_async(main)
        finally:
            store.close()
        _store(ws, con, report, outcomes, cands, rejected_by_id, job=job, mode=mode, task=task, teacher=t.spec,
               n=n, seed=seed, tmpl_hash=tmpl_hash, params=pd, budget=bud, spend_known=run.spend_known)
    report.seconds = time.monotonic() - t0
    return report


def _filter(ws: Workspace, con: Any, outcomes: list[_Outcome], cfg: FilterConfig,
            report: GenerateReport) -> tuple[list[Candidate], dict[int, Rejection]]:
    """Candidates still in the running (not stored yet, no leak, no duplicate) and rejections by ``id(candidate)``."""
    cands = sorted((o.candidate for o in outcomes if o.candidate is not None), key=lambda c: c.index)
    report.candidates = len(cands)
    rejected: dict[int, Rejection] = {}
    # The same example twice: the first stays.  Then those stored by an earlier run of the job are done.
    first: dict[str, Candidate] = {}
    for c in cands:
        if c.example.id in first:
            rejected[id(c)] = Rejection("duplicate-exact", "same example as another new one", first[c.example.id].example.id,
                                        1.0)
        else:
            first[c.example.id] = c
    live = [c for c in cands if id(c) not in rejected]
    stored: set[str] = set()
    ids = [c.example.id for c in live]
    for start in range(0, len(ids), 1000):
        chunk = ids[start : start + 1000]
        stored |= {r[0] for r in con.execute(
            f"SELECT id FROM examples WHERE id IN ({','.join('?' * len(chunk))})", chunk).fetchall()}
    report.already_present = sum(1 for c in live if c.example.id in stored)
    for c in live:
        if c.example.id in stored and c.weakness_id:
            report.by_weakness[c.weakness_id] = report.by_weakness.get(c.weakness_id, 0) + 1
    live = [c for c in live if c.example.id not in stored]
    for check in (find_leaks, find_duplicates):
        found = check(ws, live, cfg)
        for i, r in found.items():
            rejected[id(live[i])] = r
        live = [c for i, c in enumerate(live) if i not in found]
    return live, rejected


def _estimate(specs: list[_Spec], uncached: list[_Spec], params: GenParams, t: _Teacher, jdg: Judge | None,
              jt: _Teacher | None, judge_tmpl: Template | None) -> dict[str, Any]:
    est_in = sum(estimate_input_tokens(s.messages) for s in uncached)
    max_in = sum(max_input_tokens(s.messages) for s in uncached)
    max_out = len(uncached) * params.max_tokens
    d: dict[str, Any] = {
        "requests": len(specs), "cached": len(specs) - len(uncached), "to_make": len(uncached),
        "input_tokens_estimate": est_in, "input_tokens_max": max_in, "output_tokens_max": max_out,
        "cost_estimate_usd": t.price.cost(est_in, max_out) if t.price else None,
        "cost_max_usd": t.price.cost(max_in, max_out) if t.price else None,
        "price": None if t.price is None else asdict(t.price),
        "note": "output at max_tokens; repair requests for unparsable replies come on top",
    }
    if jdg and jt and judge_tmpl:
        base = judge_tmpl.render(system="", question="", answer="")
        j_in = len(uncached) * (estimate_input_tokens(base) + params.max_tokens)
        j_max_in = len(uncached) * (max_input_tokens(base) + 4 * params.max_tokens + 4000)
        j_out = len(uncached) * jdg.params.max_tokens
        d["judge"] = {"requests_max": len(uncached), "input_tokens_estimate": j_in, "output_tokens_max": j_out,
                      "cost_estimate_usd": jt.price.cost(j_in, j_out) if jt.price else None,
                      "cost_max_usd": jt.price.cost(j_max_in, j_out) if jt.price else None}
        for key in ("cost_estimate_usd", "cost_max_usd"):
            a, b = d[key], d["judge"][key]
            d[key] = None if a is None or b is None else a + b
    return d


def _store(ws: Workspace, con: Any, report: GenerateReport, outcomes: list[_Outcome], cands: list[Candidate],
           rejected: dict[int, Rejection], *, job: str, mode: str, task: str | None, teacher: str, n: int | None,
           seed: int, tmpl_hash: str, params: dict[str, Any], budget: Budget, spend_known: bool) -> None:
    """Accepted examples (pinned to train), the job's rejections and its row, in one transaction."""
    from curator.data.ingest import Columns, store_examples

    accepted = [c for c in cands if id(c) not in rejected]
    rejections: list[Rejection] = [o.rejection for o in outcomes if o.rejection is not None]
    all_cands = {id(o.candidate): o.candidate for o in outcomes if o.candidate is not None}
    for cid, r in rejected.items():
        c = all_cands[cid]
        r.request_key, r.weakness_id = c.request_key, c.weakness_id
        r.candidate = {"messages": c.example.messages}
        rejections.append(r)
    for r in rejections:
        report.rejected[r.reason] = report.rejected.get(r.reason, 0) + 1
    report.rejected = dict(sorted(report.rejected.items(), key=lambda kv: (-kv[1], kv[0])))
    cols = Columns.of([c.example for c in accepted], ["train"] * len(accepted))
    with ws.transaction():
        added, _ = store_examples(con, ws, cols)
        con.execute("DELETE FROM synth_rejections WHERE job = ?", [job])
        rows = [[job, r.request_key, orjson.dumps(r.candidate).decode() if r.candidate is not None else None,
                 r.reason, r.detail, r.other_id, r.score, r.weakness_id] for r in rejections]
        for start in range(0, len(rows), 200):
            chunk = rows[start : start + 200]
            con.execute("INSERT INTO synth_rejections (job, request_key, candidate, reason, detail, other_id, score, "
                        "weakness_id) VALUES " + ",".join(["(?,?,?,?,?,?,?,?)"] * len(chunk)),
                        [v for row in chunk for v in row])
        total = con.execute("SELECT sum(cost_usd), count(*) FILTER (WHERE cost_usd IS NULL) FROM requests "
                            "WHERE job = ? AND status = 'ok'", [job]).fetchall()[0]
        report.job_spent_usd = float(total[0] or 0.0) if not total[1] else None
        report.spent_usd = budget.spent_this_run if spend_known else None
        report.added = added
        report.example_ids = [c.example.id for c in accepted]
        for c in accepted:
            if c.weakness_id:
                report.by_weakness[c.weakness_id] = report.by_weakness.get(c.weakness_id, 0) + 1
        created = con.execute("SELECT min(created_at) FROM synth_jobs WHERE id = ?", [job]).fetchall()[0][0]
        con.execute("DELETE FROM synth_jobs WHERE id = ?", [job])
        con.execute(
            """INSERT INTO synth_jobs (id, mode, task, teacher, n, seed, template_hash, params, status, report,
                                       spent_usd, created_at, finished_at)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, coalesce(?, current_timestamp), current_timestamp)""",
            [job, mode, task, teacher, n, seed, tmpl_hash, orjson.dumps(params).decode(),
             "stopped" if report.stopped else "done", orjson.dumps(report.to_dict()).decode(),
             report.job_spent_usd, created],
        )

