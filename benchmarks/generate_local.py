"""Local teacher throughput: SmolLM2-135M generating from the bundled seeds, batched vs one at a time.

    .venv/bin/python benchmarks/generate_local.py [--n 8] [--max-tokens 160] [--batch 8] [--json]

Seeds mode on seeds/support (seeds.jsonl as origin seed, test.jsonl pinned to test), the same
requests twice, each in a fresh workspace: once with concurrency = batch size (requests are
gathered into batched `generate` calls), once with concurrency 1 (the baseline).  Reports teacher
replies per minute (repair requests included), output tokens per second, and accepted examples per
minute, with the filters' verdicts on what SmolLM2 wrote.  Target: batched >= 2x the baseline in
output tokens per second.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import ROOT, timed  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--max-tokens", type=int, default=160)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--k", type=int, default=2)
    ap.add_argument("--skip-sequential", action="store_true", help="Only the batched run (survival numbers).")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    from curator.data.ingest import ingest_file
    from curator.synth import GenParams, generate
    from curator.workspace import Workspace

    def run(tmp: str, name: str, concurrency: int) -> dict[str, Any]:
        ws = Workspace(Path(tmp) / name)
        ingest_file(ws, ROOT / "seeds" / "support" / "seeds.jsonl", origin="seed", task="support")
        ingest_file(ws, ROOT / "seeds" / "support" / "test.jsonl", split="test", task="support")
        secs, rep = timed(lambda: generate(ws, teacher="local:smollm2-135m-instruct", task="support", n=args.n,
                                           k=args.k, concurrency=concurrency, progress=False,
                                           params=GenParams(max_tokens=args.max_tokens, temperature=0.7)))
        return {"seconds": round(secs, 1), "replies": rep.made, "output_tokens": rep.output_tokens,
                "replies_per_min": round(rep.made / secs * 60, 2), "tokens_per_s": round(rep.output_tokens / secs, 2),
                "accepted": rep.accepted, "accepted_per_min": round(rep.accepted / secs * 60, 2),
                "rejected": rep.rejected}

    from curator.models import load_model

    load_model("local:smollm2-135m-instruct")  # prepare (convert once) outside the timings
    with tempfile.TemporaryDirectory() as tmp:
        batched = run(tmp, "batched", args.batch)
        seq = None if args.skip_sequential else run(tmp, "sequential", 1)
    ratio = None if seq is None else batched["tokens_per_s"] / max(seq["tokens_per_s"], 1e-9)
    ok = ratio is not None and ratio >= 2
    result = {"n": args.n, "max_tokens": args.max_tokens, "batch": args.batch, "batched": batched,
              "one_at_a_time": seq, "speedup_tokens_per_s": None if ratio is None else round(ratio, 2),
              "target": ">= 2x", "pass": ok}
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"SmolLM2-135M teacher, seeds mode on seeds/support, {args.n} requests, max {args.max_tokens} tokens")
    rows = [("batched", batched)] + ([("one at a time", seq)] if seq else [])
    for label, r in rows:
        print(f"  {label:>13}: {r['seconds']:7.1f} s, {r['replies']} replies ({r['replies_per_min']}/min), "
              f"{r['tokens_per_s']} output tokens/s, {r['accepted']} accepted ({r['accepted_per_min']}/min)")
    for label, r in rows:
        print(f"  {label} rejections: " + (", ".join(f"{k} {v}" for k, v in r["rejected"].items()) or "none"))
    if ratio is not None:
        print(f"  batched / one at a time: {ratio:.2f}x output tokens per second (target >= 2x)  "
              f"{'PASS' if ok else 'FAIL'}")


if __name__ == "__main__":
    main()
