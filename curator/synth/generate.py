"""Synthetic generation: seed examples (or questions, or weaknesses) in, filtered new examples out.

Three modes, one pipeline of four stages (:func:`generate`)::

    plan    read seeds / questions / weaknesses and the cache in one short read; build the requests
    fetch   ask the teacher through the shared runner (cache, budget, retries, rate limits,
            concurrency; curator.llm.runner); repair an unparsable reply once
    filter  text filters -> duplicates among the new -> already stored -> leaks -> duplicates
            -> optional judge (the runner again)
    store   accepted examples + rejections + the job's row, in one transaction

* ``seeds``: request *i* shows the teacher ``k`` train-split seed examples of the task, drawn with
  ``Random(f"{seed}:{i}")``, and asks for ONE new question/answer pair as JSON.  ``n`` is the number
  of requests, so at most ``n`` examples; the report says how many were accepted.
* ``answer``: each question (a JSONL line ``{"messages": [..., user]}`` or ``{"prompt": "..."}``) is
  sent as the conversation itself; the teacher's reply is the answer (distillation).
* ``targeted``: ``n`` requests spread over weakness groups ``{"id", "task", "description",
  "example_ids"}``; the teacher sees the description and, for failing examples in the train or
  eval split only, their question and reference answer (test items never reach the teacher).
  Each example records ``meta.weakness_id``.

The workspace is open only in the plan, in the filter's reads and in the store, and for the short
steps of the request cache: while the run waits on the teacher no connection is held, so other
``curator`` commands can use the workspace meanwhile.

Crash safety: every response is committed to ``requests`` before it is parsed; examples are
identified by content and stored with the job's rejections in one transaction at the end.  A
re-run of the same command finds every response in the cache (zero API calls), parses them
again, and stores what is not stored yet, so a ``kill -9`` at any point loses nothing and
duplicates nothing.  Generated examples are pinned to the train split.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import hashlib
import logging
import random
import time
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import orjson

from curator.data.readers.shapes import RowError
from curator.data.readers.textfile import check_file, is_json_array, iter_json_records
from curator.data.readers.textfile import check_text as check_unicode
from curator.errors import ConfigError, CuratorError, InputError
from curator.llm.batch import BATCH_KINDS, DEFAULT_POLL_INTERVAL, BatchSession
from curator.llm.budget import (
    Budget,
    PriceTable,
    PriceUnknownError,
    estimate_input_tokens,
    load_prices,
    max_input_tokens,
)
from curator.llm.cache import CachedResponse, RequestStore
from curator.llm.keys import KEYS_FILE_ENV
from curator.llm.limits import RateLimiter, RetryPolicy
from curator.llm.providers import GenParams, Provider
from curator.llm.runner import REMOTE_CONCURRENCY, Endpoint, Request, Runner, RunStats, run_async
from curator.models import DEFAULT_CHAT_MODEL
from curator.progress import Progress, progress
from curator.records import Example
from curator.synth.filters import Candidate, FilterConfig, Rejection, check_text, find_duplicates, find_leaks
from curator.synth.prompts import Template, format_demos, load_template, parse_pair, parse_score
from curator.workspace import Workspace

__all__ = [
    "DEFAULT_TEACHER",
    "KEYS_FILE_ENV",
    "MODES",
    "REMOTE_CONCURRENCY",
    "GenerateOptions",
    "GenerateReport",
    "Judge",
    "RateLimiter",
    "RetryPolicy",
    "Weakness",
    "generate",
    "load_questions",
    "load_weaknesses",
]

log = logging.getLogger(__name__)

MODES = ("seeds", "answer", "targeted")
DEFAULT_TEACHER = DEFAULT_CHAT_MODEL
DEFAULT_K = 3
TARGETED_PER_WEAKNESS = 5


# -- options -------------------------------------------------------------------------------------------------------
@dataclass
class Judge:
    """An LLM judge: candidates scoring below ``min_score`` (1-10) are rejected with reason ``judge``."""

    teacher: str | Provider
    min_score: float = 7.0
    params: GenParams = field(default_factory=lambda: GenParams(max_tokens=200, temperature=0.0))


@dataclass
class GenerateOptions:
    """What :func:`generate` does (every field has the default of ``curator generate``).

    ``n``: requests to make (seeds: one new example each; targeted: spread over the weaknesses,
    default 5 each; answer: the first ``n`` questions, default all).  ``k``: seed examples shown per
    request; ``seed``: seed of that sampling.  ``budget``: hard cap in USD for the job (earlier runs
    of the same job count).  ``concurrency``: requests in flight (default 16 remote; local: the batch
    size, 8).  ``rpm`` / ``tpm``: rate limits per minute.  ``judge``: a provider spec, a Provider or
    a :class:`Judge`.  ``prices``: a prices file merged over the bundled table, or a table.
    ``templates_dir``: edited prompt templates.  ``dry_run``: estimate only, ask nothing.
    ``batch``: send the requests through the provider's batch API (OpenAI, Anthropic; batch prices;
    the judge too when its provider has one), polling every ``poll_interval`` seconds
    (:mod:`curator.llm.batch`).  ``engine``: what generates with a local teacher (``transformers`` or
    ``vllm``; not part of the cache key).
    """

    mode: str = "seeds"
    teacher: str | Provider = DEFAULT_TEACHER
    n: int | None = None
    task: str | None = None
    system: str | None = None
    questions: str | Path | Sequence[Any] | None = None
    weaknesses: str | Path | Sequence[Weakness | dict[str, Any]] | None = None
    k: int = DEFAULT_K
    seed: int = 0
    params: GenParams | None = None
    concurrency: int | None = None
    budget: float | None = None
    dry_run: bool = False
    judge: str | Provider | Judge | None = None
    filters: FilterConfig | None = None
    retry: RetryPolicy | None = None
    rpm: float | None = None
    tpm: float | None = None
    prices: str | Path | PriceTable | None = None
    templates_dir: str | Path | None = None
    progress: bool = True
    batch: bool = False
    poll_interval: float = DEFAULT_POLL_INTERVAL
    engine: str = "transformers"

    def check(self) -> None:
        """Raise :class:`ConfigError` for options that cannot work together."""
        if self.mode not in MODES:
            raise ConfigError(f"unknown mode {self.mode!r} (choose from {', '.join(MODES)})")
        if self.n is not None and self.n < 1:
            raise ConfigError("--n must be >= 1")
        if self.k < 1:
            raise ConfigError("k (seed examples per request) must be >= 1")
        if self.mode == "seeds" and self.n is None:
            raise ConfigError("seeds mode needs n, the number of examples to ask for (--n)")
        if self.mode == "answer" and self.questions is None:
            raise ConfigError("answer mode needs questions (--questions FILE)")
        if self.mode == "targeted" and not self.weaknesses:
            raise ConfigError("targeted mode needs weakness groups (--weaknesses FILE)")
        if not self.poll_interval >= 0:
            raise ConfigError("--poll-interval must be a number of seconds >= 0")
        from curator.llm.engine import ENGINES

        if self.engine not in ENGINES:
            raise ConfigError(f"unknown engine {self.engine!r} (choose from {', '.join(ENGINES)})")


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
        if isinstance(d["id"], bool) or not isinstance(d["id"], str | int):
            raise InputError(f"{where}: \"id\" must be a string, got {type(d['id']).__name__}")
        if d.get("task") is not None and not isinstance(d["task"], str):
            raise InputError(f"{where}: \"task\" must be a string, got {type(d['task']).__name__}")
        ids = d.get("example_ids") or []
        if not isinstance(ids, list) or not all(isinstance(x, str) for x in ids):
            raise InputError(f"{where}: example_ids must be a list of example ids")
        return cls(str(d["id"]), d.get("task"), d.get("description") or "", list(ids))


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
    failures: dict[str, dict[str, Any]] = field(default_factory=dict)  # reason -> {"count", "example"}
    batch: bool = False  # requests went through the provider's batch API
    batches_submitted: int = 0  # provider batches submitted by this run
    batches_resumed: int = 0  # provider batches of an earlier run, collected by this one
    batch_ids: list[str] = field(default_factory=list)
    estimate: dict[str, Any] | None = None  # dry run
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def accepted(self) -> int:
        return self.added + self.already_present

    @property
    def answered(self) -> int:
        """Requests that got a reply (new or cached); 0 with requests planned means nothing worked."""
        return self.made + self.cached

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["accepted"] = self.accepted
        return d


# -- inputs --------------------------------------------------------------------------------------------------------
def load_questions(source: str | Path | Sequence[Any]) -> list[tuple[int, list[dict[str, Any]], str | None]]:
    """``(line, messages, task)`` per question: JSONL lines ``{"messages": [...]}`` (ending with a user turn)
    or ``{"prompt": "..."}``; a list of such dicts or of strings works too."""
    unit = "line"
    if isinstance(source, (str, Path)):
        # The readers of ``curator ingest``: bounded lines, UTF-8 and NUL checks, JSON Lines or a JSON array.
        path = check_file(source)
        unit = "record" if is_json_array(path) else "line"
        items: list[tuple[int, Any]] = []
        for n, rec in iter_json_records(path):
            try:
                if isinstance(rec, RowError):
                    raise rec
                check_unicode(rec)
            except RowError as e:
                raise InputError(str(e), path, n, unit) from None
            items.append((n, rec))
        where: str | None = str(path)
    else:
        items = list(enumerate(source, 1))
        where = None
    out = []
    for n, rec in items:
        if isinstance(rec, str):
            rec = {"prompt": rec}
        if not isinstance(rec, dict):
            raise InputError("expected a JSON object with \"messages\" or \"prompt\"", where, n, unit)
        task = rec.get("task")
        if task is not None and not isinstance(task, str):
            raise InputError(f'"task" must be a string, got {type(task).__name__}', where, n, unit)
        if "messages" in rec:
            msgs = rec["messages"]
            if (not isinstance(msgs, list) or not msgs
                    or not all(isinstance(m, dict) and m.get("role") in ("system", "user", "assistant")
                               and isinstance(m.get("content"), str) for m in msgs)):
                raise InputError("\"messages\" must be a list of {role, content} with role system/user/assistant",
                                 where, n, unit)
            if msgs[-1]["role"] != "user":
                raise InputError("the last message must be a user turn (the question to answer)", where, n, unit)
            out.append((n, [{"role": m["role"], "content": m["content"]} for m in msgs], task))
        elif isinstance(rec.get("prompt"), str) and rec["prompt"].strip():
            out.append((n, [{"role": "user", "content": rec["prompt"]}], task))
        else:
            raise InputError("expected \"messages\" (ending with a user turn) or a non-empty \"prompt\"", where, n,
                             unit)
    if not out:
        raise InputError("no questions found", where)
    return out


def load_weaknesses(source: str | Path | Sequence[Weakness | dict[str, Any]]) -> list[Weakness]:
    """Weakness groups from a JSON file (a list, or ``{"weaknesses": [...]}``) or a list."""
    where = "weaknesses"
    if isinstance(source, (str, Path)):
        path = check_file(source)
        raw = path.read_bytes()
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as e:
            column = e.start - raw.rfind(b"\n", 0, e.start)
            raise InputError(f"invalid UTF-8 (byte {column} of the line)", path, raw.count(b"\n", 0, e.start) + 1
                             ) from None
        try:
            data: Any = orjson.loads(raw.removeprefix(b"\xef\xbb\xbf"))
        except orjson.JSONDecodeError as e:
            raise InputError(f"invalid JSON: {e.msg} (column {e.colno})", path, e.lineno) from None
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


# -- stage 1: plan -------------------------------------------------------------------------------------------------
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
class _Plan:
    """Everything the later stages need; made without a single request."""

    opts: GenerateOptions
    task: str | None
    specs: list[_Spec]
    params: GenParams
    filters: FilterConfig
    teacher: Endpoint
    judge: Judge | None
    judge_endpoint: Endpoint | None
    repair: Template
    judge_template: Template | None
    template_name: str
    template_hash: str
    job: str
    store: RequestStore
    already_spent: float
    uncached: list[_Spec]
    report: GenerateReport

    def request(self, spec: _Spec) -> Request:
        return Request(spec.messages, self.params, spec.extra, spec.key)


def _plan(ws: Workspace, opts: GenerateOptions) -> _Plan:
    """Stage 1: the requests of the job, their cache state and the job's spend so far; no network.

    The workspace is read in one short connection (seeds, questions' system prompts, failing
    examples of the weaknesses, cached responses, earlier spend) and closed again.
    """
    opts.check()
    params = opts.params or GenParams()
    qs = load_questions(opts.questions) if opts.mode == "answer" and opts.questions is not None else None
    groups = load_weaknesses(opts.weaknesses) if opts.mode == "targeted" and opts.weaknesses is not None else None
    table = opts.prices if isinstance(opts.prices, PriceTable) else load_prices(opts.prices, ws.path)
    local = {"engine": opts.engine} if opts.engine != "transformers" else None
    teacher = Endpoint(opts.teacher, prices=table, concurrency=opts.concurrency,
                       limiter=RateLimiter(opts.rpm, opts.tpm), batch=opts.batch,
                       provider_options=local if _kind(opts.teacher) == "local" else None)
    if opts.batch and teacher.kind not in BATCH_KINDS:
        raise ConfigError(f"--batch needs a teacher with a batch API ({', '.join(k + ':MODEL' for k in BATCH_KINDS)}); "
                          f"{teacher.spec} answers live: leave out --batch")
    if opts.engine != "transformers" and teacher.kind != "local":
        raise ConfigError(f"--engine {opts.engine} is for a local teacher (local:NAME|PATH), not {teacher.spec}")
    jdg = Judge(opts.judge) if isinstance(opts.judge, (str, Provider)) else opts.judge
    jt = Endpoint(jdg.teacher, prices=table, concurrency=opts.concurrency,
                  limiter=RateLimiter(opts.rpm, opts.tpm),
                  batch=opts.batch and _kind(jdg.teacher) in BATCH_KINDS,
                  provider_options=local if _kind(jdg.teacher) == "local" else None) if jdg else None
    warnings: list[str] = []
    for who in [teacher] + ([jt] if jt else []):
        if who.price is None:
            if opts.budget is not None:
                raise PriceUnknownError(
                    f"no price for {who.kind}:{who.model}, so --budget cannot be enforced: add "
                    f"'{who.kind}: {{{who.model}: {{input: USD_PER_1M, output: USD_PER_1M}}}}' to {table.where()} "
                    "(see curator/llm/prices.yaml)")
            warnings.append(f"no price for {who.kind}:{who.model}: its cost is unknown (add it to a prices file)")

    mode, task, n, system = opts.mode, opts.task, opts.n, opts.system
    gen_tmpl = load_template(mode, opts.templates_dir) if mode != "answer" else None
    repair = load_template("repair", opts.templates_dir)
    judge_tmpl = load_template("judge", opts.templates_dir) if jdg else None
    tmpl_hash = hashlib.sha256("".join(x.hash for x in (gen_tmpl, repair, judge_tmpl) if x).encode()).hexdigest()[:16]
    store = RequestStore(ws)
    with ws.connect() as con:
        if mode == "seeds":
            assert gen_tmpl is not None and n is not None
            task, specs = _plan_seeds(con, task, n, opts.seed, opts.k, system, gen_tmpl)
            inputs: Any = None
        elif mode == "answer":
            assert qs is not None
            specs = _plan_answer(con, qs, task, system, n)
            inputs = hashlib.sha256(orjson.dumps([s.base for s in specs])).hexdigest()
        else:
            assert gen_tmpl is not None and groups is not None
            specs = _plan_targeted(con, groups, task, n, opts.seed, opts.k, system, gen_tmpl)
            inputs = [asdict(w) for w in groups]
        for s in specs:
            s.key = teacher.key(s.messages, params, s.extra)
        pd = params.to_dict()
        job = _job_id(mode=mode, task=task, teacher=f"{teacher.kind}:{teacher.model}", n=n, seed=opts.seed, k=opts.k,
                      templates=tmpl_hash, params=pd, system=system, inputs=inputs,
                      judge=None if not (jt and jdg) else [jt.kind, jt.model, jdg.min_score])
        store.preload([s.key for s in specs])  # over the connection open here
        earlier = con.execute("SELECT sum(cost_usd) FROM requests WHERE job = ? AND status = 'ok'", [job]).fetchall()
    report = GenerateReport(job=job, mode=mode, task=task, teacher=teacher.spec, dry_run=opts.dry_run,
                            requested=len(specs), budget_usd=opts.budget, warnings=warnings, batch=opts.batch)
    return _Plan(opts=opts, task=task, specs=specs, params=params, filters=opts.filters or FilterConfig(),
                 teacher=teacher, judge=jdg, judge_endpoint=jt, repair=repair, judge_template=judge_tmpl,
                 template_name=mode, template_hash=tmpl_hash, job=job, store=store,
                 already_spent=float(earlier[0][0] or 0.0),
                 uncached=[s for s in specs if store.get(s.key, query=False) is None], report=report)


def _kind(teacher: str | Provider) -> str:
    """The provider kind of a spec or a provider (``openai``, ``local``...)."""
    if isinstance(teacher, Provider):
        return teacher.name
    from curator.llm.providers import parse_spec

    return parse_spec(teacher)[0]


def _job_id(**parts: Any) -> str:
    return hashlib.sha256(orjson.dumps(parts, option=orjson.OPT_SORT_KEYS, default=str)).hexdigest()[:16]


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


def _seed_pool(con: duckdb.DuckDBPyConnection, task: str | None) -> tuple[str, list[tuple[str, list[dict[str, Any]]]]]:
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


def _plan_seeds(con: duckdb.DuckDBPyConnection, task: str | None, n: int, seed: int, k: int, system: str | None,
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


def _plan_answer(con: duckdb.DuckDBPyConnection, questions: list[tuple[int, list[dict[str, Any]], str | None]], task: str | None,
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


def _plan_targeted(con: duckdb.DuckDBPyConnection, weaknesses: list[Weakness], task: str | None, n: int | None, seed: int, k: int,
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


# -- stage 2: fetch ------------------------------------------------------------------------------------------------
def _tick(bar: Progress, s: RunStats) -> None:
    """One planned request done: advance the shared progress stage and show the counts and spend."""
    spend = "unknown" if s.spent_usd is None else f"${s.spent_usd:.4f}"
    bar.advance(1)
    bar.update(note=f"new {s.made}  cached {s.cached}  failed {s.failed}  {spend}")


@dataclass
class _Reply:
    """The teacher's answer to one planned request (None: failed or not started)."""

    spec: _Spec
    response: CachedResponse | None
    key: str  # the request whose reply it is (the repair's, when the first reply was repaired)
    pair: tuple[str, str] | None = None  # seeds / targeted: the parsed question and answer


