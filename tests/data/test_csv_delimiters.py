"""CSV/TSV delimiters: sniffed whatever the extension, ``.tsv`` is tab, ``--delimiter`` forces one."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from curator.data.ingest import ingest_file
from curator.data.readers import CsvMapping
from curator.data.readers.csvfile import parse_delimiter, sniff_delimiter
from curator.data.validate import validate_file
from curator.errors import InputError


def _table(path: Path, d: str, rows: int = 5) -> Path:
    with path.open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, delimiter=d)  # quotes the fields that hold the delimiter
        w.writerow(["question", "answer", "note"])
        w.writerows([f"Where is order {i}, and why late?", f"Order {i} ships today, sorry.", f"n{i}"] for i in range(rows))
    return path


@pytest.mark.parametrize(("name", "d"), [("t.txt", "\t"), ("t.csv", "\t"), ("t.csv", ";"), ("t", "|"),
                                         ("t.dat", ","), ("t.txt", ",")])
def test_sniffed_whatever_the_extension(ws, tmp_path: Path, name: str, d: str) -> None:
    """The texts hold commas: a tab, ';' or '|' file is still read by its own delimiter."""
    f = _table(tmp_path / name, d)
    assert sniff_delimiter(f) == d
    rep = ingest_file(ws, f, fmt="csv")
    assert (rep.format, rep.added) == ("csv", 5)
    with ws.connect() as con:
        msgs, meta = con.execute("SELECT messages, meta FROM examples ORDER BY id LIMIT 1").fetchall()[0]
    assert [m["role"] for m in json.loads(msgs)] == ["user", "assistant"] and json.loads(meta)["note"].startswith("n")


def test_a_txt_table_is_read_by_auto(ws, tmp_path: Path) -> None:
    """The issue's case: a tab-separated .txt file (auto takes a .txt that does not start like JSON as a table)."""
    rep = ingest_file(ws, _table(tmp_path / "tickets.txt", "\t"))
    assert (rep.format, rep.added) == ("csv", 5)


def test_tsv_is_tab_and_delimiter_forces(ws, tmp_path: Path) -> None:
    f = tmp_path / "odd.tsv"  # commas would sniff as two columns; .tsv means tab
    f.write_text("question\tanswer\na, b\tc, d\ne, f\tg, h\n", encoding="utf-8")
    assert ingest_file(ws, f).added == 2
    g = _table(tmp_path / "forced.txt", ";")
    assert ingest_file(ws, g, fmt="csv", csv_mapping=CsvMapping(delimiter=";")).added == 5
    with pytest.raises(InputError, match=r"cannot tell which column holds the prompt; header is \['question;answer;note'\]"):
        ingest_file(ws, g, fmt="csv", csv_mapping=CsvMapping(delimiter=","))
    assert [parse_delimiter(v) for v in ("\\t", "tab", "TAB", "\t", ";", "pipe", "comma")] == \
        ["\t", "\t", "\t", "\t", ";", "|", ","]
    with pytest.raises(InputError, match=r"--delimiter 'ab': give one character"):
        parse_delimiter("ab")


def test_ambiguous_or_no_delimiter_is_a_clear_error(ws, tmp_path: Path) -> None:
    both = tmp_path / "both.csv"
    both.write_text("question,answer;note\nq1,a1;n1\nq2,a2;n2\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"both\.csv:1: cannot tell the delimiter: ',' \(2 columns\), ';' \(2 columns\) "
                                         r"each split the header and the first lines alike; pass --delimiter"):
        ingest_file(ws, both)
    assert ingest_file(ws, both, csv_mapping=CsvMapping(delimiter=",", response="answer;note")).added == 2
    one = tmp_path / "one.txt"
    one.write_text("question answer\nq a\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"one\.txt:1: cannot tell the delimiter: none of ',', tab, ';', '\|' splits the "
                                         r"header into two or more columns"):
        validate_file(one, fmt="csv")


def test_a_bad_row_does_not_hide_the_delimiter(ws, tmp_path: Path) -> None:
    f = tmp_path / "ragged.txt"
    f.write_text("prompt\tresponse\nq\ta\nq2\ta2\textra\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"ragged\.txt:3: row has 3 fields, header has 2"):
        ingest_file(ws, f)


def test_cli_delimiter_option(tmp_path: Path) -> None:
    from curator.cli import main

    f = _table(tmp_path / "t.txt", "\t")
    run = CliRunner()
    res = run.invoke(main, ["validate", str(f), "--format", "csv", "--delimiter", "\\t", "--no-tokens"])
    assert res.exit_code == 0 and "5 examples, no errors" in res.output, res.output
    res = run.invoke(main, ["ingest", str(f), "--format", "csv", "--delimiter", "tab"])
    assert res.exit_code == 0 and "5 added" in res.output, res.output
    res = run.invoke(main, ["ingest", str(f), "--delimiter", "tabs"])
    assert res.exit_code == 1 and "Error: --delimiter 'tabs': give one character" in res.output
