"""The Ray engine's overhead against the local engine: the same dedup on the same workspace, same machine.

Usage::

    .venv/bin/python benchmarks/ray_overhead.py [--n 100000] [--num-cpus 2] [--methods exact,near] [--json]

Data: ``benchmarks/dedup_near.py``'s set (Alpaca records and synthesised distinct texts with 10 %
planted near-duplicates), ingested as chat examples (the record's instruction as the user turn, its
text as the answer) into a fresh workspace. Then ``dedup(..., dry_run=True)`` runs with the local engine
and with the Ray engine on a local Ray instance of ``--num-cpus`` CPUs (``ray.init(num_cpus=...)``,
started before the clock; its start-up time is printed apart). Both runs read the same workspace and
must report the same decisions (checked). The ratio is Ray time / local time: on one small machine Ray
can only add overhead (the texts go through the object store, shards are pickled, the driver still
reads the workspace and groups); its value is the same code on a cluster.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))


def _build(folder: Path, n: int, seed: int) -> Any:
    from dedup_near import build_dataset

    from curator.data.ingest import ingest_file
    from curator.workspace import Workspace

    texts, _ = build_dataset(n, seed)
    path = folder / "rows.jsonl"
    with path.open("w", encoding="utf-8") as f:
        for t in texts:
            user, _, rest = t.partition("\n")
            f.write(json.dumps({"messages": [{"role": "user", "content": user},
                                             {"role": "assistant", "content": rest or user}]}) + "\n")
    ws = Workspace(folder / "ws")
    ingest_file(ws, path)
    return ws


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000, help="examples (default 100000)")
    ap.add_argument("--num-cpus", type=int, default=2, help="CPUs of the local Ray instance (default 2)")
    ap.add_argument("--methods", default="exact,near", help="dedup methods (default exact,near)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args(argv)
    methods = [m for m in args.methods.split(",") if m]

    from curator.quality.dedup import dedup
    from curator.quality.dedup.engine import LOCAL

    with tempfile.TemporaryDirectory(prefix="ray-overhead-") as tmp:
        t = time.perf_counter()
        ws = _build(Path(tmp), args.n, args.seed)
        build_s = time.perf_counter() - t

        t = time.perf_counter()
        local = dedup(ws, methods, dry_run=True, engine=LOCAL)
        local_s = time.perf_counter() - t

        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        os.environ.setdefault("RAY_worker_niceness", "0")
        from curator.engines.ray_engine import RayEngine

        engine = RayEngine(num_cpus=args.num_cpus)
        t = time.perf_counter()
        engine.cpus()  # starts the local instance
        start_s = time.perf_counter() - t
        try:
            t = time.perf_counter()
            ray = dedup(ws, methods, dry_run=True, engine=engine)
            ray_s = time.perf_counter() - t
        finally:
            engine.close()

    same = [vars(d) for d in ray.decisions] == [vars(d) for d in local.decisions]
    result = {
        "n": args.n, "examples": local.examples, "methods": methods, "num_cpus": args.num_cpus,
        "build_and_ingest_s": round(build_s, 1), "ray_start_s": round(start_s, 1),
        "local_s": round(local_s, 2), "ray_s": round(ray_s, 2), "ratio_ray_over_local": round(ray_s / local_s, 2),
        "local_by_method_s": {m.method: m.seconds for m in local.methods},
        "ray_by_method_s": {m.method: m.seconds for m in ray.methods},
        "excluded": local.excluded, "same_decisions": same,
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(f"n={args.n} ({local.examples} active examples), dedup {','.join(methods)} dry run, "
              f"{local.excluded} would be excluded; build+ingest {build_s:.1f}s")
        print(f"local engine: {local_s:.2f}s  {result['local_by_method_s']}")
        print(f"ray engine ({args.num_cpus} CPUs, local instance; start-up {start_s:.1f}s not counted): "
              f"{ray_s:.2f}s  {result['ray_by_method_s']}")
        print(f"ratio ray/local: {result['ratio_ray_over_local']:.2f}x; same decisions: {'yes' if same else 'NO'}")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