def _repair(plan: _Plan, spec: _Spec, resp: CachedResponse) -> Request:
    """The follow-up that asks a reply with no question/answer pair to repair itself."""
    return Request(spec.messages + [{"role": "assistant", "content": resp.text}] + plan.repair.render(), plan.params,
                   {"repair_of": spec.key})


async def _fetch_batches(plan: _Plan, runner: Runner) -> None:
    """``--batch``: the planned requests through provider batches, then the repairs of unparsable replies in a
    second round; afterwards every answer is in the cache and :func:`_fetch` asks nothing live."""
    assert runner.batch is not None
    await runner.batch.fetch(runner, plan.teacher, [plan.request(s) for s in plan.specs])
    if plan.opts.mode == "answer":
        return
    fixes = [_repair(plan, s, resp) for s in plan.specs
             if (resp := plan.store.get(s.key, query=False)) is not None and parse_pair(resp.text) is None]
    if fixes:
        await runner.batch.fetch(runner, plan.teacher, fixes)


async def _fetch(plan: _Plan, runner: Runner) -> list[_Reply]:
    """Stage 2: every planned request through the runner; a reply with no question/answer pair is
    asked to repair itself once (seeds and targeted modes).  One progress tick per planned request."""
    teacher = plan.teacher
    if runner.batch is not None and runner.batch.handles(teacher):
        await _fetch_batches(plan, runner)

    async def one(spec: _Spec, bar: Progress) -> _Reply:
        try:
            return await ask(spec)
        finally:
            _tick(bar, runner.stats)

    async def ask(spec: _Spec) -> _Reply:
        resp = await runner.call(teacher, plan.request(spec))
        if resp is None or plan.opts.mode == "answer":
            return _Reply(spec, resp, spec.key)
        pair = parse_pair(resp.text)
        if pair is not None:
            return _Reply(spec, resp, spec.key, pair)
        fix = _repair(plan, spec, resp)
        again = await runner.call(teacher, fix)
        return _Reply(spec, again, fix.key, parse_pair(again.text) if again is not None else None)

    with progress("generate", len(plan.specs), enabled=plan.opts.progress) as bar:
        return list(await asyncio.gather(*(one(s, bar) for s in plan.specs)))


