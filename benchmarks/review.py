"""Review app pagination: pages of a 100k-example workspace through ``curator review``'s HTTP API, against
the same DuckDB queries run directly on an open connection.

    .venv/bin/python benchmarks/review.py [--n 100000] [--repeat 15] [--json]

The workspace is built in bulk (one Arrow table through :func:`curator.data.ingest.store_examples`):
import, synthetic (three generation jobs) and seed examples over three tasks.  ``curator review`` then
runs as its own process on 127.0.0.1 and each case is fetched ``--repeat`` times over one keep-alive HTTP
connection (after a warm-up); the baseline runs the page query and its count (what the API runs, from
:func:`curator.review.store.page_query`) on a connection kept open.  The API side also opens the workspace
for the request, looks up the page's review decisions, parses the messages and writes the JSON.
Medians are compared.  Targets: ratio <= 3 and < 200 ms per page.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import timed  # noqa: E402

WORDS = ("account billing instance restart storage bucket permission network timeout database connection "
         "password reset invoice region quota limit error deploy function cold start dns record key rotate "
         "backup restore console upgrade plan support ticket the a to my is not when after how why can").split()
LIMIT = 50
CASES = {
    "page 1": ({}, 0),
    "page 500": ({}, 499 * LIMIT),
    "filtered (synthetic, job-2, train, active), page 20": (
        {"origin": "synthetic", "job": "job-2", "split": "train", "status": "active"}, 19 * LIMIT),
}


def build(ws_path: Path, n: int, seed: int = 0) -> float:
    """A workspace of ``n`` examples, inserted as one Arrow table; returns the seconds it took."""
    from curator.data.ingest import Columns, store_examples
    from curator.records import example_id
    from curator.workspace import Workspace

    rng = random.Random(seed)
    ws = Workspace(ws_path)
    cols = Columns()
    t0 = time.perf_counter()
    for i in range(n):
        q = " ".join(rng.choices(WORDS, k=rng.randint(8, 30))) + f" (case {i})?"
        a = " ".join(rng.choices(WORDS, k=rng.randint(20, 80))) + "."
        msgs = [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
        r = rng.random()
        origin, meta = ("import", {"source": {"path": "bench.jsonl", "line": i + 1}}) if r < 0.6 else (
            ("synthetic", {"teacher": "openai:gpt-x", "job": f"job-{i % 3}"}) if r < 0.9 else ("seed", {}))
        cols.append(example_id(msgs), msgs, rng.choice(("support", "billing", "qa")), origin, "bench.jsonl", None,
                    meta, None)
    with ws.transaction() as con:
        store_examples(con, ws, cols)
    return time.perf_counter() - t0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=15)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    from urllib.parse import urlencode

    from curator.review.store import ExampleFilter, count_query, page_rows
    from curator.workspace import Workspace

    with tempfile.TemporaryDirectory() as tmp:
        ws_path = Path(tmp) / "ws"
        built_s = build(ws_path, args.n)
        port = _free_port()
        proc = subprocess.Popen([sys.executable, "-m", "curator", "--workspace", str(ws_path), "review", "--port",
                                 str(port), "--reviewer", "bench"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                env={**os.environ})
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                    conn.request("GET", "/health")
                    conn.getresponse().read()
                    break
                except OSError:
                    if time.monotonic() > deadline or proc.poll() is not None:
                        raise SystemExit("curator review did not start") from None
                    time.sleep(0.2)

            results = {}
            for name, (filters, offset) in CASES.items():
                path = "/api/examples?" + urlencode({**filters, "limit": LIMIT, "offset": offset})

                def api(path: str = path) -> dict[str, object]:
                    conn.request("GET", path)
                    resp = conn.getresponse()
                    body = resp.read()
                    assert resp.status == 200, body[:300]
                    return json.loads(body)  # type: ignore[no-any-return]

                page = api()
                api_times = [timed(api)[0] for _ in range(args.repeat)]

                f = ExampleFilter(**filters)
                ws = Workspace(ws_path)
                with ws.connect(read_only=True) as con:
                    csql, cparams = count_query(con, f)

                    def direct(f: ExampleFilter = f, offset: int = offset, csql: str = csql,
                               cparams: list[object] = cparams) -> tuple[list[tuple[object, ...]], int]:
                        rows = page_rows(con, f, LIMIT, offset)
                        total = con.execute(csql, cparams).fetchall()[0][0]
                        return rows, total

                    rows, total = direct()
                    direct_times = [timed(direct)[0] for _ in range(args.repeat)]
                assert [r[0] for r in rows] == [e["id"] for e in page["examples"]] and total == page["total"]  # type: ignore[index,union-attr]
                a_ms, d_ms = statistics.median(api_times) * 1000, statistics.median(direct_times) * 1000
                results[name] = {"api_ms": round(a_ms, 1), "direct_ms": round(d_ms, 1), "ratio": round(a_ms / d_ms, 2),
                                 "rows": len(rows), "total": int(total)}
            conn.close()
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(30)

    ok = all(r["ratio"] <= 3 and r["api_ms"] < 200 for r in results.values())
    if args.json:
        print(json.dumps({"n": args.n, "build_s": round(built_s, 2), "cases": results, "ok": ok}, indent=2))
        return
    print(f"review pagination: {args.n:,} examples (built in {built_s:.1f} s), {LIMIT} per page, "
          f"median of {args.repeat}, API over HTTP vs the same query on an open DuckDB connection")
    for name, r in results.items():
        print(f"  {name:<52} API {r['api_ms']:7.1f} ms   direct {r['direct_ms']:6.1f} ms   ratio {r['ratio']:5.2f}x"
              f"   ({r['rows']} of {r['total']:,})")
    print("targets: ratio <= 3 and < 200 ms per page: " + ("met" if ok else "NOT met"))


if __name__ == "__main__":
    main()
