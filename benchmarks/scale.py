"""Scale: the data pipeline on N short chat examples, each stage's time and peak memory.

Usage::

    .venv/bin/python benchmarks/scale.py --n 100000                  # about two minutes (CI, `make bench`)
    .venv/bin/python benchmarks/scale.py --n 1000000                 # the 1M table of docs/scaling.md
    .venv/bin/python benchmarks/scale.py --n 10000000 --no-semantic  # 10M: ingest to export, no vectors
    .venv/bin/python benchmarks/scale.py --n 1000000 --stages recall # IVF-vs-flat recall only

Data (``gen``, streamed to a JSON Lines file in constant memory): ``n`` single-turn examples, the
user turn a BANKING77 utterance followed by an Alpaca instruction (about 25 words; every base row a
distinct pair, drawn by a bijection of the ~50M pairs), the answer the utterance's intent label;
3 % of the rows are exact copies of an earlier row (upper-cased, punctuation moved: equal after the
fold) and 5 % near copies (one word dropped or reversed).

Stages, each in its own process (so its peak RSS is its own), on one workspace:

* ``ingest``   -- ``ingest_file`` into a fresh workspace (``curator ingest``);
* ``dedup``    -- ``dedup(ws, ["exact", "near"])``, applied (``curator dedup --exact --near``);
* ``vectors``  -- set-up, not a curator stage: synthetic 384-d vectors for the active examples written
  to ``embeddings`` as the default embedder's (embedding 1M texts on 2 cores takes ~45 min). Each is
  one of 2,048 real all-MiniLM-L6-v2 embeddings (of the generator's first base texts) plus Gaussian
  noise, cosine ~0.85 to its source (two rows of one source ~0.72: not duplicates); 1 % of the rows
  are then replaced by a noisy copy of another row at a cosine drawn uniformly from [0.93, 0.99], so
  about two thirds of those planted pairs are above the 0.95 threshold and many sit close to it;
* ``semantic`` -- ``dedup(ws, ["semantic"])``, applied, on those cached vectors (``curator dedup
  --semantic``): the index is the one ``semantic_pairs`` chooses for that many vectors (flat up to
  ``EXACT_MAX``, IVF above it);
* ``leakage``  -- ``fix_leakage_until_clean`` of ``find_leakage`` (exact, n-gram, plus semantic with vectors);
* ``snapshot`` -- ``create_snapshot`` (its leakage gate included);
* ``export``   -- ``export_snapshot(..., "openai")`` (``curator snapshot export --format openai``);
* ``recall``   -- not on the workspace: ``n`` vectors made as above, the IVF index that
  ``semantic_pairs`` builds above ``EXACT_MAX`` (``semantic_index(x, exact=False)``: the same nlist,
  nprobe and training sample) against the flat index, on 4,000 query rows (2,000 of the planted copies,
  2,000 uniform): recall of the (query, row) pairs at cosine >= 0.95 (what dedup uses) and of the
  top-10 neighbours at >= 0.95, and the time of each (build, the 4,000 queries, and extrapolated
  to all ``n`` rows as queries, which is what an all-pairs dedup asks).

Baseline: the same stages at ``--baseline-n`` (default ``n / 10``) in the same run; the table prints
each stage's time and peak-RSS ratio against it (linear would be 10x). The recall stage's baseline
is the flat index. The machine is shared: the load average is printed at the start and the end.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from _common import SHARED_DATA  # noqa: E402

PIPELINE = ("gen", "ingest", "dedup", "vectors", "semantic", "leakage", "snapshot", "export")
STAGES = (*PIPELINE, "recall")
#: Stages that only exist for the semantic path (left out by ``--no-semantic``).
SEMANTIC_STAGES = ("vectors", "semantic", "recall")
EXACT_SHARE, NEAR_SHARE = 0.03, 0.05
REAL_VECTORS = 2048
SOURCE_COS = 0.85
PLANTED_SHARE = 0.01
PLANTED_COS = (0.93, 0.99)
RECALL_QUERIES = 4000
TOP_K = 10
_CHUNK = 100_000


def _peaks_mb() -> tuple[float, float]:
    """Peak RSS of this process and of its largest child (ingest's converter workers), in MB."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return own, child


def loadavg() -> str:
    try:
        return Path("/proc/loadavg").read_text().strip()
    except OSError:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())