# -- stage 3: filter -----------------------------------------------------------------------------------------------
def _candidate(plan: _Plan, r: _Reply) -> Candidate | Rejection:
    """The example a reply makes, or why it is rejected (parse, truncated, empty, length, refusal)."""
    spec, resp, cfg = r.spec, r.response, plan.filters
    assert resp is not None
    if plan.opts.mode == "answer":
        assert spec.base is not None
        question = "\n".join(m["content"] for m in spec.base if m["role"] == "user")
        answer = resp.text.strip()
        msgs = spec.base + [{"role": "assistant", "content": answer}]
        rej = check_text(question, answer, resp.finish_reason, cfg)
    else:
        if r.pair is None:
            return Rejection("parse", "no question/answer pair in the reply", request_key=r.key,
                             candidate={"reply": resp.text[:4000]}, weakness_id=spec.weakness_id)
        question, answer = r.pair
        msgs = (([{"role": "system", "content": spec.system}] if spec.system else [])
                + [{"role": "user", "content": question}, {"role": "assistant", "content": answer}])
        rej = check_text(question, answer, _finish(resp.text, answer, resp.finish_reason), cfg)
    meta = _candidate_meta(spec, plan.teacher.spec, plan.opts.mode, plan.template_name, plan.template_hash,
                           plan.params, r.key, plan.job)
    ex = Example.from_messages(msgs, task=spec.task, origin="synthetic", source=plan.teacher.spec,
                               parent_id=spec.parent_ids[0] if spec.parent_ids else None, meta=meta)
    if rej is not None:
        rej.request_key, rej.candidate, rej.weakness_id = r.key, {"messages": ex.messages}, spec.weakness_id
        return rej
    return Candidate(spec.index, ex, r.key, spec.weakness_id, question, answer)


