"""Ingest throughput: `curator ingest` against a raw DuckDB `read_json` of the same file.

    .venv/bin/python benchmarks/ingest.py [--n 100000] [--json]

Both sides start from an empty database file and end with the rows in a table.  curator also
validates, normalises, hashes, deduplicates, assigns splits and records provenance, all in one
transaction.  Target: ratio <= 3.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import timed  # noqa: E402

WORDS = ("account billing instance restart storage bucket permission network timeout database connection "
         "password reset invoice region quota limit error deploy function cold start dns record key rotate "
         "backup restore console upgrade plan support ticket the a to my is not when after how why can").split()


def make_file(path: Path, n: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    with path.open("w") as f:
        for i in range(n):
            q = " ".join(rng.choices(WORDS, k=rng.randint(8, 30))) + f" (case {i})?"
            a = " ".join(rng.choices(WORDS, k=rng.randint(20, 80))) + "."
            msgs = [{"role": "system", "content": "You are a support assistant."},
                    {"role": "user", "content": q}, {"role": "assistant", "content": a}]
            f.write(json.dumps({"messages": msgs}) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    import duckdb

    from curator.ingest import ingest_file
    from curator.workspace import Workspace

    with tempfile.TemporaryDirectory() as tmp:
        tmpd = Path(tmp)
        data = tmpd / "chat.jsonl"
        make_file(data, args.n)
        size_mb = data.stat().st_size / 1e6

        def raw() -> int:
            con = duckdb.connect(str(tmpd / "raw.duckdb"))
            con.execute(f"CREATE TABLE t AS SELECT * FROM read_json('{data}', format='newline_delimited')")
            n = con.execute("SELECT count(*) FROM t").fetchall()[0][0]
            con.close()
            return n

        def cur() -> int:
            return ingest_file(Workspace(tmpd / "ws"), data).added

        t_raw, n_raw = timed(raw)
        t_cur, n_cur = timed(cur)
        t_again, n_again = timed(cur)
    result = {
        "examples": args.n, "file_mb": round(size_mb, 1),
        "duckdb_read_json_s": round(t_raw, 2), "curator_ingest_s": round(t_cur, 2),
        "ratio": round(t_cur / t_raw, 2), "target_ratio": 3.0,
        "rows": [n_raw, n_cur], "second_ingest_s": round(t_again, 2), "second_ingest_added": n_again,
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"{args.n} chat examples, {size_mb:.1f} MB JSONL")
    print(f"  raw DuckDB read_json into a table : {t_raw:6.2f} s  ({n_raw} rows)")
    print(f"  curator ingest                    : {t_cur:6.2f} s  ({n_cur} added)")
    print(f"  ratio curator / raw               : {t_cur / t_raw:6.2f}  (target <= 3.0: "
          f"{'PASS' if t_cur / t_raw <= 3 else 'FAIL'})")
    print(f"  second ingest of the same file    : {t_again:6.2f} s  ({n_again} added)")


if __name__ == "__main__":
    main()
