"""`curator generate` (the real CLI, in a subprocess) against a faulty teacher: one table row per scenario.

    .venv/bin/python scripts/teacher_faults.py [--only SUBSTRING] [--timeout 120]

The teacher is the fake OpenAI + Anthropic server of the tests (``tests/fakeserver.py``), started in this
process on 127.0.0.1; each scenario scripts its replies: every fault kind it has (drip, html_page,
truncated, no_choices, echo_key, rate_limited, server_error, overloaded, malformed, drop, HTTP 4xx),
faults mixed with good replies, both API shapes, and the usage cases (negative, 10^12, missing, not
numbers, not an object) with and without ``--budget``.  Each scenario runs on a fresh copy of a workspace
holding the bundled support seeds.  Columns:

* ``exit``: the exit status; ``tb``: a Python traceback on stderr (a bug); ``hang``: still running after
  ``--timeout`` seconds (a bug);
* ``examples`` and ``requests``: rows of those tables before -> after;
* ``spent / cap``: the run's spend (USD) from its ``--json`` report, and its ``--budget``;
* ``leak``: whether a provider key (the environment's) is in any table of the workspace afterwards;
* ``says``: the ``Error:`` line, or a summary of the report.

Then a 50-request job with a ``--budget`` of about 30 requests' real cost: it must spend up to its cap
(less than one request's reservation below it) and never over, and a re-run of the same job must start
nothing.  Exit status 1 when a scenario has a traceback, a hang, a leak, or spends over its cap.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "synth")]

from fakeserver import (  # noqa: E402
    FakeLLMServer,
    RecordedRequest,
    Reply,
    drip,
    drop,
    echo_key,
    html_page,
    http_error,
    malformed,
    no_choices,
    overloaded,
    rate_limited,
    server_error,
    slow,
    truncated,
    with_usage,
)
from synth_helpers import SEEDS, unique_pair  # noqa: E402

CURATOR = [str(ROOT / ".venv/bin/curator")] if (ROOT / ".venv/bin/curator").exists() else [
    sys.executable, "-m", "curator"]
OPENAI_KEY = "sk-proj-TEACHER-FAULTS-0123456789abcdef"
ANTHROPIC_KEY = "sk-ant-TEACHER-FAULTS-fedcba9876543210"
OPENAI = "openai:gpt-4o-mini"
ANTHROPIC = "anthropic:claude-3-5-haiku"

Step = Reply | str | Callable[[RecordedRequest], Reply | str]


@dataclass
class Scenario:
    name: str
    steps: list[Step]  # replies in order; "ok" is a good reply; the last one repeats
    n: int = 4
    teacher: str = OPENAI
    args: list[str] = field(default_factory=list)


def ok(rec: RecordedRequest) -> str:
    return unique_pair(rec)


def usage(value: Any) -> Callable[[RecordedRequest], Reply]:
    """A good reply whose usage object is ``value`` (None: none at all)."""
    return lambda rec: with_usage(value, unique_pair(rec))


def body(value: Any) -> Callable[[RecordedRequest], Reply]:
    return lambda rec: Reply(body=value)


def text(t: str, finish: str = "stop") -> Reply:
    return Reply(text=t, finish_reason=finish)


def scenarios() -> list[Scenario]:
    s = Scenario
    big = 10**12
    fast = ["--max-attempts", "1"]
    return [
        # -- OpenAI shape: every fault kind alone ----------------------------------------------------------
        s("openai: all good (baseline)", ["ok"]),
        s("openai: malformed JSON body", [malformed()], args=fast),
        s("openai: HTML page (a proxy's 502)", [html_page()], args=fast),
        s("openai: truncated body", [truncated()], args=fast),
        s("openai: choices []", [no_choices()], args=fast),
        s("openai: connection dropped", [drop()], args=fast),
        s("openai: drip 1 byte/0.5 s, --request-timeout 2", [drip(0.5)], n=2, args=[*fast, "--request-timeout", "2"]),
        s("openai: 429 Retry-After 1, then good", [rate_limited(1), "ok"]),
        s("openai: 429 always (3 tries)", [rate_limited(0)], n=2, args=["--max-attempts", "3"]),
        s("openai: 429 Retry-After 3600 (1 try)", [rate_limited(3600)], n=2, args=fast),
        s("openai: 429 Retry-After not a number", [rate_limited("soon"), "ok"], n=2),
        s("openai: 500 once, then good", [server_error(), "ok"]),
        s("openai: 500 always, 12 requests (stop)", [server_error()], n=12, args=[*fast, "--concurrency", "1"]),
        s("openai: 400 bad request", [http_error(400, "Invalid 'messages'")], args=fast),
        s("openai: 401 wrong key", [http_error(401, "Incorrect API key provided")], args=fast),
        s("openai: reply quotes the key", [lambda rec: echo_key(
            json.dumps({**json.loads(unique_pair(rec)), "question": json.loads(unique_pair(rec))["question"]
                        + " My key is {key}."}))]),
        # -- faults mixed with successes ----------------------------------------------------------------
        s("openai: mixed good/malformed/drop/html/trunc", ["ok", malformed(), "ok", drop(), "ok", html_page(),
                                                            truncated(), "ok"], n=8, args=[*fast, "--concurrency", "1"]),
        s("openai: slow replies (1 s), 8 at concurrency 4", [lambda rec: slow(1.0, unique_pair(rec))], n=8,
          args=["--concurrency", "4"]),
        s("openai: prose, not JSON", [text("Sure! Here is a great example of a support question.")], args=fast),
        s("openai: empty text", [text("")], args=fast),
        s("openai: finish_reason length", [lambda rec: text(unique_pair(rec)[:40], "length")], args=fast),
        s("openai: 200 KB answer", [lambda rec: text(json.dumps({"question": "Why does my deploy fail at 3am?",
                                                                "answer": "Check the cron. " * 12_000}))], args=fast),
        s("openai: content null", [body({"id": "x", "object": "chat.completion", "choices": [
            {"index": 0, "message": {"role": "assistant", "content": None}, "finish_reason": "stop"}]})], args=fast),
        s("openai: body a JSON list", [body([1, 2, 3])], args=fast),
        s("openai: content a number", [body({"id": "x", "object": "chat.completion", "choices": [
            {"index": 0, "message": {"role": "assistant", "content": 42}, "finish_reason": "stop"}]})], args=fast),
        # -- usage --------------------------------------------------------------------------------------
        s("openai: usage negative", [usage({"prompt_tokens": -1000, "completion_tokens": -5, "total_tokens": -1005})]),
        s("openai: usage 10^12", [usage({"prompt_tokens": big, "completion_tokens": big, "total_tokens": 2 * big})]),
        s("openai: usage missing", [usage(None)]),
        s("openai: usage strings", [usage({"prompt_tokens": "many", "completion_tokens": "1e9"})]),
        s("openai: usage a list", [usage([1, 2])]),
        s("openai: usage 10^12, --budget 0.005", [usage({"prompt_tokens": big, "completion_tokens": big})], n=20,
          args=["--budget", "0.005"]),
        s("openai: usage negative, --budget 0.002", [usage({"prompt_tokens": -10**9, "completion_tokens": -10**9})],
          n=20, args=["--budget", "0.002"]),
        s("openai: usage missing, --budget 0.002", [usage(None)], n=20, args=["--budget", "0.002"]),
        s("openai: --budget, model without a price", ["ok"], teacher="openai:gpt-unpriced", args=["--budget", "1"]),
        # -- Anthropic shape -----------------------------------------------------------------------------
        s("anthropic: all good", ["ok"], teacher=ANTHROPIC),
        s("anthropic: 529 overloaded once, then good", [overloaded(), "ok"], teacher=ANTHROPIC),
        s("anthropic: 529 always (2 tries)", [overloaded()], n=2, teacher=ANTHROPIC, args=["--max-attempts", "2"]),
        s("anthropic: malformed JSON body", [malformed()], teacher=ANTHROPIC, args=fast),
        s("anthropic: truncated body", [truncated()], teacher=ANTHROPIC, args=fast),
        s("anthropic: drip, --request-timeout 2", [drip(0.5)], n=2, teacher=ANTHROPIC,
          args=[*fast, "--request-timeout", "2"]),
        s("anthropic: 429 then good", [rate_limited(1), "ok"], teacher=ANTHROPIC),
        s("anthropic: reply quotes the key", [lambda rec: echo_key(
            json.dumps({**json.loads(unique_pair(rec)), "answer": "Your key is {key}."}))], teacher=ANTHROPIC),
        s("anthropic: usage negative", [usage({"input_tokens": -1000, "output_tokens": -5})], teacher=ANTHROPIC),
        s("anthropic: usage 10^12", [usage({"input_tokens": big, "output_tokens": big})], teacher=ANTHROPIC),
        s("anthropic: usage missing", [usage(None)], teacher=ANTHROPIC),
        s("anthropic: usage 10^12, --budget 0.01", [usage({"input_tokens": big, "output_tokens": big})], n=20,
          teacher=ANTHROPIC, args=["--budget", "0.01"]),
        s("anthropic: mixed 529/good/drop/malformed", [overloaded(), "ok", drop(), "ok", malformed(), "ok"], n=6,
          teacher=ANTHROPIC, args=[*fast, "--concurrency", "1"]),
    ]


class Script:
    """The server's responder for one scenario: the steps in order, the last one repeating."""

    def __init__(self, steps: list[Step]) -> None:
        self.steps = steps
        self.i = 0
        self.lock = threading.Lock()

    def __call__(self, rec: RecordedRequest) -> Reply | str:
        with self.lock:
            step = self.steps[min(self.i, len(self.steps) - 1)]
            self.i += 1
        if step == "ok":
            return ok(rec)
        if callable(step):
            return step(rec)
        return step