def _rejected(c: Candidate, r: Rejection) -> Rejection:
    r.request_key, r.weakness_id, r.candidate = c.request_key, c.weakness_id, {"messages": c.example.messages}
    return r


async def _filter(ws: Workspace, plan: _Plan, runner: Runner, replies: list[_Reply],
                  held: ExitStack) -> tuple[list[Candidate], list[Rejection]]:
    """Stage 3: (accepted candidates, rejections).  Text filters, then duplicates among the new ones
    (the first stays), those an earlier run of the job stored already (counted, not stored again),
    leaks, duplicates of stored examples, and the judge.  ``held`` (the workspace connection the
    reads share) is closed before the judge is asked."""
    report = plan.report
    rejections: list[Rejection] = []
    cands: list[Candidate] = []
    for r in replies:
        if r.response is not None:
            got = _candidate(plan, r)
            if isinstance(got, Candidate):
                cands.append(got)
            else:
                rejections.append(got)
    cands.sort(key=lambda c: c.index)
    report.candidates = len(cands)
    first: dict[str, Candidate] = {}
    live: list[Candidate] = []
    for c in cands:
        if c.example.id in first:
            rejections.append(_rejected(c, Rejection("duplicate-exact", "same example as another new one",
                                                     first[c.example.id].example.id, 1.0)))
        else:
            first[c.example.id] = c
            live.append(c)
    stored = _stored_ids(ws, [c.example.id for c in live])
    report.already_present = sum(1 for c in live if c.example.id in stored)
    for c in live:
        if c.example.id in stored and c.weakness_id:
            report.by_weakness[c.weakness_id] = report.by_weakness.get(c.weakness_id, 0) + 1
    live = [c for c in live if c.example.id not in stored]
    for check in (find_leaks, find_duplicates):
        found = check(ws, live, plan.filters)
        rejections += [_rejected(live[i], r) for i, r in sorted(found.items())]
        live = [c for i, c in enumerate(live) if i not in found]
    if plan.judge is not None and live:
        if runner.stats.stopped:
            judged = {i: Rejection("judge-failed", "not judged: the run stopped") for i in range(len(live))}
        else:
            held.close()  # the judge waits on the network: let go of the workspace
            judged = await _judge(plan, runner, live)
        rejections += [_rejected(live[i], r) for i, r in sorted(judged.items())]
        live = [c for i, c in enumerate(live) if i not in judged]
    return live, rejections


