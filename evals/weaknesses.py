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

__all__ = ["cluster", "describe", "weaknesses"]

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
) -> list[dict[str, Any]]:
    """Groups of the weakest examples of an evaluation: ``[{id, task, description, example_ids}]``.

    ``eval_id`` is an evaluation id or a run id (its latest evaluation).  ``fraction`` of the scored
    examples (at least one) with the lowest ``metric`` are grouped; ``k`` caps the clusters per task.
    A lower-is-better ``metric`` (``loss``) picks the highest values.  Prompts are embedded with
    ``encoder`` (texts -> L2-normalised rows) when given, else with :func:`curator.embed.encode` on
    ``embedder`` (the workspace default, all-MiniLM-L6-v2).
    """
    if not 0 < fraction <= 1:
        raise CuratorError("fraction must be in (0, 1]")
    if k < 1:
        raise CuratorError("k must be at least 1")
    ev = resolve_eval(ws, eval_id)
    rows = [r for r in eval_rows(ws, ev.id) if isinstance(r.scores.get(metric), int | float)]
    if not rows:
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
    return [g for _, g in groups]
