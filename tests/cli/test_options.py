"""Numeric options refuse nan, inf and out-of-range values before any work; a refused ingest saves nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers import chat, write_jsonl

from curator.cli import main
from curator.workspace import Workspace


@pytest.mark.parametrize(("option", "value", "why"), [
    ("--temperature", "nan", "not a finite number"),
    ("--budget", "nan", "not a finite number"),
    ("--budget", "-1", "not >= 0"),
    ("--max-tokens", "-1", "not >= 1"),
    ("--max-attempts", "0", "not >= 1"),
    ("--rpm", "-5", "not > 0"),
    ("--top-p", "inf", "not a finite number"),
    ("--n", "x", "not an integer"),
])
def test_generate_refuses_bad_numbers(tmp_path: Path, option: str, value: str, why: str) -> None:
    res = CliRunner().invoke(main, ["-w", str(tmp_path / "ws"), "generate", "--task", "t", "--n", "1", option, value])
    assert res.exit_code == 2, res.output
    assert f"Invalid value for '{option}'" in res.output and why in res.output


def test_bad_ratios_and_failed_ingest_save_no_ratios(tmp_path: Path) -> None:
    ws_dir = tmp_path / "ws"
    good = write_jsonl(tmp_path / "good.jsonl", [chat(f"question {i}", f"answer {i}") for i in range(5)])
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"messages": "not a list"}\n')
    runner = CliRunner()
    res = runner.invoke(main, ["-w", str(ws_dir), "ingest", "--ratios", "nan/1/1", str(good)])
    assert res.exit_code == 1 and "finite non-negative" in res.output
    res = runner.invoke(main, ["-w", str(ws_dir), "ingest", "--ratios", "0/0/1", str(bad)])
    assert res.exit_code == 1 and "bad.jsonl:1" in res.output
    assert Workspace(ws_dir).get_setting("split_ratios") is None
    res = runner.invoke(main, ["-w", str(ws_dir), "ingest", "--ratios", "0/0/1", str(good)])
    assert res.exit_code == 0, res.output
    assert Workspace(ws_dir).get_setting("split_ratios") == [0.0, 0.0, 1.0]
    assert "test 5" in res.output


def test_read_commands_do_not_create_a_workspace(tmp_path: Path) -> None:
    import click

    from curator.cli.kit import READ_COMMANDS

    missing = tmp_path / "no-such-dir"
    for name in ("stats", "snapshot list", "rounds list", "traces list", "feedback stats"):
        res = CliRunner().invoke(main, ["-w", str(missing), *name.split()])
        assert res.exit_code == 1 and "no workspace at" in res.output, (name, res.output)
    assert not missing.exists()
    for name in READ_COMMANDS:  # every entry names a real command
        cmd: click.Command = main
        for part in name.split():
            assert isinstance(cmd, click.Group) and part in cmd.commands, name
            cmd = cmd.commands[part]


def test_chat_system_file_that_is_not_utf8(tmp_path: Path) -> None:
    ws_dir = tmp_path / "ws"
    CliRunner().invoke(main, ["-w", str(ws_dir), "ingest", str(write_jsonl(tmp_path / "a.jsonl", [chat("q", "a")]))])
    system = tmp_path / "system.txt"
    system.write_bytes(b"You are\n\xff helpful.")
    res = CliRunner().invoke(main, ["-w", str(ws_dir), "chat", "--run", "base", "--base-model", str(tmp_path / "none"),
                                    "--system-file", str(system), "hi"])
    assert res.exit_code == 1 and f"Error: {system}:2: not UTF-8 text" in res.output, res.output