def _stored_ids(ws: Workspace, ids: list[str]) -> set[str]:
    """Which of ``ids`` are examples already (one short read)."""
    stored: set[str] = set()
    if not ids:
        return stored
    with ws.connect() as con:
        for start in range(0, len(ids), 1000):
            chunk = ids[start : start + 1000]
            stored |= {r[0] for r in con.execute(
                f"SELECT id FROM examples WHERE id IN ({','.join('?' * len(chunk))})", chunk).fetchall()}
    return stored


async def _judge(plan: _Plan, runner: Runner, cands: list[Candidate]) -> dict[int, Rejection]:
    """Rejections (by position in ``cands``) of the candidates the judge scores under ``min_score``;
    every judged example records ``meta.judge`` (model, score, reason)."""
    judge, jt, tmpl = plan.judge, plan.judge_endpoint, plan.judge_template
    assert judge is not None and jt is not None and tmpl is not None
    reqs = [jt.keyed(Request(tmpl.render(system=_system_of(c.example.messages) or "(none)", question=c.question,
                                         answer=c.answer), judge.params, {"judge_of": c.example.id}))
            for c in cands]
    plan.store.preload([r.key for r in reqs])  # one short read instead of one per candidate
    replies = await runner.run(jt, reqs)
    out: dict[int, Rejection] = {}
    for pos, (c, resp) in enumerate(zip(cands, replies, strict=True)):
        score, reason = parse_score(resp.text) if resp is not None else (None, "")
        c.example.meta["judge"] = {"model": jt.spec, "score": score, "reason": reason}
        if score is None:
            out[pos] = Rejection("judge-failed", "the judge gave no score" if resp else "the judge request failed")
        elif score < judge.min_score:
            out[pos] = Rejection("judge", f"score {score:g} < {judge.min_score:g}: {reason}".rstrip(": "),
                                 score=score)
    return out


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


