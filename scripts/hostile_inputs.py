"""Adversarial inputs through the real CLI: every reader and every command that takes a file.

    .venv/bin/python scripts/hostile_inputs.py [--only SUBSTRING] [--keep DIR] [--timeout 60]

Builds 212 hostile inputs (deep nesting, lone surrogates, NUL bytes, NaN, huge integers, mixed
types, trailing garbage, truncated and binary files, lines over the limit, a 2 GB file without a
newline, a gzip bomb, CSV quoting traps, Parquet decimal/binary columns, Hugging Face split traps, a
worker range without rows on the parallel path, a file in another format than ``--format`` says,
YAML syntax errors, Python tags and alias bombs) and runs each in a subprocess, on a fresh copy of a
workspace that already holds examples, through every command that takes a file: ``curator ingest``
(every ``--format``), ``validate``, ``feedback ingest`` (every format), ``generate --seeds /
--questions / --weaknesses`` and ``--prices`` (dry runs), ``train --config``, the keys file
(``CURATOR_KEYS_FILE``; the teacher is a closed port) and ``chat --system-file``.  For each it prints
the outcome:

* ``clear error``: exit 1 and one ``Error: ...`` line (or ``validate``'s report of the bad lines), no traceback;
* ``usage error``: click refused an option value (exit 2, one ``Error:`` line);
* ``accepted``: exit 0 (or, for the keys file, exit 1 because the teacher is a closed port: the file was read);
* ``traceback``: a Python traceback (a bug);
* ``hang``: still running after ``--timeout`` seconds (a bug);

whether the workspace is unchanged (every table's rows compared), and the child's peak memory.
Ends with totals.  Exit status 1 when there is a traceback, a hang, or an error that changed the workspace.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CURATOR = [sys.executable, "-m", "curator.cli"] if not (ROOT / ".venv/bin/curator").exists() else [
    str(ROOT / ".venv/bin/curator")]

CONV = [{"role": "user", "content": "How do I reset my key?"}, {"role": "assistant", "content": "Rotate it in Console."}]
GOOD = {
    "chat": {"messages": CONV},
    "alpaca": {"instruction": "Reset a key", "input": "", "output": "Rotate it."},
    "sharegpt": {"conversations": [{"from": "human", "value": "Hi?"}, {"from": "gpt", "value": "Hello."}]},
    "dolly": {"instruction": "Say hi", "context": "", "response": "Hi.", "category": "open_qa"},
    "selfinstruct": {"instruction": "Say hi", "instances": [{"input": "", "output": "Hi."}]},
}
FB_GOOD = {
    "chat": {"trace_id": "t1", "messages": CONV, "rating": 5},
    "trace": {"id": "lf-1", "input": {"messages": CONV[:1]}, "output": {"role": "assistant", "content": "A"},
              "scores": [{"name": "user-feedback", "value": 1}]},
    "oasst": {"message_tree_id": "T", "prompt": {"message_id": "p", "role": "prompter", "text": "Q?", "replies": [
        {"message_id": "a", "role": "assistant", "text": "A.", "emojis": {"+1": 2}, "replies": []}]}},
    "hh-rlhf": {"chosen": "\n\nHuman: Hi\n\nAssistant: Hello", "rejected": "\n\nHuman: Hi\n\nAssistant: Go away"},
}


def jl(*recs: object) -> bytes:
    return b"".join(json.dumps(r).encode() + b"\n" for r in recs)


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def chat_with(extra: str, content: str = "q") -> bytes:
    """A chat line with raw JSON text spliced in (for what json.dumps cannot write)."""
    return ('{"messages":[{"role":"user","content":"' + content + '"},{"role":"assistant","content":"a"}]'
            + extra + "}\n").encode()


@dataclass
class Case:
    name: str
    file: str
    make: Callable[[Path], None]
    command: list[str]
    env: dict[str, str] = field(default_factory=dict)  # "{FILE}" in a value is the input's path


def _write(data: bytes) -> Callable[[Path], None]:
    return lambda p: p.write_bytes(data)


def cases() -> list[Case]:
    out: list[Case] = []

    def add(name: str, file: str, data: bytes | Callable[[Path], None], *args: str, cmd: str = "ingest") -> None:
        make = data if callable(data) else _write(data)
        command = ["feedback", "ingest"] if cmd == "feedback" else [cmd]
        if cmd == "validate":
            args = (*args, "--no-tokens")
        out.append(Case(name, file, make, [*command, "{FILE}", *args]))

    def run(name: str, file: str, data: bytes | Callable[[Path], None], command: list[str],
            env: dict[str, str] | None = None) -> None:
        """A command that takes the file through an option (or the environment): ``{FILE}`` in ``command``."""
        out.append(Case(name, file, data if callable(data) else _write(data), command, env or {}))

    good = jl(GOOD["chat"])
    # -- JSON Lines, every shape, ingest and validate -------------------------------------------------
    for shape, rec in GOOD.items():
        fmt = ("--format", shape)
        add(f"{shape}: deep nesting 100k", f"{shape}_deep.jsonl", jl(rec) + chat_with(',"x":' + nested(100_000)), *fmt)
        add(f"{shape}: truncated last line", f"{shape}_trunc.jsonl", jl(rec) + json.dumps(rec).encode()[:-3], *fmt)
        add(f"{shape}: array, not object", f"{shape}_list.jsonl", jl(rec) + b"[1,2]\n", *fmt)
    for cmd in ("ingest", "validate"):
        add("deep nesting 100k", "deep.jsonl", good + chat_with(',"x":' + nested(100_000)), cmd=cmd)
        add("deep nesting 600 (orjson ok)", "deep600.jsonl", good + chat_with(',"x":' + nested(600)), cmd=cmd)
        add("lone surrogate in content", "surr.jsonl", good + chat_with("", "a\\ud800"), cmd=cmd)
        add("lone surrogate in a key", "surrkey.jsonl", good + chat_with(',"k\\udfff":1'), cmd=cmd)
        add("lone surrogate in meta", "surrmeta.jsonl", good + chat_with(',"k":["\\ud800"]'), cmd=cmd)
        add("task string then int", "mixed.jsonl", jl({**GOOD["chat"], "task": "a"},
                                                      {"messages": [CONV[0] | {"content": "other"}, CONV[1]], "task": 3}),
            cmd=cmd)
        add("task a list", "tasklist.jsonl", jl({**GOOD["chat"], "task": ["x"]}), cmd=cmd)
        add("raw NUL byte in a line", "nul.jsonl", good + chat_with("", "a\x00b"), cmd=cmd)
        add("NaN in meta", "nan.jsonl", good + chat_with(',"score":NaN'), cmd=cmd)
        add("Infinity in meta", "inf.jsonl", good + chat_with(',"score":-Infinity'), cmd=cmd)
        add("garbage after JSON array", "garbage.json", json.dumps([GOOD["chat"]]).encode() + b" trailing\n", cmd=cmd)
        add("two JSON arrays", "two.json", json.dumps([GOOD["chat"]]).encode() * 2, cmd=cmd)
        add("array deep nesting", "deeparr.json", ('[{"messages":' + json.dumps(CONV) + ',"x":' + nested(50_000)
                                                   + "}]").encode(), cmd=cmd)
        add("array lone surrogate", "surrarr.json", b'[{"messages":[{"role":"user","content":"\\ud800"},'
                                                    b'{"role":"assistant","content":"a"}]}]', cmd=cmd)
        add("array NaN", "nanarr.json", b'[{"messages":' + json.dumps(CONV).encode() + b',"s":NaN}]', cmd=cmd)
        add("unterminated array", "unterm.json", json.dumps([GOOD["chat"]]).encode()[:-1], cmd=cmd)
        add("line over 8 MiB", "long.jsonl", good + chat_with("", "x" * (9 << 20)), cmd=cmd)
        add("binary file (PNG)", "bin.jsonl", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 64, cmd=cmd)
        add("UTF-16 file", "u16.jsonl", good.decode().encode("utf-16"), cmd=cmd)
        add("invalid UTF-8 line", "badutf8.jsonl", good + b'{"messages": "\xff\xfe"}\n', cmd=cmd)
        add("empty file", "empty.jsonl", b"", cmd=cmd)
        add("only whitespace", "ws.jsonl", b"\n \n\t\n", cmd=cmd)
        add("bad CSV quoting", "quote.csv", b'prompt,response\n"unclosed,yes\n' + b"a,b\n" * 2000, cmd=cmd)
    add("\\u0000 escape in content (kept)", "nulesc.jsonl", good + chat_with("", "a\\u0000b"))
    add("huge integer in meta (kept exactly)", "bigint.jsonl", good + chat_with(',"id":123456789012345678901234567890'))
    add("meta nested 300 (over storable depth)", "deep300.jsonl", good + chat_with(',"x":' + nested(300)))
    add("name an object", "name.jsonl", jl({"messages": [CONV[0] | {"name": {"a": 1}}, CONV[1]]}))
    add("BOM then JSONL (accepted)", "bom.jsonl", b"\xef\xbb\xbf" + good)
    add("skip-invalid over surrogates", "skip.jsonl", good + chat_with("", "\\ud800") * 3, "--skip-invalid")
    add("2 GB without a newline after 64 KB", "huge.jsonl", _huge_no_newline)
    add("100 MB one line (no NUL)", "oneline.jsonl", lambda p: _one_line(p, 100 << 20))
    add("parallel: bad line right after the midpoint", "par_bad.jsonl", _parallel_bad_midpoint)
    add("parallel: skip-invalid, second half bad", "par_skip.jsonl", _parallel_bad_half, "--skip-invalid")
    add("parallel: mixed task types", "par_task.jsonl", _parallel_mixed_task)
    # -- CSV -----------------------------------------------------------------------------------------
    add("CSV field over 8 MiB", "bigfield.csv", b"prompt,response\n" + b'"' + b"x" * (9 << 20) + b'",b\n')
    add("CSV unclosed quote in a big file", "unclosed.csv",
        b'prompt,response\n"never closed,b\n' + b"q,a\n" * 2_500_000)
    add("CSV NUL byte after 64 KB", "nul.csv", b"prompt,response\n" + b"q,a\n" * 20_000 + b"q\x00,a\n")
    add("CSV invalid UTF-8 late", "badutf8.csv", b"prompt,response\n" + b"q,a\n" * 20_000 + b"\xff,a\n")
    add("CSV no mapping columns", "nomap.csv", b"foo,bar\n1,2\n")
    add("CSV header only", "header.csv", b"prompt,response\n")
    add("CSV ragged row", "ragged.csv", b"prompt,response\nq,a,extra\n")
    add("CSV JSON-looking deep field (text, kept)", "deepjson.csv", b'prompt,response,meta\nq,a,"' + nested(100_000).encode()
        + b'"\n')
    add("CSV unknown --prompt-column", "col.csv", b"prompt,response\nq,a\n", "--prompt-column", "nope")
    add("TSV with a CSV quote trap", "trap.tsv", b'prompt\tresponse\n"q\ta\n')
    # -- Parquet / HF --------------------------------------------------------------------------------
    add("Parquet decimal column (kept as text)", "dec.parquet", lambda p: _parquet(p, "decimal"))
    add("Parquet binary column", "bin.parquet", lambda p: _parquet(p, "binary"))
    add("Parquet mixed task types", "task.parquet", lambda p: _parquet(p, "inttask"))
    add("Parquet not Parquet", "fake.parquet", b"PAR1 not really")
    add("Parquet with --hf-split", "dec.parquet", lambda p: _parquet(p, "decimal"), "--hf-split", "test")
    add("HF unknown --hf-split", "ds", _hf_dict, "--hf-split", "nope")
    add("HF test rows equal to train rows", "ds", _hf_dict)
    add("HF folder without --format (dir)", "notds", lambda p: p.mkdir())
    add("unknown --format", "x.jsonl", good, "--format", "yaml")
    add("missing file", "absent.jsonl", lambda p: None)
    add("directory given as a file", "adir.jsonl", lambda p: p.mkdir())
    add("FIFO (never opened for writing)", "fifo.jsonl", lambda p: os.mkfifo(p))
    # -- feedback ingest, every format ---------------------------------------------------------------
    for fmt, rec in FB_GOOD.items():
        base = jl(rec)
        add(f"feedback {fmt}: deep nesting 100k", f"fb_{fmt}_deep.jsonl",
            base + b'{"x":' + nested(100_000).encode() + b"}\n", "--format", fmt, cmd="feedback")
        add(f"feedback {fmt}: lone surrogate", f"fb_{fmt}_surr.jsonl",
            base + json.dumps(rec).replace('"', '"\\ud800', 1).encode() + b"\n", "--format", fmt, cmd="feedback")
        add(f"feedback {fmt}: NUL byte", f"fb_{fmt}_nul.jsonl", base + b'{"a":"\x00"}\n', "--format", fmt, cmd="feedback")
        add(f"feedback {fmt}: gzip bomb", f"fb_{fmt}_bomb.jsonl.gz", _gzip_bomb(base), "--format", fmt, cmd="feedback")
    add("feedback oasst: tree 900 levels", "oasst900.jsonl", _oasst_deep(900),
        "--format", "oasst", cmd="feedback")
    add("feedback oasst: tree 200 levels (accepted)", "oasst200.jsonl", _oasst_deep(200),
        "--format", "oasst", cmd="feedback")
    add("feedback oasst: model_name an object", "oasst_model.jsonl",
        jl({**FB_GOOD["oasst"], "prompt": {**FB_GOOD["oasst"]["prompt"], "replies": [
            {**FB_GOOD["oasst"]["prompt"]["replies"][0], "model_name": {"x": 1}}]}}), "--format", "oasst", cmd="feedback")
    add("feedback chat: huge int + NaN meta", "fb_nan.jsonl", jl(FB_GOOD["chat"]) + b'{"messages":'
        + json.dumps(CONV).encode() + b',"rating":5,"x":NaN}\n', cmd="feedback")
    add("feedback gzip truncated", "trunc.jsonl.gz", gzip.compress(jl(FB_GOOD["chat"]) * 100)[:-20], cmd="feedback")
    add("feedback garbage after array", "fb_garbage.json", json.dumps([FB_GOOD["chat"]]).encode() + b"x", cmd="feedback")
    add("feedback binary", "fb_bin.jsonl", bytes(range(256)) * 8, cmd="feedback")
    # -- ingest: a file in another --format than its own ----------------------------------------------
    csv_good = b"prompt,response\nq,a\n"
    add("--format csv on JSON Lines", "chat_as.csv.jsonl", good, "--format", "csv")
    add("--format hf on JSON Lines", "chat_as_hf.jsonl", good, "--format", "hf")
    add("--format chat on a CSV", "csv_as_chat.csv", csv_good, "--format", "chat")
    add("--format alpaca on chat records", "chat_as_alpaca.jsonl", good, "--format", "alpaca")
    add("--format sharegpt on alpaca records", "alp_as_sg.jsonl", jl(GOOD["alpaca"]), "--format", "sharegpt")
    add("--format dolly on a JSON array of chats", "arr_as_dolly.json", json.dumps([GOOD["chat"]]).encode(),
        "--format", "dolly")
    add("--format selfinstruct, instances not a list", "si_inst.jsonl",
        jl({"instruction": "x", "instances": {"input": "", "output": "y"}}), "--format", "selfinstruct")
    add("--format hf on a CSV", "csv_as_hf.csv", csv_good, "--format", "hf")
    add("U+2028 inside a JSON string (accepted)", "u2028.jsonl", good + chat_with("", "a\u2028b"))
    add("CR-only line ends", "cr.jsonl", good.replace(b"\n", b"\r") + good.replace(b"\n", b"\r"))
    # -- generate --seeds / --questions / --weaknesses (dry runs: nothing is asked) -----------------------
    gen = ["generate", "--teacher", "openai:gpt-4o-mini", "--dry-run"]
    q_good = jl({"prompt": "How do I rotate a key?"})
    for name, file, data in (
        ("seeds: bad line 2", "seeds_bad.jsonl", good + b"{not json\n"),
        ("seeds: binary", "seeds.bin.jsonl", bytes(range(256)) * 4),
        ("seeds: missing file", "absent_seeds.jsonl", lambda p: None),
    ):
        run(f"generate --seeds {name}", file, data, [*gen, "--seeds", "{FILE}", "--task", "support", "--n", "2"])
    for name, file, data in (
        ("invalid UTF-8", "q_utf8.jsonl", q_good + b'{"prompt": "caf\xe9"}\n'),
        ("UTF-16", "q_u16.jsonl", q_good.decode().encode("utf-16")),
        ("binary", "q_bin.jsonl", b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8),
        ("NUL byte in a line", "q_nul.jsonl", q_good + b'{"prompt": "a\x00b"}\n'),
        ("lone surrogate", "q_surr.jsonl", q_good + b'{"prompt": "\\ud800"}\n'),
        ("deep nesting 100k", "q_deep.jsonl", q_good + b'{"prompt": "q", "x": ' + nested(100_000).encode() + b"}\n"),
        ("U+2028 in a prompt (accepted)", "q_2028.jsonl", q_good + '{"prompt": "a\u2028b"}\n'.encode()),
        ("form feed in a prompt (accepted)", "q_ff.jsonl", q_good + b'{"prompt": "a\x0cb"}\n'),
        ("line over 8 MiB", "q_long.jsonl", q_good + b'{"prompt": "' + b"x" * (9 << 20) + b'"}\n'),
        ("prompt a number", "q_num.jsonl", jl({"prompt": 3})),
        ("messages end with assistant", "q_asst.jsonl", jl({"messages": CONV})),
        ("messages content a list", "q_list.jsonl", jl({"messages": [{"role": "user", "content": ["a"]}]})),
        ("task a list", "q_task.jsonl", jl({"prompt": "q", "task": ["a"]})),
        ("JSON array file", "q_arr.json", json.dumps([{"prompt": "q"}]).encode()),
        ("empty file", "q_empty.jsonl", b""),
        ("NaN", "q_nan.jsonl", b'{"prompt": "q", "x": NaN}\n'),
        ("a directory", "q_dir", lambda p: p.mkdir()),
        ("FIFO", "q_fifo.jsonl", lambda p: os.mkfifo(p)),
    ):
        run(f"generate --questions: {name}", file, data, [*gen, "--questions", "{FILE}", "--task", "support"])
    w_good = {"id": "w1", "task": "support", "description": "billing questions", "example_ids": []}
    for name, file, data in (
        ("not JSON", "w_bad.json", b"{not json"),
        ("an object without weaknesses", "w_obj.json", b'{"groups": []}'),
        ("empty list", "w_empty.json", b"[]"),
        ("group a string", "w_str.json", b'["billing"]'),
        ("id missing", "w_noid.json", json.dumps([{"description": "x"}]).encode()),
        ("task a list", "w_task.json", json.dumps([{**w_good, "task": ["a"]}]).encode()),
        ("task a number", "w_tasknum.json", json.dumps([{**w_good, "task": 7}]).encode()),
        ("id an object", "w_idobj.json", json.dumps([{**w_good, "id": {"a": 1}}]).encode()),
        ("example_ids unknown (accepted)", "w_ids.json", json.dumps([{**w_good, "example_ids": ["nope"]}]).encode()),
        ("example_ids numbers", "w_idsnum.json", json.dumps([{**w_good, "example_ids": [1, 2]}]).encode()),
        ("duplicate ids", "w_dup.json", json.dumps([w_good, w_good]).encode()),
        ("deep nesting 100k", "w_deep.json", b'[{"id": "w", "x": ' + nested(100_000).encode() + b"}]"),
        ("lone surrogate", "w_surr.json", b'[{"id": "w", "description": "\\udc00"}]'),
        ("NaN", "w_nan.json", b'[{"id": "w", "description": "d", "x": NaN}]'),
        ("invalid UTF-8", "w_utf8.json", b'[{"id": "w", "description": "\xff"}]'),
        ("binary", "w_bin.json", bytes(range(256)) * 4),
        ("a directory", "w_dir", lambda p: p.mkdir()),
    ):
        run(f"generate --weaknesses: {name}", file, data, [*gen, "--weaknesses", "{FILE}", "--n", "2"])
    # -- YAML files: --prices, train --config, the keys file ------------------------------------------
    bomb = (b'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
            + b"".join(f"{c}: &{c} [{','.join(['*' + p] * 9)}]\n".encode()
                       for p, c in zip("abcdefgh", "bcdefghi", strict=True)))
    yaml_cases = (
        ("not YAML", "bad.yaml", b"key: [unclosed\n  other: {\n"),
        ("a YAML list", "list.yaml", b"- 1\n- 2\n"),
        ("binary", "bin.yaml", bytes(range(256)) * 4),
        ("invalid UTF-8", "utf8.yaml", b"openai:\n  gpt-4o-mini: {input: 1, output: \xff}\n"),
        ("billion laughs", "bomb.yaml", bomb),
        ("python object tag", "tag.yaml", b"x: !!python/object/apply:os.system ['echo pwned']\n"),
        ("a directory", "ydir.yaml", lambda p: p.mkdir()),
        ("deep nesting 10k", "deep.yaml", b"x: " + nested(10_000).encode() + b"\n"),
    )
    gen_prices = ["generate", "--teacher", "openai:gpt-4o-mini", "--dry-run", "--task", "support", "--n", "2",
                  "--budget", "1", "--prices", "{FILE}"]
    for name, file, data in (*yaml_cases,
                             ("price .nan", "nan.yaml", b"openai:\n  gpt-4o-mini: {input: .nan, output: 1}\n"),
                             ("price .inf", "inf.yaml", b"openai:\n  gpt-4o-mini: {input: .inf, output: 1}\n"),
                             ("price 1e308 * 1e308", "huge.yaml", b"openai:\n  gpt-4o-mini: {input: 1e308, output: 1e308}\n"),
                             ("price a string", "str.yaml", b"openai:\n  gpt-4o-mini: {input: cheap, output: 1}\n"),
                             ("price negative", "neg.yaml", b"openai:\n  gpt-4o-mini: {input: -1, output: 1}\n"),
                             ("models a list", "mlist.yaml", b"openai: [gpt-4o-mini]\n"),
                             ("price true", "bool.yaml", b"openai:\n  gpt-4o-mini: {input: true, output: 1}\n")):
        run(f"--prices: {name}", file, data, gen_prices)
    train = ["train", "--snapshot", "nope", "--config", "{FILE}"]
    for name, file, data in (*yaml_cases,
                             ("unknown key", "unk.yaml", b"method: sft\nlerning_rate: 1e-4\n"),
                             ("learning_rate .nan", "lrnan.yaml", b"method: sft\nlearning_rate: .nan\n"),
                             ("learning_rate a string", "lrstr.yaml", b"method: sft\nlearning_rate: fast\n"),
                             ("max_steps 10^30", "steps.yaml", b"method: sft\nmax_steps: 1000000000000000000000000000000\n"),
                             ("lora_r negative", "lora.yaml", b"method: sft\nlora_r: -4\n"),
                             ("method unknown", "meth.yaml", b"method: rlhf\n"),
                             ("empty file (defaults, accepted)", "empty.yaml", b""),
                             ("a list where a number goes", "lrlist.yaml", b"method: sft\nlearning_rate: [1, 2]\n")):
        run(f"train --config: {name}", file, data, train)
    keys_env = {"CURATOR_KEYS_FILE": "{FILE}", "ANTHROPIC_BASE_URL": "http://127.0.0.1:9"}
    keys_cmd = ["generate", "--teacher", "anthropic:claude-3-5-haiku", "--task", "support", "--n", "1",
                "--max-attempts", "1"]
    for name, file, data in (*yaml_cases,
                             ("key with a newline", "nl.yaml", b'ANTHROPIC_API_KEY: "sk-ant-abc\\nX-Evil: 1"\n'),
                             ("key with non-ASCII", "uni.yaml", "ANTHROPIC_API_KEY: sk-ant-\u00e9\u00e9\u00e9\n".encode()),
                             ("key a mapping", "map.yaml", b"ANTHROPIC_API_KEY: {a: 1}\n"),
                             ("key a number", "num.yaml", b"ANTHROPIC_API_KEY: 12345678\n"),
                             ("no such file (accepted: no key)", "absent_keys.yaml", lambda p: None)):
        run(f"keys file: {name}", file, data, keys_cmd, keys_env)
    # -- chat --system-file --------------------------------------------------------------------------
    chat_cmd = ["chat", "--run", "base", "--base-model", "/nonexistent/model", "--system-file", "{FILE}", "hi"]
    for name, file, data in (("invalid UTF-8", "sys.txt", b"You are \xff helpful."),
                             ("binary", "sys.bin", bytes(range(256)) * 4),
                             ("UTF-16", "sys16.txt", "You are helpful.".encode("utf-16"))):
        run(f"chat --system-file: {name}", file, data, chat_cmd)
    return out


def _huge_no_newline(p: Path) -> None:
    with p.open("wb") as f:
        while f.tell() < 64 * 1024:
            f.write(jl(GOOD["chat"]))
        f.write(b'{"messages": "')
        f.truncate(2 * 1024**3)  # sparse: NUL bytes with no newline up to 2 GB


def _one_line(p: Path, size: int) -> None:
    with p.open("wb") as f:
        f.write(jl(GOOD["chat"]) + b'{"messages":"')
        block = b"a" * (1 << 20)
        for _ in range(size >> 20):
            f.write(block)


def _many(n: int, start: int = 0) -> bytes:
    return b"".join(json.dumps({"messages": [{"role": "user", "content": f"question {i} " + "w " * 60},
                                             {"role": "assistant", "content": "answer " * 40}]}).encode() + b"\n"
                    for i in range(start, start + n))


def _parallel_bad_midpoint(p: Path) -> None:
    half = _many(25_000)
    p.write_bytes(half + b"\n" + b"{not json\n" * 3 + _many(25_000, 25_000))


def _parallel_bad_half(p: Path) -> None:
    p.write_bytes(_many(20_000) + (b'{"not json' + b"x" * 1000 + b"\n") * 20_000)


def _parallel_mixed_task(p: Path) -> None:
    lines = _many(50_000).splitlines(keepends=True)
    lines[-1] = chat_with(',"task":7', "last one")
    p.write_bytes(b"".join(lines))


def _gzip_bomb(head: bytes) -> Callable[[Path], None]:
    def make(p: Path) -> None:
        with gzip.open(p, "wb", compresslevel=9) as f:
            f.write(head + b'{"messages": "')
            block = b"A" * (1 << 20)
            for _ in range(1024):  # 1 GiB of one line, about 1 MB compressed
                f.write(block)
    return make


def _oasst_deep(levels: int) -> bytes:
    """An OASST tree ``levels`` messages deep, as JSON text (json.dumps would recurse too deep)."""
    head, tail = [], []
    for i in range(1, levels + 1):
        role = "prompter" if i % 2 else "assistant"
        head.append(f'{{"message_id":"m{i}","role":"{role}","text":"t","emojis":{{"+1":1}},"replies":[')
        tail.append("]}")
    return ('{"message_tree_id":"deep","prompt":' + "".join(head) + "".join(tail) + "}\n").encode()


def _parquet(p: Path, kind: str) -> None:
    import decimal

    import pyarrow as pa
    import pyarrow.parquet as pq

    cols: dict[str, object] = {"messages": [CONV, [CONV[0] | {"content": "q2"}, CONV[1]]]}
    if kind == "decimal":
        cols["price"] = pa.array([decimal.Decimal("1.10"), decimal.Decimal("2.25")], pa.decimal128(5, 2))
    elif kind == "binary":
        cols["blob"] = pa.array([b"\x00\x01", b"\xff"], pa.binary())
    elif kind == "inttask":
        cols["task"] = [1, 2]
    pq.write_table(pa.table(cols), p)


def _hf_dict(p: Path) -> None:
    from datasets import Dataset, DatasetDict
    from datasets.utils.logging import disable_progress_bar

    disable_progress_bar()

    train = Dataset.from_list([{"messages": CONV}, {"messages": [CONV[0] | {"content": "other"}, CONV[1]]}])
    test = Dataset.from_list([{"messages": CONV}])
    DatasetDict({"train": train, "test": test}).save_to_disk(str(p))


def fingerprint(ws: Path) -> str:
    """Every table's rows (sorted) and the workspace's file names: equal fingerprints, equal workspaces."""
    import duckdb

    h = hashlib.sha256()
    for f in sorted(ws.rglob("*")):
        if f.is_file() and not f.name.startswith("curator.duckdb"):
            h.update(str(f.relative_to(ws)).encode())
    con = duckdb.connect(str(ws / "curator.duckdb"), read_only=True)
    try:
        for (table,) in con.execute("SELECT table_name FROM information_schema.tables WHERE table_schema='main' "
                                    "ORDER BY 1").fetchall():
            rows = con.execute(f'SELECT * FROM "{table}"').fetchall()
            h.update(table.encode())
            for r in sorted(repr(x) for x in rows):
                h.update(r.encode())
    finally:
        con.close()
    return h.hexdigest()


def run_case(case: Case, base_ws: Path, work: Path, timeout: float) -> dict[str, object]:
    d = work / "case"
    if d.exists():
        shutil.rmtree(d)
    d.mkdir()
    ws = d / "ws"
    shutil.copytree(base_ws, ws)
    before = fingerprint(ws)
    path = d / case.file
    case.make(path)
    args = [a.replace("{FILE}", str(path)) for a in case.command]
    env = {**ENV, **{k: v.replace("{FILE}", str(path)) for k, v in case.env.items()}}
    out_f, err_f = (d / "stdout").open("wb"), (d / "stderr").open("wb")
    t0 = time.monotonic()
    proc = subprocess.Popen([*CURATOR, "-w", str(ws), *args], stdout=out_f, stderr=err_f, stdin=subprocess.DEVNULL,
                            start_new_session=True, cwd=d, env=env)
    hang, rss, status = False, 0, 0
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            rss = usage.ru_maxrss
            break
        if time.monotonic() - t0 > timeout:
            hang = True
            os.killpg(proc.pid, signal.SIGKILL)
            _, status, usage = os.wait4(proc.pid, 0)
            rss = usage.ru_maxrss
            break
        time.sleep(0.05)
    proc.returncode = os.waitstatus_to_exitcode(status)
    out_f.close()
    err_f.close()
    stderr = (d / "stderr").read_text(errors="replace")
    stdout = (d / "stdout").read_text(errors="replace")
    error_lines = [ln for ln in stderr.splitlines() if ln.startswith("Error: ")]
    if hang:
        outcome = "hang"
    elif "Traceback (most recent call last)" in stderr:
        outcome = "traceback"
    elif proc.returncode == 0:
        outcome = "accepted"
    elif proc.returncode == 1 and "Error: no request succeeded" in stderr and "connection" in stderr:
        outcome = "accepted"  # the file was fine; the teacher is a closed port (the failed request is recorded)
    elif proc.returncode == 1 and (len(error_lines) == 1 or (case.command[0] == "validate" and "errors:" in stdout)):
        outcome = "clear error"  # one Error: line, or validate's report of the bad lines
    elif proc.returncode == 2 and len(error_lines) == 1:
        outcome = "usage error"  # click refused an option value (exit 2, its convention), before any reading
    else:
        outcome = f"exit {proc.returncode}"
    unchanged = fingerprint(ws) == before
    if outcome == "clear error" and not error_lines:
        error_lines = ["Error: " + " ".join(ln.split()[0] + "@" + ln.split()[-1] for ln in stdout.splitlines()
                                            if ln[:1].islower() and ln.split()[1:2] and ln.split()[1].isdigit())]
    message = error_lines[0][7:] if error_lines else (stderr.strip().splitlines() or stdout.strip().splitlines() or [""])[-1]
    message = message.replace(str(d) + "/", "")
    shutil.rmtree(d)
    return {"input": case.name, "command": _short(case.command),
            "outcome": outcome, "unchanged": unchanged, "seconds": round(time.monotonic() - t0, 1),
            "max_rss_mb": round(rss / 1024), "message": message[:110]}


#: The children's environment: no real key, no proxy; a teacher, if any is asked, is a closed port.
ENV = {k: v for k, v in os.environ.items() if "PROXY" not in k.upper() and not k.endswith("_API_KEY")
       and k not in ("CURATOR_KEYS_FILE", "CURATOR_PRICES")}
ENV.update(OPENAI_API_KEY="sk-hostile-not-a-real-key", OPENAI_BASE_URL="http://127.0.0.1:9/v1",
           CURATOR_KEYS_FILE="/nonexistent/keys.yaml", NO_PROXY="127.0.0.1,localhost", CURATOR_LOCK_WAIT="5")


def _short(command: list[str]) -> str:
    """The command without its file and the fixed options of the generate / train cases."""
    skip = {"{FILE}", "--teacher", "openai:gpt-4o-mini", "anthropic:claude-3-5-haiku", "--dry-run", "--task",
            "support", "--n", "1", "2", "--budget", "--max-attempts", "--snapshot", "nope", "--run", "base",
            "--base-model", "/nonexistent/model", "hi"}
    return " ".join(c for c in command if c not in skip)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default="", help="run only the inputs whose name contains this")
    ap.add_argument("--start", type=int, default=1, help="begin at this input number")
    ap.add_argument("--timeout", type=float, default=60.0)
    ap.add_argument("--json", action="store_true", help="print the rows as JSON Lines too")
    args = ap.parse_args()
    selected = [c for c in cases()[args.start - 1:] if args.only in c.name]
    with tempfile.TemporaryDirectory(prefix="curator-hostile-") as tmp:
        work = Path(tmp)
        base = work / "base"
        seed = work / "seed.jsonl"
        seed.write_bytes(jl(*({"messages": [{"role": "user", "content": f"seed question {i}"},
                                            {"role": "assistant", "content": f"seed answer {i}"}]} for i in range(50))))
        subprocess.run([*CURATOR, "-w", str(base), "ingest", str(seed)], check=True, capture_output=True, env=ENV)
        support = work / "support.jsonl"
        support.write_bytes(jl(*({"messages": [{"role": "user", "content": f"How do I fix error {i} in billing?"},
                                               {"role": "assistant", "content": f"Open billing and retry step {i}."}]}
                                 for i in range(20))))
        subprocess.run([*CURATOR, "-w", str(base), "ingest", str(support), "--origin", "seed", "--task", "support"],
                       check=True, capture_output=True, env=ENV)
        rows = []
        print(f"{'#':>3}  {'input':<46} {'command':<34} {'outcome':<12} {'unch.':<5} {'s':>5} {'MB':>5}  message")
        for i, case in enumerate(selected, args.start if not args.only else 1):
            r = run_case(case, base, work, args.timeout)
            rows.append(r)
            print(f"{i:>3}  {r['input'][:46]:<46} {r['command'][:34]:<34} {r['outcome']:<12} "
                  f"{'yes' if r['unchanged'] else 'no':<5} {r['seconds']:>5} {r['max_rss_mb']:>5}  {r['message']}",
                  flush=True)
            if args.json:
                print(json.dumps(r))
    counts = Counter(str(r["outcome"]) for r in rows)
    bad_change = sum(1 for r in rows if r["outcome"] != "accepted" and not r["unchanged"])
    print(f"\ntotal {len(rows)} inputs: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
          + f"; refused but workspace changed: {bad_change}; commands: "
          + ", ".join(f"{k} {v}" for k, v in sorted(Counter(str(r['command']).split(' --')[0] for r in rows).items())))
    failed = counts["traceback"] + counts["hang"] + bad_change + sum(v for k, v in counts.items() if k.startswith("exit"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