def child_env(srv: FakeLLMServer, tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if "PROXY" not in k.upper() and k not in ("CURATOR_PRICES", "CURATOR_COMPATIBLE_API_KEY")}
    env.update(OPENAI_API_KEY=OPENAI_KEY, OPENAI_BASE_URL=srv.openai_base_url, ANTHROPIC_API_KEY=ANTHROPIC_KEY,
               ANTHROPIC_BASE_URL=srv.anthropic_base_url, CURATOR_KEYS_FILE=str(tmp / "no-keys.yaml"),
               NO_PROXY="127.0.0.1,localhost", CURATOR_HEARTBEAT="5")
    return env


def counts(ws: Path) -> dict[str, Any]:
    import duckdb

    con = duckdb.connect(str(ws / "curator.duckdb"), read_only=True)
    try:
        out: dict[str, Any] = {t: con.execute(f"SELECT count(*) FROM {t}").fetchall()[0][0]
                               for t in ("examples", "requests")}
        dump = ""
        for (table,) in con.execute("SELECT table_name FROM duckdb_tables()").fetchall():
            dump += repr(con.execute(f'SELECT * FROM "{table}"').fetchall())
        out["leak"] = OPENAI_KEY in dump or ANTHROPIC_KEY in dump
    finally:
        con.close()
    return out


