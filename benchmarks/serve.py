"""``curator serve`` under load: real SmolLM2-135M on the CPU, the ``openai`` SDK as 64 concurrent clients.

    .venv/bin/python benchmarks/serve.py [--n 64] [--max-tokens 64] [--baseline-n 16] [--breakdown] [--json]

Two LoRA adapters (rank 16 on q/k/v/o, zero-initialised B as a fresh LoRA is: the same compute as a
trained one) are registered as runs in a temporary workspace.  Every scenario starts ``curator serve`` as
its own process and sends the same ``--n`` prompts (``seeds/support/traffic.jsonl`` then the seed questions;
never the test split) at once through ``AsyncOpenAI``, greedy, ``max_tokens`` fixed:

1. **baseline**: a loop of one-at-a-time ``curator.models.generate`` calls (batch size 1) with adapter A set, in
   this process, on the first ``--baseline-n`` prompts (a rate, so a subset measures it);
2. **one adapter**: all requests for A.  Targets: >= 3x the baseline's output tokens/s, >= 150 tokens/s;
3. **two adapters**: half for A, half for B (mixed batches: the stacked LoRA matrices).  Target: wall <= 1.3x one adapter;
4. **two adapters, per-adapter batches** (``--per-adapter-batches``): the alternative, measured;
5. **traces off** (``--no-traces``) against scenario 2, and ``--repeat`` - 1 more on/off pairs (half
   with traces off first); the ratio is the geometric mean of the pairs'.  Target: traces on <= 5 % slower;
6. **one adapter in bfloat16** (``--dtype bfloat16``): the same load with the model in bfloat16.

With ``--breakdown`` it also runs the engine in this process (no HTTP) on the same prompts: as served, without
the prefix cache, and with the model in bfloat16 (how many answers stay identical to float32's is printed).

Output tokens are ``usage.completion_tokens`` (the end-of-turn token not counted; the baseline counts the
same way).  p50/p95 are client-side latencies.  The machine may be shared: each row shows the 1-minute load
average before and after it, and numbers are lower bounds; the server's own CPU time (from ``/proc``) and
tokens per CPU-second say what the work cost whatever else ran.  The warm-up request leaves the shared
system prompt in the engine's prefix cache, as any earlier request would on a running server.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "serve"))

from _common import ROOT  # noqa: E402

MODEL = "local:smollm2-135m-instruct"


def prompts(n: int) -> list[list[dict[str, Any]]]:
    out = []
    for name in ("traffic.jsonl", "seeds.jsonl"):
        for line in (ROOT / "seeds" / "support" / name).read_text(encoding="utf-8").splitlines():
            msgs = json.loads(line)["messages"]
            out.append([m for m in msgs if m["role"] != "assistant"])
    return (out * (n // len(out) + 1))[:n]


def make_workspace(root: Path) -> dict[str, str]:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from curator.models import resolve_model
    from curator.workspace import Workspace
    from trainer.runs import Run, insert_run

    ws = Workspace(root)
    path = resolve_model(MODEL)
    runs = {}
    for name in ("a", "b"):
        rid = f"r-20260101-00000{1 if name == 'a' else 2}-bench{name}"
        torch.manual_seed(0)
        base = AutoModelForCausalLM.from_pretrained(str(path))
        cfg = LoraConfig(r=16, lora_alpha=32, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"])
        get_peft_model(base, cfg).save_pretrained(str(root / "runs" / rid / "adapter"))
        insert_run(ws, Run(rid, "sft", None, MODEL, adapter_path=f"runs/{rid}/adapter", status="succeeded"))
        runs[name] = rid
    return runs


def baseline(ws: Path, runs: dict[str, str], convs: list[list[dict[str, Any]]], max_tokens: int) -> dict[str, Any]:
    from curator.models import generate, load_model

    model, tok = load_model(MODEL, adapters={runs["a"]: str(ws / "runs" / runs["a"] / "adapter")})
    generate(model, tok, convs[:1], max_new_tokens=8, batch_size=1)  # warm-up
    t0 = time.perf_counter()
    lat, tokens = [], 0
    for c in convs:
        s = time.perf_counter()
        g = generate(model, tok, [c], max_new_tokens=max_tokens, batch_size=1)[0]
        lat.append(time.perf_counter() - s)
        tokens += g.output_tokens - (1 if g.finish_reason == "stop" and g.output_tokens else 0)
    secs = time.perf_counter() - t0
    del model
    return {"requests": len(convs), "seconds": round(secs, 2), "output_tokens": tokens,
            "tokens_per_s": round(tokens / secs, 1), **_pcts(lat)}


def _cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far; 0 where /proc cannot say (not Linux)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _load() -> float:
    return round(os.getloadavg()[0], 2)


def loaded(fn: Any) -> dict[str, Any]:
    """``fn()``'s result with the 1-minute load average before and after it."""
    before = _load()
    out = dict(fn())
    out["load"] = f"{before}-{_load()}"
    return out


