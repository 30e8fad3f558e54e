"""Ingest throughput: `curator ingest` against a raw DuckDB `read_json` of the same file.

    .venv/bin/python benchmarks/ingest.py [--n 100000] [--repeat 3] [--json]

Both sides start from an empty database file and end with the rows in a table.  curator also
validates, normalises, hashes, deduplicates, assigns splits and records provenance, all in one
transaction.  Each side first runs once on a 1,000-row file (imports, DuckDB's JSON reader, worker
start-up), then ``--repeat`` times on the full file, each time into a new database; the medians are
compared.  Target: ratio <= 3.
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
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    import duckdb

    from curator.data.ingest import ingest_file
    from curator.workspace import Workspace

    with tempfile.TemporaryDirectory() as tmp:
        tmpd = Path(tmp)
        data = tmpd / "chat.jsonl"
        make_file(data, args.n)
        size_mb = data.stat().st_size / 1e6

        small = tmpd / "small.jsonl"
        make_file(small, 1000, seed=1)
        counter = iter(range(1000))

        def raw(path: Path = data) -> int:
            con = duckdb.connect(str(tmpd / f"raw{next(counter)}.duckdb"))
            con.execute(f"CREATE TABLE t AS SELECT * FROM read_json('{path}', format='newline_delimited')")
            n = con.execute("SELECT count(*) FROM t").fetchall()[0][0]
            con.close()
            return n

        def cur(path: Path = data, ws: str | None = None) -> int:
            return ingest_file(Workspace(tmpd / (ws or f"ws{next(counter)}")), path).added

        import statistics

        raw(small)
        cur(small)
        raw_runs = [timed(raw) for _ in range(args.repeat)]
        cur_runs = [timed(lambda: cur(ws="ws")) if i == 0 else timed(cur) for i in range(args.repeat)]
        t_raw, n_raw = statistics.median(r[0] for r in raw_runs), raw_runs[0][1]
        t_cur, n_cur = statistics.median(r[0] for r in cur_runs), cur_runs[0][1]
        t_again, n_again = timed(lambda: cur(ws="ws"))
    result = {
        "examples": args.n, "file_mb": round(size_mb, 1),
        "duckdb_read_json_s": round(t_raw, 2), "curator_ingest_s": round(t_cur, 2),
        "ratio": round(t_cur / t_raw, 2), "target_ratio": 3.0,
        "raw_runs_s": [round(r[0], 2) for r in raw_runs], "curator_runs_s": [round(r[0], 2) for r in cur_runs],
        "rows": [n_raw, n_cur], "second_ingest_s": round(t_again, 2), "second_ingest_added": n_again,
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"{args.n} chat examples, {size_mb:.1f} MB JSONL")
    runs = lambda xs: ", ".join(f"{r[0]:.2f}" for r in xs)  # noqa: E731
    print(f"  raw DuckDB read_json into a table : {t_raw:6.2f} s  median of [{runs(raw_runs)}]  ({n_raw} rows)")
    print(f"  curator ingest                    : {t_cur:6.2f} s  median of [{runs(cur_runs)}]  ({n_cur} added)")
    print(f"  ratio curator / raw               : {t_cur / t_raw:6.2f}  (target <= 3.0: "
          f"{'PASS' if t_cur / t_raw <= 3 else 'FAIL'})")
    print(f"  second ingest of the same file    : {t_again:6.2f} s  ({n_again} added)")


if __name__ == "__main__":
    main()
