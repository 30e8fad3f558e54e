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
    """Fresh workspace -> models -> seeds -> synthetic data -> dedup -> leakage -> round 1 -> feedback -> round 2."""
    from .ingest import ingest_file
    from .models import prepare
    from .round_report import metrics_table, write_round_report
    from .rounds import list_rounds, run_round
    from .validate import token_counter, validate_file

    seeds = seeds_dir or bundled_seeds()
    t0 = time.time()
    steps = 9

    def step(i: int, text: str) -> None:
        log(f"[demo {time.time() - t0:5.0f}s] {i}/{steps} {text}")

    if ws.path.exists():
        log(f"[demo] removing the previous demo workspace {ws.path}")
        shutil.rmtree(ws.path)
    step(1, "preparing local models")
    model_dir = prepare(log=log)
    log(f"       SmolLM2-135M-Instruct ready at {model_dir}")
    step(2, "validating and ingesting the seeds and the held-out test set")
    counter = token_counter("local:smollm2-135m-instruct")
    for name in ("seeds.jsonl", "test.jsonl"):
        rep = validate_file(seeds / name, count_tokens=counter)
        if not rep.ok:
            raise CuratorError(f"bundled {name} does not validate: {rep.to_dict()['errors']}")
    # The test set is brought by the user (pinned), so the seeds are split between train and eval only.
    ws.set_setting("split_ratios", [0.85, 0.15, 0.0])
    r1 = ingest_file(ws, seeds / "seeds.jsonl", task="support", origin="seed")
    r2 = ingest_file(ws, seeds / "test.jsonl", task="support", split="test", origin="seed")
    log(f"       seeds: {r1.added} added {r1.by_split}; held-out test: {r2.added}")

    step(3, "generating synthetic examples from the seeds with the local teacher")
    from .synth.generate import generate

    gen = generate(ws, mode="seeds", teacher="local:smollm2-135m-instruct", n=8 if quick else 24, task="support",
                   progress=True)
    log(f"       {_summary(gen)}")

    step(4, "dedup (exact, near-duplicate, semantic)")
    from .dedup import dedup

    d = dedup(ws)
    log(f"       {_summary(d)}")
    step(5, "leakage check (train vs eval/test)")
    from .leakage import find_leakage, fix_leakage

    leaks = find_leakage(ws)
    n_leaks = len(getattr(leaks, "pairs", []) or [])
    if n_leaks:
        fix_leakage(ws, leaks)
    log(f"       {n_leaks} leaking pairs" + (" (train copies excluded)" if n_leaks else ""))

    overrides = ["max_steps=30"] if quick else []
    max_eval = 10 if quick else None
    step(6, "round 1: snapshot -> train -> evaluate vs the base model -> weaknesses -> targeted data")
    run_round(ws, task="support", overrides=overrides, n_generate=8 if quick else 16, max_eval=max_eval, log=log)
    step(7, "ingesting the sample production feedback log")
    step(8, "round 2 (with the feedback)")
    run_round(ws, task="support", overrides=overrides, feedback=[seeds / "feedback.jsonl"], n_generate=0,
              max_eval=max_eval, log=log)
    step(9, "report")
    report = write_round_report(ws)
    rows = metrics_table(list_rounds(ws))
    from .output import table

    log("")
    log("Test metrics (held-out seeds/support/test.jsonl):")
    log(table(["model", "rougeL", "key phrases", "bleu", "exact match"],
              [(r["label"], *(f"{r[m]:.3f}" if isinstance(r.get(m), int | float) else "-"
                              for m in ("rougeL", "key_phrase_rate", "bleu", "exact_match"))) for r in rows]))
    if len(rows) >= 3:
        better = all(rows[2][m] > rows[1][m] for m in ("rougeL", "key_phrase_rate"))
        log("round 2 " + ("beats" if better else "does NOT beat") + " round 1 on both ROUGE-L and key phrases")
    log(f"HTML report: {report}")
    log(f"[demo] done in {time.time() - t0:.0f}s (workspace {ws.path})")
    return {"rounds": rows, "report": str(report), "seconds": round(time.time() - t0, 1)}


def _summary(obj: object) -> str:
    d = obj.to_dict() if hasattr(obj, "to_dict") else obj
    if isinstance(d, dict):
        return ", ".join(f"{k} {v}" for k, v in d.items() if isinstance(v, int | float) and not isinstance(v, bool))
    return str(d)
