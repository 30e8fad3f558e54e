"""``curator stats`` on 10k examples: the first call (tokenizes everything) against the second (cached).

    .venv/bin/python benchmarks/stats_cache.py [--n 10000]

The examples are Stanford Alpaca's 5,000 (``../shared/data``), with numbered copies up to N.  Token counts are kept per
(example id, tokenizer) in the workspace, so the second call on an unchanged workspace only reads
them back.  Target: the second call under 1 s for 10k examples.  Prints both times and their ratio.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import SHARED_DATA  # noqa: E402

from curator.data.ingest import ingest_file  # noqa: E402
from curator.stats import workspace_stats  # noqa: E402
from curator.workspace import Workspace  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10_000)
    args = ap.parse_args()
    src = next((SHARED_DATA / "instruct" / "stanford_alpaca").glob("*.json"))
    base = json.loads(src.read_text())
    # The file holds 5,000 records: past that, each round of copies gets a numbered instruction (new ids).
    rows = [dict(r, instruction=r["instruction"] + (f" (copy {i // len(base)})" if i >= len(base) else ""))
            for i, r in ((i, base[i % len(base)]) for i in range(args.n))]
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "alpaca.json"
        data.write_text(json.dumps(rows))
        ws = Workspace(Path(tmp) / "ws")
        ingest_file(ws, data)
        t0 = time.perf_counter()
        first = workspace_stats(ws)
        t1 = time.perf_counter()
        second = workspace_stats(ws)
        t2 = time.perf_counter()
    assert first["tokens"] == second["tokens"]
    n = sum(t["n"] for t in first["tokens"].values())
    cold, warm = t1 - t0, t2 - t1
    print(f"examples: {n} (Stanford Alpaca records and numbered copies)")
    print(f"first call (tokenizes all): {cold:.2f} s")
    print(f"second call (cached counts): {warm:.3f} s   target < 1 s: {'PASS' if warm < 1 else 'FAIL'}")
    print(f"ratio first/second: {cold / warm:.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
