"""`kill -9` in the middle of `curator generate`, then the same command again: nothing lost, nothing twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from fakeserver import FakeLLMServer
from synth.synth_helpers import ROOT, rows, seeded_workspace, unique_pair

from curator.synth import FilterConfig, generate
from curator.workspace import Workspace

N = 30


def command(ws: Path, url: str) -> list[str]:
    return [sys.executable, "-m", "curator", "--workspace", str(ws), "generate", "--task", "support",
            "--n", str(N), "--teacher", f"compatible:{url}:fake-teacher", "--concurrency", "3",
            "--skip-filter", "semantic"]


def env() -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if "PROXY" not in k.upper()}
    e["NO_PROXY"] = "127.0.0.1,localhost"
    e["PYTHONPATH"] = str(ROOT)
    e["CURATOR_HEARTBEAT"] = "0"  # a progress line after every finished request
    return e


@pytest.mark.slow  # two CLI processes: 10-50 s on a loaded machine
def test_kill_9_mid_run_then_resume_equals_a_clean_run(tmp_path: Path) -> None:
    killed_ws, clean_ws = Workspace(tmp_path / "killed"), Workspace(tmp_path / "clean")
    seeded_workspace(killed_ws)
    seeded_workspace(clean_ws)
    with FakeLLMServer(unique_pair, latency=0.15) as srv:
        proc = subprocess.Popen(command(killed_ws.path, srv.openai_base_url), cwd=ROOT, env=env(),
                                stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
        assert proc.stderr is not None
        seen = ""
        for line in proc.stderr:  # "[generate] 3/30 (10%) ..." once three responses are committed
            if line.startswith("[generate] ") and not line.startswith("[generate] 0/"):
                seen = line
                break
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert seen and f"/{N} (" in seen and not seen.startswith(f"[generate] {N}/")
        stored = rows(killed_ws, "SELECT count(*) FROM requests WHERE status = 'ok'")[0][0]
        assert 0 < stored < N
        assert rows(killed_ws, "SELECT count(*) FROM examples WHERE origin = 'synthetic'") == [(0,)]
        before = srv.request_count

        resumed = subprocess.run(command(killed_ws.path, srv.openai_base_url), cwd=ROOT, env=env(),
                                 capture_output=True, text=True, timeout=300)
        assert resumed.returncode == 0, resumed.stderr
        assert f"cached {stored}," in resumed.stdout
        assert srv.request_count - before <= N - stored + 3  # at most the in-flight ones are asked twice

        clean = generate(clean_ws, task="support", n=N, teacher=f"compatible:{srv.openai_base_url}:fake-teacher",
                         concurrency=3, filters=FilterConfig(skip=frozenset({"semantic"})), progress=False)

    def counts(ws: Workspace) -> tuple[int, ...]:
        return rows(ws, """SELECT (SELECT count(*) FROM requests), (SELECT count(DISTINCT key) FROM requests),
                                  (SELECT count(*) FROM examples WHERE origin = 'synthetic'),
                                  (SELECT count(DISTINCT id) FROM examples),
                                  (SELECT count(*) FROM examples),
                                  (SELECT count(*) FROM synth_rejections)""")[0]

    assert counts(killed_ws) == counts(clean_ws)
    assert counts(clean_ws)[:3] == (N, N, clean.added)
    ids = lambda ws: {r[0] for r in rows(ws, "SELECT id FROM examples WHERE origin = 'synthetic'")}  # noqa: E731
    assert ids(killed_ws) == ids(clean_ws)