def _finish(reply: str, answer: str, finish_reason: str) -> str:
    """``stop`` when the reply went on after a complete answer (a model starting a second pair
    until max_tokens), else the provider's finish reason."""
    if finish_reason != "length":
        return finish_reason
    end = reply.find(answer)
    return "stop" if end != -1 and reply[end + len(answer) :].strip() else finish_reason


# -- stage 4: store ------------------------------------------------------------------------------------------------
def _store(ws: Workspace, plan: _Plan, runner: Runner, accepted: list[Candidate], rejections: list[Rejection]) -> None:
    """Stage 4: accepted examples (pinned to train), the job's rejections and its row, in one transaction."""
    from curator.data.ingest import Columns, store_examples

    report, job, opts = plan.report, plan.job, plan.opts
    for r in rejections:
        report.rejected[r.reason] = report.rejected.get(r.reason, 0) + 1
    report.rejected = dict(sorted(report.rejected.items(), key=lambda kv: (-kv[1], kv[0])))
    cols = Columns.of([c.example for c in accepted], ["train"] * len(accepted))
    with ws.transaction() as con:
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
        report.spent_usd = runner.budget.spent_this_run if runner.spend_known else None
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
            [job, opts.mode, plan.task, plan.teacher.spec, opts.n, opts.seed, plan.template_hash,
             orjson.dumps(plan.params.to_dict()).decode(), "stopped" if report.stopped else "done",
             orjson.dumps(report.to_dict()).decode(), report.job_spent_usd, created],
        )


