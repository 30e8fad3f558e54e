"""``curator review`` wiring: options, refusals (non-loopback without a token, no workspace), and a real start."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from typing import Any

from click.testing import CliRunner

from curator.cli import COMMANDS, main


def test_registered_with_its_options() -> None:
    assert "review" in [c.name for c in COMMANDS]
    r = CliRunner().invoke(main, ["review", "--help"])
    assert r.exit_code == 0
    for opt in ("--host", "--port", "--reviewer", "--token"):
        assert opt in r.output


def test_refuses_a_public_host_without_a_token(ws: Any, built: dict[str, Any]) -> None:
    r = CliRunner().invoke(main, ["--workspace", str(ws.path), "review", "--host", "0.0.0.0"], env={"CURATOR_REVIEW_TOKEN": ""})
    assert r.exit_code == 1 and "needs a token" in r.output


def test_refuses_a_missing_workspace(tmp_path: Any) -> None:
    r = CliRunner().invoke(main, ["--workspace", str(tmp_path / "none"), "review"])
    assert r.exit_code == 1 and "no workspace" in r.output


def test_starts_and_stops(ws: Any, built: dict[str, Any], tmp_path: Any) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = (tmp_path / "review.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "curator", "--workspace", str(ws.path), "review", "--port", str(port),
                             "--reviewer", "zoe"], stdout=log, stderr=log, env={**os.environ})
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, (tmp_path / "review.log").read_text()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                    health = json.loads(r.read())
                break
            except OSError:
                assert time.monotonic() < deadline, "curator review did not come up"
                time.sleep(0.2)
        assert health["reviewer"] == "zoe" and health["status"] == "ok"
        # between requests the workspace is not held: another process can write to it
        from curator.workspace import Workspace

        with Workspace(ws.path).transaction() as con:
            con.execute("INSERT INTO settings VALUES ('probe', '1')")
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(30)
        log.close()
    assert proc.returncode == 0
    assert "curator review: http://127.0.0.1:" in (tmp_path / "review.log").read_text()
