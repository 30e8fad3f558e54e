"""The batching engine on the tiny model: batches answer exactly as one-at-a-time generation does."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
from serve_helpers import RUNS

from curator.llm.continuous import Engine, GenRequest, SamplingParams

PROMPTS = [[{"role": "user", "content": f"Customer {i}: my {t} has been broken for {i} days. Help?"}]
           for i, t in enumerate(["disk", "dns", "billing", "login", "ssh", "bucket"])]


@pytest.fixture(scope="module")
def stack(serve_template: Path, tiny_model_dir: Path) -> Any:
    from curator.models import generate, load_model

    model, tok = load_model(str(tiny_model_dir), adapters={rid: str(serve_template / "runs" / rid / "adapter")
                                                           for rid, _ in RUNS.values()})
    refs: dict[str | None, list[str]] = {}
    for rid, _ in RUNS.values():
        model.set_adapter(rid)
        refs[rid] = [g.text for g in generate(model, tok, PROMPTS, max_new_tokens=10, batch_size=1)]
    with model.disable_adapter():
        refs[None] = [g.text for g in generate(model, tok, PROMPTS, max_new_tokens=10, batch_size=1)]
    return model, tok, refs


@pytest.mark.parametrize("mixed", [True, False], ids=["mixed-adapter-batches", "per-adapter-batches"])
def test_a_batch_of_adapters_answers_as_each_adapter_alone(stack: Any, mixed: bool) -> None:
    model, tok, refs = stack
    eng = Engine(model, tok, max_batch=32, mixed=mixed)
    jobs = [(ad, i) for ad in refs for i in range(len(PROMPTS))]
    random.Random(0).shuffle(jobs)
    reqs = [GenRequest(eng.encode(PROMPTS[i]), SamplingParams(max_tokens=10), adapter=ad) for ad, i in jobs]
    eng.generate_now(reqs)
    assert [r.text for r in reqs] == [refs[ad][i] for ad, i in jobs]
    assert {r.finish_reason for r in reqs} <= {"stop", "length"}
    assert all(r.batch_size == (len(jobs) if mixed else len(PROMPTS)) for r in reqs)
    a, b = (rid for rid, _ in RUNS.values())
    assert refs[a] != refs[b] and refs[a] != refs[None]  # the adapters really answer differently


def test_each_row_keeps_its_own_max_tokens_stop_and_seed(stack: Any) -> None:
    model, tok, refs = stack
    eng = Engine(model, tok)
    rid = RUNS["alpha"][0]
    full = GenRequest(eng.encode(PROMPTS[0]), SamplingParams(max_tokens=10), adapter=rid)
    short = GenRequest(eng.encode(PROMPTS[0]), SamplingParams(max_tokens=3), adapter=rid)
    eng.generate_now([full, short])
    assert short.finish_reason == "length" and len(short.tokens) == 3
    assert full.text.startswith(short.text) and len(full.tokens) == 10
    # a stop string taken from the greedy answer ends that row there, with finish reason stop
    stop = full.text[4:7]
    cut = GenRequest(eng.encode(PROMPTS[0]), SamplingParams(max_tokens=10, stop=[stop]), adapter=rid)
    eng.generate_now([cut, GenRequest(eng.encode(PROMPTS[1]), SamplingParams(max_tokens=10), adapter=rid)])
    assert cut.finish_reason == "stop" and cut.text == full.text[: full.text.index(stop)].rstrip()
    # a seeded sampled request gives the same answer alone and in a batch with greedy and other sampled rows
    def sampled(seed: int) -> GenRequest:
        return GenRequest(eng.encode(PROMPTS[2]), SamplingParams(max_tokens=10, temperature=1.0, top_p=0.9, seed=seed),
                          adapter=rid)

    alone = eng.generate_now([sampled(7)])[0]
    mixed = eng.generate_now([GenRequest(eng.encode(PROMPTS[3]), SamplingParams(max_tokens=10), adapter=None),
                              sampled(7), sampled(8)])
    assert mixed[1].text == alone.text
    assert mixed[0].text == refs[None][3]


def test_streaming_deltas_add_up_to_the_answer_and_cancel_stops_a_row(stack: Any) -> None:
    model, tok, refs = stack
    eng = Engine(model, tok)
    rid = RUNS["bravo"][0]
    deltas: list[str] = []
    streamed = GenRequest(eng.encode(PROMPTS[4]), SamplingParams(max_tokens=10), adapter=rid, stream=True,
                          on_delta=deltas.append)
    cancelled = GenRequest(eng.encode(PROMPTS[5]), SamplingParams(max_tokens=10), adapter=rid)
    steps = {"n": 0}

    def on_delta(text: str) -> None:
        steps["n"] += 1
        if steps["n"] == 2:
            cancelled.cancel()

    watcher = GenRequest(eng.encode(PROMPTS[0]), SamplingParams(max_tokens=10), adapter=rid, stream=True,
                         on_delta=on_delta)
    eng.generate_now([streamed, cancelled, watcher])
    assert "".join(deltas) == streamed.text == refs[rid][4]
    assert len(deltas) > 1
    assert cancelled.finish_reason == "cancelled" and len(cancelled.tokens) < 10


def test_the_worker_thread_batches_what_is_waiting(stack: Any) -> None:
    import threading

    model, tok, refs = stack
    eng = Engine(model, tok, max_batch=8, batch_wait_ms=2000, gap_ms=2000).start()
    try:
        done = threading.Event()
        finished: list[GenRequest] = []

        def on_done(r: GenRequest) -> None:
            finished.append(r)
            if len(finished) == 6:
                done.set()

        reqs = [eng.submit(GenRequest(eng.encode(PROMPTS[i]), SamplingParams(max_tokens=10), adapter=None,
                                      on_done=on_done)) for i in range(6)]
        assert done.wait(120)
    finally:
        eng.stop()
    assert [r.text for r in reqs] == refs[None]
    assert max(r.batch_size for r in reqs) > 1
    with pytest.raises(ValueError, match="context"):
        eng.submit(GenRequest([1] * 2000, SamplingParams(max_tokens=10)))
