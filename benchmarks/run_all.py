"""Run the quick benchmarks one after another and write ``benchmarks/RESULTS.md``.

    .venv/bin/python benchmarks/run_all.py                 # what `make bench` runs
    .venv/bin/python benchmarks/run_all.py --only pii      # one (or a comma list); the others' sections stay
    .venv/bin/python benchmarks/run_all.py --only dedup_near --n 20000   # arguments after it go to that script
    .venv/bin/python benchmarks/run_all.py --list

Each script runs in its own process with this Python; its stdout is echoed and kept, its stderr
(progress) is echoed, and kept in the file only when the script fails. RESULTS.md starts with the
date, the machine (cores, memory, CPU model) and the git commit, then one section per benchmark
with its command, wall time, exit status and output. A section records the date and commit of its
own run, so a partial run (``--only``) replaces its sections and keeps the others as they were.
The exit status is 1 when any benchmark that ran failed.

``scale.py`` runs at its default 100k examples here (about two minutes); at 1M and 10M
(``--n 1000000``: about 20 minutes) it is run by hand, as are the other slow ones
(``generate_local.py``, ``train_overhead.py`` and ``loop_gain.py``: the real model on the CPU,
minutes each).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "RESULTS.md"

#: The quick benchmarks, in the order `make bench` runs them (a few minutes in all).
QUICK: list[str] = ["ingest", "generate_concurrency", "dedup_near", "dedup_semantic", "pii", "stats_cache", "review",
                     "scale"]

_SECTION = re.compile(r"<!-- bench:(?P<name>[\w-]+) -->\n.*?<!-- /bench:(?P=name) -->\n", re.S)


@dataclass
class Result:
    name: str
    command: str
    returncode: int
    seconds: float
    stdout: str
    stderr: str
    started: str
    commit: str


def machine() -> dict[str, str]:
    """Cores, memory, CPU model, OS and Python of this machine."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
        mem = f"{ram:.1f} GiB"
    except (ValueError, OSError, AttributeError):
        mem = "unknown"
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 0
    return {
        "cores": f"{usable}" if usable == os.cpu_count() else f"{usable} usable (of {os.cpu_count()})",
        "memory": mem,
        "cpu": cpu,
        "os": platform.platform(),
        "python": platform.python_version(),
        "load average": " ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "unknown",
    }


def git_commit() -> str:
    """The checked-out commit, with ``(+ local changes)`` when the work tree differs from it."""
    try:
        sha = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=ROOT, capture_output=True,
                             text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return f"{sha} (+ local changes)" if dirty else sha


def _pump(stream: IO[str], keep: list[str], echo: IO[str]) -> None:
    for line in stream:
        keep.append(line)
        echo.write(line)
        echo.flush()


def run_one(name: str, extra: list[str], timeout: float | None) -> Result:
    """Run ``benchmarks/NAME.py`` with this Python, echoing its output while keeping it."""
    script = HERE / f"{name}.py"
    cmd = [sys.executable, str(script), *extra]
    shown = " ".join([".venv/bin/python" if ".venv" in sys.executable else "python",
                      f"benchmarks/{name}.py", *extra])
    started = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    print(f"== {shown}", file=sys.stderr, flush=True)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    out: list[str] = []
    err: list[str] = []
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            errors="replace")
    assert proc.stdout is not None and proc.stderr is not None
    threads = [threading.Thread(target=_pump, args=(proc.stdout, out, sys.stdout), daemon=True),
               threading.Thread(target=_pump, args=(proc.stderr, err, sys.stderr), daemon=True)]
    for t in threads:
        t.start()
    try:
        rc = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        rc = proc.wait()
        err.append(f"\n[run_all] killed after {timeout:.0f} s (--timeout)\n")
    for t in threads:
        t.join()
    return Result(name, shown, rc, time.perf_counter() - t0, "".join(out), "".join(err), started, git_commit())


def _fence(text: str) -> str:
    """A code fence longer than any backtick run in ``text``."""
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)


