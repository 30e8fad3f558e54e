"""What a round asks the teacher for: weak groups (dev split, or held-out folds of train) -> targeted data.

:func:`targeted_batch` turns weakness groups (:func:`evals.weaknesses.weaknesses`) into the targeted
generation of a round.  On a label task the labels the model gets wrong are the targets: the label
groups whose dev error rate is at least ``WEAK_LABEL_RATE`` (every label group with an error when
none is), and the embedding clusters, which mix labels, are only recorded; other tasks target the
clusters.  Requests are spread evenly over the targets by :func:`curator.synth.generate.generate`.

:func:`fold_weaknesses` is the fallback when the dev split is too small to mine (fewer than
``MIN_DEV`` examples): k-fold cross-validation on the snapshot's train split.  Each fold is held out
in turn: an adapter is trained from the base model on the other k-1 folds (in a scratch workspace
under ``WORKSPACE/folds/``, with the round's config; nothing of it becomes a champion) and evaluated
on the held-out fold, so every train example is scored by a model that never saw it.  The label
groups are built over all folds' predictions together, the cluster groups per fold.  The test split
is never read: the scratch workspaces hold train examples only.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from curator.errors import CuratorError
from curator.workspace import Workspace

__all__ = ["DEFAULT_FOLDS", "MIN_DEV", "WEAK_LABEL_RATE", "fold_weaknesses", "select_targets", "targeted_batch"]

#: A label is *weak* (the teacher is asked for it) when at least this share of its examples is misclassified.
WEAK_LABEL_RATE = 0.25
#: Below this many scored dev examples the dev split is too small to cluster (about one cluster per 3 weak
#: examples, from the weakest quarter): weaknesses come from k-fold held-out train predictions instead.
MIN_DEV = 8
DEFAULT_FOLDS = 3


def select_targets(groups: Sequence[dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """(the groups to ask the teacher about, the weak labels ``{"task/label": {errors, n, confused_with}}``)."""
    label_weak = [g for g in groups if g.get("kind") == "label"]
    if not label_weak:
        return list(groups), {}
    weak = [g for g in label_weak if g["errors"] >= WEAK_LABEL_RATE * g["n"]] or label_weak
    info = {f"{g['task']}/{g['label']}": {"errors": g["errors"], "n": g["n"], "confused_with": g["confused_with"]}
            for g in weak}
    return weak, info


def targeted_batch(
    ws: Workspace,
    groups: Sequence[dict[str, Any]],
    *,
    teacher: str,
    n_generate: int,
    task: str | None = None,
    budget: float | None = None,
    gen_max_tokens: int | None = None,
) -> dict[str, Any]:
    """Generate targeted examples for the weak groups; returns the round's ``batch`` record (without the source)."""
    targets, weak_labels = select_targets(groups)
    batch: dict[str, Any] = {"weaknesses": len(groups), "targeted_at": [g["description"] for g in targets]}
    if weak_labels:
        batch["weak_labels"] = weak_labels
    if targets and n_generate > 0:
        from curator.llm.providers import GenParams
        from curator.synth.generate import generate

        extra: dict[str, Any] = {}
        if weak_labels:  # a label is a short answer: the default minimum answer length would reject every one
            from curator.synth.filters import FilterConfig

            extra["filters"] = FilterConfig(min_answer_chars=1)
        rep = generate(ws, mode="targeted", teacher=teacher, n=n_generate, task=task, weaknesses=list(targets),
                       budget=budget, progress=False,
                       params=GenParams(max_tokens=gen_max_tokens) if gen_max_tokens else None, **extra)
        batch.update(rep.to_dict())
    return batch


def _fold_of(example_id: str, k: int) -> int:
    return int(hashlib.sha256(example_id.encode()).hexdigest()[:8], 16) % k


