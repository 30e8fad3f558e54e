"""``curator demo --quick``: the whole loop on the bundled seeds with the real SmolLM2, as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.slow
def test_the_quick_demo_runs_the_loop_through_served_ratings_and_corrections(tmp_path: Path) -> None:
    ws = tmp_path / "demo"
    out = subprocess.run([sys.executable, "-m", "curator", "--workspace", str(ws), "demo", "--quick", "--seed", "3"],
                         capture_output=True, text=True, timeout=1800)
    assert out.returncode == 0, out.stderr[-2000:]
    log = out.stdout + out.stderr
    for step in range(1, 10):
        assert f" {step}/9 " in log
    assert "the scripted user rates 5 (thumbs up)" in log and "corrections sent: " in log
    assert "round 1: " in log and "round 2: " in log and "HTML report: " in log
    table = log[log.index("Test metrics"):]
    assert "base (base)" in table and "round 1 (r-" in table and "round 2 (r-" in table
    # round 2 learned from the served traffic: its snapshot holds feedback examples, corrections among them
    listed = subprocess.run([sys.executable, "-m", "curator", "--workspace", str(ws), "rounds", "list", "--json"],
                            capture_output=True, text=True, timeout=300)
    rounds = json.loads(listed.stdout)
    assert [r["round"] for r in rounds] == [1, 2] and all("champion" in r and "promoted" in r for r in rounds)
    import duckdb

    with duckdb.connect(str(ws / "curator.duckdb"), read_only=True) as con:
        feedback = con.execute("SELECT count(*) FROM examples WHERE origin = 'feedback'").fetchone()
        pairs = con.execute("SELECT count(*) FROM preferences").fetchone()
    assert feedback is not None and feedback[0] > 0
    corrected = int(log.split("corrections sent: ")[1].split()[0])
    assert pairs is not None and pairs[0] <= corrected and (pairs[0] > 0 or corrected == 0)