def run_generate(ws: Path, args: list[str], env: dict[str, str], timeout: float) -> dict[str, Any]:
    t0 = time.monotonic()
    proc = subprocess.Popen([*CURATOR, "-w", str(ws), "generate", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, env=env,
                            start_new_session=True)
    hang = False
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        hang = True
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
    report = None
    try:
        report = json.loads(out)
    except ValueError:
        pass
    return {"rc": proc.returncode, "out": out, "err": err, "hang": hang, "report": report,
            "tb": "Traceback (most recent call last)" in err, "seconds": time.monotonic() - t0}


def summary(r: dict[str, Any]) -> str:
    errors = [ln[7:] for ln in r["err"].splitlines() if ln.startswith("Error: ")]
    if errors:
        return errors[0]
    rep = r["report"]
    if not rep:
        return (r["err"].strip().splitlines() or ["(no output)"])[-1]
    fails = ", ".join(f"{k} {v['count']}" for k, v in rep["failures"].items())
    rej = ", ".join(f"{k} {v}" for k, v in rep["rejected"].items())
    return (f"made {rep['made']}/{rep['requested']}, added {rep['added']}"
            + (f"; failed: {fails}" if fails else "") + (f"; rejected: {rej}" if rej else "")
            + (f"; stopped: {rep['stopped']}" if rep["stopped"] else "")
            + (f"; warnings {len(rep['warnings'])}" if rep["warnings"] else ""))


def money(x: float | None) -> str:
    return "-" if x is None else f"{x:.5f}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default="", help="run only the scenarios whose name contains this")
    ap.add_argument("--timeout", type=float, default=120.0)
    ap.add_argument("--skip-budget-job", action="store_true", help="leave out the 50-request job")
    a = ap.parse_args()
    bad = 0
    with tempfile.TemporaryDirectory(prefix="curator-faults-") as tmp_s, FakeLLMServer() as srv:
        tmp = Path(tmp_s)
        env = child_env(srv, tmp)
        base = tmp / "base"
        subprocess.run([*CURATOR, "-w", str(base), "ingest", str(SEEDS), "--origin", "seed", "--task", "support"],
                       check=True, capture_output=True, env=env)
        before = counts(base)
        selected = [sc for sc in scenarios() if a.only in sc.name]
        print(f"{'#':>2}  {'scenario':<46} {'exit':>4} {'tb':<3} {'hang':<4} {'examples':<9} {'requests':<8} "
              f"{'spent / cap':<17} {'leak':<4}  says")
        for i, sc in enumerate(selected, 1):
            ws = tmp / "ws"
            shutil.rmtree(ws, ignore_errors=True)
            shutil.copytree(base, ws)
            srv.reset()
            srv.responder = Script(sc.steps)
            args = ["--task", "support", "--n", str(sc.n), "--teacher", sc.teacher, "--skip-filter", "semantic",
                    "--json", *sc.args]
            r = run_generate(ws, args, env, a.timeout)
            after = counts(ws)
            rep = r["report"] or {}
            cap = rep.get("budget_usd")
            over = cap is not None and rep.get("job_spent_usd") is not None and rep["job_spent_usd"] > cap + 1e-12
            bad += r["tb"] or r["hang"] or after["leak"] or over
            spent = f"{money(rep.get('spent_usd'))} / {money(cap)}" + (" OVER" if over else "")
            print(f"{i:>2}  {sc.name[:46]:<46} {r['rc']:>4} {'yes' if r['tb'] else 'no':<3} "
                  f"{'yes' if r['hang'] else 'no':<4} {before['examples']:>3}->{after['examples']:<4} "
                  f"{before['requests']:>2}->{after['requests']:<4} {spent:<17} {'yes' if after['leak'] else 'no':<4}  "
                  f"{summary(r)[:120]}", flush=True)
        if not a.skip_budget_job and not a.only:
            bad += budget_job(tmp, base, srv, env, a.timeout)
    print(f"\n{'FAILED' if bad else 'ok'}: {bad} scenario(s) with a traceback, a hang, a leaked key or spend over the cap")
    return 1 if bad else 0


def budget_job(tmp: Path, base: Path, srv: FakeLLMServer, env: dict[str, str], timeout: float) -> int:
    """50 requests, a cap of about 30 requests' real cost: spends up to the cap, stops, and a re-run starts nothing."""
    fixed = {"prompt_tokens": 400, "completion_tokens": 120, "total_tokens": 520}
    per_request = (400 * 0.15 + 120 * 0.60) / 1e6  # gpt-4o-mini's bundled price, USD per 1M tokens
    cap = round(30 * per_request, 6)
    ws = tmp / "budget"
    shutil.rmtree(ws, ignore_errors=True)
    shutil.copytree(base, ws)
    srv.reset()
    srv.responder = Script([usage(fixed)])
    args = ["--task", "support", "--n", "50", "--teacher", OPENAI, "--skip-filter", "semantic", "--concurrency", "8",
            "--budget", str(cap), "--json"]
    first = run_generate(ws, args, env, timeout)
    calls_first = srv.count("/v1/chat/completions")
    again = run_generate(ws, args, env, timeout)
    calls_again = srv.count("/v1/chat/completions") - calls_first
    r1, r2 = first["report"] or {}, again["report"] or {}
    spent = r1.get("job_spent_usd") or 0.0
    # One request's reservation (what the budget holds back while it is in flight): its input bytes and
    # max_tokens (512) at the price; the run may stop at most this far below the cap.
    from curator.llm.budget import max_input_tokens

    bodies = [r.body for r in srv.requests if isinstance(r.body, dict) and r.body.get("messages")]
    bound = max((max_input_tokens(b["messages"]) * 0.15 + 512 * 0.60) / 1e6 for b in bodies) if bodies else 0.0
    print("\n50-request job, --budget", f"{cap:.6f}", f"(about 30 requests at {per_request:.6f} each, concurrency 8)")
    print(f"  first run:  exit {first['rc']}, requests made {r1.get('made')}/50, spent {spent:.6f} of {cap:.6f} "
          f"({100 * spent / cap:.1f}%), left {cap - spent:.6f} (one request's reservation: {bound:.6f}), "
          f"stopped: {r1.get('stopped')}; "
          f"traceback {'yes' if first['tb'] else 'no'}")
    print(f"  re-run:     exit {again['rc']}, HTTP calls {calls_again}, job spent {r2.get('job_spent_usd')}, "
          f"says: {summary(again)[:100]}")
    over = spent > cap + 1e-12
    early = cap - spent > bound + 1e-12  # stopped further below the cap than one request's reservation
    return int(over or early or first["tb"] or again["tb"] or first["hang"] or again["hang"] or calls_again > 0)


if __name__ == "__main__":
    sys.exit(main())
