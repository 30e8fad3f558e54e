"""``curator demo``: the loop on the bundled seeds, offline, in a fresh workspace.

Steps available so far: prepare the local models, validate and ingest the seeds and the
held-out test set, snapshot, export.  Each later part (generation, dedup, training,
evaluation, rounds) adds its step here.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path

from .errors import CuratorError
from .workspace import Workspace

__all__ = ["bundled_seeds", "run_demo"]


def bundled_seeds() -> Path:
    """``seeds/support`` of the source tree (the demo runs from a clone)."""
    here = Path(__file__).resolve().parent.parent / "seeds" / "support"
    if not (here / "seeds.jsonl").exists():
        raise CuratorError(f"bundled seeds not found at {here}; pass --seeds-dir")
    return here


def run_demo(
    ws: Workspace, *, quick: bool = False, seeds_dir: Path | None = None, log: Callable[[str], None] = print
) -> dict[str, object]:
    """Run every available step and return a summary."""
    from .ingest import ingest_file
    from .models import prepare
    from .snapshots import create_snapshot, export_snapshot
    from .validate import token_counter, validate_file

    seeds = seeds_dir or bundled_seeds()
    t0 = time.time()
    if ws.path.exists():
        log(f"[demo] removing the previous demo workspace {ws.path}")
        shutil.rmtree(ws.path)
    log("[demo] 1/5 preparing local models")
    model_dir = prepare(log=log)
    log(f"       SmolLM2-135M-Instruct ready at {model_dir}")
    log("[demo] 2/5 validating the seed files")
    counter = token_counter("local:smollm2-135m-instruct")
    for name in ("seeds.jsonl", "test.jsonl"):
        rep = validate_file(seeds / name, count_tokens=counter)
        if not rep.ok:
            raise CuratorError(f"bundled {name} does not validate: {rep.to_dict()['errors']}")
        log(f"       {name}: {rep.examples} examples, no errors, median {rep.tokens['median']:.0f} tokens")
    log("[demo] 3/5 ingesting seeds (train/eval) and the held-out test set")
    # The test set is brought by the user (pinned), so the seeds are split between train and eval only.
    ws.set_setting("split_ratios", [0.85, 0.15, 0.0])
    r1 = ingest_file(ws, seeds / "seeds.jsonl", task="support", origin="seed")
    r2 = ingest_file(ws, seeds / "test.jsonl", task="support", split="test", origin="seed")
    log(f"       seeds: {r1.added} added {r1.by_split}; test: {r2.added} added")
    log("[demo] 4/5 snapshot")
    snap = create_snapshot(ws, name="demo-seeds")
    log(f"       snapshot {snap.id}: {snap.counts['by_split']}")
    log("[demo] 5/5 export (OpenAI chat JSONL)")
    out = ws.path / "exports" / snap.id
    exp = export_snapshot(ws, snap.id, "openai", out, force=True)
    rows = ", ".join(f"{s} {i['rows']}" for s, i in exp["files"].items())
    log(f"       {rows} rows in {out}")
    log(f"[demo] done in {time.time() - t0:.0f}s (workspace {ws.path})")
    return {"snapshot": snap.id, "export": str(out), "seconds": round(time.time() - t0, 1)}
