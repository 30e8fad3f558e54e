"""kill -9 at points of ingest, generate, dedup, snapshot create and serve; then the same command again.

    .venv/bin/python scripts/kill_matrix.py [--only SUBSTRING]

Each point runs a real ``curator`` command in a subprocess on a fresh copy of a workspace, waits for an
observable moment (a file appearing or disappearing, a request reaching the fake teacher, an HTTP
acknowledgement) or a fixed delay, sends SIGKILL to the command's own process only (its worker processes
must end by themselves), then runs the command again to completion and compares the workspace with the
same command run once without a kill.  Columns:

* ``killed at``: what was observed when the kill was sent (``done before the kill`` means the point was
  missed: the command had finished);
* ``orphans``: processes of the killed command still running a second later (ingest workers);
* ``tmp after kill`` / ``tmp left``: temporary files in the workspace (``tmp/curator-ingest-PID-*``,
  ``.ID.tmp-PID``, DuckDB spill files) and ``curator-ingest-*`` in the system temp folder, right after the
  kill and after the re-run;
* ``rerun``: the exit status of the re-run; ``lost`` / ``extra`` / ``dup``: rows of the reference run missing
  afterwards, rows it does not have, and rows stored twice.

The teacher is the fake OpenAI server of the tests (``tests/fakeserver.py``) in this process; serve uses a
tiny random model (``curator.models.make_tiny_model``).  Exit status 1 when any point loses, duplicates,
leaves temp files or orphans, or its re-run fails.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "tests" / "synth")]

from fakeserver import FakeLLMServer, RecordedRequest  # noqa: E402
from synth_helpers import SEEDS, unique_pair  # noqa: E402

CURATOR = [str(ROOT / ".venv/bin/curator")] if (ROOT / ".venv/bin/curator").exists() else [
    sys.executable, "-m", "curator"]
SYSTEM_TMP = Path(tempfile.gettempdir())
_TEMP = re.compile(r"curator-ingest-.*|.*\.tmp-\d+|.*\.tmp")


def env_for(srv: FakeLLMServer) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if "PROXY" not in k.upper() and not k.endswith("_API_KEY")}
    env.update(OPENAI_API_KEY="sk-kill-matrix-0123456789", OPENAI_BASE_URL=srv.openai_base_url,
               CURATOR_KEYS_FILE="/nonexistent/keys.yaml", NO_PROXY="127.0.0.1,localhost", CURATOR_LOCK_WAIT="10",
               CURATOR_HEARTBEAT="5")
    return env


# -- observations -------------------------------------------------------------------------------------------
def temp_files(ws: Path, since: float) -> list[str]:
    """Temporary files and folders: in the workspace, and curator's in the system temp folder made since ``since``."""
    found = []
    for p in ws.rglob("*"):
        if p.name == "curator.duckdb.tmp" and p.is_dir():
            found += [str(q.relative_to(ws)) for q in p.iterdir()]  # DuckDB spill files (the folder itself is fine)
        elif _TEMP.fullmatch(p.name) and p.name != "curator.duckdb.tmp":
            found.append(str(p.relative_to(ws)))
    for p in SYSTEM_TMP.glob("curator-ingest-*"):
        try:
            if p.stat().st_mtime >= since - 1:
                found.append(str(p))
        except OSError:
            pass
    return sorted(found)


def running_mentioning(text: str) -> list[int]:
    """Processes (not zombies) whose command line contains ``text``."""
    out = []
    for d in Path("/proc").glob("[0-9]*"):
        try:
            cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (d / "status").read_text()
        except OSError:
            continue
        if text in cmd and "\nState:\tZ" not in state and int(d.name) != os.getpid():
            out.append(int(d.name))
    return out