# ----------------------------------------------------------------------------- data


def _sources() -> tuple[list[str], list[str], list[str]]:
    with (SHARED_DATA / "customer_support" / "banking77" / "train.csv").open(encoding="utf-8", newline="") as f:
        bank = list(csv.DictReader(f))
    alpaca = json.loads((SHARED_DATA / "instruct" / "stanford_alpaca" / "alpaca_5000.json").read_text())
    return ([" ".join(r["text"].split()) for r in bank], [r["category"] for r in bank],
            [" ".join(r["instruction"].split()) for r in alpaca])


class _Bases:
    """Base row ``k`` -> a distinct (utterance, instruction) pair, through ``k -> (a k + b) mod M``."""

    def __init__(self) -> None:
        self.bank, self.cats, self.alpaca = _sources()
        self.m = len(self.bank) * len(self.alpaca)
        a = int(self.m * 0.6180339887) | 1
        while math.gcd(a, self.m) != 1:
            a += 2
        self.a, self.b = a, 12_345

    def text(self, k: int) -> tuple[str, str]:
        i, j = divmod((self.a * k + self.b) % self.m, len(self.alpaca))
        return self.bank[i] + " " + self.alpaca[j], self.cats[i]


def generate(path: Path, n: int, seed: int = 0) -> dict[str, Any]:
    """Write ``n`` examples to ``path`` (JSON Lines) in constant memory; returns what was planted."""
    import numpy as np
    import orjson

    bases = _Bases()
    rng = np.random.default_rng(seed)
    nb = n_exact = n_near = 0
    with path.open("wb") as f:
        for lo in range(0, n, _CHUNK):
            m = min(_CHUNK, n - lo)
            kind, pick, pos, op = rng.random(m), rng.random(m), rng.random(m), rng.random(m)
            for t in range(m):
                u = kind[t]
                if nb and u < EXACT_SHARE + NEAR_SHARE:
                    text, answer = bases.text(int(pick[t] * nb))
                    if u < EXACT_SHARE:
                        text = text.upper().replace("?", "").replace(",", " ,")
                        n_exact += 1
                    else:
                        w = text.split()
                        k = int(pos[t] * len(w))
                        if op[t] < 0.5 and len(w) > 3:
                            del w[k]
                        else:
                            w[k] = w[k][::-1] if len(w[k]) > 2 else w[k] + "x"
                        text = " ".join(w)
                        n_near += 1
                else:
                    if nb >= bases.m:
                        raise SystemExit(f"--n too large: only {bases.m:,} distinct base rows")
                    text, answer = bases.text(nb)
                    nb += 1
                # written row by row: orjson's bytes objects keep a 4 KB buffer each, so a list of them is big
                f.write(orjson.dumps({"messages": [{"role": "user", "content": text},
                                                   {"role": "assistant", "content": answer}]}) + b"\n")
    return {"rows": n, "planted_exact": n_exact, "planted_near": n_near, "mb": round(path.stat().st_size / 1e6)}


def real_embeddings(work: Path, count: int = REAL_VECTORS) -> tuple[Any, float]:
    """all-MiniLM-L6-v2 embeddings of the first ``count`` base texts and the texts/s it embedded them at
    (after a warm-up batch); both cached in ``work``."""
    import numpy as np

    cache, rate_file = work / f"real_{count}.npy", work / f"real_{count}.rate"
    if cache.is_file() and rate_file.is_file():
        return np.load(cache), float(rate_file.read_text())
    from curator.embed import encode

    bases = _Bases()
    texts = [f"{t}\n{a}" for t, a in (bases.text(k) for k in range(count))]
    encode(texts[:64])  # loads the model
    t0 = time.perf_counter()
    vecs = encode(texts)
    rate = count / (time.perf_counter() - t0)
    np.save(cache, vecs)
    rate_file.write_text(f"{rate:.1f}")
    return vecs, rate