# -- the four stages -----------------------------------------------------------------------------------------------
def generate(ws: Workspace, options: GenerateOptions | None = None, /, **kwargs: Any) -> GenerateReport:
    """Generate examples with a teacher model and store those that pass the filters (see the module docstring).

    ``options``: a :class:`GenerateOptions`; keyword arguments are its fields (given with ``options``,
    they replace its values): ``generate(ws, mode="seeds", teacher="openai:gpt-4o-mini", n=50)``.
    """
    opts = dataclasses.replace(options, **kwargs) if options is not None else GenerateOptions(**kwargs)
    t0 = time.monotonic()
    plan = _plan(ws, opts)
    report = plan.report
    if opts.dry_run:
        report.estimate = _estimate(plan)
        report.job_spent_usd = plan.already_spent
        report.seconds = time.monotonic() - t0
        return report
    runner = Runner(plan.store, job=plan.job, budget=Budget(opts.budget, plan.already_spent), retry=opts.retry)
    if opts.batch:
        runner.batch = BatchSession(poll_interval=opts.poll_interval, progress=opts.progress, log=log.info)
    if plan.uncached:
        plan.teacher.provider()  # fail fast on a missing key or bad model, before anything is asked
        if plan.judge_endpoint is not None:
            plan.judge_endpoint.provider()

    async def stages() -> None:
        try:
            replies = await _fetch(plan, runner)  # no connection open; the cache's short steps only
            with ExitStack() as held:
                held.enter_context(ws.connect())  # the filter's reads and the store share one connection
                accepted, rejections = await _filter(ws, plan, runner, replies, held)
                _copy_stats(runner, report)
                _store(ws, plan, runner, accepted, rejections)
        finally:
            await plan.teacher.aclose()
            if plan.judge_endpoint is not None:
                await plan.judge_endpoint.aclose()

    try:
        run_async(stages)
    finally:
        plan.store.close()
    report.seconds = time.monotonic() - t0
    return report