def in_process(ws: Path, runs: dict[str, str], convs: list[list[dict[str, Any]]], max_tokens: int,
               max_batch: int) -> dict[str, Any]:
    """The engine without HTTP: as served, without the prefix cache, and in bfloat16."""
    from curator.llm.continuous import Engine, GenRequest, SamplingParams
    from curator.models import load_model

    out: dict[str, Any] = {}
    texts: dict[str, list[str]] = {}
    tokens_of: dict[str, list[list[int]]] = {}
    for key, dtype, prefix in (("engine", "float32", 8), ("engine_no_prefix_cache", "float32", 0),
                               ("engine_bfloat16", "bfloat16", 8)):
        model, tok = load_model(MODEL, adapters={"a": str(ws / "runs" / runs["a"] / "adapter")}, dtype=dtype)
        eng = Engine(model, tok, max_batch=max_batch, prefix_cache=prefix)
        eng.generate_now([GenRequest(eng.encode(convs[0]), SamplingParams(max_tokens=8), adapter="a")])  # warm-up

        def run(eng: Any = eng, key: str = key) -> dict[str, Any]:
            before = eng.prefilled_tokens
            reqs = [GenRequest(eng.encode(c), SamplingParams(max_tokens=max_tokens), adapter="a") for c in convs]
            t0 = time.perf_counter()
            eng.generate_now(reqs)
            secs = time.perf_counter() - t0
            tokens = sum(len(r.tokens) for r in reqs)
            texts[key] = [r.text for r in reqs]
            tokens_of[key] = [r.tokens for r in reqs]
            return {"requests": len(reqs), "seconds": round(secs, 2), "output_tokens": tokens,
                    "tokens_per_s": round(tokens / secs, 1), "prefilled_tokens": eng.prefilled_tokens - before,
                    "prompt_tokens": sum(len(r.prompt_ids) for r in reqs)}

        out[key] = loaded(run)
        del model, eng
    same = sum(a == b for a, b in zip(texts["engine"], texts["engine_bfloat16"], strict=True))
    out["bfloat16_same_answers"] = f"{same}/{len(convs)}"
    agree = []  # leading tokens the bfloat16 answer shares with the float32 one
    for a, b in zip(tokens_of["engine"], tokens_of["engine_bfloat16"], strict=True):
        n = 0
        while n < min(len(a), len(b)) and a[n] == b[n]:
            n += 1
        agree.append(n)
    out["bfloat16_same_leading_tokens"] = round(statistics.mean(agree), 1)
    out["no_prefix_cache_same_answers"] = (
        f"{sum(a == b for a, b in zip(texts['engine'], texts['engine_no_prefix_cache'], strict=True))}/{len(convs)}")
    return out


def _pcts(lat: list[float]) -> dict[str, float]:
    lat = sorted(lat)
    q = statistics.quantiles(lat, n=100, method="inclusive") if len(lat) > 1 else [lat[0]] * 99
    return {"p50_s": round(q[49], 2), "p95_s": round(q[94], 2)}