def synthetic_vectors(n: int, real: Any, seed: int = 1) -> tuple[Any, Any, Any]:
    """``(vectors (n, d) unit float32, planted rows, their source rows)`` as the module docstring says."""
    import numpy as np

    rng = np.random.default_rng(seed)
    d = real.shape[1]
    sigma = np.float32(math.sqrt((1 / SOURCE_COS**2 - 1) / d))
    x = np.empty((n, d), dtype=np.float32)
    for lo in range(0, n, _CHUNK):  # chunked: float noise for all of n at once would double the memory
        hi = min(n, lo + _CHUNK)
        x[lo:hi] = real[rng.integers(0, len(real), size=hi - lo)]
        x[lo:hi] += rng.standard_normal(size=(hi - lo, d), dtype=np.float32) * sigma
        x[lo:hi] /= np.linalg.norm(x[lo:hi], axis=1, keepdims=True)
    planted = np.sort(rng.choice(n, size=max(1, int(n * PLANTED_SHARE)), replace=False))
    src = rng.integers(0, n, size=planted.size)
    src = np.where(src == planted, (src + 1) % n, src)
    cos = rng.uniform(*PLANTED_COS, size=planted.size)
    tau = np.sqrt((1 / cos**2 - 1) / d).astype(np.float32)[:, None]
    y = x[src] + rng.standard_normal(size=(planted.size, d), dtype=np.float32) * tau
    x[planted] = y / np.linalg.norm(y, axis=1, keepdims=True)
    return x, planted, src


# ----------------------------------------------------------------------------- stages


def _active_ids(ws: Any) -> list[str]:
    with ws.connect() as con:
        return [r[0] for r in con.execute(
            "SELECT id FROM examples WHERE status = 'active' ORDER BY created_at, id").fetchall()]


def _recall(work: Path, n: int) -> dict[str, Any]:
    import faiss
    import numpy as np

    from curator.quality.dedup.semantic import (
        DEFAULT_THRESHOLD,
        EXACT_MAX,
        index_params,
        merge_blocks,
        query_blocks,
        search_block,
        semantic_index,
    )

    thr = DEFAULT_THRESHOLD
    x, planted, _ = synthetic_vectors(n, real_embeddings(work)[0])
    rng = np.random.default_rng(2)
    half = RECALL_QUERIES // 2
    rows = np.unique(np.concatenate((rng.choice(planted, size=min(half, planted.size), replace=False),
                                     rng.choice(n, size=half, replace=False))))
    q = x[rows]
    out: dict[str, Any] = {"queries": int(rows.size), "threshold": thr, "exact_max": EXACT_MAX,
                           "ivf": index_params(n, exact_max=-1),
                           "dedup_uses": index_params(n)["kind"], "threads": faiss.omp_get_max_threads()}

    def search(index: Any) -> tuple[set[tuple[int, int]], set[tuple[int, int]], float]:
        t0 = time.perf_counter()
        found = [search_block(index, q, r0, thr, False) for r0 in query_blocks(q.shape[0])]
        pairs, _ = merge_blocks(found, x, q, thr, False)
        sims, nbrs = index.search(q, TOP_K + 1)
        secs = time.perf_counter() - t0
        rng_pairs = {(a, b) for a, b in pairs.tolist() if rows[a] != b}
        top = {(a, int(b)) for a in range(q.shape[0]) for s, b in zip(sims[a], nbrs[a], strict=True)
               if b >= 0 and b != rows[a] and s >= thr}
        return rng_pairs, top, secs

    t0 = time.perf_counter()
    flat = semantic_index(x, True)
    flat_build = time.perf_counter() - t0
    f_range, f_top, f_secs = search(flat)
    del flat
    t0 = time.perf_counter()
    ivf = semantic_index(x, False)
    ivf_build = time.perf_counter() - t0
    i_range, i_top, i_secs = search(ivf)
    scale = n / q.shape[0]
    out.update({
        "true_pairs": len(f_range), "ivf_pairs": len(i_range),
        "recall_range": round(len(f_range & i_range) / max(1, len(f_range)), 4),
        "recall_top10": round(len(f_top & i_top) / max(1, len(f_top)), 4),
        "flat_build_s": round(flat_build, 1), "flat_query_s": round(f_secs, 1),
        "flat_all_pairs_est_s": round(flat_build + f_secs * scale),
        "ivf_build_s": round(ivf_build, 1), "ivf_query_s": round(i_secs, 1),
        "ivf_all_pairs_est_s": round(ivf_build + i_secs * scale),
    })
    out["rows"] = n
    return out


