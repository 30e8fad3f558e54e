"""Evaluation generation: continuous batching against ``model.generate`` batches, on the demo's test set.

    .venv/bin/python benchmarks/eval_speed.py [--n 30] [--max-new-tokens 160] [--batch 32] [--json]

SmolLM2-135M-Instruct answers the ``n`` prompts of ``seeds/support/test.jsonl`` greedily, as ``curator eval``
and every round of ``curator demo`` do (the demo: 30 prompts, 160 new tokens, batch 32), twice in the same run:

* baseline: :func:`curator.models.generate`, length-sorted, left-padded batches of ``model.generate``
  (``TransformersEngine(continuous=False)``), what ``curator eval`` used before;
* continuous: ``TransformersEngine``'s default, the serving engine's continuous batching on the calling thread
  (prompts that share a beginning prefill it once).

Two prompt sets: ``zero-shot`` (the test prompts as they are) and ``few-shot`` (the same 2 train examples of
``seeds.jsonl`` before each question, as the demo's few-shot baseline does: about 430 prompt tokens).
Prints the seconds and output tokens per second of each, the ratio of the seconds, and how many answers
are identical (greedy decoding on different batch shapes may differ in rare near-ties).  The model is
loaded and warmed before any timing.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import ROOT, timed  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=30)
    ap.add_argument("--max-new-tokens", type=int, default=160)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--model", default="local:smollm2-135m-instruct")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    from curator.llm.engine import TransformersEngine
    from curator.llm.providers import GenParams
    from curator.models import render_chat

    def read(name: str) -> list[list[dict[str, str]]]:
        text = (ROOT / "seeds" / "support" / name).read_text()
        return [json.loads(line)["messages"] for line in text.splitlines() if line.strip()]

    convs = [m[:-1] for m in read("test.jsonl")][: args.n]
    shots = [turn for m in read("seeds.jsonl")[:2] for turn in m[1:]]  # two user/assistant pairs
    few = [[c[0], *shots, *c[1:]] for c in convs]
    params = GenParams(max_tokens=args.max_new_tokens, temperature=0.0, seed=0)
    base = TransformersEngine(args.model, batch_size=args.batch, continuous=False)
    cont = TransformersEngine(args.model, batch_size=args.batch)
    cont._loaded = base.load()  # one model in memory for both
    base.generate(convs[:2], GenParams(max_tokens=4))  # warm-up
    cont.generate(convs[:2], GenParams(max_tokens=4))

    result: dict[str, Any] = {"n": len(convs), "max_new_tokens": args.max_new_tokens, "batch": args.batch}
    for prompts_name, prompts in (("zero-shot", convs), ("few-shot", few)):
        tok = cont.load()[1]
        lengths = [len(tok(render_chat(tok, c, add_generation_prompt=True), add_special_tokens=False)["input_ids"])
                   for c in prompts]
        part: dict[str, Any] = {"prompt_tokens": sum(lengths) // len(lengths)}
        outs = {}
        for name, engine in (("generate", base), ("continuous", cont)):
            secs, out = timed(lambda e=engine, p=prompts: e.generate(p, params))
            tokens = sum(o.output_tokens for o in out)
            outs[name] = out
            part[name] = {"seconds": round(secs, 2), "output_tokens": tokens, "tokens_per_s": round(tokens / secs, 1)}
        part["speedup"] = round(part["generate"]["seconds"] / part["continuous"]["seconds"], 2)
        part["identical_answers"] = sum(a.text == b.text for a, b in zip(outs["generate"], outs["continuous"],
                                                                         strict=True))
        result[prompts_name] = part
    if args.json:
        print(json.dumps(result))
        return
    print(f"eval generation: {len(convs)} test prompts of seeds/support, {args.max_new_tokens} new tokens at most, "
          f"batch {args.batch}, {args.model}")
    for prompts_name in ("zero-shot", "few-shot"):
        part = result[prompts_name]
        print(f"{prompts_name} (about {part['prompt_tokens']} prompt tokens each):")
        for name in ("generate", "continuous"):
            r = part[name]
            print(f"  {name:<11} {r['seconds']:7.1f} s  {r['output_tokens']:5d} tokens  {r['tokens_per_s']:6.1f} tokens/s")
        print(f"  continuous is {part['speedup']:.2f}x faster than generate; identical answers "
              f"{part['identical_answers']} of {len(convs)}")


if __name__ == "__main__":
    main()
