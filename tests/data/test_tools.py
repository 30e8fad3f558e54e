"""OpenAI's current chat format: tool calls, tool messages, a ``tools`` list, content parts, weights.

Every rule has a case: ``validate`` reports its kind with a ``FILE:LINE:`` message, ingest refuses the
hard ones with the same message and stores the soft ones.  Ids of examples without tool use are the
ids the workspace has always given them.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from helpers import TOOLS, chat, count_rows, tool_chat, write_jsonl

from curator.data.ingest import ingest_file
from curator.data.validate import validate_file
from curator.errors import InputError
from curator.records import example_id, normalize_messages

ROOT = Path(__file__).resolve().parents[2]


def _ids(path: Path) -> list[str]:
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        rec = json.loads(line)
        out.append(example_id(normalize_messages(rec["messages"]), rec.get("tools")))
    return out


def test_ids_without_tool_use_are_unchanged(shared_data: Path) -> None:
    """Digests of the ids curator gave before tool calls existed (computed with the earlier records.py)."""
    digest = lambda ids: hashlib.sha256("".join(ids).encode()).hexdigest()  # noqa: E731
    assert digest(_ids(ROOT / "seeds/support/seeds.jsonl")) == \
        "f853d4e1b2e7f8dececf4c7478d6289c98c8669dfd40bafd0721b7319c6ae626"
    assert digest(_ids(shared_data / "openai_cookbook/toy_chat_fine_tuning.jsonl")) == \
        "385a7b9ea0158fc1d2b5ca7872e6117b19588af4729ab4ce0faed37e30eced1f"
    named = [{"role": "system", "content": "S"}, {"role": "user", "content": "Hi  \r\n\n\n\nthere ", "name": "ann"},
             {"role": "assistant", "content": "Yo", "weight": 0}, {"role": "user", "content": "more"},
             {"role": "assistant", "content": "ok", "weight": 1}]
    old = "a95765369e393372a8d3dfaa38ec2521ccc6430263c2aadf43f4615c3b82166e"
    assert example_id(normalize_messages(named)) == old
    assert example_id(normalize_messages(named), TOOLS) == old  # tools offered, none called: the same example


def test_tool_use_is_part_of_the_id_where_present() -> None:
    base = normalize_messages(tool_chat(1)["messages"])
    other_args = json.loads(json.dumps(base))
    other_args[2]["tool_calls"][0]["function"]["arguments"] = '{"order_id": "A999"}'
    other_reply = json.loads(json.dumps(base))
    other_reply[3]["tool_call_id"] = other_reply[2]["tool_calls"][0]["id"] = "call_x"
    ids = {example_id(base, TOOLS), example_id(other_args, TOOLS), example_id(other_reply, TOOLS),
           example_id(base, TOOLS[:1]), example_id(base)}
    assert len(ids) == 5
    # content parts are joined with a newline: the same example as the joined string
    joined = json.loads(json.dumps(tool_chat(1)["messages"]))
    joined[1]["content"] = "Where is my order A101?\nTicket 1."
    assert example_id(normalize_messages(joined), TOOLS) == example_id(base, TOOLS)


def test_ingest_stores_tool_calls_tools_and_text_parts(ws, tmp_path: Path) -> None:
    f = write_jsonl(tmp_path / "tools.jsonl", [tool_chat(i, final=i % 2 == 0) for i in range(6)] + [chat("q", "a")])
    rep = ingest_file(ws, f)
    assert (rep.format, rep.added) == ("chat", 7)
    with ws.connect() as con:
        rows = {r[0]: (json.loads(r[1]), json.loads(r[2])) for r in
                con.execute("SELECT id, messages, meta FROM examples").fetchall()}
    assert set(rows) == set(_ids(f))
    msgs, meta = next(v for v in rows.values() if len(v[0]) == 5)
    assert msgs[1]["content"].startswith("Where is my order") and "?\nTicket" in msgs[1]["content"]
    assert msgs[2] == {"role": "assistant", "content": "", "tool_calls": [
        {"id": msgs[2]["tool_calls"][0]["id"], "type": "function",
         "function": {"name": "get_order", "arguments": msgs[2]["tool_calls"][0]["function"]["arguments"]}}]}
    assert msgs[3]["role"] == "tool" and msgs[3]["tool_call_id"] == msgs[2]["tool_calls"][0]["id"]
    assert msgs[4]["weight"] == 1
    assert meta["tools"] == TOOLS and meta["parallel_tool_calls"] is False
    assert ingest_file(ws, f).already_present == 7


def _call(args: str = '{"order_id": "A1"}', cid: str = "c1", name: str = "get_order") -> dict[str, Any]:
    return {"id": cid, "type": "function", "function": {"name": name, "arguments": args}}


U = {"role": "user", "content": "q"}
A = {"role": "assistant", "content": "a"}

#: (kind, record, message, hard): every rule of OpenAI's notebook, of the current format, and curator's own.
RULES: list[tuple[str, Any, str, bool]] = [
    # OpenAI's seven (the cookbook notebook), with the current format's allowances
    ("data_type", [1, 2], "expected a JSON object, got list", True),
    ("missing_messages_list", {"messages": []}, '"messages" is empty', True),
    ("missing_messages_list", {"msgs": [U, A]}, 'missing "messages"', True),
    ("message_missing_key", {"messages": [{"role": "user"}, A]}, 'message 1 \\(user\\) has no "content"', True),
    ("message_missing_key", {"messages": [U, {"role": "assistant", "content": None, "tool_calls": [_call()]},
                                          {"role": "tool", "content": "{}"}, A]},
     'message 3 \\(tool\\) has no "tool_call_id"', True),
    ("message_unrecognized_key", {"messages": [{**U, "extra": 1}, A]},
     "message 1 \\(user\\) has unknown key\\(s\\) \\['extra'\\]", False),
    ("unrecognized_role", {"messages": [{"role": "robot", "content": "x"}, A]}, "message 1 has unknown role 'robot'",
     True),
    ("missing_content", {"messages": [{"role": "user", "content": None}, A]},
     "message 1 \\(user\\) content is null", True),
    ("example_missing_assistant_message", {"messages": [U]}, "no assistant message", True),
    # the current format
    ("bad_weight", {"messages": [U, {**A, "weight": 2}]}, 'message 2 \\(assistant\\) "weight" must be 0 or 1, got 2',
     True),
    ("bad_weight", {"messages": [U, {**A, "weight": True}]}, '"weight" must be 0 or 1, got True', True),
    ("weight_not_on_assistant", {"messages": [{**U, "weight": 1}, A]},
     'message 1 \\(user\\) has a "weight": only assistant messages take one', True),
    ("key_not_for_role", {"messages": [{**U, "tool_calls": [_call()]}, A]},
     'message 1 \\(user\\) has "tool_calls", which only assistant messages take', True),
    ("key_not_for_role", {"messages": [U, {**A, "tool_call_id": "c1"}]},
     'message 2 \\(assistant\\) has "tool_call_id", which only tool messages take', True),
    ("bad_content_part", {"messages": [{"role": "user", "content": [
        {"type": "text", "text": "what is this?"}, {"type": "image_url", "image_url": {"url": "https://x/y.png"}}]}, A]},
     "message 1 \\(user\\) content part 2 is of type 'image_url': curator trains text models", True),
    ("bad_content_part", {"messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}, A]},
     "content part 1 is of type 'input_audio'", True),
    ("bad_tool_calls", {"messages": [U, {"role": "assistant", "content": None, "tool_calls": [
        {"type": "function", "function": {"name": "f", "arguments": "{}"}}]}]},
     'message 2 \\(assistant\\) tool call 1 needs an "id"', True),
    ("bad_tool_calls", {"messages": [U, {"role": "assistant", "content": None, "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "f", "arguments": {"a": 1}}}]}]},
     'tool call 1 "arguments" must be a JSON text \\(a string\\), got dict', True),
    ("bad_tool_calls", {"messages": [U, {"role": "assistant", "content": None, "tool_calls": "f()"}]},
     '"tool_calls" must be a list, got str', True),
    ("bad_tool_call_arguments", {"messages": [U, {"role": "assistant", "content": None, "tool_calls": [
        _call(json.dumps(json.dumps({"order_id": "A1"})))]}]},
     'tool call 1 "arguments" is a JSON string, not an object \\(encoded twice\\?', True),
    ("bad_tool_call_arguments", {"messages": [U, {"role": "assistant", "content": None, "tool_calls": [
        _call('{"order_id": ')]}]}, 'tool call 1 "arguments" is not valid JSON', True),
    ("bad_tool_call_arguments", {"messages": [U, {"role": "assistant", "content": None, "tool_calls": [
        _call('{"amount": NaN}')]}]}, r'tool call 1 "arguments" is not valid JSON \(NaN is not a JSON number\)', True),
    ("bad_tool_call_arguments", {"messages": [U, {"role": "assistant", "content": None, "tool_calls": [
        _call("[" * 100_000 + "]" * 100_000)]}]}, 'tool call 1 "arguments" is nested too deeply', True),
    ("bad_tools", {"messages": [U, A], "tools": "get_order"},
     '"tools" must be a non-empty list of function schemas, got str', True),
    ("bad_tools", {"messages": [U, A], "tools": [TOOLS[0], TOOLS[0]]}, "tool 2 repeats the function name 'get_order'",
     True),
    ("bad_tools", {"messages": [U, A], "parallel_tool_calls": "no"}, '"parallel_tool_calls" must be true or false',
     True),
    ("function_call_unsupported", {"messages": [U, {"role": "assistant", "content": None,
                                                    "function_call": {"name": "f", "arguments": "{}"}}]},
     "message 2 \\(assistant\\) uses the deprecated function calling", True),
    ("unknown_tool_call_id", {"messages": [U, {"role": "assistant", "content": None, "tool_calls": [_call()]},
                                           {"role": "tool", "tool_call_id": "c9", "content": "{}"}, A]},
     "message 3 \\(tool\\) answers tool call 'c9', which the assistant message before it did not make", False),
    ("unanswered_tool_call", {"messages": [U, {"role": "assistant", "content": None, "tool_calls": [
        _call(), _call(cid="c2")]}, {"role": "tool", "tool_call_id": "c1", "content": "{}"}, A]},
     "message 2 \\(assistant\\) tool call\\(s\\) \\['c2'\\] have no tool message before message 4", False),
    # curator's own
    ("non_string_content", {"messages": [U, {"role": "assistant", "content": 5}]},
     "content must be a string or a list of text parts, got int", True),
    ("empty_content", {"messages": [U, {"role": "assistant", "content": " "}]},
     "message 2 \\(assistant\\) content is empty or blank", False),
    ("last_not_assistant", {"messages": [U, A, {"role": "user", "content": "more?"}]},
     "the last message is 'user', not the assistant's answer", False),
    ("consecutive_same_role", {"messages": [U, U, A]}, "messages 1 and 2 are both 'user'", False),
    ("bad_task", {"messages": [U, A], "task": 3}, '"task" must be a string, got int', True),
]


@pytest.mark.parametrize(("kind", "record", "message", "hard"), RULES, ids=[f"{r[0]}-{i}" for i, r in enumerate(RULES)])
def test_every_rule_has_a_line_numbered_message(ws, tmp_path: Path, kind: str, record: Any, message: str,
                                                hard: bool) -> None:
    f = write_jsonl(tmp_path / "r.jsonl", [tool_chat(0), record])
    report = validate_file(f)
    assert report.errors.get(kind) == [2], report.errors
    assert any(re.search(rf"r\.jsonl:2: {kind}: .*{message}", line) for line in report.messages()), report.messages()
    assert {"line": 2, "message": report.details[kind][0][1]} in report.to_dict()["errors"][kind]["first_messages"]
    if hard:
        with pytest.raises(InputError, match=rf"r\.jsonl:2: .*{message}"):
            ingest_file(ws, f)
        assert count_rows(ws)["examples"] == 0
    else:
        assert ingest_file(ws, f).added == 2  # stored; validate and audit report it


def test_the_valid_current_format_passes(tmp_path: Path) -> None:
    calls_and_text = {"messages": [U, {"role": "assistant", "content": "Checking.", "tool_calls": [_call(), _call(
        cid="c2", name="refund")]}, {"role": "tool", "tool_call_id": "c2", "content": "ok"},
        {"role": "tool", "tool_call_id": "c1", "content": [{"type": "text", "text": "shipped"}]},
        {**A, "weight": 0}, {"role": "user", "content": "thanks"}, {**A, "weight": 1.0}], "tools": TOOLS}
    no_content_key = {"messages": [U, {"role": "assistant", "tool_calls": [_call()], "weight": 1}], "tools": TOOLS}
    f = write_jsonl(tmp_path / "ok.jsonl", [tool_chat(0), tool_chat(1, final=False), calls_and_text, no_content_key])
    report = validate_file(f)
    assert report.ok, report.messages()
    assert "tool_not_in_tools" not in report.warnings


def test_a_call_of_an_undeclared_function_is_a_warning(tmp_path: Path) -> None:
    rec = {"messages": [U, {"role": "assistant", "content": None, "tool_calls": [_call(name="delete_all")]}],
           "tools": TOOLS}
    report = validate_file(write_jsonl(tmp_path / "w.jsonl", [rec]))
    assert report.ok and report.warnings["tool_not_in_tools"] == [1]
    assert report.messages(warnings=True)[-1].endswith(
        "w.jsonl:1: tool_not_in_tools: message 2 calls 'delete_all', which \"tools\" does not declare (get_order, refund)")


def test_curator_validate_on_a_tool_calling_file(tmp_path: Path) -> None:
    from curator.cli import main

    good = write_jsonl(tmp_path / "tools.jsonl", [tool_chat(i, final=i % 2 == 0) for i in range(4)])
    res = CliRunner().invoke(main, ["validate", str(good), "--no-tokens"])
    assert res.exit_code == 0, res.output
    assert res.output.startswith(f"{good} (chat): 4 examples, no errors")
    bad = write_jsonl(tmp_path / "bad.jsonl", [tool_chat(0), {"messages": [
        {"role": "user", "content": "refund A1", "weight": 1},
        {"role": "assistant", "content": None, "tool_calls": [_call(json.dumps('{"order_id": "A1"}'))]}]}])
    res = CliRunner().invoke(main, ["validate", str(bad), "--no-tokens"])
    assert res.exit_code == 1
    assert f"{bad}:2: bad_tool_call_arguments: message 2 (assistant) tool call 1 \"arguments\" is a JSON string" \
        in res.output
    assert f"{bad}:2: weight_not_on_assistant: message 1 (user) has a \"weight\"" in res.output
    print("\n" + res.output)


def test_other_commands_read_tool_calling_examples(tmp_path: Path) -> None:
    """ingest, dedup, audit, snapshot create / export (openai, then ingest again), stats: no crash, same ids."""
    from curator.cli import main
    from curator.workspace import Workspace

    run = CliRunner()
    f = write_jsonl(tmp_path / "tools.jsonl", [tool_chat(i, final=i % 3 != 0) for i in range(12)] + [chat("q", "a")])
    w1, w2 = tmp_path / "w1", tmp_path / "w2"

    def ok(*args: str) -> str:
        res = run.invoke(main, ["-w", str(args[0]), *args[1:]], catch_exceptions=False)
        assert res.exit_code == 0, res.output
        return res.stdout

    ok(w1, "ingest", str(f))
    assert "excluded" in ok(w1, "dedup", "--exact", "--near")
    audit = json.loads(ok(w1, "audit", "--json"))
    assert audit["metrics"]["validation"]["count"] == 0 and audit["metrics"]["empty"]["count"] == 0, audit["metrics"]
    assert audit["roles"]["messages_by_role"]["tool"] == 8
    ok(w1, "snapshot", "create", "--name", "v1")
    ok(w1, "snapshot", "export", "v1", "--format", "openai", "--out", str(tmp_path / "oa"))
    ok(w1, "stats", "--no-tokens")
    lines = [json.loads(x) for x in (tmp_path / "oa" / "train.jsonl").read_text().splitlines()]
    called = next(r for r in lines if len(r["messages"]) == 3)
    assert called["messages"][2]["content"] is None and called["tools"] == TOOLS
    for s in ("train", "eval", "test"):
        if (tmp_path / "oa" / f"{s}.jsonl").exists():
            ok(w2, "ingest", str(tmp_path / "oa" / f"{s}.jsonl"), "--split", s)

    def ids(path: Path) -> set[str]:
        with Workspace(path).connect() as con:
            return {r[0] for r in con.execute("SELECT id FROM examples WHERE status = 'active'").fetchall()}

    assert ids(w2) == ids(w1) and len(ids(w1)) == 13