def run_stage(stage: str, work: Path, n: int, semantic: bool) -> dict[str, Any]:
    """One stage in this process; returns its measurements (``seconds``, ``peak_rss_mb``, ``rows``, ...)."""
    from curator.workspace import Workspace

    data = work / f"data_{n}.jsonl"
    ws_path = work / f"ws_{n}"
    t0 = time.perf_counter()
    out: dict[str, Any] = {}
    if stage == "gen":
        out = generate(data, n)
    elif stage == "ingest":
        from curator.data.ingest import ingest_file

        shutil.rmtree(ws_path, ignore_errors=True)
        t0 = time.perf_counter()
        ing = ingest_file(Workspace(ws_path), data)
        out = {"rows": ing.rows_read, "added": ing.added, "by_split": ing.by_split}
    elif stage in ("dedup", "semantic"):
        from curator.quality.dedup import dedup

        rep = dedup(Workspace(ws_path), ["exact", "near"] if stage == "dedup" else ["semantic"], samples=0)
        out = {"rows": rep.examples, "excluded": {m.method: m.excluded for m in rep.methods},
               "method_s": {m.method: round(m.seconds, 1) for m in rep.methods}}
        if stage == "semantic":
            from curator.quality.dedup.semantic import index_params

            out["index"] = index_params(rep.examples)
    elif stage == "vectors":
        import numpy as np

        from curator.embed import store_embeddings

        ws = Workspace(ws_path)
        real, rate = real_embeddings(work)
        t_real = time.perf_counter() - t0
        ids = _active_ids(ws)
        t0 = time.perf_counter()
        x, planted, _ = synthetic_vectors(len(ids), real)
        with ws.connect() as con:
            con.execute("DELETE FROM embeddings")
        for lo in range(0, len(ids), 250_000):
            store_embeddings(ws, ids[lo : lo + 250_000], x[lo : lo + 250_000])
        out = {"rows": len(ids), "planted": int(planted.size), "dim": int(x.shape[1]),
               "real_sources": int(len(np.unique(real, axis=0))), "real_embed_s": round(t_real, 1),
               "embed_rate": rate, "embed_all_min": round(len(ids) / rate / 60, 1)}
    elif stage == "leakage":
        from curator.quality.leakage import find_leakage, fix_leakage_until_clean

        ws = Workspace(ws_path)
        methods = ["exact", "ngram", "semantic"] if semantic else ["exact", "ngram"]
        # `curator leakage --fix` until a check finds nothing: excluding train copies can bring a frequent
        # n-gram under the n-gram check's document-frequency cap, so a second pass may find new pairs.
        leaks, excluded, passes = fix_leakage_until_clean(ws, lambda: find_leakage(ws, methods))
        out = {"rows": leaks.train + sum(leaks.compared.values()),
               "method_s": {k: round(v, 1) for k, v in leaks.seconds.items()},
               "pairs": passes[0], "excluded": excluded, "passes": passes}
    elif stage == "snapshot":
        from curator.snapshots import create_snapshot

        snap = create_snapshot(Workspace(ws_path), name="scale")
        out = {"rows": snap.counts["total"], "id": snap.id}
    elif stage == "export":
        from curator.snapshots import export_snapshot

        dest = work / f"export_{n}"
        exp = export_snapshot(Workspace(ws_path), "scale", "openai", dest, force=True)
        out = {"rows": sum(f["rows"] for f in exp["files"].values()),
               "mb": round(sum(Path(f["path"]).stat().st_size for f in exp["files"].values()) / 1e6)}
    elif stage == "recall":
        out = _recall(work, n)
    else:
        raise SystemExit(f"unknown stage {stage}")
    out["seconds"] = round(time.perf_counter() - t0, 1)
    own, child = _peaks_mb()
    out["peak_rss_mb"] = round(own)
    if child > 1:
        out["child_peak_rss_mb"] = round(child)
    return out


