"""``curator stats``: token counts are made once per (example, tokenizer) and then read back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers import chat, write_jsonl

import curator.stats
from curator.cli import main
from curator.data.ingest import ingest_file
from curator.snapshots import create_snapshot
from curator.workspace import Workspace


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many conversations each call of the tokenizer pass counted."""
    calls: list[int] = []
    real = curator.stats.token_lengths

    def spy(conversations, *args, **kw):  # type: ignore[no-untyped-def]
        calls.append(len(conversations))
        return real(conversations, *args, **kw)

    monkeypatch.setattr(curator.stats, "token_lengths", spy)
    return calls


def test_second_call_tokenizes_only_new_examples(ws: Workspace, tmp_path: Path, counted: list[int]) -> None:
    ingest_file(ws, write_jsonl(tmp_path / "a.jsonl", [chat(f"question {i}", "answer " * (i + 1)) for i in range(40)]))
    first = curator.stats.workspace_stats(ws)
    assert counted == [40]
    again = curator.stats.workspace_stats(ws)
    assert counted == [40] and again["tokens"] == first["tokens"]
    ingest_file(ws, write_jsonl(tmp_path / "b.jsonl", [chat(f"new question {i}", "reply") for i in range(5)]))
    more = curator.stats.workspace_stats(ws)
    assert counted == [40, 5]
    assert sum(t["n"] for t in more["tokens"].values()) == 45
    snap = create_snapshot(ws)
    assert curator.stats.workspace_stats(ws, snap.id)["tokens"] == more["tokens"]
    assert counted == [40, 5]  # a snapshot's examples are the same ids


def test_model_option_counts_with_another_tokenizer(ws: Workspace, tmp_path: Path, tiny_model_dir: Path,
                                                    counted: list[int]) -> None:
    ingest_file(ws, write_jsonl(tmp_path / "a.jsonl", [chat(f"question {i}", f"answer {i}") for i in range(12)]))
    curator.stats.workspace_stats(ws)
    r = CliRunner().invoke(main, ["stats", "--model", str(tiny_model_dir), "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["tokenizer"] == str(tiny_model_dir) and sum(t["n"] for t in out["tokens"].values()) == 12
    assert counted == [12, 12]
    with ws.connect() as con:
        assert con.execute("SELECT count(DISTINCT tokenizer), count(*) FROM token_counts").fetchall() == [(2, 24)]
