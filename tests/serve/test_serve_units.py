"""The parts of serving that need no server: the trace log import, the ``serve`` feedback reader, A/B routing,
the vLLM command line, and the command-line refusals."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner
from serve_helpers import RUNS

from curator.cli import main
from curator.errors import CuratorError
from curator.feedback.tracelog import (
    get_trace,
    import_traces,
    ingest_traces,
    known_trace_ids,
    list_traces,
    trace_stats,
    wilson_interval,
)
from curator.serve.ab import parse_ab
from curator.serve.vllm import lora_rank, vllm_command
from curator.workspace import Workspace


def _trace(tid: str, answer: str = "Diagnosis: x.", model: str = "support", **kw: Any) -> dict[str, Any]:
    return {"type": "trace", "v": 1, "id": tid, "created_at": "2026-12-01 10:00:00.000001", "model": model,
            "run_id": None, "adapter": "base", "ab_name": None, "ab_arm": None, "user_id": None,
            "messages": [{"role": "user", "content": f"Question of {tid}?"}, {"role": "assistant", "content": answer}],
            "params": {"max_tokens": 8}, "latency_ms": 100.0, "prompt_tokens": 5, "completion_tokens": 3,
            "finish_reason": "stop", "meta": {}, **kw}


def _fb(fid: str, tid: str, when: str = "2026-12-01 10:00:01", **kw: Any) -> dict[str, Any]:
    return {"type": "feedback", "v": 1, "id": fid, "trace_id": tid, "created_at": when, "rating": None,
            "thumbs": None, "comment": None, "correction": None, **kw}


def _append(path: Path, *records: dict[str, Any], partial: bytes = b"") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("ab") as f:
        f.write(b"".join(orjson.dumps(r) + b"\n" for r in records) + partial)


def test_trace_log_import_is_incremental_and_idempotent(ws: Workspace) -> None:
    log = ws.path / "traces" / "20261201-100000-1.jsonl"
    other = ws.path / "traces" / "20261201-100000-2.jsonl"
    half = orjson.dumps(_trace("t3"))
    _append(log, _trace("t1"), _trace("t2"), _fb("f1", "t1", rating=5), partial=half[:20])
    _append(other, _fb("f2", "t3", thumbs="down"))  # feedback that reached its log before its trace
    r = import_traces(ws)
    assert (r.traces_added, r.feedback_added, r.files) == (2, 2, 2)
    assert import_traces(ws).lines == 0  # nothing new: nothing read
    with log.open("ab") as f:  # the line being written is finished later
        f.write(half[20:] + b"\n")
    r = import_traces(ws)
    assert (r.lines, r.traces_added) == (1, 1)
    assert get_trace(ws, "t3", do_import=False)["thumbs"] == "down"
    assert get_trace(ws, "t1")["rating"] == 5
    # a reset offset (a crash between insert and offset) re-reads, and the keys keep it from counting twice
    with ws.connect() as con:
        con.execute("DELETE FROM trace_logs")
    r = import_traces(ws)
    assert (r.traces_added, r.feedback_added, r.already_present) == (0, 0, 5)
    assert known_trace_ids(ws) == {"t1", "t2", "t3"}
    assert [t["id"] for t in list_traces(ws, rated=True)] == ["t1", "t3"]
    with pytest.raises(CuratorError, match="no trace"):
        get_trace(ws, "nope")


def test_the_latest_feedback_field_wins_and_stats_count_positive_negative(ws: Workspace) -> None:
    log = ws.path / "traces" / "a.jsonl"
    _append(log, _trace("t1"), _trace("t2"), _trace("t3", model="other"),
            _fb("f1", "t1", rating=2, correction="Better answer."), _fb("f2", "t1", "2026-12-01 10:00:02", rating=4),
            _fb("f3", "t2", thumbs="up"), _fb("f4", "t3", rating=3))
    t1 = get_trace(ws, "t1")
    assert (t1["rating"], t1["correction"]) == (4, "Better answer.")
    s = trace_stats(ws)
    by = {g["model"]: g for g in s["by_model"]}
    assert (by["support"]["positive"], by["support"]["negative"], by["support"]["rated"]) == (2, 0, 2)
    assert (by["other"]["rated"], by["other"]["positive_rate"]) == (1, None)  # a 3 is rated, neither side
    assert by["support"]["latency_ms_p50"] == 100.0 and s["rated_not_ingested"] == 3
    lo, hi = wilson_interval(8, 10)
    assert round(lo, 3) == 0.490 and round(hi, 3) == 0.943
    assert wilson_interval(0, 0) is None


def test_rated_traces_become_examples_and_correction_pairs_once(ws: Workspace) -> None:
    log = ws.path / "traces" / "a.jsonl"
    good = "Diagnosis: the DNS record is cached.\n1. Wait.\n2. Flush.\n3. Check.\nEscalation: support.nimbus.example."
    _append(log, _trace("t1", answer=good), _trace("t2", answer="I don't know."), _trace("t3"),
            _fb("f1", "t1", rating=5), _fb("f2", "t2", thumbs="down", correction="Diagnosis: try this fix."))
    r = ingest_traces(ws, task="support", gates=("exact",))
    assert r.rated_traces == 2 and r.feedback is not None
    fb = r.feedback
    assert (fb["positive"], fb["negative"], fb["examples_added"], fb["pairs_added"]) == (2, 1, 2, 1)
    with ws.connect() as con:
        ex = con.execute("SELECT origin, task, messages::VARCHAR FROM examples ORDER BY id").fetchall()
        pair = con.execute("SELECT chosen, rejected, meta->>'basis' FROM preferences").fetchall()
    assert {(o, t) for o, t, _ in ex} == {("feedback", "support")}
    assert sorted(json.loads(m)[-1]["content"] for _, _, m in ex) == sorted([good, "Diagnosis: try this fix."])
    assert pair == [("Diagnosis: try this fix.", "I don't know.", "correction")]
    assert ingest_traces(ws).rated_traces == 0
    _append(log, _fb("f3", "t3", rating=1))  # a newly rated trace is ingested by the next call
    assert ingest_traces(ws, gates=False).feedback["negative"] == 1


def test_ab_spec_parsing_and_sticky_routing() -> None:
    route = parse_ab("champion=r-1,challenger=r-2:0.2")
    assert (route.name, route.run_a, route.arm_b, route.run_b, route.fraction) == ("champion", "r-1", "challenger",
                                                                                  "r-2", 0.2)
    assert all(route.pick("user-7") == route.pick("user-7") for _ in range(5))
    share = sum(route.pick(f"u{i}")[0] == "challenger" for i in range(4000)) / 4000
    assert 0.17 < share < 0.23
    rng = random.Random(0)
    assert {route.pick(None, rng)[1] for _ in range(200)} == {"r-1", "r-2"}
    for bad in ("champion=r-1", "champion=r-1,challenger=r-2", "champion=r-1,challenger=r-2:1.5",
                "a=r-1,a=r-2:0.5", "champion=r-1,challenger=r-2:x"):
        with pytest.raises(CuratorError, match="--ab"):
            parse_ab(bad)


def test_vllm_command_line(tmp_path: Path) -> None:
    for name, r in (("triage", 16), ("billing", 40)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "adapter_config.json").write_text(json.dumps({"r": r}))
    adapters = {"r-1": tmp_path / "triage", "r-2": tmp_path / "billing"}
    assert lora_rank(adapters) == 64
    cmd = vllm_command("/models/smol", adapters, port=8123, extra_args=["--gpu-memory-utilization", "0.8"],
                       executable="vllm")
    assert cmd == ["vllm", "serve", "/models/smol", "--served-model-name", "base", "--host", "127.0.0.1",
                   "--port", "8123", "--enable-lora", "--lora-modules", f"r-1={tmp_path / 'triage'}",
                   f"r-2={tmp_path / 'billing'}", "--max-loras", "2", "--max-lora-rank", "64",
                   "--gpu-memory-utilization", "0.8"]
    assert "--enable-lora" not in vllm_command("/m", {}, port=1, executable="vllm")


def _cli(*args: str) -> Any:
    return CliRunner().invoke(main, list(args))


def test_serve_refuses_what_it_cannot_do_safely(serve_ws: Path, tiny_model_dir: Path) -> None:
    import torch

    w = ["--workspace", str(serve_ws)]
    r = _cli(*w, "serve", "--host", "0.0.0.0", "--base-model", str(tiny_model_dir))
    assert r.exit_code == 1 and "needs an API key" in r.output
    if not torch.cuda.is_available():
        r = _cli(*w, "serve", "--engine", "vllm", "--base-model", str(tiny_model_dir))
        assert r.exit_code == 1 and "--engine vllm needs a CUDA GPU" in r.output
    r = _cli(*w, "serve", "--champion", "--base-model", str(tiny_model_dir))
    assert r.exit_code == 1 and "no champion yet: run `curator round`" in r.output
    r = _cli(*w, "serve", "--adapter", "base=" + RUNS["alpha"][0])
    assert r.exit_code == 1 and "served twice" in r.output
    r = _cli(*w, "serve", "--run", "r-nope")
    assert r.exit_code == 1 and "no run 'r-nope'" in r.output
    r = _cli(*w, "serve", "--adapter", "alpha=" + RUNS["alpha"][0], "--ab", "alpha=r-1,b=r-2:0.3")
    assert r.exit_code == 1 and "served twice" in r.output
    assert _cli(*w, "feedback", "ingest").exit_code == 2
    Workspace(serve_ws).set_setting("pii_backend", "bogus")  # checked before the model loads
    try:
        r = _cli(*w, "serve", "--base-model", str(tiny_model_dir))
        assert r.exit_code == 1 and "unknown PII backend 'bogus'" in r.output
    finally:
        Workspace(serve_ws).set_setting("pii_backend", "patterns")


def test_traces_commands_on_a_workspace_without_traces(ws: Workspace) -> None:
    w = ["--workspace", str(ws.path)]
    with ws.connect():  # an empty workspace (read commands do not create one)
        pass
    assert "no traces yet" in _cli(*w, "traces", "list").output
    assert "no traces yet" in _cli(*w, "traces", "stats").output
    r = _cli(*w, "feedback", "ingest", "--traces")
    assert r.exit_code == 0 and "0 rated traces to ingest" in r.output