def fold_weaknesses(
    ws: Workspace,
    snapshot_id: str,
    *,
    round_no: int,
    k: int = DEFAULT_FOLDS,
    metric: str = "rougeL",
    config: str | Path | None = None,
    overrides: Sequence[str] = (),
    gen: dict[str, Any] | None = None,
    log: Callable[[str], None] = print,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Weakness groups from k-fold held-out predictions on train; returns (groups, the source record).

    Each fold trains with ``config`` / ``overrides`` (the round's) from the base model and is evaluated
    with the generation settings ``gen``.  Folds are assigned by a hash of the example id, so they do
    not move when examples are added.
    """
    from curator.data.ingest import ingest_file
    from curator.snapshots import create_snapshot, read_split, resolve_snapshot
    from evals.runner import eval_rows, evaluate
    from evals.weaknesses import label_groups, weaknesses
    from trainer import train

    if k < 2:
        raise CuratorError(f"k-fold weaknesses need at least 2 folds (got {k})")
    rows = read_split(ws, resolve_snapshot(ws, snapshot_id), "train")
    if len(rows) < k:
        raise CuratorError(f"the train split has {len(rows)} examples: too few for {k} folds")
    folds = [[r for r in rows if _fold_of(r["id"], k) == i] for i in range(k)]
    root = ws.path / "folds" / f"round-{round_no}"
    patterns = ws.get_setting("label_patterns")
    all_rows: list[Any] = []
    task_of: dict[str, str] = {}
    clusters: list[dict[str, Any]] = []
    runs = []
    for i in range(k):
        held, rest = folds[i], [r for j, f in enumerate(folds) if j != i for r in f]
        if not held or not rest:
            continue
        path = root / f"fold-{i}"
        if path.exists() and not (path / "done").exists():
            shutil.rmtree(path)  # an interrupted fold starts over
        fold_ws = Workspace(path)
        if not (path / "done").exists():
            path.mkdir(parents=True, exist_ok=True)
            if patterns:
                fold_ws.set_setting("label_patterns", patterns)
            for split, part in (("train", rest), ("eval", held)):
                for (task, origin), members in _by_task_origin(part).items():
                    f = path / f"{split}-{task}-{origin}.jsonl"
                    f.write_text("".join(json.dumps({"messages": r["messages"], **_meta(r)}) + "\n" for r in members))
                    ingest_file(fold_ws, f, task=task, split=split, origin=origin)
            # The folds are all train data: overlap between them is not leakage into a held-out set.
            create_snapshot(fold_ws, allow_leakage=True)
            (path / "done").write_text("")
        snap = resolve_snapshot(fold_ws, "latest")
        run = train(fold_ws, snap.id, config=config, overrides=list(overrides), method="sft", log=log)
        ev = evaluate(fold_ws, run.id, snapshot=snap.id, split="eval", log=log, **(gen or {}))
        runs.append({"fold": i, "train": len(rest), "held_out": len(held), "run": run.id, "eval_id": ev.eval_id,
                     "summary": ev.summary.get("overall", {})})
        log(f"[round {round_no}] fold {i + 1}/{k}: trained on {len(rest)}, evaluated on {len(held)} held-out "
            f"train examples: " + ", ".join(f"{m} {v:.3f}" for m, v in ev.summary.get("overall", {}).items()
                                            if m in ("accuracy", "rougeL") and isinstance(v, int | float)))
        fold_rows = eval_rows(fold_ws, ev.eval_id)
        all_rows += fold_rows
        task_of.update({r["id"]: r["task"] for r in held})
        try:
            clusters += weaknesses(fold_ws, ev.eval_id, metric=metric, by_label=False, source="held-out train")
        except CuratorError:  # no scores of this metric in the fold: its label groups still count
            pass
    groups = [*label_groups([r for r in all_rows if "gold_label" in r.meta], task_of, f"{snapshot_id}-folds",
                            "held-out train"), *clusters]
    source = {"split": "train", "folds": k, "runs": runs, "workspace": str(root)}
    return groups, source


def _by_task_origin(rows: Sequence[dict[str, Any]]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    out: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in rows:
        out.setdefault((str(r.get("task") or "default"), str(r.get("origin") or "import")), []).append(r)
    return out


def _meta(r: dict[str, Any]) -> dict[str, Any]:
    kp = (r.get("meta") or {}).get("key_phrases")
    return {"key_phrases": kp} if isinstance(kp, list) else {}
