"""Progress and logging: a heartbeat line off a terminal, one logging setup with -v / -q.

The stage is driven by a fake clock where the test calls it directly; CLI runs set
``CURATOR_HEARTBEAT=0`` (a line whenever the stage moves) so that no assertion depends on timing.
CliRunner's stderr is not a terminal, so the CLI runs below are in heartbeat mode.
"""

from __future__ import annotations

import json
import logging
import random
import re
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from click.testing import CliRunner
from helpers import chat, write_jsonl

from curator.cli import main
from curator.cli.kit import OWN_LOGGERS, configure_logging, log
from curator.data.ingest import ingest_file
from curator.progress import Progress, format_seconds, heartbeat_interval, progress, progress_mode

HEARTBEAT = re.compile(r"^\[(?P<stage>[^\]]+)\] (?P<done>\d+)/(?P<total>\d+) \(\d+%\) (?P<elapsed>[\d.]+ s|\d+ min \d+ s) "
                       r"elapsed")


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """configure_logging changes the process's loggers: put them back after each test."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    levels = {n: logging.getLogger(n).level for n in OWN_LOGGERS}
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for n, lv in levels.items():
        logging.getLogger(n).setLevel(lv)


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0
        self.calls = 0

    def __call__(self) -> float:
        self.calls += 1
        return self.now


def _lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "curator.progress"]


# -- the stage, with a fake clock -----------------------------------------------------------------------------------
def test_heartbeat_lines_with_a_fake_clock(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="curator")
    clock = FakeClock()
    with Progress("dedup near", 100_000, interval=10, clock=clock) as bar:
        for _ in range(41):  # 4.1 s: nothing due yet
            clock.now += 0.1
            bar.advance(1000)
        assert _lines(caplog) == ["[dedup near] 0/100000 (0%) started"]
        clock.now += 8.2  # 12.3 s after the start
        bar.advance(0)
        bar.update(note="signatures")
        clock.now += 1.0
        bar.advance(59_000)  # the stage's last advance: the end line says it
    assert _lines(caplog) == [
        "[dedup near] 0/100000 (0%) started",
        "[dedup near] 41000/100000 (41%) 12.3 s elapsed, ~18 s left",
        "[dedup near] 100000/100000 (100%) done in 13.3 s - signatures",
    ]


def test_advance_reads_the_clock_once_and_formats_only_when_due(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="curator")
    clock = FakeClock()
    with Progress("eval base", 10**6, interval=10, clock=clock) as bar:
        before = clock.calls
        for _ in range(10_000):
            bar.advance(1)
        assert clock.calls - before == 10_000  # one clock reading per advance
        assert len(_lines(caplog)) == 1  # still only the start line
        clock.now += 10
        bar.advance(1)
        assert len(_lines(caplog)) == 2 and "10001/1000000 (1%) 10.0 s elapsed" in _lines(caplog)[-1]
        bar.advance(1)  # the next line is 10 s away again
        assert len(_lines(caplog)) == 2


def test_unknown_total_update_and_a_failed_stage(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="curator")
    clock = FakeClock()
    with Progress("embedding", None, interval=5, clock=clock) as bar:
        clock.now += 6
        bar.advance(64)
        bar.update(total=128)
        bar.advance(64)
    with pytest.raises(KeyError), Progress("job ftjob-1", None, interval=5, clock=clock) as bar:
        clock.now += 75
        bar.update(note="running")
        raise KeyError("boom")
    assert _lines(caplog) == [
        "[embedding] started",
        "[embedding] 64 6.0 s elapsed",
        "[embedding] 128/128 (100%) done in 6.0 s",
        "[job ftjob-1] started",
        "[job ftjob-1] 0 1 min 15 s elapsed - running",
        "[job ftjob-1] 0 stopped after 1 min 15 s - running",
    ]


def test_quiet_or_disabled_shows_nothing(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="curator")
    assert progress_mode() is None
    with progress("dedup exact", 10, interval=0) as bar:
        bar.advance(10)
    caplog.set_level(logging.INFO, logger="curator")
    assert progress_mode() == "heartbeat" and progress_mode(False) is None  # pytest's stderr is no terminal
    with progress("dedup exact", 10, enabled=False, interval=0) as bar:
        bar.advance(10)
    assert _lines(caplog) == []


def test_heartbeat_interval_from_the_environment(monkeypatch: pytest.MonkeyPatch,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.delenv("CURATOR_HEARTBEAT", raising=False)
    assert heartbeat_interval() == 10.0
    monkeypatch.setenv("CURATOR_HEARTBEAT", "2.5")
    assert heartbeat_interval() == 2.5
    monkeypatch.setenv("CURATOR_HEARTBEAT", "soon")
    assert heartbeat_interval() == 10.0 and "CURATOR_HEARTBEAT='soon'" in caplog.text


def test_format_seconds() -> None:
    assert [format_seconds(s) for s in (0.04, 12.34, 245, 7380)] == ["0.0 s", "12.3 s", "4 min 05 s", "2 h 03 min"]


def test_training_heartbeat_callback(caplog: pytest.LogCaptureFixture) -> None:
    from trainer.callbacks import Heartbeat

    caplog.set_level(logging.INFO, logger="curator")
    clock = FakeClock()
    cb = Heartbeat(interval=10, clock=clock)
    state = SimpleNamespace(global_step=0, max_steps=100, is_world_process_zero=True)
    cb.on_train_begin(None, state, None)
    for step in range(1, 101):
        clock.now += 0.5
        state.global_step = step
        cb.on_step_end(None, state, None)
        if step % 10 == 0:
            cb.on_log(None, state, None, logs={"loss": 3.0 - step / 100, "learning_rate": 1e-4})
    cb.on_train_end(None, state, None)
    lines = _lines(caplog)
    assert lines[0] == "[train] 0/100 (0%) started"
    assert lines[1] == "[train] 20/100 (20%) 10.0 s elapsed, ~40 s left - loss 2.9000"
    assert lines[-1] == "[train] 100/100 (100%) done in 50.0 s - loss 2.0000"
    assert len(lines) == 2 + 4  # start, steps 20, 40, 60 and 80, end


# -- one logging setup ----------------------------------------------------------------------------------------------
def test_configure_logging_levels_and_one_handler(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(0)
    configure_logging(0)  # again (one process, several commands): still one handler
    root = logging.getLogger()
    assert sum(type(h).__name__ == "_StderrHandler" for h in root.handlers) == 1
    assert root.level == logging.WARNING and logging.getLogger("curator").level == logging.INFO
    log("a note")
    logging.getLogger("curator.x").debug("hidden detail")
    logging.getLogger("httpx").info("HTTP Request: POST ...")  # another library: WARNING and above only
    logging.getLogger("httpx").warning("slow")
    out, err = capsys.readouterr()
    assert out == "" and err == "a note\nwarning [httpx]: slow\n"
    configure_logging(1)
    logging.getLogger("curator.x").debug("detail")
    logging.getLogger("httpx").info("HTTP Request: POST ...")
    assert capsys.readouterr().err == "debug: detail\n"
    configure_logging(-1)
    log("a note")
    logging.getLogger("trainer.sft").warning("careful")
    assert capsys.readouterr().err == "warning: careful\n"


# -- the CLI ----------------------------------------------------------------------------------------------------------
def _words(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(("alpha", "beta", "gamma", "delta", "refund", "card", "order", "ship", "late", "blue",
                                "green", "account", "password", "reset", "bill", "plan", "upgrade", "cancel"))
                    for _ in range(n))


@pytest.fixture
def many(ws, tmp_path: Path):  # a few thousand examples, some near copies
    rng = random.Random(0)
    rows = []
    for i in range(3000):
        text = f"question {i}: {_words(rng, 14)}"
        rows.append(chat(text, _words(rng, 20)))
        if i % 50 == 0:
            rows.append(chat(text + " please", rows[-1]["messages"][1]["content"]))
    ingest_file(ws, write_jsonl(tmp_path / "many.jsonl", rows))
    return ws


def test_cli_dedup_heartbeats_off_a_terminal(many, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CURATOR_HEARTBEAT", "0")
    r = CliRunner().invoke(main, ["dedup", "--exact", "--near", "0.8", "--dry-run", "--json"])
    assert r.exit_code == 0, r.output
    report = json.loads(r.stdout)
    assert report["examples"] == 3060
    err = r.stderr.splitlines()
    assert err[0] == "[dedup exact] 0/3060 (0%) started"
    assert any(line.startswith("[dedup exact] 3060/3060 (100%) done in ") for line in err)
    beats = [m for m in map(HEARTBEAT.match, err) if m]
    assert {m["stage"] for m in beats} == {"dedup near"}  # a line at each phase of near dedup
    assert {m["total"] for m in beats} == {"3060"}
    phases = " ".join(line for line in err if line.startswith("[dedup near]"))
    for phase in ("shingles", "signatures", "banding", "verification"):
        assert phase in phases
    assert err[-1].startswith("[dedup near] ") and " done in " in err[-1]


def test_cli_quiet_prints_no_progress(many, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CURATOR_HEARTBEAT", "0")
    r = CliRunner().invoke(main, ["-q", "dedup", "--exact", "--near", "0.8", "--dry-run", "--json"])
    assert r.exit_code == 0, r.output
    assert r.stderr == "" and json.loads(r.stdout)["examples"] == 3060


def test_cli_verbose_json_stdout_stays_json(many, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CURATOR_HEARTBEAT", "0")
    r = CliRunner().invoke(main, ["-v", "dedup", "--exact", "--dry-run", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["examples"] == 3060
    assert any(line.startswith("debug: curator ") for line in r.stderr.splitlines())
    assert "[dedup exact] 0/3060 (0%) started" in r.stderr


def test_cli_verbose_and_quiet_contradict() -> None:
    r = CliRunner().invoke(main, ["-v", "-q", "stats"])
    assert r.exit_code == 2 and "contradict" in r.output


def test_cli_stats_counts_tokens_as_a_stage(ws, tmp_path: Path) -> None:
    ingest_file(ws, write_jsonl(tmp_path / "a.jsonl", [chat(f"question {i}", f"answer {i}") for i in range(30)]))
    r = CliRunner().invoke(main, ["stats", "--json"])
    assert r.exit_code == 0, r.output
    assert sum(v["n"] for v in json.loads(r.stdout)["tokens"].values()) == 30
    assert r.stderr.splitlines()[0] == "[stats: counting tokens] 0/30 (0%) started"
    assert r.stderr.splitlines()[-1].startswith("[stats: counting tokens] 30/30 (100%) done in ")
