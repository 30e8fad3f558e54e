"""The one reader of users' YAML files: every broken file is one line naming it (and its line), never a hang."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from curator.errors import InputError
from curator.yamlfile import read_yaml

BOMB = ('a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
        + "".join(f"{c}: &{c} [{','.join(['*' + p] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi", strict=True)))


@pytest.mark.parametrize(("data", "message"), [
    (b"key: [unclosed\n  other: {\n", r"f\.yaml:2: not valid YAML: while parsing a flow sequence expected ',' or ']'"),
    (b"ok: 1\nbad: caf\xe9\n", r"f\.yaml:2: not UTF-8 text \(byte 9 of the line\)"),
    (b"x: !!python/object/apply:os.system ['true']\n", r"f\.yaml:1: not valid YAML: could not determine a constructor"),
    (b"x: 1\ny: a\x00b\n", r"f\.yaml:2: not valid YAML: character U\+0000 is not allowed"),
    (b"x: " + b"[" * 10_000 + b"]" * 10_000 + b"\n", r"f\.yaml: not valid YAML: nested too deeply"),
    (BOMB.encode(), r"f\.yaml: holds more than 100,000 values once its aliases are expanded"),
    (b"a: &a [1, *a]\n", r"f\.yaml: a YAML alias refers to a value that contains it"),
])
def test_broken_yaml_is_one_line(tmp_path: Path, data: bytes, message: str) -> None:
    p = tmp_path / "f.yaml"
    p.write_bytes(data)
    with pytest.raises(InputError, match=message) as e:
        read_yaml(p)
    assert "\n" not in str(e.value)


def test_not_a_file(tmp_path: Path) -> None:
    (tmp_path / "d.yaml").mkdir()
    with pytest.raises(InputError, match="is a directory"):
        read_yaml(tmp_path / "d.yaml")
    os.mkfifo(tmp_path / "fifo.yaml")
    with pytest.raises(InputError, match="is not a regular file"):  # reading it would block forever
        read_yaml(tmp_path / "fifo.yaml")


def test_good_yaml_and_shared_anchors_are_read(tmp_path: Path) -> None:
    p = tmp_path / "ok.yaml"
    p.write_text("\ufeffbase: &b {lr: 0.1}\nrun: *b\n", encoding="utf-8")
    assert read_yaml(p) == {"base": {"lr": 0.1}, "run": {"lr": 0.1}}
    (tmp_path / "empty.yaml").write_text("")
    assert read_yaml(tmp_path / "empty.yaml") is None