def query(ws: Path, sql: str) -> list[tuple[Any, ...]]:
    import duckdb

    con = duckdb.connect(str(ws / "curator.duckdb"), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def wait_for(pred: Callable[[], Any], proc: subprocess.Popen[bytes] | None, timeout: float = 120.0) -> Any:
    """Poll ``pred`` until it gives something true (returned), the process ends (None) or the timeout (None)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        if proc is not None and proc.poll() is not None:
            return None
        time.sleep(0.005)
    return None


# -- states: what must survive ----------------------------------------------------------------------------------
@dataclass
class State:
    rows: set[Any]  # the rows that must all be there, once
    dup: int  # rows stored twice


def ingest_state(ws: Path) -> State:
    ids = {r[0] for r in query(ws, "SELECT id FROM examples")}
    dup = query(ws, """SELECT (SELECT count(*) - count(DISTINCT id) FROM examples)
                            + (SELECT count(*) - count(DISTINCT example_id) FROM splits)
                            + (SELECT count(*) FROM examples e ANTI JOIN splits s ON s.example_id = e.id)""")[0][0]
    return State(ids, int(dup))


def generate_state(ws: Path) -> State:
    ids = {r[0] for r in query(ws, "SELECT id FROM examples WHERE origin = 'synthetic'")}
    dup = query(ws, """SELECT (SELECT count(*) - count(DISTINCT id) FROM examples)
                            + (SELECT count(*) - count(DISTINCT key) FROM requests WHERE status = 'ok')""")[0][0]
    return State(ids, int(dup))


def dedup_state(ws: Path) -> State:
    rows = set(query(ws, "SELECT id, status FROM examples"))
    rows |= {("decision", *r) for r in query(ws, "SELECT example_id, kind FROM decisions")}
    dup = query(ws, "SELECT count(*) - count(DISTINCT (example_id, kind)) FROM decisions")[0][0]
    return State(rows, int(dup))


def snapshot_state(ws: Path) -> State:
    rows = {(sid, json.dumps(json.loads(counts), sort_keys=True))  # the same counts, in any key order
            for sid, counts in query(ws, "SELECT id, counts FROM snapshots")}
    rows |= {("members", *r) for r in query(ws, "SELECT snapshot_id, count(*) FROM snapshot_members GROUP BY 1")}
    folders = {p.name for p in (ws / "snapshots").iterdir() if not p.name.startswith(".")}
    rows |= {("folder", f) for f in folders}
    dup = query(ws, """SELECT (SELECT count(*) - count(DISTINCT seq) FROM snapshots)
                            + (SELECT count(*) - count(DISTINCT (snapshot_id, example_id)) FROM snapshot_members)""")[0][0]
    return State(rows, int(dup))


# -- the matrix ---------------------------------------------------------------------------------------------------
@dataclass
class Point:
    name: str
    group: str
    run: Callable[[Any, Path], dict[str, Any]]


class Matrix:
    def __init__(self, tmp: Path, srv: FakeLLMServer) -> None:
        self.tmp = tmp
        self.srv = srv
        self.env = env_for(srv)
        self.refs: dict[str, State] = {}
        self.bases: dict[str, Path] = {}
        self.replies = 0
        self.lock = threading.Lock()
        self.srv.responder = self._reply

    # the teacher: a deterministic reply per prompt, after ``delay`` seconds; ``replies`` counts the answered
    delay = 0.0

    def _reply(self, rec: RecordedRequest) -> str:
        if self.delay:
            time.sleep(self.delay)
        with self.lock:
            self.replies += 1
        return unique_pair(rec)

    def curator(self, ws: Path, args: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*CURATOR, "-w", str(ws), *args], capture_output=True, text=True, env=self.env,
                              timeout=900, **kw)

    def start(self, ws: Path, args: list[str]) -> subprocess.Popen[bytes]:
        return subprocess.Popen([*CURATOR, "-w", str(ws), *args], stdout=subprocess.DEVNULL,
                                stderr=(ws.parent / "stderr.log").open("ab"), env=self.env, start_new_session=True)

    # -- bases ---------------------------------------------------------------------------------------------------
    def base(self, kind: str) -> Path:
        if kind in self.bases:
            return self.bases[kind]
        ws = self.tmp / f"base-{kind}"
        self.curator(ws, ["ingest", str(SEEDS), "--origin", "seed", "--task", "support"], check=True)
        if kind in ("dedup", "snapshot"):
            self.curator(ws, ["ingest", str(self.big_file()), "--task", "support"], check=True)
        self.bases[kind] = ws
        return ws

    def big_file(self, n: int = 120_000, name: str = "big.jsonl", near: bool = True) -> Path:
        """``n`` examples (over 16 MB at 120k: the parallel path), a third of them near copies of another."""
        path = self.tmp / name
        if not path.exists():
            with path.open("w") as f:
                for i in range(n):
                    k = i // 3 if near and i % 3 == 2 else i
                    q = f"How do I fix error {k} in the billing console of region {k % 17}? " + "details " * 12
                    a = f"Open the console, find error {k}, and apply fix {k % 13}. " + "steps " * 14
                    if k != i:
                        q += "please"
                    f.write(json.dumps({"messages": [{"role": "user", "content": q},
                                                     {"role": "assistant", "content": a}]}) + "\n")
        return path

    def fresh(self, kind: str) -> Path:
        d = self.tmp / "case"
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir()
        shutil.copytree(self.base(kind), d / "ws")
        return d / "ws"

    def reference(self, key: str, kind: str, args: list[str], state: Callable[[Path], State]) -> State:
        if key not in self.refs:
            ws = self.fresh(kind)
            r = self.curator(ws, args)
            if r.returncode != 0:
                raise RuntimeError(f"reference run of {args} failed:\n{r.stderr}")
            self.refs[key] = state(ws)
        return self.refs[key]

    # -- one point -----------------------------------------------------------------------------------------------
    def kill_and_rerun(self, kind: str, args: list[str], trigger: Callable[[Path, subprocess.Popen[bytes]], str | None],
                       state: Callable[[Path], State], key: str | None = None) -> dict[str, Any]:
        ref = self.reference(key or " ".join(args), kind, args, state)
        ws = self.fresh(kind)
        t0 = time.time()
        proc = self.start(ws, args)
        observed = trigger(ws, proc)
        if proc.poll() is not None:
            observed = "done before the kill"
        else:
            os.kill(proc.pid, signal.SIGKILL)  # the command's own process only
        proc.wait()
        time.sleep(1.0)
        orphans = running_mentioning(str(ws))
        for pid in orphans:
            os.kill(pid, signal.SIGKILL)
        tmp_after_kill = temp_files(ws, t0)
        rerun = self.curator(ws, args)
        final = state(ws)
        return {"observed": observed or "?", "orphans": len(orphans), "tmp_after_kill": len(tmp_after_kill),
                "tmp_left": temp_files(ws, t0), "rerun": rerun.returncode,
                "rerun_err": (rerun.stderr.strip().splitlines() or [""])[-1] if rerun.returncode else "",
                "lost": len(ref.rows - final.rows), "extra": len(final.rows - ref.rows), "dup": final.dup}


def _tmp_dir(ws: Path) -> str | None:
    return next((p.name for p in (ws / "tmp").glob("curator-ingest-*")), None) if (ws / "tmp").exists() else None


def points() -> list[Point]:
    ingest_big = lambda m: ["ingest", str(m.big_file()), "--task", "support"]  # noqa: E731

    def after(seconds: float) -> Callable[[Path, subprocess.Popen[bytes]], str | None]:
        def trig(ws: Path, proc: subprocess.Popen[bytes]) -> str | None:
            try:
                proc.wait(seconds)
            except subprocess.TimeoutExpired:
                return f"{seconds} s after the start"
            return None
        return trig

    def workers_converting(ws: Path, proc: subprocess.Popen[bytes]) -> str | None:
        name = wait_for(lambda: _tmp_dir(ws), proc)
        return f"workers converting ({name} appeared)" if name else None

    def parts_written(ws: Path, proc: subprocess.Popen[bytes]) -> str | None:
        def done() -> bool:
            d = ws / "tmp"
            return d.exists() and sum(1 for _ in d.glob("curator-ingest-*/part*.arrow")) >= 2
        return "worker output files written" if wait_for(done, proc) else None

    def inserting(ws: Path, proc: subprocess.Popen[bytes]) -> str | None:
        if not wait_for(lambda: _tmp_dir(ws), proc):
            return None
        gone = wait_for(lambda: _tmp_dir(ws) is None, proc)
        return "conversion done, inserting (tmp folder removed)" if gone else None

    def ingest_point(trigger: Callable[[Path, subprocess.Popen[bytes]], str | None], file: str = "big"
                     ) -> Callable[[Matrix, Path], dict[str, Any]]:
        def run(m: Matrix, _: Path) -> dict[str, Any]:
            args = ingest_big(m) if file == "big" else ["ingest", str(m.big_file(30_000, "mid.jsonl", False))]
            return m.kill_and_rerun("ingest", args, trigger, ingest_state)
        return run

    def generate_point(what: str) -> Callable[[Matrix, Path], dict[str, Any]]:
        args = ["generate", "--task", "support", "--n", "12", "--teacher", "openai:gpt-4o-mini", "--skip-filter",
                "semantic", "--concurrency", "3"]

        def run(m: Matrix, _: Path) -> dict[str, Any]:
            m.delay = 0.0
            m.reference("generate", "generate", args, generate_state)
            m.srv.reset()
            m.replies = 0
            m.delay = 0.6

            def trig(ws: Path, proc: subprocess.Popen[bytes]) -> str | None:
                if what == "first request":
                    ok = wait_for(lambda: m.srv.count("/v1/chat/completions") >= 1, proc)
                    return "the first request reached the teacher" if ok else None
                want = 5 if what == "5 replies" else 12
                ok = wait_for(lambda: m.replies >= want, proc)
                if ok and what == "all replies":
                    time.sleep(0.05)  # the last reply on its way: filtering and storing
                return f"{m.replies} replies sent" if ok else None

            try:
                out = m.kill_and_rerun("generate", args, trig, generate_state, key="generate")
            finally:
                m.delay = 0.0
            return out
        return run

    def dedup_point(seconds: float) -> Callable[[Matrix, Path], dict[str, Any]]:
        def run(m: Matrix, _: Path) -> dict[str, Any]:
            return m.kill_and_rerun("dedup", ["dedup", "--exact", "--near"], after(seconds), dedup_state)
        return run

    def snapshot_point(what: str) -> Callable[[Matrix, Path], dict[str, Any]]:
        def trig(ws: Path, proc: subprocess.Popen[bytes]) -> str | None:
            snaps = ws / "snapshots"
            if what == "tmp":
                name = wait_for(lambda: next((p.name for p in snaps.glob(".*.tmp-*")), None) if snaps.exists()
                                else None, proc)
                return f"writing {name}" if name else None
            if what == "parquet":
                ok = wait_for(lambda: next(iter(snaps.glob(".*.tmp-*/test.parquet")), None) if snaps.exists()
                              else None, proc)
                return "the last split file being written" if ok else None
            ok = wait_for(lambda: next((p for p in snaps.iterdir() if not p.name.startswith(".")), None)
                          if snaps.exists() else None, proc)
            return "folder renamed into place, before the commit" if ok else None

        def run(m: Matrix, _: Path) -> dict[str, Any]:
            return m.kill_and_rerun("snapshot", ["snapshot", "create", "--allow-leakage"], trig, snapshot_state)
        return run

    return [
        Point("ingest 64 MB: 0.3 s in (reading, hashing)", "ingest", ingest_point(after(0.3))),
        Point("ingest 64 MB: workers converting", "ingest", ingest_point(workers_converting)),
        Point("ingest 64 MB: worker files written", "ingest", ingest_point(parts_written)),
        Point("ingest 64 MB: inserting / committing", "ingest", ingest_point(inserting)),
        Point("ingest 15 MB (sequential): 1.0 s in", "ingest", ingest_point(after(1.0), "mid")),
        Point("generate: first request in flight", "generate", generate_point("first request")),
        Point("generate: 5 of 12 replies in", "generate", generate_point("5 replies")),
        Point("generate: all replies in, storing", "generate", generate_point("all replies")),
        Point("dedup 120k: 1.5 s in", "dedup", dedup_point(1.5)),
        Point("dedup 120k: 4 s in", "dedup", dedup_point(4.0)),
        Point("snapshot create: temp folder appears", "snapshot", snapshot_point("tmp")),
        Point("snapshot create: last split file", "snapshot", snapshot_point("parquet")),
        Point("snapshot create: renamed, not committed", "snapshot", snapshot_point("renamed")),
        Point("serve: right after a feedback 200", "serve", lambda m, _: serve_point(m, burst=False)),
        Point("serve: mid-burst of 80 requests", "serve", lambda m, _: serve_point(m, burst=True)),
    ]


# -- serve ----------------------------------------------------------------------------------------------------------
def _post(url: str, body: dict[str, Any]) -> dict[str, Any]:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return dict(json.loads(r.read()))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _up(url: str, proc: subprocess.Popen[bytes]) -> bool:
    def ok() -> bool:
        try:
            with urllib.request.urlopen(url + "/health", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False
    return bool(wait_for(ok, proc, timeout=300))


def serve_point(m: Matrix, burst: bool) -> dict[str, Any]:
    from curator.models import make_tiny_model

    model = make_tiny_model(m.tmp / "tiny-model")
    ws = m.fresh("serve")
    t0 = time.time()
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    args = ["serve", "--base-model", str(model), "--port", str(port), "--default-max-tokens", "4"]
    proc = m.start(ws, args)
    if not _up(url, proc):
        raise RuntimeError(f"curator serve did not start: {(ws.parent / 'stderr.log').read_text()[-2000:]}")
    acked: list[str] = []
    answered: list[str] = []
    lock = threading.Lock()

    def one(i: int) -> None:
        try:
            c = _post(url + "/v1/chat/completions", {"model": "base", "max_tokens": 4,
                                                     "messages": [{"role": "user", "content": f"Question {i}?"}]})
            with lock:
                answered.append(c["id"])
            f = _post(url + "/v1/feedback", {"trace_id": c["id"], "rating": 1 + i % 5})
            if f.get("recorded"):
                with lock:
                    acked.append(f["id"])
        except OSError:
            pass  # the server was killed under this request: not acknowledged, so not owed

    if burst:
        threads = [threading.Thread(target=one, args=(i,)) for i in range(80)]
        for t in threads:
            t.start()
        wait_for(lambda: len(acked) >= 8, proc, timeout=300)
        observed = f"{len(acked)} of 80 feedbacks acknowledged"
    else:
        threads = []
        one(0)
        observed = "1 feedback acknowledged"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    for t in threads:
        t.join(120)
    time.sleep(1.0)
    orphans = running_mentioning(str(ws))
    tmp_after_kill = temp_files(ws, t0)
    # the command again: it starts, serves, stops; then the logs are imported (twice: the second adds nothing)
    proc = m.start(ws, args)
    restarted = _up(url, proc)
    proc.send_signal(signal.SIGTERM)
    proc.wait(60)
    for _ in range(2):
        r = m.curator(ws, ["traces", "list", "--json", "--limit", "1000"])
    logged: list[str] = []
    for log in (ws / "traces").glob("*.jsonl"):
        for line in log.read_bytes().splitlines():
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if rec.get("type") == "feedback":
                logged.append(rec["id"])
    stored = {row[0] for row in query(ws, "SELECT id FROM trace_feedback")}
    traces = {row[0] for row in query(ws, "SELECT id FROM traces")}
    lost = len(set(acked) - stored) + len(set(answered) - traces) * 0  # answers without feedback are not owed
    return {"observed": observed, "orphans": len(orphans), "tmp_after_kill": len(tmp_after_kill),
            "tmp_left": temp_files(ws, t0), "rerun": 0 if restarted and r.returncode == 0 else 1,
            "rerun_err": "" if restarted else "serve did not restart", "lost": lost,
            "extra": len(stored - set(logged)), "dup": len(logged) - len(set(logged)),
            "note": f"acked {len(acked)}, in DB {len(stored & set(acked))}, traces {len(traces)}"}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default="", help="run only the points whose name contains this")
    a = ap.parse_args()
    bad = 0
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # the tiny model's "Writing model shards" bar
    with tempfile.TemporaryDirectory(prefix="curator-kill-") as tmp_s, FakeLLMServer() as srv:
        assert srv._httpd is not None
        srv._httpd.handle_error = lambda *a: None  # type: ignore[method-assign]  # a killed client resets its socket
        m = Matrix(Path(tmp_s), srv)
        print(f"{'#':>2}  {'point':<42} {'killed at':<48} {'orphans':>7} {'tmp after kill':>14} {'rerun':>5} "
              f"{'lost':>4} {'extra':>5} {'dup':>3} {'tmp left':>8}")
        for i, p in enumerate([p for p in points() if a.only in p.name], 1):
            r = p.run(m, Path(tmp_s))
            missed = r["observed"] == "done before the kill"
            fail = (r["orphans"] or r["tmp_left"] or r["rerun"] or r["lost"] or r["extra"] or r["dup"])
            bad += bool(fail)
            print(f"{i:>2}  {p.name:<42} {r['observed'][:48]:<48} {r['orphans']:>7} {r['tmp_after_kill']:>14} "
                  f"{r['rerun']:>5} {r['lost']:>4} {r['extra']:>5} {r['dup']:>3} {len(r['tmp_left']):>8}"
                  + ("  (missed: finished first)" if missed else "")
                  + (f"  {r['tmp_left'][:3]}" if r["tmp_left"] else "")
                  + (f"  {r['rerun_err']}" if r["rerun_err"] else "") + (f"  [{r['note']}]" if r.get("note") else ""),
                  flush=True)
    print(f"\n{'FAILED' if bad else 'ok'}: {bad} point(s) lost, duplicated, left temp files or orphans, or failed "
          "to re-run")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
