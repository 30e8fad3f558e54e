"""Weaknesses: the lowest-scoring examples of an evaluation, grouped by task and by embedding cluster.

Each group is a dict with exactly the keys the targeted generation mode takes as input::

    {"id": "support-3f2a9c1d", "task": "support",
     "description": "support: 4 prompts about bucket, access denied, ... (rougeL 0.12 vs 0.31 overall; ...)",
     "example_ids": ["...", ...]}

How: the examples whose ``metric`` is in the bottom ``fraction`` of the evaluation (at least one) are
taken; within each task their prompts (user turns) are embedded with the workspace embedder and
split into clusters by spherical k-means (deterministic farthest-first seeding), about one cluster
per ``min_size`` examples and at most ``k`` per task.  A group's description names its task, the
most frequent content words of its prompts, how far below the overall mean it scores, and the
failure modes visible in its scores (missed key phrases, too long, too short, truncated).  Groups
come worst first.

Label tasks (the evaluation stored ``gold_label`` / ``pred_label``, see :mod:`evals.runner`) also get
one group per gold label the model gets wrong, ``{"kind": "label", "label": ..., "errors": ...,
"n": ..., "confused_with": {...}}``, whose description names the label and what was predicted
instead, e.g. ``"triage: label 'billing': 6 of 8 dev examples misclassified, mostly as 'shipping'
(4), also 'none' (2)"``: the labels, not topic words, are what the teacher needs to hear.  Label
groups come before the cluster groups, most errors first.  The description counts the examples of
the evaluated split only (``source`` names it: ``dev`` for the eval split, ``held-out train`` for the
k-fold fallback of the rounds).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from curator.errors import CuratorError
from curator.workspace import Workspace
from evals.metrics import STOPWORDS
from evals.runner import EvalRow, eval_rows, resolve_eval

__all__ = ["cluster", "describe", "describe_label", "label_groups", "weaknesses"]

_WORD = re.compile(r"[a-z][a-z0-9'_-]*[a-z0-9]")


def _score(row: EvalRow, metric: str) -> float:
    """The row's ``metric`` (rows are filtered to those that have it)."""
    value = row.scores[metric]
    return math.nan if value is None else float(value)


def cluster(vectors: np.ndarray, n_clusters: int, *, iterations: int = 20) -> np.ndarray:
    """Spherical k-means labels for L2-normalised rows; farthest-first seeding, so fully deterministic."""
    n = vectors.shape[0]
    n_clusters = max(1, min(n_clusters, n))
    if n_clusters == 1:
        return np.zeros(n, dtype=np.int64)
    centers = [int(np.argmax(np.linalg.norm(vectors - vectors.mean(axis=0), axis=1)))]
    best = vectors @ vectors[centers[0]]
    for _ in range(1, n_clusters):
        nxt = int(np.argmin(best))
        centers.append(nxt)
        best = np.maximum(best, vectors @ vectors[nxt])
    c = vectors[centers].copy()
    labels = np.full(n, -1, dtype=np.int64)
    for _ in range(iterations):
        new = np.argmax(vectors @ c.T, axis=1)
        if np.array_equal(new, labels):
            break
        labels = new
        for j in range(n_clusters):
            members = vectors[labels == j]
            if len(members):
                v = members.sum(axis=0)
                c[j] = v / (np.linalg.norm(v) or 1.0)
    return labels


def _top_words(texts: Sequence[str], n: int = 4) -> list[str]:
    """The content words found in the most texts; ties by first appearance (deterministic)."""
    counts: Counter[str] = Counter()
    first: dict[str, int] = {}
    for t in texts:
        words = [w for w in _WORD.findall(t.lower()) if w not in STOPWORDS and len(w) > 2]
        for w in words:
            first.setdefault(w, len(first))
        counts.update(set(words))
    return sorted(counts, key=lambda w: (-counts[w], first[w]))[:n]


