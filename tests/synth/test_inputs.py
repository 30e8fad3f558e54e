"""`generate --questions` and `--weaknesses` files: read like `curator ingest` reads, refused in one line each."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from curator.errors import InputError
from curator.synth.generate import load_questions, load_weaknesses

Q = b'{"prompt": "How do I rotate a key?"}\n'


@pytest.mark.parametrize(("data", "message"), [
    (Q + b'{"prompt": "caf\xe9"}\n', r"q\.jsonl:2: invalid UTF-8"),
    (Q.decode().encode("utf-16"), r"q\.jsonl: file is UTF-16 encoded"),
    (b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4, r"q\.jsonl: binary file"),
    (Q + b'{"prompt": "\\ud800"}\n', r"q\.jsonl:2: a string holds a lone surrogate"),
    (Q + b'{"prompt": "q", "task": ["a"]}\n', r'q\.jsonl:2: "task" must be a string, got list'),
    (Q + b'{"prompt": "' + b"x" * (9 << 20) + b'"}\n', r"q\.jsonl:2: line is over the 8 MiB limit"),
])
def test_bad_questions_file(tmp_path: Path, data: bytes, message: str) -> None:
    p = tmp_path / "q.jsonl"
    p.write_bytes(data)
    with pytest.raises(InputError, match=message):
        load_questions(p)


def test_a_line_separator_inside_a_string_is_not_a_line_break(tmp_path: Path) -> None:
    """U+2028 is allowed raw in a JSON string: str.splitlines() used to cut the line there."""
    p = tmp_path / "q.jsonl"
    p.write_bytes(Q + '{"prompt": "a\u2028b"}\n'.encode() + b'{"prompt": "third"}\n')
    got = load_questions(p)
    assert [(n, m[-1]["content"]) for n, m, _ in got] == [(1, "How do I rotate a key?"), (2, "a\u2028b"), (3, "third")]
    arr = tmp_path / "q.json"  # a JSON array works too, its errors named by record
    arr.write_text(json.dumps([{"prompt": "one"}, {"prompt": 5}]))
    with pytest.raises(InputError, match=r"q\.json: record 2: expected"):
        load_questions(arr)


@pytest.mark.parametrize(("data", "message"), [
    (b'[{"id": "w", "task": ["a"], "description": "d"}]', r'w\.json: group 1: "task" must be a string, got list'),
    (b'[{"id": "w", "task": 7, "description": "d"}]', r'w\.json: group 1: "task" must be a string, got int'),
    (b'[{"id": {"a": 1}, "description": "d"}]', r'w\.json: group 1: "id" must be a string, got dict'),
    (b'[\n  {"id": "w",\n   oops}]', r"w\.json:3: invalid JSON: .* \(column 4\)"),
    (b'[{"id": "w", "description": "\xff"}]', r"w\.json:1: invalid UTF-8"),
])
def test_bad_weaknesses_file(tmp_path: Path, data: bytes, message: str) -> None:
    p = tmp_path / "w.json"
    p.write_bytes(data)
    with pytest.raises(InputError, match=message):
        load_weaknesses(p)