def served(ws: Path, runs: dict[str, str], convs: list[list[dict[str, Any]]], names: list[str], max_tokens: int,
           extra: list[str], max_batch: int) -> dict[str, Any]:
    import openai
    from serve_helpers import Server

    args = ["--adapter", f"a={runs['a']}", "--adapter", f"b={runs['b']}", "--max-batch", str(max_batch),
            "--default-temperature", "0", *extra]
    with Server(ws, args) as server:
        async def run() -> dict[str, Any]:
            client = openai.AsyncOpenAI(base_url=server.url + "/v1", api_key="none", max_retries=0, timeout=900)
            try:
                await client.chat.completions.create(model="a", messages=convs[0], max_tokens=8)  # warm-up

                async def one(i: int) -> tuple[float, int]:
                    s = time.perf_counter()
                    c = await client.chat.completions.create(model=names[i % len(names)], messages=convs[i],
                                                             max_tokens=max_tokens, temperature=0)
                    return time.perf_counter() - s, c.usage.completion_tokens

                assert server.proc is not None
                cpu0 = _cpu_s(server.proc.pid)
                t0 = time.perf_counter()
                done = await asyncio.gather(*(one(i) for i in range(len(convs))))
                secs = time.perf_counter() - t0
                cpu = _cpu_s(server.proc.pid) - cpu0
            finally:
                await client.close()
            tokens = sum(t for _, t in done)
            return {"requests": len(convs), "seconds": round(secs, 2), "output_tokens": tokens,
                    "tokens_per_s": round(tokens / secs, 1), **_pcts([lat for lat, _ in done]),
                    "server_cpu_s": round(cpu, 1), "tokens_per_cpu_s": round(tokens / cpu, 1) if cpu else None}

        out = asyncio.run(run())
        import urllib.request

        with urllib.request.urlopen(server.url + "/health") as r:
            out["batches"] = json.loads(r.read())["batches"] - 1  # minus the warm-up
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--baseline-n", type=int, default=16)
    ap.add_argument("--max-batch", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=4,
                    help="traces on/off pairs in all, half of them off first (the ratio is their geometric mean)")
    ap.add_argument("--breakdown", action="store_true", help="Also run the engine in this process (see above).")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    from curator.cli.kit import configure_process

    configure_process()
    convs = prompts(args.n)
    results: dict[str, Any] = {"n": args.n, "max_tokens": args.max_tokens, "cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory() as tmp:
        ws = Path(tmp) / "ws"
        runs = make_workspace(ws)
        results["baseline"] = loaded(lambda: baseline(ws, runs, convs[: args.baseline_n], args.max_tokens))

        def run(names: list[str], extra: list[str]) -> dict[str, Any]:
            return loaded(lambda: served(ws, runs, convs, names, args.max_tokens, extra, args.max_batch))

        results["one_adapter"] = run(["a"], [])
        results["two_adapters"] = run(["a", "b"], [])
        results["two_adapters_per_adapter_batches"] = run(["a", "b"], ["--per-adapter-batches"])
        results["one_adapter_traces_off"] = run(["a"], ["--no-traces"])
        results["one_adapter_bfloat16"] = run(["a"], ["--dtype", "bfloat16"])
        # Traces on against off, a few more pairs, half of them with traces off first: on this machine the
        # second of two back-to-back runs is often faster (measured: 0.950 off first, 1.129 on first), an
        # order effect larger than the 5 % being measured, which balanced orders cancel.
        pairs = [(results["one_adapter"], results["one_adapter_traces_off"])]
        for i in range(1, max(1, args.repeat)):
            if i % 2:
                off_r = run(["a"], ["--no-traces"])
                on_r = run(["a"], [])
            else:
                on_r = run(["a"], [])
                off_r = run(["a"], ["--no-traces"])
            pairs.append((on_r, off_r))
        results["traces_pairs"] = [{"on_s": a["seconds"], "off_s": b["seconds"], "on_cpu_s": a["server_cpu_s"],
                                    "off_cpu_s": b["server_cpu_s"]} for a, b in pairs]
        if args.breakdown:
            results["in_process"] = in_process(ws, runs, convs, args.max_tokens, args.max_batch)
    b, one, two = results["baseline"], results["one_adapter"], results["two_adapters"]
    per = results["two_adapters_per_adapter_batches"]
    bf = results["one_adapter_bfloat16"]

    def cpu(r: dict[str, Any]) -> float:
        return float(r["server_cpu_s"]) or float("nan")

    results["ratios"] = {
        "served_vs_sequential_tokens_per_s": round(one["tokens_per_s"] / b["tokens_per_s"], 2),
        "bfloat16_served_vs_sequential_tokens_per_s": round(bf["tokens_per_s"] / b["tokens_per_s"], 2),
        "two_adapters_vs_one_wall": round(two["seconds"] / one["seconds"], 2),
        "per_adapter_vs_one_wall": round(per["seconds"] / one["seconds"], 2),
        "traces_on_vs_off_wall": round(statistics.geometric_mean(p["on_s"] / p["off_s"] for p in results["traces_pairs"]), 3),
        "two_adapters_vs_one_cpu": round(cpu(two) / cpu(one), 2),
        "per_adapter_vs_one_cpu": round(cpu(per) / cpu(one), 2),
        "traces_on_vs_off_cpu": round(statistics.geometric_mean(
            float(p["on_cpu_s"]) / float(p["off_cpu_s"]) for p in results["traces_pairs"] if float(p["off_cpu_s"]) > 0), 3),
    }
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"serve benchmark: SmolLM2-135M on {results['cpus']} CPUs, {args.n} concurrent requests, "
          f"max_tokens {args.max_tokens}, greedy")
    print(f"{'scenario':<36} {'wall s':>7} {'tokens':>7} {'tok/s':>7} {'p50 s':>6} {'p95 s':>6} {'batches':>7} "
          f"{'cpu s':>6} {'tok/cpu-s':>9} {'load avg':>11}")
    for key, label in (("baseline", f"sequential generate ({args.baseline_n} prompts)"),
                       ("one_adapter", "served, one adapter"), ("two_adapters", "served, two adapters (mixed)"),
                       ("two_adapters_per_adapter_batches", "served, two adapters (per adapter)"),
                       ("one_adapter_traces_off", "served, one adapter, traces off"),
                       ("one_adapter_bfloat16", "served, one adapter, --dtype bfloat16")):
        r = results[key]
        print(f"{label:<36} {r['seconds']:>7} {r['output_tokens']:>7} {r['tokens_per_s']:>7} {r['p50_s']:>6} "
              f"{r['p95_s']:>6} {r.get('batches', '-'):>7} {r.get('server_cpu_s', '-'):>6} "
              f"{r.get('tokens_per_cpu_s', '-'):>9} {r['load']:>11}")
    if "in_process" in results:
        ip = results["in_process"]
        for key, label in (("engine", "in process, float32 (as served)"),
                           ("engine_no_prefix_cache", "in process, no prefix cache"),
                           ("engine_bfloat16", "in process, bfloat16")):
            r = ip[key]
            print(f"{label:<36} {r['seconds']:>7} {r['output_tokens']:>7} {r['tokens_per_s']:>7} {'-':>6} {'-':>6} "
                  f"{'-':>7} {'-':>6} {'-':>9} {r['load']:>11}   prefilled {r['prefilled_tokens']} of "
                  f"{r['prompt_tokens']} prompt tokens")
        print(f"answers identical to float32's: bfloat16 {ip['bfloat16_same_answers']} (the first "
              f"{ip['bfloat16_same_leading_tokens']} tokens on average), without the prefix cache "
              f"{ip['no_prefix_cache_same_answers']}")
    r = results["ratios"]
    print(f"served / sequential tokens/s: {r['served_vs_sequential_tokens_per_s']}x (target >= 3x); "
          f"aggregate {one['tokens_per_s']} tokens/s (target >= 150); with --dtype bfloat16 "
          f"{r['bfloat16_served_vs_sequential_tokens_per_s']}x, {bf['tokens_per_s']} tokens/s")
    print(f"two adapters / one adapter wall: {r['two_adapters_vs_one_wall']}x mixed, "
          f"{r['per_adapter_vs_one_wall']}x per-adapter batches (target <= 1.3x); server CPU time: "
          f"{r['two_adapters_vs_one_cpu']}x mixed, {r['per_adapter_vs_one_cpu']}x per-adapter")
    each = ", ".join(f"{p['on_s'] / p['off_s']:.3f}" for p in results["traces_pairs"])
    print(f"traces on / off wall: {r['traces_on_vs_off_wall']}x, geometric mean of {len(results['traces_pairs'])} pairs "
          f"({each}) (target <= 1.05x); server CPU time: {r['traces_on_vs_off_cpu']}x")


if __name__ == "__main__":
    main()
