"""validate: OpenAI's seven error kinds plus curator's own, warnings, nothing written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import chat, write_jsonl

from curator.data.validate import check_chat_record, validate_file
from curator.errors import InputError


def test_toy_file_matches_the_cookbook(shared_data: Path) -> None:
    r = validate_file(shared_data / "openai_cookbook/toy_chat_fine_tuning.jsonl")
    assert r.ok and r.examples == 5
    d = r.to_dict()
    assert d["warnings"]["missing_system"] == {"count": 1, "first_lines": [3],
                                               "first_messages": [{"line": 3, "message": "no system message"}]}
    assert d["warnings"]["missing_user"]["first_lines"] == [4]
    # The cookbook's printed message statistics (numpy linear quantiles 0.1 / 0.9).
    assert d["messages_per_example"] == pytest.approx(
        {"min": 2, "max": 9, "mean": 3.8, "median": 3.0, "p10": 2.0, "p90": 6.6})


def test_token_warning_and_billing_with_a_counter(shared_data: Path) -> None:
    r = validate_file(shared_data / "openai_cookbook/toy_chat_fine_tuning.jsonl",
                      count_tokens=lambda msgs: sum(len(m["content"].split()) * 2 for m in msgs))
    assert r.to_dict()["warnings"]["over_token_limit"]["first_lines"] == [5]
    assert r.billing["default_epochs"] == 20  # 100 // 5 examples, as in the cookbook


@pytest.mark.parametrize(
    ("record", "kinds"),
    [
        ([1, 2], ["data_type"]),
        ({"messages": []}, ["missing_messages_list"]),
        ({"messages": [{"role": "user"}, {"role": "assistant", "content": "a"}]}, ["message_missing_key", "missing_content"]),
        ({"messages": [{"role": "user", "content": "q", "extra": 1}, {"role": "assistant", "content": "a"}]},
         ["message_unrecognized_key"]),
        ({"messages": [{"role": "robot", "content": "q"}, {"role": "assistant", "content": "a"}]}, ["unrecognized_role"]),
        ({"messages": [{"role": "user", "content": "q"}]}, ["example_missing_assistant_message"]),
        ({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": 5}]},
         ["missing_content", "non_string_content"]),
        ({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": " "}]}, ["empty_content"]),
        ({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"},
                       {"role": "user", "content": "q2"}]}, ["last_not_assistant"]),
        ({"messages": [{"role": "user", "content": "q"}, {"role": "user", "content": "q"},
                       {"role": "assistant", "content": "a"}]}, ["consecutive_same_role"]),
        (chat("q", "a", "sys"), []),
    ],
)
def test_error_kinds(record, kinds) -> None:
    assert check_chat_record(record) == kinds


def test_file_level_kinds_with_lines(tmp_path: Path) -> None:
    f = tmp_path / "v.jsonl"
    f.write_bytes(
        (json.dumps(chat("q", "a")) + "\n").encode()
        + b"{oops\n"
        + b'{"messages": [{"role": "user", "content": "caf\xe9"}]}\n'
        + (json.dumps({"messages": [{"role": "user", "content": "q"}]}) + "\n").encode()
    )
    r = validate_file(f)
    assert not r.ok
    assert r.errors == {"json_error": [2], "bad_utf8": [3], "example_missing_assistant_message": [4]}


def test_other_formats_and_unreadable_files(tmp_path: Path, shared_data: Path) -> None:
    r = validate_file(shared_data / "instruct/stanford_alpaca/alpaca_5000.json")
    assert r.format == "alpaca" and r.errors == {"empty_content": [2336, 4659]} and r.unit == "record"
    with pytest.raises(InputError, match="file is empty"):
        validate_file(write_jsonl(tmp_path / "e.jsonl", []))
