"""Generation concurrency: `generate()` at concurrency 32 against concurrency 1, and a cached re-run.

    .venv/bin/python benchmarks/generate_concurrency.py [--n 256] [--latency 0.1] [--repeat 3] [--json]

A local fake OpenAI-compatible server (tests/fakeserver.py in a child process, real HTTP on
127.0.0.1, the real `openai` SDK) answers every request after `--latency` seconds.  Answer mode, `--n` distinct
questions, each run in a fresh workspace; the times are of the whole `generate()` call (requests,
cache writes, parsing, exact/near filters, storing), the median of ``--repeat`` runs on each side (on
2 shared cores one run in three or four was 15 % slower than the others).  Baseline: the same run at
concurrency 1.
Targets: speed-up >= 25x; the identical second run sends 0 requests.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from _common import timed  # noqa: E402

WORDS = ("account billing instance restart storage bucket permission network timeout database connection "
         "password reset invoice region quota limit error deploy function cold start dns record key rotate "
         "backup restore console upgrade plan support ticket").split()


def _serve(latency: float, conn: Any) -> None:
    """Child process: the fake server, answering "count" / "peak" / "stop" on a pipe."""
    import fakeserver
    from fakeserver import FakeLLMServer, RecordedRequest

    # Real servers answer in one segment (or set TCP_NODELAY); without it the fake server's header
    # and body writes meet the client's delayed ACK and every request waits ~40 ms more.
    fakeserver._Handler.disable_nagle_algorithm = True

    def responder(rec: RecordedRequest) -> str:
        q = rec.body["messages"][-1]["content"]
        return f"Diagnosis: {q[:40]}.\n1. Check it.\n2. Fix it.\n3. Verify it.\nEscalation: open a ticket."

    with FakeLLMServer(responder, latency=latency) as srv:
        conn.send(srv.openai_base_url)
        while True:
            cmd = conn.recv()
            if cmd == "stop":
                return
            conn.send(srv.request_count if cmd == "count" else srv.peak_concurrency)


class ServerProcess:
    """The fake server in its own process, as a real server would be (no shared GIL with the client)."""

    def __init__(self, latency: float) -> None:
        ctx = mp.get_context("fork")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_serve, args=(latency, child), daemon=True)

    def __enter__(self) -> ServerProcess:
        self.proc.start()
        self.base_url = self.conn.recv()
        return self

    def ask(self, cmd: str) -> int:
        self.conn.send(cmd)
        return int(self.conn.recv())

    def __exit__(self, *exc: object) -> None:
        self.conn.send("stop")
        self.proc.join(timeout=10)


def _raw_sdk(base_url: str, questions: list[str], concurrency: int) -> float:
    """The same requests with the bare openai SDK (and the HTTP transport curator gives it) and a semaphore:
    the ceiling on this machine and server."""
    import asyncio

    import openai

    from curator.llm.providers.http import http_client

    async def go() -> float:
        client = openai.AsyncOpenAI(base_url=base_url, api_key="not-needed", max_retries=0,
                                    http_client=http_client(openai))
        sem = asyncio.Semaphore(concurrency)

        async def one(q: str) -> None:
            async with sem:
                await client.chat.completions.create(model="raw", messages=[{"role": "user", "content": q}],
                                                     max_tokens=64)

        t0 = time.perf_counter()
        await asyncio.gather(*(one(q) for q in questions))
        secs = time.perf_counter() - t0
        await client.close()
        return secs

    return asyncio.run(go())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=256)
    ap.add_argument("--latency", type=float, default=0.1)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--repeat", type=int, default=3, help="runs per side; the median counts")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    from curator.synth import FilterConfig, GenParams, generate
    from curator.workspace import Workspace

    rng = random.Random(0)
    questions = [" ".join(rng.choices(WORDS, k=12)) + f" (case {i})?" for i in range(args.n)]
    cfg = FilterConfig(skip=frozenset({"semantic"}))  # no embedder load: this measures the request path
    with tempfile.TemporaryDirectory() as tmp, ServerProcess(args.latency) as srv:
        teacher = f"compatible:{srv.base_url}:bench-model"

        cpu: dict[str, float] = {}

        def run(name: str, concurrency: int, folder: str | None = None) -> tuple[float, int, int]:
            ws = Workspace(Path(tmp) / (folder or name))
            before = srv.ask("count")
            cpu0 = time.process_time()
            secs, rep = timed(lambda: generate(ws, mode="answer", teacher=teacher, questions=questions,
                                               concurrency=concurrency, params=GenParams(max_tokens=64),
                                               filters=cfg, progress=False))
            cpu[name] = time.process_time() - cpu0
            return secs, srv.ask("count") - before, rep.added

        # Warm-up (imports, SDK client, first DuckDB file) so neither side pays it.
        run("warm", args.concurrency)
        import statistics

        def median_of(name: str, concurrency: int) -> tuple[float, int, int, list[float]]:
            runs = [run(f"{name}{i}" if i else name, concurrency) for i in range(args.repeat)]
            secs = [r[0] for r in runs]
            return statistics.median(secs), runs[0][1], runs[0][2], secs

        par_s, par_req, par_added, par_all = median_of("parallel", args.concurrency)
        seq_s, seq_req, seq_added, seq_all = median_of("sequential", 1)
        again_s, again_req, again_added = run("again", args.concurrency, "parallel")
        peak = srv.ask("peak")
        raw_s = _raw_sdk(srv.base_url, questions, args.concurrency)

    speedup = seq_s / par_s
    ok_speed, ok_cache = speedup >= 25, again_req == 0
    result = {
        "n": args.n, "latency_s": args.latency, "concurrency": args.concurrency,
        "concurrent_s": round(par_s, 3), "sequential_s": round(seq_s, 3), "speedup": round(speedup, 1),
        "requests": {"concurrent": par_req, "sequential": seq_req, "second_run": again_req},
        "concurrent_runs_s": [round(x, 3) for x in par_all], "sequential_runs_s": [round(x, 3) for x in seq_all],
        "second_run_s": round(again_s, 3), "raw_sdk_concurrent_s": round(raw_s, 3), "examples_added": [par_added, seq_added, again_added],
        "server_peak_concurrency": peak, "client_cpu_s": {k: round(v, 3) for k, v in cpu.items()},
        "target": {"speedup": ">= 25", "second_run_requests": 0},
        "pass": ok_speed and ok_cache,
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"{args.n} requests, {args.latency * 1000:.0f} ms latency each (fake OpenAI-compatible server, openai SDK)")
    runs = lambda xs: ", ".join(f"{x:.2f}" for x in xs)  # noqa: E731
    print(f"  concurrency {args.concurrency:>2}: {par_s:6.2f} s  median of [{runs(par_all)}]  "
          f"({par_req} requests, {par_added} examples)")
    print(f"  concurrency  1: {seq_s:6.2f} s  median of [{runs(seq_all)}]  "
          f"({seq_req} requests, {seq_added} examples)   <- baseline")
    print(f"  bare openai SDK, same requests at concurrency {args.concurrency}: {raw_s:.2f} s "
          f"(ceiling of this server on this machine: {seq_s / raw_s:.1f}x)")
    print(f"  client CPU time: {cpu['parallel']:.2f} s at concurrency {args.concurrency}, "
          f"{cpu['sequential']:.2f} s at 1 (2 cores shared with other work: wall time includes waiting for a core)")
    print(f"  speed-up: {speedup:.1f}x (target >= 25x)  {'PASS' if ok_speed else 'FAIL'}")
    print(f"  identical second run: {again_req} requests, {again_added} examples added, {again_s:.2f} s "
          f"(target 0 requests)  {'PASS' if ok_cache else 'FAIL'}")
    print("PASS" if result["pass"] else "FAIL")


if __name__ == "__main__":
    main()