def _spawn(stage: str, work: Path, n: int, semantic: bool) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--stage", stage, "--work", str(work), "--n", str(n)]
    if not semantic:
        cmd.append("--no-semantic")
    wall = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        tail = (p.stderr or p.stdout).strip().splitlines()
        return {"error": tail[-1] if tail else f"exit status {p.returncode}", "rc": p.returncode}
    r: dict[str, Any] = json.loads(p.stdout.strip().splitlines()[-1])
    r["process_s"] = round(time.perf_counter() - wall, 1)
    return r


def _note(stage: str, r: dict[str, Any]) -> str:
    if "error" in r:
        return "ERROR " + r["error"]
    if stage == "gen":
        return f"{r['mb']} MB; planted {r['planted_exact']:,} exact, {r['planted_near']:,} near"
    if stage == "ingest":
        return f"added {r['added']:,}"
    if stage == "dedup":
        ms = r["method_s"]
        return ", ".join(f"{m} -{k:,} ({ms[m]} s)" for m, k in r["excluded"].items())
    if stage == "vectors":
        return (f"set-up; {r['planted']:,} planted copies; real embedding runs at {r['embed_rate']:.0f} texts/s: "
                f"{r['embed_all_min']} min for these rows")
    if stage == "semantic":
        ix = r["index"]
        kind = "flat" if ix["kind"] == "flat" else f"IVF nlist {ix['nlist']} nprobe {ix['nprobe']}"
        return f"{kind}; -{r['excluded']['semantic']:,}"
    if stage == "leakage":
        found = " + ".join(f"{k:,}" for k in r["passes"])
        return (f"pairs per pass {found}, -{r['excluded']:,}; " + ", ".join(f"{m} {s} s" for m, s in r["method_s"].items())
                + " (first pass)")
    if stage == "snapshot":
        return f"id {r['id']}"
    if stage == "export":
        return f"openai JSONL, {r['mb']} MB"
    if stage == "recall":
        return (f"IVF recall {r['recall_range']:.3f} (pairs >= {r['threshold']}), top-{TOP_K} {r['recall_top10']:.3f}; "
                f"{r['queries']:,} queries: flat {r['flat_query_s']} s, IVF {r['ivf_query_s']} s "
                f"(build {r['ivf_build_s']} s)")
    return ""


