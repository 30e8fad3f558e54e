"""Hostile feedback files: one-line ``FILE:LINE: what`` errors, nothing written, bounded reading."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from helpers import count_rows

from curator.errors import InputError
from curator.feedback import ingest_feedback

CONV = [{"role": "user", "content": "How do I reset my key?"}, {"role": "assistant", "content": "Rotate it."}]
CHAT = {"trace_id": "t1", "messages": CONV, "rating": 5}


def _tree(levels: int) -> str:
    """An OASST tree ``levels`` messages deep, as JSON text (written without recursion)."""
    head, tail = [], []
    for i in range(1, levels + 1):
        role = "prompter" if i % 2 else "assistant"
        head.append(f'{{"message_id":"m{i}","role":"{role}","text":"t","emojis":{{"+1":1}},"replies":[')
        tail.append("]}")
    return '{"message_tree_id":"deep","prompt":' + "".join(head) + "".join(tail) + "}"


BAD = [
    ("deep", '{"x":' + "[" * 100_000 + "]" * 100_000 + "}", r"deep\.jsonl:2: JSON nested too deeply"),
    ("surrogate", '{"trace_id":"t2","messages":[{"role":"user","content":"\\ud800"},{"role":"assistant","content":"a"}],'
                  '"rating":5}', r"surrogate\.jsonl:2: a string holds a lone surrogate"),
    ("nul", '{"trace_id":"t2","messages":"\x00"}', r"nul\.jsonl:2: NUL byte at byte"),
    ("nan", '{"trace_id":"t2","messages":' + json.dumps(CONV) + ',"rating":NaN}', r"nan\.jsonl:2: invalid JSON: NaN"),
]


@pytest.mark.parametrize(("name", "bad", "message"), BAD, ids=[b[0] for b in BAD])
def test_bad_line_is_one_line_error_and_nothing_written(ws, tmp_path: Path, name: str, bad: str, message: str) -> None:
    path = tmp_path / f"{name}.jsonl"
    path.write_text(json.dumps(CHAT) + "\n" + bad + "\n")
    with pytest.raises(InputError, match=message) as info:
        ingest_feedback(ws, path)
    assert "\n" not in str(info.value)
    assert count_rows(ws)["examples"] == 0


def test_oasst_tree_900_levels_is_refused_not_a_recursion_error(ws, tmp_path: Path) -> None:
    path = tmp_path / "tree.jsonl"
    path.write_text(_tree(900) + "\n")
    with pytest.raises(InputError, match=r"tree\.jsonl:1: JSON nested too deeply"):
        ingest_feedback(ws, path, fmt="oasst")
    shallow = tmp_path / "shallow.jsonl"
    shallow.write_text(_tree(200) + "\n")
    assert ingest_feedback(ws, shallow, fmt="oasst").events == 100


def test_unstorable_metadata_names_the_line(ws, tmp_path: Path) -> None:
    tree = json.loads(_tree(2))
    tree["prompt"]["replies"][0]["model_name"] = {"not": "a string"}
    path = tmp_path / "model.jsonl"
    path.write_text(json.dumps(tree) + "\n")
    with pytest.raises(InputError, match=r"model\.jsonl:1: the model name must be a string, got dict"):
        ingest_feedback(ws, path, fmt="oasst")


def test_gzip_bomb_stops_at_the_line_limit(ws, tmp_path: Path) -> None:
    path = tmp_path / "bomb.jsonl.gz"
    with gzip.open(path, "wb") as f:
        f.write(json.dumps(CHAT).encode() + b"\n" + b"A" * (24 * 1024 * 1024))
    with pytest.raises(InputError, match=r"bomb\.jsonl\.gz:2: line is over the 8 MiB limit"):
        ingest_feedback(ws, path)
    rep = ingest_feedback(ws, path, skip_invalid=True)
    assert rep.events == 1 and [s["line"] for s in rep.skipped] == [2]