def describe(
    task: str, prompts: Sequence[str], rows: Sequence[EvalRow], metric: str, overall: float
) -> str:
    """A one-line description of a weak group: topic words, the score gap, visible failure modes."""
    vals = [float(v) for r in rows if (v := r.scores.get(metric)) is not None]
    mean = sum(vals) / len(vals) if vals else math.nan
    words = _top_words(prompts)
    about = f" about {', '.join(words)}" if words else ""
    modes = []
    kp = [float(v) for r in rows if (v := r.scores.get("key_phrase_rate")) is not None]
    if kp and sum(kp) / len(kp) < 0.5:
        modes.append(f"misses key phrases (rate {sum(kp) / len(kp):.2f})")
    lr = [float(v) for r in rows if (v := r.scores.get("length_ratio")) is not None]
    if lr:
        ratio = sum(lr) / len(lr)
        if ratio > 1.5:
            modes.append(f"answers too long ({ratio:.1f}x the reference)")
        elif ratio < 0.6:
            modes.append(f"answers too short ({ratio:.1f}x the reference)")
    cut = sum(1 for r in rows if r.meta.get("finish_reason") == "length")
    if cut:
        modes.append(f"{cut} cut off at max_new_tokens")
    n = len(rows)
    text = f"{task}: {n} prompt{'s' if n != 1 else ''}{about}; {metric} {mean:.2f} vs {overall:.2f} overall"
    return text + (f"; {'; '.join(modes)}" if modes else "")


def describe_label(task: str, label: str, errors: int, n: int, confused: Counter[str | None],
                   source: str = "dev") -> str:
    """``"task: label 'x': 6 of 8 dev examples misclassified, mostly as 'y' (4), also 'z' (2)"``."""
    names = sorted(confused, key=lambda p: (-confused[p], "" if p is None else p))
    shown = [f"'{p}' ({confused[p]})" if p is not None else f"no label ({confused[p]})" for p in names[:3]]
    text = f"{task}: label '{label}': {errors} of {n} {source} example{'s' if n != 1 else ''} misclassified"
    if shown:
        text += f", mostly as {shown[0]}" + (f", also {', '.join(shown[1:])}" if len(shown) > 1 else "")
    return text + f"; the correct answer of these is '{label}'"


def label_groups(rows: Sequence[EvalRow], task_of: dict[str, str], eval_id: str,
                 source: str = "dev") -> list[dict[str, Any]]:
    """One group per (task, gold label) with at least one error, most errors first (then error rate, label)."""
    stats: dict[tuple[str, str], list[EvalRow]] = {}
    for r in rows:
        gold = r.meta.get("gold_label")
        if isinstance(gold, str) and gold:
            stats.setdefault((task_of.get(r.example_id, "unknown"), gold), []).append(r)
    out = []
    for (task, gold), members in stats.items():
        wrong = [r for r in members if r.meta.get("pred_label") != gold]
        if not wrong:
            continue
        confused: Counter[str | None] = Counter(r.meta.get("pred_label") for r in wrong)
        ids = sorted(r.example_id for r in wrong)
        gid = f"{task}-label-{hashlib.sha256('|'.join([eval_id, task, gold, *ids]).encode()).hexdigest()[:8]}"
        out.append({"id": gid, "task": task, "kind": "label", "label": gold, "errors": len(wrong), "n": len(members),
                    "confused_with": {("" if p is None else p): c for p, c in confused.most_common()},
                    "description": describe_label(task, gold, len(wrong), len(members), confused, source),
                    "example_ids": ids})
    def order(g: dict[str, Any]) -> tuple[int, float, str, str]:
        errors, n = int(g["errors"]), int(g["n"])
        return (-errors, -errors / n, str(g["task"]), str(g["label"]))

    out.sort(key=order)
    return out


