"""CLI wiring: exit codes, `Error: ...` lines, --json, help on every command."""

from __future__ import annotations

import json
import re
from pathlib import Path

import click
from click.testing import CliRunner
from helpers import chat, write_jsonl

from curator.cli import main

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_ingest_snapshot_export_roundtrip(tmp_path: Path) -> None:
    f = write_jsonl(tmp_path / "d.jsonl", [chat(f"q{i}", f"a{i}") for i in range(30)])
    r = run("ingest", str(f))
    assert r.exit_code == 0
    assert re.match(r".*d\.jsonl \(chat\): 30 examples, 30 added \(.*\), 0 already present", r.output)
    r = run("ingest", str(f), "--json")
    assert json.loads(r.output)["added"] == 0
    r = run("snapshot", "create", "--name", "v1")
    assert r.exit_code == 0 and r.output.startswith("snapshot ") and "created (v1): 30 examples" in r.output
    r = run("snapshot", "list", "--json")
    assert [s["name"] for s in json.loads(r.output)] == ["v1"]
    r = run("snapshot", "show", "v1")
    assert r.exit_code == 0 and "verified" in r.output
    r = run("snapshot", "export", "v1", "--format", "openai", "--out", str(tmp_path / "out"))
    assert r.exit_code == 0 and (tmp_path / "out" / "train.jsonl").exists()
    r = run("snapshot", "export", "v1", "--format", "openai", "--out", str(tmp_path / "out"))
    assert r.exit_code == 1 and r.output.startswith("Error: ") and "--force" in r.output
    r = run("stats", "--json", "--no-tokens")
    assert json.loads(r.output)["total"] == 30


def test_bad_input_is_one_line_and_exit_1(tmp_path: Path) -> None:
    f = tmp_path / "bad.jsonl"
    f.write_text(json.dumps(chat("q", "a")) + "\n{oops\n")
    r = run("ingest", str(f))
    assert r.exit_code == 1
    assert r.output == f"Error: {f}:2: invalid JSON: Expecting property name enclosed in double quotes (column 2)\n"
    r = run("ingest", str(f), "--skip-invalid")
    assert r.exit_code == 0 and f"skipped {f}:2: invalid JSON" in r.output


def test_validate_exit_codes(tmp_path: Path, shared_data: Path) -> None:
    r = run("validate", str(shared_data / "openai_cookbook/toy_chat_fine_tuning.jsonl"), "--no-tokens")
    assert r.exit_code == 0 and "no errors" in r.output and "missing_system" in r.output
    bad = write_jsonl(tmp_path / "v.jsonl", [{"messages": [{"role": "user", "content": "q"}]}])
    r = run("validate", str(bad), "--json", "--no-tokens")
    assert r.exit_code == 1
    assert json.loads(r.output)["errors"]["example_missing_assistant_message"]["count"] == 1
    assert not (tmp_path / "ws").exists()  # validate writes nothing


def test_snapshot_diff_and_unknown(tmp_path: Path) -> None:
    run("ingest", str(write_jsonl(tmp_path / "a.jsonl", [chat("one", "1")])))
    run("snapshot", "create", "--name", "a")
    run("ingest", str(write_jsonl(tmp_path / "b.jsonl", [chat("two", "2")])))
    run("snapshot", "create", "--name", "b")
    r = run("snapshot", "diff", "a", "b")
    assert "added: 1 (import 1)" in r.output
    r = run("snapshot", "show", "zzz")
    assert r.exit_code == 1 and r.output.startswith("Error: no snapshot 'zzz'")


def test_models_list() -> None:
    r = run("models", "list", "--json")
    names = {m["name"] for m in json.loads(r.output)}
    assert {"local:smollm2-135m-instruct", "local:all-minilm-l6-v2"} <= names


def _commands(group: click.Group, prefix: str = "") -> list[tuple[str, click.Command]]:
    out = []
    for name, cmd in sorted(group.commands.items()):
        full = f"{prefix}{name}"
        out.append((full, cmd))
        if isinstance(cmd, click.Group):
            out.extend(_commands(cmd, full + " "))
    return out


def test_every_command_has_help() -> None:
    # That every command has an example in the manual, and a section in the generated CLI
    # reference, is checked by tests/test_docs.py.
    for name, cmd in _commands(main):
        assert (cmd.help or "").strip(), f"`curator {name}` has no help text"
        r = CliRunner().invoke(main, [*name.split(), "--help"])
        assert r.exit_code == 0, name
