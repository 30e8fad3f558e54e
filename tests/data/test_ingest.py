"""Ingest: real files, idempotence, one transaction per file, and every bad input with its message."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import chat, count_rows, write_jsonl

from curator.data.ingest import ingest_file
from curator.data.readers import CsvMapping
from curator.errors import InputError


def test_alpaca_5000_then_nothing_new(ws, shared_data: Path) -> None:
    path = shared_data / "instruct/stanford_alpaca/alpaca_5000.json"
    first = ingest_file(ws, path)
    assert (first.format, first.examples, first.added) == ("alpaca", 5000, 5000)
    assert sum(first.by_split.values()) == 5000
    second = ingest_file(ws, path)
    assert (second.added, second.already_present) == (0, 5000)
    assert count_rows(ws)["examples"] == 5000


@pytest.mark.parametrize(
    ("rel", "fmt", "n"),
    [
        ("instruct/self_instruct/seed_tasks.jsonl", "selfinstruct", 175),
        ("instruct/dolly_subset_flan_t5_decodes/google_flan-t5-base_decode_output.jsonl", "dolly", 6400),
        ("openai_cookbook/toy_chat_fine_tuning.jsonl", "chat", 5),
        ("customer_support/bitext/Bitext_Sample_Customer_Support_Training_Dataset.csv", "csv", 4514),
        ("customer_support/banking77/test.csv", "csv", 3080),
    ],
)
def test_real_files(ws, shared_data: Path, rel: str, fmt: str, n: int) -> None:
    rep = ingest_file(ws, shared_data / rel)
    assert rep.format == fmt
    assert rep.rows_read == n
    assert rep.added == rep.examples == n - rep.duplicates_in_file
    with ws.connect() as con:
        src = json.loads(con.execute("SELECT meta FROM examples LIMIT 1").fetchall()[0][0])["source"]
    assert src["format"] == fmt and src["path"].endswith(Path(rel).name)


def test_banking77_maps_text_and_category(ws, shared_data: Path) -> None:
    ingest_file(ws, shared_data / "customer_support/banking77/test.csv", task="banking77")
    with ws.connect() as con:
        msgs, task = con.execute("SELECT messages, task FROM examples ORDER BY id LIMIT 1").fetchall()[0]
    msgs = json.loads(msgs)
    assert [m["role"] for m in msgs] == ["user", "assistant"] and task == "banking77"
    assert "_" in msgs[1]["content"] or msgs[1]["content"].isalpha()  # an intent label like card_arrival


def test_dolly_decode_keeps_model_output_in_meta(ws, shared_data: Path) -> None:
    ingest_file(ws, shared_data / "instruct/dolly_subset_flan_t5_decodes/google_flan-t5-small_decode_output.jsonl")
    with ws.connect() as con:
        meta = json.loads(con.execute("SELECT meta FROM examples LIMIT 1").fetchall()[0][0])
    assert "model_output" in meta


def test_sharegpt_and_hf_formats(ws, tmp_path: Path) -> None:
    sg = write_jsonl(tmp_path / "sg.jsonl", [
        {"id": "a", "conversations": [{"from": "human", "value": "Hi?"}, {"from": "gpt", "value": "Hello."}]},
        {"id": "b", "conversations": [{"from": "system", "value": "Be brief."}, {"from": "human", "value": "2+2?"},
                                      {"from": "gpt", "value": "4"}]},
    ])
    assert ingest_file(ws, sg).added == 2
    from datasets import Dataset, DatasetDict

    ds = DatasetDict({
        "train": Dataset.from_list([{"instruction": f"Say {i}", "output": str(i)} for i in range(6)]),
        "test": Dataset.from_list([{"instruction": "Say ten", "output": "10"}]),
    })
    ds.save_to_disk(str(tmp_path / "hfds"))
    rep = ingest_file(ws, tmp_path / "hfds")
    assert rep.format == "hf/alpaca" and rep.added == 7
    assert rep.by_split.get("test") == 1  # the DatasetDict's test split is kept
    Dataset.from_list([chat("parquet q", "parquet a")]).to_parquet(str(tmp_path / "x.parquet"))
    assert ingest_file(ws, tmp_path / "x.parquet").format == "hf/chat"


def test_csv_mapping_options(ws, tmp_path: Path) -> None:
    f = tmp_path / "t.csv"
    f.write_text('q,a,kind\n"How do I, you know, log in?","Use the button.",auth\n"Second","Two",misc\n')
    with pytest.raises(InputError, match="cannot tell which column holds the prompt"):
        ingest_file(ws, f)
    rep = ingest_file(ws, f, csv_mapping=CsvMapping(prompt="q", response="a", task="kind"))
    assert rep.added == 2
    with ws.connect() as con:
        assert sorted(r[0] for r in con.execute("SELECT task FROM examples").fetchall()) == ["auth", "misc"]


def test_same_prompt_same_split_and_pins(ws, tmp_path: Path) -> None:
    rows = [chat("What is DNS?", f"Answer {i}") for i in range(20)]
    ingest_file(ws, write_jsonl(tmp_path / "a.jsonl", rows))
    with ws.connect() as con:
        assert con.execute("SELECT count(DISTINCT split) FROM splits").fetchall()[0][0] == 1
    ingest_file(ws, write_jsonl(tmp_path / "t.jsonl", [chat("Held out?", "Yes")]), split="test")
    with ws.connect() as con:
        assert con.execute("SELECT split, pinned FROM splits WHERE pinned").fetchall() == [("test", True)]


def test_skip_invalid_reports_every_bad_line(ws, tmp_path: Path) -> None:
    f = write_jsonl(tmp_path / "mixed.jsonl", [chat("q1", "a1"), "{not json", {"foo": 1}, chat("q2", "a2")])
    rep = ingest_file(ws, f, skip_invalid=True)
    assert rep.added == 2
    assert [(s["line"], s["reason"]) for s in rep.skipped] == [
        (2, "invalid JSON: Expecting property name enclosed in double quotes (column 2)"),
        (3, 'missing "messages"'),
    ]


def _bad_inputs(tmp: Path) -> list[tuple[str, Path, str]]:
    good = json.dumps(chat("fine", "ok"))
    cases: list[tuple[str, Path, str]] = []

    def add(name: str, text: str | bytes, expect: str, suffix: str = ".jsonl") -> None:
        p = tmp / f"{name}{suffix}"
        (p.write_bytes if isinstance(text, bytes) else p.write_text)(text)
        cases.append((name, p, expect))

    add("invalid_json", good + "\n{\"messages\": [}\n", r"invalid_json\.jsonl:2: invalid JSON")
    add("missing_messages", good + "\n" + json.dumps({"msgs": []}) + "\n", r'missing_messages\.jsonl:2: missing "messages"')
    add("unknown_role", good + "\n" + json.dumps({"messages": [{"role": "robot", "content": "x"}]}) + "\n",
        r"unknown_role\.jsonl:2: message 1 has unknown role 'robot'")
    add("non_string", good + "\n" + json.dumps({"messages": [{"role": "user", "content": "q"},
                                                             {"role": "assistant", "content": 5}]}) + "\n",
        r"non_string\.jsonl:2: message 2 \(assistant\) content must be a string or a list of text parts, got int")
    add("image_part", good + "\n" + json.dumps({"messages": [
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}]},
        {"role": "assistant", "content": "a"}]}) + "\n",
        r"image_part\.jsonl:2: message 1 \(user\) content part 1 is of type 'image_url': curator trains text models")
    add("empty", "", r"empty\.jsonl: file is empty")
    add("binary", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)), r"binary\.jsonl: binary file")
    add("utf16", (good + "\n").encode("utf-16"), r"utf16\.jsonl: file is UTF-16 encoded")
    big = json.dumps(chat("q", "x" * (10 * 1024 * 1024)))
    add("long_line", good + "\n" + big + "\n", r"long_line\.jsonl:2: line is over the 8 MiB limit")
    cases.append(("missing_path", tmp / "nope.jsonl", r"nope\.jsonl: no such file"))
    (tmp / "adir").mkdir()
    cases.append(("directory", tmp / "adir", r"adir: is a directory"))
    add("csv_columns", "foo,bar\n1,2\n", r"csv_columns\.csv:1: cannot tell which column", ".csv")
    return cases


def test_bad_inputs_each_one_line_error_and_nothing_written(ws, tmp_path: Path, shared_data: Path) -> None:
    ingest_file(ws, shared_data / "openai_cookbook/toy_chat_fine_tuning.jsonl")
    before = count_rows(ws)
    for name, path, expect in _bad_inputs(tmp_path):
        with pytest.raises(InputError) as info:
            ingest_file(ws, path)
        msg = str(info.value)
        assert "\n" not in msg, name
        import re

        assert re.search(expect, msg), f"{name}: {msg!r}"
        assert count_rows(ws) == before, name


def test_mapped_csv_column_missing(ws, tmp_path: Path) -> None:
    f = tmp_path / "m.csv"
    f.write_text("question,answer\nq,a\n")
    with pytest.raises(InputError, match=r"m\.csv:1: column 'reply' \(--response-column\) not found"):
        ingest_file(ws, f, csv_mapping=CsvMapping(response="reply"))


def test_bad_row_after_good_rows_rolls_back(ws, tmp_path: Path) -> None:
    rows = [chat(f"q{i}", f"a{i}") for i in range(50)] + [{"messages": "nope"}]
    with pytest.raises(InputError, match=r":51: "):
        ingest_file(ws, write_jsonl(tmp_path / "late.jsonl", rows))
    assert count_rows(ws)["examples"] == 0


def test_failure_inside_the_transaction_leaves_nothing(ws, tmp_path: Path, monkeypatch) -> None:
    import curator.data.ingest as ing

    def boom(*a, **k):
        raise RuntimeError("disk full")

    ingest_file(ws, write_jsonl(tmp_path / "a.jsonl", [chat("q0", "a0")]))
    before = count_rows(ws)
    real, stored = ing.store_examples, []

    def store_then_fail(con, *a, **k):  # fails after the rows were inserted, before commit
        stored.append(real(con, *a, **k))
        boom()

    monkeypatch.setattr(ing, "store_examples", store_then_fail)
    with pytest.raises(RuntimeError, match="disk full"):
        ingest_file(ws, write_jsonl(tmp_path / "b.jsonl", [chat(f"q{i}", "a") for i in range(1, 30)]))
    assert stored[0][0] == 29 and count_rows(ws) == before


_KILLED_INGEST = """
import os, signal, sys
import curator.data.ingest as ing
from curator.workspace import Workspace

