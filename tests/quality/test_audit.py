"""The audit: sections, --fail-on rules, JSON, the HTML page (structure, and a real Chromium screenshot)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers import chat, write_jsonl

from curator.cli import main
from curator.data.ingest import ingest_file, store_examples
from curator.errors import CuratorError
from curator.quality.audit import audit, check_rules, parse_rule
from curator.quality.audit_report import render_html
from curator.quality.refusal import is_refusal
from curator.records import Example


def essay(k: int) -> str:
    return " ".join(f"Step {i} for plant {k}: water it gently and check the soil." for i in range(12))


@pytest.fixture
def messy(ws, tmp_path: Path):
    rows = [chat(f"Question {i} about gardening: how should I water plant {i}?", essay(i)) for i in range(8)]
    rows += [
        chat("question 0 about gardening, how should I water plant 0", essay(0)),  # exact duplicate (folded)
        chat("How do I contact support?", "Write to jane.doe@example.com or call +1 415 555 0134 today."),
        chat("Tell me a joke about cats.", "As an AI language model, I cannot tell jokes."),
        chat("Summarise the plot of Hamlet.", "Ok."),  # very short for this task
    ]
    ingest_file(ws, write_jsonl(tmp_path / "a.jsonl", rows), split="train")
    ingest_file(ws, write_jsonl(tmp_path / "t.jsonl", [chat("question 3 about gardening - how should I water plant 3",
                                                            essay(3))]), split="test")
    with ws.transaction() as con:  # an empty answer cannot come through ingest; store it directly
        store_examples(con, ws, [Example.from_messages([{"role": "user", "content": "Say nothing."},
                                                        {"role": "assistant", "content": " "}])])
    return ws


def test_audit_sections(messy) -> None:
    d = audit(messy).to_dict()
    assert d["counts"]["active"] == 14 and d["counts"]["by_split"]["test"] == 1
    assert d["lengths"]["all"]["n"] == 14 and d["lengths"]["all"]["p50"] > 0
    assert d["validation"]["examples"] == 1 and "empty_content" in d["validation"]["errors"]
    assert d["pii"]["examples"] == 1 and set(d["pii"]["by_kind"]) == {"EMAIL", "PHONE"}
    assert "jane.doe" not in json.dumps(d["pii"])  # offenders are shown scrubbed
    assert d["refusals"]["examples"] == 1 and "as an ai" in d["refusals"]["worst"][0]["phrase"].lower()
    assert (d["responses"]["empty"], d["responses"]["short"]) == (1, 1)
    assert d["leakage"]["pairs"] == 1 and d["leakage"]["by_method"]["exact"] == 1
    # the folded copy of question 0, and the train copy of the test example
    assert d["duplicates"]["by_method"]["exact"]["excluded"] == 2
    assert d["roles"]["messages_by_role"] == {"assistant": 14, "user": 14}
    assert d["metrics"]["leakage"]["count"] == 1
    assert d["metrics"]["pii"] == {"count": 1, "fraction": round(1 / 14, 6)}


def test_rules() -> None:
    assert parse_rule("duplicates>0.05") == ("duplicates", ">", 0.05, True)
    assert parse_rule("leakage > 0") == ("leakage", ">", 0.0, False)
    assert parse_rule("pii>=1%") == ("pii", ">=", 0.01, True)
    for bad in ("duplicates", "nope>1", "pii>>1"):
        with pytest.raises(CuratorError):
            parse_rule(bad)
    assert is_refusal("I'm sorry, but I can't help with that.") and is_refusal("As a large language model, I...")
    assert not is_refusal("Sorry for the delay: here is the recipe.")
    assert not is_refusal("I am like a moth to a flame; I can't help but be drawn to her.")


def test_cli_audit_fail_on_and_json(messy, tmp_path: Path) -> None:
    runner = CliRunner()
    r = runner.invoke(main, ["audit", "--fail-on", "duplicates>0.5", "--fail-on", "refusals<1"])
    assert r.exit_code == 0, r.output
    assert "check       examples  share" in r.output and "14 active examples" in r.output
    r = runner.invoke(main, ["audit", "--json", "--fail-on", "leakage>0", "--fail-on", "pii>0.5"])
    assert r.exit_code == 1
    out = json.loads(r.stdout)  # stage lines and the failure note go to stderr
    assert out["failed"] == ["leakage>0 (leakage = 1)"]
    assert "audit failed: leakage>0 (leakage = 1)" in r.output
    r = runner.invoke(main, ["audit", "--fail-on", "bogus>1"])
    assert r.exit_code == 1 and r.output.startswith("Error: unknown metric 'bogus'")
    assert "curator audit --html" in runner.invoke(main, ["audit", "--help"]).output


def _html(ws, tmp_path: Path) -> tuple[Path, str, dict]:
    report = audit(ws)
    path = render_html(report, tmp_path / "out" / "audit.html", failed=check_rules(report, ["leakage>0"]))
    return path, path.read_text(encoding="utf-8"), report.to_dict()


def test_html_is_self_contained_with_plots_and_offenders(messy, tmp_path: Path) -> None:
    path, page, d = _html(messy, tmp_path)
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert "<script" not in page and "<link" not in page and "<img" not in page
    urls = set(re.findall(r"https?://[^\s\"'<>]+", page))
    assert urls <= {"http://www.w3.org/2000/svg"}  # the SVG namespace, never fetched
    assert page.count("<svg") >= 5  # length histograms, composition, cluster sizes, PII, problems
    for section in ("composition", "lengths", "duplicates", "leakage", "problems", "roles"):
        assert f'id="{section}"' in page
    for offender in (d["pii"]["worst"][0]["id"], d["refusals"]["worst"][0]["id"], d["leakage"]["worst"][0]["train_id"]):
        assert offender in page
    assert "Failed rules:" in page and "jane.doe" not in page


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium is not installed (apt-get install chromium)")
def test_html_renders_in_headless_chromium(messy, tmp_path: Path) -> None:
    path, _, _ = _html(messy, tmp_path)
    png = tmp_path / "audit.png"
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run(
            ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
             f"--screenshot={png}", "--window-size=1280,2400", path.resolve().as_uri()],
            check=True, capture_output=True, timeout=120,
        )
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (1280, 2400) and len(data) > 50_000  # a blank page compresses to a few kB