def _table(size: int, results: dict[str, dict[str, Any]], base: dict[str, dict[str, Any]] | None) -> list[str]:
    head = f"| stage | seconds | peak RSS MB | rows |{' x time | x RSS |' if base else ''} notes |"
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for stage, r in results.items():
        if "error" in r:
            lines.append(f"| {stage} | - | - | - |{' - | - |' if base else ''} {_note(stage, r)} |")
            continue
        rss = f"{r['peak_rss_mb']:,}" + (f" (+{r['child_peak_rss_mb']:,} worker)" if "child_peak_rss_mb" in r else "")
        ratio = ""
        if base is not None:
            b = base.get(stage, {})
            t = f"{r['seconds'] / b['seconds']:.1f}" if b.get("seconds") else "-"
            m = f"{r['peak_rss_mb'] / b['peak_rss_mb']:.1f}" if b.get("peak_rss_mb") else "-"
            ratio = f" {t} | {m} |"
        lines.append(f"| {stage} | {r['seconds']:.1f} | {rss} | {r.get('rows', 0):,} |{ratio} {_note(stage, r)} |")
    pipe = [s for s in results if s in PIPELINE and s not in ("gen", "vectors")]
    total = sum(results[s].get("seconds", 0) for s in pipe)
    peak = max((results[s].get("peak_rss_mb", 0) for s in pipe), default=0)
    lines.append(f"\nn={size:,}: {' + '.join(pipe)} = {total:.1f} s ({total / 60:.1f} min), "
                 f"largest peak RSS {peak:,} MB")
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100_000, help="examples (default 100000)")
    ap.add_argument("--baseline-n", type=int, default=None, help="baseline size (default n/10; 0: none)")
    ap.add_argument("--stages", default=",".join(STAGES), help=f"comma list of {','.join(STAGES)}")
    ap.add_argument("--no-semantic", action="store_true", help="leave out vectors, semantic dedup and recall")
    ap.add_argument("--work", type=Path, help="working folder (default: a new temporary one, removed at the end)")
    ap.add_argument("--keep", action="store_true", help="keep the working folder")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--stage", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    semantic = not args.no_semantic
    if args.stage:
        print(json.dumps(run_stage(args.stage, args.work, args.n, semantic)))
        return 0
    stages = [s for s in args.stages.split(",") if s]
    bad = [s for s in stages if s not in STAGES]
    if bad:
        print(f"Error: unknown stage {', '.join(bad)} (choose from {', '.join(STAGES)})", file=sys.stderr)
        return 2
    if not semantic:
        stages = [s for s in stages if s not in SEMANTIC_STAGES]
    base_n = args.n // 10 if args.baseline_n is None else args.baseline_n
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"n": args.n, "baseline_n": base_n, "stages": stages, "cpus": os.cpu_count(),
                               "load_start": loadavg()}
    if not args.json:
        print(f"scale: n={args.n:,} (baseline n={base_n:,}), stages {','.join(stages)}; {os.cpu_count()} CPUs; "
              f"/proc/loadavg at start: {results['load_start']}", flush=True)
    ok = True
    sizes = [s for s in dict.fromkeys([base_n, args.n]) if s > 0]
    try:
        for size in sizes:
            per: dict[str, dict[str, Any]] = {}
            results[str(size)] = per
            for stage in stages:
                r = _spawn(stage, work, size, semantic)
                per[stage] = r
                ok &= "error" not in r
                if not args.json:
                    print(f"  n={size:,} {stage}: {json.dumps(r)}", file=sys.stderr, flush=True)
            if size != args.n:
                shutil.rmtree(work / f"ws_{size}", ignore_errors=True)
                shutil.rmtree(work / f"export_{size}", ignore_errors=True)
                (work / f"data_{size}.jsonl").unlink(missing_ok=True)
    finally:
        if args.work is None and not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    results["load_end"] = loadavg()
    results["pass"] = ok
    if args.json:
        print(json.dumps(results))
    else:
        for size in sizes:
            base = results.get(str(base_n)) if size != base_n else None
            print(f"\n## n = {size:,}" + (f" (ratios against n = {base_n:,}, linear = {size / base_n:.0f}x)"
                                          if base else "") + "\n")
            print("\n".join(_table(size, results[str(size)], base)))
        print(f"\n/proc/loadavg at end: {results['load_end']}")
        print("PASS (every stage finished)" if ok else "FAIL (a stage broke; see its error)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