def section(r: Result) -> str:
    status = "ok" if r.returncode == 0 else "FAILED"
    body = r.stdout.rstrip("\n") or "(no output)"
    fence = _fence(body)
    lines = [
        f"<!-- bench:{r.name} -->",
        f"## {r.name}",
        "",
        f"`{r.command}`: exit status {r.returncode} ({status}), {r.seconds:.1f} s, "
        f"run {r.started} on commit {r.commit}",
        "",
        fence + "text",
        body,
        fence,
    ]
    if r.returncode != 0 and r.stderr.strip():
        tail = "".join(r.stderr.splitlines(keepends=True)[-40:]).rstrip("\n")
        f2 = _fence(tail)
        lines += ["", "stderr (last lines):", "", f2 + "text", tail, f2]
    lines.append(f"<!-- /bench:{r.name} -->")
    return "\n".join(lines) + "\n"


def render(results: list[Result], previous: str | None, names: list[str]) -> str:
    """The whole file: header, then one section per benchmark of ``names`` (kept ones from ``previous``)."""
    old = {m.group("name"): m.group(0) for m in _SECTION.finditer(previous or "")}
    new = {r.name: section(r) for r in results}
    m = machine()
    head = [
        "# Benchmark results",
        "",
        "Written by `make bench` (`benchmarks/run_all.py`); do not edit by hand. Each script prints its",
        "ratio against a baseline measured in the same run, so ratios compare across machines better",
        "than absolute times. What each one measures and its target: `docs/benchmarks.md`.",
        "",
        f"- date: {dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- machine: {m['cores']} cores, {m['memory']} memory, {m['cpu']}",
        f"- os: {m['os']}, Python {m['python']}, load average at the end {m['load average']}",
        f"- git commit: {git_commit()}",
        f"- this run: {', '.join(r.name for r in results) or 'nothing'}"
        + (" (the other sections are from earlier runs, as dated)" if set(old) - set(new) else ""),
        "",
        "| benchmark | exit status | wall time |",
        "|---|---|---|",
    ]
    body: list[str] = []
    for name in names:
        if name in new:
            r = next(x for x in results if x.name == name)
            head.append(f"| [{name}](#{name}) | {r.returncode} | {r.seconds:.1f} s |")
            body.append(new[name])
        elif name in old:
            mm = re.search(r"exit status (\d+).*?, ([\d.]+) s, run", old[name])
            rc, secs = (mm.group(1), mm.group(2) + " s") if mm else ("?", "?")
            head.append(f"| [{name}](#{name}) | {rc} (earlier run) | {secs} |")
            body.append(old[name])
    return "\n".join(head) + "\n\n" + "\n".join(body)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    ap.add_argument("--only", help=f"comma list of benchmarks to run (default: all of {','.join(QUICK)})")
    ap.add_argument("--out", type=Path, default=RESULTS, help="results file (default benchmarks/RESULTS.md)")
    ap.add_argument("--timeout", type=float, default=None, help="seconds one benchmark may run (default: no limit)")
    ap.add_argument("--list", action="store_true", help="print the benchmark names and exit")
    args, extra = ap.parse_known_args(argv)
    if args.list:
        print("\n".join(QUICK))
        return 0
    chosen = [n.strip().removesuffix(".py") for n in args.only.split(",")] if args.only else list(QUICK)
    unknown = [n for n in chosen if not (HERE / f"{n}.py").is_file() or n in ("run_all", "_common")]
    if unknown:
        print(f"Error: no benchmark {', '.join(unknown)} (there are: {', '.join(QUICK)})", file=sys.stderr)
        return 2
    if extra and len(chosen) > 1:
        print(f"Error: extra arguments {' '.join(extra)} need a single benchmark (--only NAME)", file=sys.stderr)
        return 2
    names = list(QUICK) + [n for n in chosen if n not in QUICK]
    results = [run_one(n, extra, args.timeout) for n in chosen]
    previous = args.out.read_text(encoding="utf-8") if args.out.is_file() and args.only else None
    args.out.write_text(render(results, previous, names), encoding="utf-8")
    failed = [r.name for r in results if r.returncode != 0]
    print(f"wrote {args.out}" + (f"; FAILED: {', '.join(failed)}" if failed else ""), file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
