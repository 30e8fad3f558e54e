"""Hostile inputs: each one is a one-line error naming file and line (or row), or is stored faithfully.

Both ``ingest`` (sequential and parallel paths) and ``validate`` see the same verdict; nothing is written
when a file is refused.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from helpers import chat, count_rows, write_jsonl

import curator.data.ingest as ingest_mod
from curator.data.ingest import ingest_file
from curator.data.readers.textfile import MAX_LINE_BYTES, iter_raw_lines, loads_line
from curator.data.validate import validate_file
from curator.errors import InputError
from curator.workspace import Workspace

GOOD = json.dumps(chat("How do I reset my key?", "Rotate it.")) + "\n"


def line(extra: str = "", content: str = "q") -> str:
    return '{"messages":[{"role":"user","content":"' + content + '"},{"role":"assistant","content":"a"}]' + extra + "}\n"


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


REFUSED = [
    ("deep", line(',"x":' + nested(100_000)), r"deep\.jsonl:2: JSON nested too deeply", "nesting_too_deep"),
    ("meta300", line(',"x":' + nested(300)), r"meta300\.jsonl:2: a field is nested more than 254", "nesting_too_deep"),
    ("surrogate", line("", "a\\ud800"), r"surrogate\.jsonl:2: a string holds a lone surrogate", "invalid_unicode"),
    ("surrkey", line(',"k\\udfff":1'), r"surrkey\.jsonl:2: field name .* lone surrogate", "invalid_unicode"),
    ("nul", line("", "a\x00b"), r"nul\.jsonl:2: NUL byte at byte \d+ of the line", "nul_byte"),
    ("nan", line(',"score":NaN'), r"nan\.jsonl:2: invalid JSON: NaN is not a JSON number", "json_error"),
    ("inf", line(',"score":-Infinity'), r"inf\.jsonl:2: invalid JSON: -Infinity is not", "json_error"),
    ("task", line(',"task":3', "other"), r'task\.jsonl:2: "task" must be a string, got int', "bad_task"),
    ("name", '{"messages":[{"role":"user","content":"q","name":{"a":1}},{"role":"assistant","content":"a"}]}\n',
     r'name\.jsonl:2: message 1 \(user\) "name" must be a string', "data_type"),
]


@pytest.mark.parametrize(("name", "bad", "message", "kind"), REFUSED, ids=[r[0] for r in REFUSED])
def test_refused_line_names_its_line_in_ingest_and_validate(ws, tmp_path: Path, name: str, bad: str, message: str,
                                                            kind: str) -> None:
    path = tmp_path / f"{name}.jsonl"
    path.write_text(json.dumps({**chat("How do I reset my key?", "Rotate it."), "task": "a"}) + "\n" + bad,
                    encoding="utf-8", errors="surrogatepass")
    with pytest.raises(InputError, match=message) as info:
        ingest_file(ws, path)
    assert "\n" not in str(info.value)
    assert count_rows(ws)["examples"] == 0
    rep = validate_file(path)
    assert not rep.ok and 2 in [n for lines in rep.errors.values() for n in lines], rep.errors
    if name != "name":
        assert rep.errors.get(kind) == [2], rep.errors
    # With --skip-invalid the good line is stored and the bad one reported.
    skipped = ingest_file(ws, path, skip_invalid=True)
    assert skipped.added == 1 and [s["line"] for s in skipped.skipped] == [2]


def test_kept_faithfully(ws, tmp_path: Path) -> None:
    """A NUL character written as \\u0000 is text and is kept; an integer over 64 bits keeps every digit."""
    path = tmp_path / "kept.jsonl"
    path.write_text(line(',"id":123456789012345678901234567890', "a\\u0000b") + line(',"n":18446744073709551615', "c"))
    rep = ingest_file(ws, path)
    assert rep.added == 2
    with ws.connect() as con:
        rows = con.execute("SELECT messages::VARCHAR, meta::VARCHAR FROM examples ORDER BY meta::VARCHAR").fetchall()
    assert '"id":123456789012345678901234567890' in rows[0][1]
    assert '"n":18446744073709551615' in rows[1][1]
    assert json.loads(rows[0][0])[0]["content"] == "a\x00b"
    assert validate_file(path).ok


def test_json_array_garbage_after_the_array_is_refused(ws, tmp_path: Path) -> None:
    path = tmp_path / "garbage.json"
    path.write_text(json.dumps([chat("q", "a")]) + "\n trailing\n")
    with pytest.raises(InputError, match=r"garbage\.json:2: invalid JSON: text after the closing '\]'"):
        ingest_file(ws, path)
    with pytest.raises(InputError, match="text after the closing"):
        validate_file(path)
    assert count_rows(ws)["examples"] == 0


@pytest.mark.parametrize(("body", "message"), [
    ('[{"messages":[{"role":"user","content":"\\ud800"},{"role":"assistant","content":"a"}]}]', r"record 1: a string"),
    ('[{"messages":[{"role":"user","content":"q"},{"role":"assistant","content":"a"}],"x":' + nested(50_000) + "}]",
     r"record 1: JSON nested too deeply"),
    ('[{"messages":[{"role":"user","content":"q"},{"role":"assistant","content":"a"}],"x":NaN}]', r"record 1: .*NaN"),
])
def test_json_array_records(ws, tmp_path: Path, body: str, message: str) -> None:
    path = tmp_path / "arr.json"
    path.write_text(body)
    with pytest.raises(InputError, match=message):
        ingest_file(ws, path)
    with pytest.raises(InputError, match=message):
        validate_file(path)


def test_bounded_reading_of_a_line_without_newline(tmp_path: Path) -> None:
    """A 2 GB sparse file with no newline after its first lines: the reader reports the line at the limit."""
    path = tmp_path / "huge.jsonl"
    with path.open("wb") as f:
        f.write(GOOD.encode() * 3 + b'{"messages": "')
        f.truncate(2 * 1024**3)
    with path.open("rb") as f:
        it = iter_raw_lines(f)
        assert [n for n, _ in (next(it), next(it), next(it))] == [1, 2, 3]
        n, err = next(it)
        assert n == 4 and "over the 8 MiB limit" in str(err)
        assert f.tell() <= 4 * len(GOOD) + MAX_LINE_BYTES + 1  # stopped at the limit: the rest is not read


def test_gzip_bomb_is_read_a_bounded_line_at_a_time(tmp_path: Path) -> None:
    path = tmp_path / "bomb.gz"
    with gzip.open(path, "wb") as f:
        f.write(GOOD.encode() + b"A" * (20 * 1024 * 1024))
    with gzip.open(path, "rb") as f:
        got = list(iter_raw_lines(f))
    assert [n for n, _ in got] == [1, 2] and "over the 8 MiB limit" in str(got[1][1])


def test_loads_line_fast_and_slow_paths_agree() -> None:
    assert loads_line(b'{"a": 1, "b": [1.5, "x"]}') == {"a": 1, "b": [1.5, "x"]}
    assert loads_line(b'{"a": 123456789012345678901234567890}') == {"a": 123456789012345678901234567890}
    assert loads_line(b'{"a": "id 12345678901234567890123"}') == {"a": "id 12345678901234567890123"}


def test_csv_hostile(ws, tmp_path: Path) -> None:
    big = tmp_path / "bigfield.csv"
    big.write_bytes(b"prompt,response\nq,a\n" + b'"' + b"x" * (MAX_LINE_BYTES + 10) + b'",b\n')
    with pytest.raises(InputError, match=r"bigfield\.csv:3: "):
        ingest_file(ws, big)
    unclosed = tmp_path / "unclosed.csv"
    unclosed.write_bytes(b'prompt,response\nq,a\n"never closed,b\n' + b"q,a\n" * 2_100_000)
    with pytest.raises(InputError, match=r"unclosed\.csv:3: CSV: a field is over the 8 MiB limit \(an unclosed quote\?\)"):
        ingest_file(ws, unclosed)
    nul = tmp_path / "nul.csv"
    nul.write_bytes(b"prompt,response\n" + b"q,a\n" * 20_000 + b"q\x00,a\n")
    with pytest.raises(InputError, match=r"nul\.csv:20002: NUL byte"):
        ingest_file(ws, nul)
    with pytest.raises(InputError, match=r"nul\.csv:20002: NUL byte"):
        validate_file(nul)
    assert count_rows(ws)["examples"] == 0
    deep = tmp_path / "deep.csv"  # a JSON-looking column is only text in CSV: kept as it is
    deep.write_text('prompt,response,extra\nq,a,"' + nested(100_000) + '"\n')
    assert ingest_file(ws, deep).added == 1


def test_parquet_decimal_kept_binary_refused(ws, tmp_path: Path) -> None:
    import decimal

    import pyarrow as pa
    import pyarrow.parquet as pq

    dec = tmp_path / "dec.parquet"
    pq.write_table(pa.table({"messages": [chat("q1", "a1")["messages"]],
                             "price": pa.array([decimal.Decimal("1.10")], pa.decimal128(5, 2))}), dec)
    assert ingest_file(ws, dec).added == 1
    with ws.connect() as con:
        assert '"price":"1.10"' in con.execute("SELECT meta::VARCHAR FROM examples").fetchall()[0][0]
    blob = tmp_path / "blob.parquet"
    pq.write_table(pa.table({"messages": [chat("q2", "a2")["messages"]], "blob": pa.array([b"\x00"], pa.binary())}), blob)
    with pytest.raises(InputError, match=r"blob\.parquet: row 1: a field holds a value of type bytes"):
        ingest_file(ws, blob)
    with pytest.raises(InputError, match="Parquet file has no splits"):
        ingest_file(ws, dec, hf_split="test")


def test_hf_splits(ws, tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    train = datasets.Dataset.from_list([chat("same prompt", "same answer"), chat("other prompt", "b")])
    test = datasets.Dataset.from_list([chat("same prompt", "same answer")])
    folder = tmp_path / "ds"
    datasets.DatasetDict({"train": train, "test": test}).save_to_disk(str(folder))
    with pytest.raises(InputError, match=r"no split 'nope' \(--hf-split\) in this dataset; it has train, test"):
        ingest_file(ws, folder, fmt="hf", hf_split="nope")
    rep = ingest_file(ws, folder, fmt="hf")
    assert rep.by_split == {"test": 1, "train": 1}
    # The train copy stored earlier from another file moves to test too.
    ws2 = Workspace(tmp_path / "ws2")
    only_train = write_jsonl(tmp_path / "t.jsonl", [chat("same prompt", "same answer")])
    ingest_file(ws2, only_train)
    rep2 = ingest_file(ws2, folder, fmt="hf")
    with ws2.connect() as con:
        assert con.execute("SELECT split FROM splits s JOIN examples e ON e.id = s.example_id "
                           "WHERE e.messages::VARCHAR LIKE '%same prompt%'").fetchall() == [("test",)]
    assert rep2.moved_to_pinned_split == {"train": 1}


@pytest.mark.parametrize("case", ["bad_after_midpoint", "skip_second_half", "task_types"])
def test_parallel_path_worker_without_rows(tmp_path: Path, monkeypatch, case: str) -> None:
    monkeypatch.setattr(ingest_mod, "PARALLEL_MIN_BYTES", 1)
    rows = "".join(json.dumps(chat(f"question {i}", f"answer {i}")) + "\n" for i in range(200))
    path = tmp_path / "big.jsonl"
    ws = Workspace(tmp_path / "ws")
    if case == "bad_after_midpoint":
        path.write_text(rows + "{not json\n" * 3 + rows.replace("question", "q2"))
        with pytest.raises(InputError, match=r"big\.jsonl:201: invalid JSON"):
            ingest_file(ws, path)
        assert count_rows(ws)["examples"] == 0
    elif case == "skip_second_half":
        path.write_text(rows + "{not json}\n" * 20_000)
        rep = ingest_file(ws, path, skip_invalid=True)
        assert rep.added == 200 and len(rep.skipped) == 20_000
    else:
        path.write_text(rows + line(',"task":7', "last"))
        with pytest.raises(InputError, match=r'big\.jsonl:201: "task" must be a string, got int'):
            ingest_file(ws, path)


@pytest.mark.parametrize(("data", "message"), [
    (bytes(range(256)) * 4, r"binary file \(NUL byte at offset 0\)"),  # NUL bytes, but not every other byte
    (GOOD.encode("utf-16-le"), "file is UTF-16 encoded"),  # no byte order mark
    (GOOD.encode("utf-16-be"), "file is UTF-16 encoded"),
])
def test_binary_is_not_called_utf16(ws, tmp_path: Path, data: bytes, message: str) -> None:
    p = tmp_path / "x.jsonl"
    p.write_bytes(data)
    with pytest.raises(InputError, match=message):
        ingest_file(ws, p)