def _copy_stats(runner: Runner, report: GenerateReport) -> None:
    s = runner.stats
    for name in ("made", "cached", "failed", "not_started", "api_calls", "retries", "input_tokens", "output_tokens",
                 "stopped", "message"):
        setattr(report, name, getattr(s, name))
    if s.stopped == "budget":
        report.message = runner.budget_message()  # the amount the report prints too
    report.failures = {k: dict(v) for k, v in sorted(s.failures.items(), key=lambda kv: (-kv[1]["count"], kv[0]))}
    report.warnings += s.warnings(runner.policy)
    report.batches_submitted, report.batches_resumed = s.batches_submitted, s.batches_resumed
    report.batch_ids = list(s.batch_ids)
    if runner.batch is not None:
        report.warnings += runner.batch.warnings


# -- dry run -------------------------------------------------------------------------------------------------------
def _estimate(plan: _Plan) -> dict[str, Any]:
    """The dry run's figures: requests, cached ones, token and cost bounds (teacher and judge)."""
    specs, uncached, params, t = plan.specs, plan.uncached, plan.params, plan.teacher
    jdg, jt, judge_tmpl = plan.judge, plan.judge_endpoint, plan.judge_template
    est_in = sum(estimate_input_tokens(s.messages) for s in uncached)
    max_in = sum(max_input_tokens(s.messages) for s in uncached)
    max_out = len(uncached) * params.max_tokens
    d: dict[str, Any] = {
        "requests": len(specs), "cached": len(specs) - len(uncached), "to_make": len(uncached),
        "input_tokens_estimate": est_in, "input_tokens_max": max_in, "output_tokens_max": max_out,
        "cost_estimate_usd": t.price.cost(est_in, max_out) if t.price else None,
        "cost_max_usd": t.price.cost(max_in, max_out) if t.price else None,
        "price": None if t.price is None else asdict(t.price),
        "note": "output at max_tokens; repair requests for unparsable replies come on top"
                + ("; at batch prices" if t.batch else ""),
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
