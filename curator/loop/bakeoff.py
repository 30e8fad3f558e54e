"""The base-model bake-off: several base models, zero- and few-shot, on the same split, one table.

"Wrong base model selection -> benchmark multiple base models before committing": before training,
:func:`bakeoff` evaluates each candidate (a registry name such as ``local:smollm2-135m-instruct``, a
local model folder, or a hub id when the user is online) with the plain prompt and with ``few_shot``
train examples before it, on the snapshot's ``split`` (test by default, as the rounds report it), and
recommends the model with the best headline ``metric`` over both ways of prompting.  The result is kept
in the workspace (setting ``bakeoff``) so that ``curator round --base auto`` trains the winner.

Every evaluation goes through :func:`evals.runner.evaluate`, so it is cached: a second bake-off with the
same models and settings generates nothing.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from curator.errors import CuratorError
from curator.workspace import Workspace

__all__ = ["BAKEOFF_SETTING", "bakeoff", "recommended_base"]

BAKEOFF_SETTING = "bakeoff"


def bakeoff(
    ws: Workspace,
    models: Sequence[str],
    *,
    few_shot: int = 5,
    task: str | None = None,
    snapshot: str = "latest",
    split: str = "test",
    metric: str = "rougeL",
    max_eval: int | None = None,
    max_new_tokens: int = 256,
    batch_size: int = 16,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Evaluate each base model zero-shot (and ``few_shot``-shot when > 0); rows and a recommendation.

    ``task`` scores only that task's examples (from the per-task summary).  Returns ``{"rows": [{model,
    prompting, shots, n, <metric>, eval_id}], "recommendation": {model, prompting, <metric>}, ...}``.
    """
    from curator.snapshots import resolve_snapshot
    from evals.runner import evaluate

    models = [m.strip() for m in models if m.strip()]
    if not models:
        raise CuratorError("bakeoff needs at least one model (--models A,B,...)")
    if len(set(models)) != len(models):
        raise CuratorError("bakeoff: a model is listed twice")
    if few_shot < 0:
        raise CuratorError(f"few_shot must be 0 (none) or more (got {few_shot})")
    snap = resolve_snapshot(ws, snapshot)
    modes = [("zero_shot", 0)] + ([("few_shot", few_shot)] if few_shot else [])
    rows: list[dict[str, Any]] = []
    for model in models:
        for mode, k in modes:
            if log:
                log(f"[bakeoff] {model} {mode.replace('_', '-')}" + (f" ({k} shots)" if k else ""))
            res = evaluate(ws, "base", snapshot=snap.id, split=split, base_model=model, prompting=mode,
                           shots=max(k, 1), limit=max_eval, max_new_tokens=max_new_tokens, batch_size=batch_size,
                           log=log)
            block = res.summary.get("by_task", {}).get(task) if task else res.summary.get("overall")
            if block is None:
                raise CuratorError(f"snapshot {snap.id} has no {split} examples of task {task!r}")
            rows.append({"model": model, "prompting": mode, "shots": k, "n": block.get("n"),
                         metric: block.get(metric), "key_phrase_rate": block.get("key_phrase_rate"),
                         "eval_id": res.eval_id})
    scored = [r for r in rows if isinstance(r[metric], int | float) and not math.isnan(r[metric])]
    if not scored:
        raise CuratorError(f"no evaluation of the bake-off has {metric!r} scores")
    best = max(scored, key=lambda r: (r[metric], -rows.index(r)))
    out = {
        "snapshot_id": snap.id, "split": split, "task": task, "metric": metric, "few_shot": few_shot,
        "rows": rows,
        "recommendation": {"model": best["model"], "prompting": best["prompting"], metric: best[metric],
                           "why": f"highest {metric} on {best['n']} {split} examples ({best['prompting']})"},
    }
    ws.set_setting(BAKEOFF_SETTING, out)
    return out


def recommended_base(ws: Workspace) -> str:
    """The model the latest bake-off recommends (for ``curator round --base auto``)."""
    found = ws.get_setting(BAKEOFF_SETTING)
    if not found:
        raise CuratorError("--base auto needs a bake-off first: run `curator bakeoff --models A,B`")
    return str(found["recommendation"]["model"])