def weaknesses(
    ws: Workspace,
    eval_id: str,
    *,
    k: int = 5,
    metric: str = "rougeL",
    fraction: float = 0.25,
    min_size: int = 3,
    embedder: str | None = None,
    encoder: Callable[[list[str]], np.ndarray] | None = None,
    by_label: bool = True,
    source: str = "dev",
) -> list[dict[str, Any]]:
    """Groups of the weakest examples of an evaluation: ``[{id, task, description, example_ids}]``.

    ``eval_id`` is an evaluation id or a run id (its latest evaluation).  ``fraction`` of the scored
    examples (at least one) with the lowest ``metric`` are grouped; ``k`` caps the clusters per task.
    A lower-is-better ``metric`` (``loss``) picks the highest values.  Prompts are embedded with
    ``encoder`` (texts -> L2-normalised rows) when given, else with :func:`curator.embed.encode` on
    ``embedder`` (the workspace default, all-MiniLM-L6-v2).  ``by_label``: label groups (see the
    module docstring) first, for the label tasks of the evaluation; ``source`` names the split in them.
    """
    if not 0 < fraction <= 1:
        raise CuratorError("fraction must be in (0, 1]")
    if k < 1:
        raise CuratorError("k must be at least 1")
    ev = resolve_eval(ws, eval_id)
    all_rows = eval_rows(ws, ev.id)
    labelled = [r for r in all_rows if "gold_label" in r.meta] if by_label else []
    if labelled:
        with ws.connect() as con:
            task_of = dict(con.execute("SELECT id, task FROM examples WHERE list_contains(?::VARCHAR[], id)",
                                       [[r.example_id for r in labelled]]).fetchall())
        by_label_groups = label_groups(labelled, task_of, ev.id, source)
    else:
        by_label_groups = []
    rows = [r for r in all_rows if isinstance(r.scores.get(metric), int | float)]
    if not rows:
        if by_label_groups:
            return by_label_groups
        raise CuratorError(f"evaluation {ev.id} has no {metric!r} scores")
    sign = -1.0 if metric == "loss" else 1.0
    overall = sum(_score(r, metric) for r in rows) / len(rows)
    rows.sort(key=lambda r: (sign * _score(r, metric), r.example_id))
    weak = rows[: max(1, math.ceil(fraction * len(rows)))]
    with ws.connect() as con:
        meta = con.execute(
            "SELECT id, task, messages::VARCHAR FROM examples WHERE list_contains(?::VARCHAR[], id)",
            [[r.example_id for r in weak]],
        ).fetchall()
    info = {eid: (task, "\n".join(m["content"] for m in json.loads(msgs) if m["role"] == "user"))
            for eid, task, msgs in meta}
    by_task: dict[str, list[EvalRow]] = {}
    for r in weak:
        by_task.setdefault(info.get(r.example_id, ("unknown", ""))[0], []).append(r)

    groups: list[tuple[float, dict[str, Any]]] = []
    for task in sorted(by_task):
        members = by_task[task]
        prompts = [info.get(r.example_id, ("", ""))[1] for r in members]
        n_clusters = min(k, max(1, len(members) // max(1, min_size)))
        if n_clusters > 1:
            if encoder is not None:
                vecs = np.asarray(encoder(prompts), dtype=np.float32)
            else:
                from curator.embed import encode

                vecs = encode(prompts) if embedder is None else encode(prompts, embedder)
            labels = cluster(vecs, n_clusters)
        else:
            labels = np.zeros(len(members), dtype=np.int64)
        for lab in sorted(set(labels.tolist())):
            idx = [i for i, x in enumerate(labels.tolist()) if x == lab]
            g_rows = [members[i] for i in idx]
            ids = sorted(r.example_id for r in g_rows)
            gid = f"{task}-{hashlib.sha256(('|'.join([ev.id, task, *ids])).encode()).hexdigest()[:8]}"
            desc = describe(task, [prompts[i] for i in idx], g_rows, metric, overall)
            mean = sum(sign * _score(r, metric) for r in g_rows) / len(g_rows)
            groups.append((mean, {"id": gid, "task": task, "description": desc, "example_ids": ids}))
    groups.sort(key=lambda g: (g[0], g[1]["id"]))
    return [*by_label_groups, *(g for _, g in groups)]
