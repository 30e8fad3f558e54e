"""Scale: the near-duplicate and semantic paths on 1M short examples (time and peak memory).

Usage::

    .venv/bin/python benchmarks/dedup_scale.py [--n 1000000] [--stages gen,near_core,ingest,dedup_ws,sem_store,sem_search,embed_rate] [--json]

Data: ``n`` short single-turn examples, each a BANKING77 utterance followed by an Alpaca
instruction (about 25 words; distinct combinations), the answer its BANKING77 intent label;
3 % are planted exact copies (case and punctuation changed) and 5 % near copies (one word
dropped or one typo). Each stage runs in its own process, so its peak RSS is its own:

* ``near_core``  -- the pure cores on the texts: ``exact_pairs`` + ``near_pairs`` (defaults);
* ``ingest``     -- ``curator ingest`` of the JSONL file into a fresh workspace;
* ``dedup_ws``   -- ``dedup(ws, ["exact", "near"], dry_run=True)``: load, fold, hash, MinHash LSH,
  verify, union-find, keeper rule (what ``curator dedup --exact --near --dry-run`` does);
* ``sem_store``  -- writing ``n`` 384-d vectors to ``embeddings`` through Arrow and reading them back
  with ``load_embeddings`` (vectors are synthetic: encoding 1M texts on 2 CPU cores takes ~45+ min,
  see ``embed_rate``);
* ``sem_search`` -- ``semantic_pairs`` over ``n`` vectors at cosine 0.95.
  Vectors: 2,000 real embeddings of the texts, each repeated with Gaussian jitter (cosine ~0.9 to
  its source, so mostly not duplicates), plus 1 % planted copies with tiny jitter (cosine > 0.99);
  the IVF index is forced at every size so the sizes compare (exact search is for <= 50k);
* ``embed_rate`` -- embedding throughput on 3,000 of the texts, extrapolated to ``n``.

Baseline: the same stages at ``--baseline-n`` (default 100,000) measured in the same run; the
time ratio against ``n / baseline_n`` shows how far from linear each stage scales. Target:
every stage finishes at ``n`` without running out of memory. The machine is shared with other
engineers: times are indicative.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from _common import SHARED_DATA  # noqa: E402

STAGES = ("gen", "near_core", "ingest", "dedup_ws", "sem_store", "sem_search", "embed_rate")


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _generate(path: Path, n: int, seed: int = 0) -> dict:
    import csv

    rng = random.Random(seed)
    bank = list(csv.DictReader((SHARED_DATA / "customer_support" / "banking77" / "train.csv").open(encoding="utf-8")))
    alpaca = [r["instruction"] for r in
              json.loads((SHARED_DATA / "instruct" / "stanford_alpaca" / "alpaca_5000.json").read_text())]
    n_exact, n_near = int(n * 0.03), int(n * 0.05)
    n_base = n - n_exact - n_near
    seen: set[tuple[int, int]] = set()
    base: list[tuple[str, str]] = []
    while len(base) < n_base:
        i, j = rng.randrange(len(bank)), rng.randrange(len(alpaca))
        if (i, j) in seen:
            continue
        seen.add((i, j))
        base.append((" ".join(bank[i]["text"].split()) + " " + alpaca[j], bank[i]["category"]))
    rows = list(base)
    for _ in range(n_exact):
        t, a = base[rng.randrange(n_base)]
        rows.append((t.upper().replace("?", "").replace(",", " ,"), a))
    for _ in range(n_near):
        t, a = base[rng.randrange(n_base)]
        w = t.split()
        k = rng.randrange(len(w))
        if rng.random() < 0.5 and len(w) > 3:
            del w[k]
        else:
            w[k] = w[k][::-1] if len(w[k]) > 2 else w[k] + "x"
        rows.append((" ".join(w), a))
    rng.shuffle(rows)
    with path.open("w", encoding="utf-8") as f:
        for t, a in rows:
            f.write(json.dumps({"messages": [{"role": "user", "content": t}, {"role": "assistant", "content": a}]}) + "\n")
    return {"rows": len(rows), "planted_exact": n_exact, "planted_near": n_near, "mb": round(path.stat().st_size / 1e6)}


def _texts(path: Path) -> list[str]:
    out = []
    with path.open(encoding="utf-8") as f:
        for line in f:
            m = json.loads(line)["messages"]
            out.append(m[0]["content"] + "\n" + m[1]["content"])
    return out


def _vectors(texts: list[str], n: int, seed: int = 0):
    import numpy as np

    from curator.embed import encode

    rng = np.random.default_rng(seed)
    m = min(2_000, len(texts))
    real = encode(texts[:m])
    d = real.shape[1]
    x = np.empty((n, d), dtype=np.float32)
    for lo in range(0, n, 100_000):  # in chunks: float64 noise for 1M x 384 would be 3 GB
        hi = min(n, lo + 100_000)
        x[lo:hi] = real[rng.integers(0, m, size=hi - lo)]
        x[lo:hi] += rng.standard_normal(size=(hi - lo, d), dtype=np.float32) * np.float32(0.022)
    planted = rng.choice(n, size=n // 100, replace=False)
    x[planted] = x[rng.integers(0, n, size=planted.size)]
    x[planted] += rng.standard_normal(size=(planted.size, d), dtype=np.float32) * np.float32(0.002)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x, int(planted.size)


def run_stage(stage: str, work: Path, n: int) -> dict:
    """One stage in this process; returns its measurements."""
    data = work / f"data_{n}.jsonl"
    t0 = time.perf_counter()
    out: dict = {}
    if stage == "gen":
        out = _generate(data, n)
    elif stage == "near_core":
        from curator.quality.dedup.exact import exact_pairs
        from curator.quality.dedup.near import near_pairs
        from curator.quality.fold import fold

        texts = _texts(data)
        t0 = time.perf_counter()
        folded = [fold(t) for t in texts]
        t_fold = time.perf_counter() - t0
        ep, _ = exact_pairs(folded)
        t_exact = time.perf_counter() - t0 - t_fold
        np_, _ = near_pairs(folded)
        out = {"fold_s": round(t_fold, 1), "exact_s": round(t_exact, 1), "exact_pairs": len(ep), "near_pairs": len(np_)}
    elif stage == "ingest":
        import shutil

        from curator.data.ingest import ingest_file
        from curator.workspace import Workspace

        shutil.rmtree(work / f"ws_{n}", ignore_errors=True)
        t0 = time.perf_counter()
        r = ingest_file(Workspace(work / f"ws_{n}"), data)
        out = {"added": r.added}
    elif stage == "dedup_ws":
        from curator.quality.dedup import dedup
        from curator.workspace import Workspace

        r = dedup(Workspace(work / f"ws_{n}"), ["exact", "near"], dry_run=True)
        out = {m.method: {"pairs": m.pairs, "excluded": m.excluded, "s": m.seconds} for m in r.methods}
    elif stage == "sem_store":
        import numpy as np

        from curator.embed import load_embeddings, store_embeddings
        from curator.workspace import Workspace

        ws = Workspace(work / f"ws_{n}")
        with ws.connect() as con:
            ids = [r[0] for r in con.execute("SELECT id FROM examples").fetchall()]
            con.execute("DELETE FROM embeddings")
        rng = np.random.default_rng(0)
        vecs = rng.standard_normal(size=(len(ids), 384), dtype=np.float32)
        t0 = time.perf_counter()
        store_embeddings(ws, ids, vecs)
        del vecs
        t_write = time.perf_counter() - t0
        x = load_embeddings(ws, ids)
        out = {"write_s": round(t_write, 1), "read_s": round(time.perf_counter() - t0 - t_write, 1), "shape": list(x.shape)}
    elif stage == "sem_search":
        from curator.quality.dedup.semantic import EXACT_MAX, semantic_pairs

        texts = _texts(data)
        x, planted = _vectors(texts, n)
        del texts
        t0 = time.perf_counter()
        pairs, _ = semantic_pairs(x, 0.95, exact_max=0)
        out = {"pairs": len(pairs), "planted": planted, "index": "IVF", "exact_max_default": EXACT_MAX}
    elif stage == "embed_rate":
        from curator.embed import encode, load_embedder

        texts = _texts(data)[:3000]
        load_embedder()
        encode(texts[:64])
        t0 = time.perf_counter()
        encode(texts)
        rate = len(texts) / (time.perf_counter() - t0)
        out = {"texts_per_s": round(rate, 1), "extrapolated_min": round(n / rate / 60, 1)}
    out["seconds"] = round(time.perf_counter() - t0, 1)
    out["peak_rss_mb"] = round(_peak_mb())
    return out


def _spawn(stage: str, work: Path, n: int) -> dict:
    p = subprocess.run([sys.executable, __file__, "--stage", stage, "--work", str(work), "--n", str(n)],
                       capture_output=True, text=True, timeout=1800)
    if p.returncode != 0:
        return {"error": (p.stderr or p.stdout).strip().splitlines()[-1:] or ["failed"], "rc": p.returncode}
    return json.loads(p.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--baseline-n", type=int, default=100_000)
    ap.add_argument("--stages", default=",".join(STAGES))
    ap.add_argument("--stage", help=argparse.SUPPRESS)
    ap.add_argument("--work", type=Path, help="working folder (default: a new temporary one)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    if args.stage:
        print(json.dumps(run_stage(args.stage, args.work, args.n)))
        return 0
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    stages = [s for s in args.stages.split(",") if s]
    results: dict = {"n": args.n, "baseline_n": args.baseline_n, "work": str(work), "cpus": os.cpu_count()}
    ok = True
    for size in dict.fromkeys([args.baseline_n, args.n]):
        results[str(size)] = {}
        for stage in stages:
            r = _spawn(stage, work, size)
            results[str(size)][stage] = r
            ok &= "error" not in r
            if not args.json:
                print(f"n={size:>9,}  {stage:10s}  {json.dumps(r)}", flush=True)
    if args.n != args.baseline_n:
        factor = args.n / args.baseline_n
        ratios = {}
        for stage in stages:
            a, b = results[str(args.baseline_n)][stage], results[str(args.n)][stage]
            if "seconds" in a and "seconds" in b and a["seconds"] > 0:
                ratios[stage] = round(b["seconds"] / a["seconds"], 1)
        results["time_ratio"] = ratios
        if not args.json:
            print(f"time ratio n={args.n:,} / baseline n={args.baseline_n:,} (linear would be {factor:.0f}x): "
                  + ", ".join(f"{s} {r}x" for s, r in ratios.items()))
    results["pass"] = ok
    if args.json:
        print(json.dumps(results))
    else:
        print("PASS (every stage finished)" if ok else "FAIL (a stage broke; see its error)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