real = ing.store_examples

def store_then_die(con, *a, **k):
    real(con, *a, **k)  # rows inserted (full row groups already written to the file), not committed
    print("inserted", flush=True)
    os.kill(os.getpid(), signal.SIGKILL)

ing.store_examples = store_then_die
ing.ingest_file(Workspace(sys.argv[1]), sys.argv[2])
"""


def test_a_process_killed_before_commit_leaves_nothing_and_the_rerun_stores_all(tmp_path: Path) -> None:
    """kill -9 inside the transaction, after DuckDB wrote whole row groups of it to the file."""
    import subprocess
    import sys

    from curator.workspace import ROW_GROUP_SIZE, Workspace

    n = 2 * ROW_GROUP_SIZE + 100
    data = write_jsonl(tmp_path / "big.jsonl", [chat(f"question {i}?", f"answer {i}.") for i in range(n)])
    ws = Workspace(tmp_path / "ws")
    ingest_file(ws, write_jsonl(tmp_path / "first.jsonl", [chat("q0", "a0")]))
    before = count_rows(ws)
    proc = subprocess.run([sys.executable, "-c", _KILLED_INGEST, str(ws.path), str(data)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == -9 and "inserted" in proc.stdout, proc.stderr
    assert count_rows(ws) == before
    report = ingest_file(ws, data)
    assert report.added == n and count_rows(ws)["examples"] == n + 1
    with ws.connect() as con:
        assert con.execute("SELECT count(DISTINCT example_id), count(*) FROM splits").fetchall()[0] == (n + 1, n + 1)


def test_chat_extra_fields_are_kept_in_meta(ws, tmp_path: Path) -> None:
    row = {**chat("q", "Diagnosis: x."), "key_phrases": ["Diagnosis"], "weight_note": {"a": 1}}
    ingest_file(ws, write_jsonl(tmp_path / "k.jsonl", [row]))
    with ws.connect() as con:
        meta = json.loads(con.execute("SELECT meta FROM examples").fetchall()[0][0])
    assert meta["key_phrases"] == ["Diagnosis"] and meta["weight_note"] == {"a": 1}


def _contents(ws) -> list[tuple]:
    with ws.connect() as con:
        return con.execute(
            "SELECT e.id, e.messages::VARCHAR, e.task, e.origin, e.meta::VARCHAR, e.group_key, s.split, s.pinned "
            "FROM examples e JOIN splits s ON s.example_id = e.id ORDER BY e.id").fetchall()


@pytest.mark.parametrize("split", [None, "test"])
def test_parallel_conversion_stores_what_the_sequential_path_stores(tmp_path: Path, monkeypatch, split) -> None:
    """Large JSON Lines files go through worker processes: same rows, lines, splits, errors as one process."""
    import curator.data.ingest as ingest_mod
    from curator.workspace import Workspace

    rows = [chat(f"question {i} about the bucket quota?", f"answer {i}.") for i in range(300)]
    rows[7] = rows[3]  # a repeat inside the file: the first copy stays
    rows[150]["key_phrases"] = ["quota"]
    path = write_jsonl(tmp_path / "big.jsonl", rows)
    path.write_text(path.read_text().replace("\n", "\n\n", 1) + "not json\n")  # a blank line, a bad last line

    seq_ws, par_ws = Workspace(tmp_path / "seq"), Workspace(tmp_path / "par")
    seq = ingest_file(seq_ws, path, skip_invalid=True, split=split)
    monkeypatch.setattr(ingest_mod, "PARALLEL_MIN_BYTES", 1)
    calls: list[int] = []
    real = ingest_mod._convert_parallel
    monkeypatch.setattr(ingest_mod, "_convert_parallel", lambda *a, **k: calls.append(1) or real(*a, **k))
    par = ingest_file(par_ws, path, skip_invalid=True, split=split)
    assert calls == [1]
    assert (par.rows_read, par.examples, par.added, par.duplicates_in_file, par.by_split) == (
        seq.rows_read, seq.examples, seq.added, seq.duplicates_in_file, seq.by_split) == (
        301, 299, 299, 1, par.by_split)
    assert par.skipped == seq.skipped == [{"line": 302, "unit": "line", "reason": par.skipped[0]["reason"]}]
    assert _contents(par_ws) == _contents(seq_ws)
    # Line numbers survive the byte ranges: the row after the blank line is line 3.
    metas = {json.loads(m)["source"]["line"] for _, _, _, _, m, _, _, _ in _contents(par_ws)}
    assert 3 in metas and 2 not in metas and 301 in metas

    # Without --skip-invalid the file is rejected with the same FILE:LINE message, nothing written.
    with pytest.raises(InputError, match=r":302: invalid JSON"):
        ingest_file(Workspace(tmp_path / "par2"), path)
    assert count_rows(Workspace(tmp_path / "par2")).get("examples", 0) == 0


def _in_stored_order(ws) -> dict[str, list[tuple]]:
    """Every row the ingest writes, in the order the tables hold them."""
    with ws.connect() as con:
        return {
            "examples": con.execute("SELECT id, messages::VARCHAR, task, origin, source, parent_id, meta::VARCHAR, "
                                    "group_key, status FROM examples ORDER BY rowid").fetchall(),
            "splits": con.execute("SELECT example_id, split, pinned FROM splits ORDER BY rowid").fetchall(),
            "decisions": con.execute("SELECT example_id, kind, reason FROM decisions ORDER BY example_id").fetchall(),
            "ingests": con.execute("SELECT path, sha256, format, rows_read, rows_added, rows_skipped "
                                   "FROM ingests ORDER BY rowid").fetchall(),
        }


@pytest.mark.parametrize(("before", "split"), [(False, None), (True, None), (True, "test")])
def test_parallel_path_keeps_row_order_and_repeats_as_the_sequential_path(tmp_path: Path, monkeypatch, before: bool,
                                                                           split: str | None) -> None:
    """In-file repeats (within a worker's range and across ranges), rows already stored, many chunks: the
    workers' Parquet files give the same report and the same rows, in the same order, as one process."""
    import random

    import curator.data.ingest as ingest_mod
    from curator.workspace import Workspace

    rng = random.Random(7)
    rows = [chat(f"question {i} about the bucket quota?", f"answer {i}.") for i in range(3000)]
    for _ in range(300):  # later rows repeat earlier ones, some of them several times
        i, j = sorted(rng.sample(range(len(rows)), 2))
        rows[j] = rows[i]
    rows[2999] = rows[0]  # the last range repeats the first row of the file
    path = write_jsonl(tmp_path / "big.jsonl", rows)
    path.write_text(path.read_text() + "not json\n")
    earlier = write_jsonl(tmp_path / "earlier.jsonl", rows[10:40] + [chat("only in the earlier file", "yes")])

    def run(name: str, parallel: bool) -> tuple[dict, dict[str, list[tuple]]]:
        ws = Workspace(tmp_path / name)
        if before:
            ingest_file(ws, earlier)
        monkeypatch.setattr(ingest_mod, "PARALLEL_MIN_BYTES", 1 if parallel else 1 << 40)
        report = ingest_file(ws, path, skip_invalid=True, split=split).to_dict()
        monkeypatch.undo()
        return report, _in_stored_order(ws)

    monkeypatch.setattr(ingest_mod, "CHUNK_ROWS", 37)  # many row groups per worker file
    seq_report, seq_rows = run("seq", False)
    monkeypatch.setattr(ingest_mod, "CHUNK_ROWS", 37)
    par_report, par_rows = run("par", True)
    assert par_report == seq_report
    assert seq_report["duplicates_in_file"] > 250 and seq_report["skipped"][0]["line"] == 3001
    if before:
        assert seq_report["already_present"] > 0
        assert bool(seq_report["moved_to_pinned_split"]) == (split == "test")
    for table in par_rows:
        assert par_rows[table] == seq_rows[table], table
    # The file's order: the first copy of each example, as it comes in the file.
    firsts = list(dict.fromkeys(json.dumps(r["messages"]) for r in rows))
    stored = [json.loads(m) for _, m, *_ in par_rows["examples"]][31 if before else 0:]
    assert [json.dumps([{"role": m["role"], "content": m["content"]} for m in ms]) for ms in stored] == [
        f for f in firsts if not before or f not in {json.dumps(r["messages"]) for r in rows[10:40]}]
    assert not list((tmp_path / "par" / "tmp").glob("curator-ingest-*"))
