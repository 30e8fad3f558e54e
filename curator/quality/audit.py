"""``curator audit``: one dataset quality report over the active examples of the workspace.

Sections: counts (split, origin, task; excluded by decision kind), token lengths (base model
tokenizer and chat template), validation errors (OpenAI chat rules), duplicates by method (a dry
run of :func:`curator.quality.dedup.dedup`), leakage (:func:`curator.quality.leakage.find_leakage`), PII-looking
strings (:func:`curator.quality.pii.find_pii`), response problems, boilerplate refusals
(:func:`curator.quality.refusal.find_refusal`, the same detector the generation filters use), role
balance and examples per task. Each problem section lists its worst offenders by id.

Response rules (on the last assistant turn):

* ``empty``: an assistant turn with no visible text, or no assistant turn at all;
* ``short``: fewer than 3 words while the task's median response has 10 or more (label tasks
  such as intent classification answer in one word and are not flagged);
* ``long``: more than 500 words and more than 5 times the task's median response, or the
  whole example over 4,096 tokens (it would be truncated in training).

:func:`check_rules` evaluates ``--fail-on`` rules such as ``duplicates>0.05`` or ``leakage>0``
against :attr:`AuditReport.metrics`: a value written with a decimal point or ``%`` compares the
metric's *fraction* of active examples, an integer compares its *count*.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from curator.data.validate import MAX_TOKENS_PER_EXAMPLE, check_chat_record
from curator.errors import CuratorError, MissingDependency, ModelError
from curator.models import DEFAULT_CHAT_MODEL, DEFAULT_EMBEDDER
from curator.quality.dedup.engine import Engine
from curator.quality.dedup.run import ProgressFactory, dedup, no_progress
from curator.quality.leakage import find_leakage
from curator.quality.pii import find_pii, scrub
from curator.quality.refusal import find_refusal
from curator.records import message_text
from curator.workspace import Workspace

__all__ = ["METRICS", "AuditReport", "audit", "check_rules", "parse_rule"]

SHORT_WORDS, SHORT_TASK_MEDIAN = 3, 10
LONG_WORDS, LONG_FACTOR = 500, 5

#: Metrics ``--fail-on`` understands (each has a count and a fraction of active examples).
METRICS = {
    "duplicates": "examples a dedup run would exclude (exact and near; semantic with --semantic)",
    "leakage": "train examples overlapping eval/test (count of leaking pairs; fraction of train examples)",
    "pii": "examples with a PII-looking string",
    "refusals": "examples with a boilerplate refusal or AI disclaimer",
    "validation": "examples with a validation error",
    "empty": "examples with an empty or missing response",
    "short": "examples with a very short response",
    "long": "examples with a very long response or over the token limit",
    "excluded": "examples excluded so far (fraction of all stored)",
}


@dataclass
class AuditReport:
    """The audit as one JSON-able dict (``data``) plus the ``metrics`` rules compare."""

    data: dict[str, Any] = field(default_factory=dict)

    @property
    def metrics(self) -> dict[str, dict[str, float]]:
        return self.data["metrics"]

    def to_dict(self) -> dict[str, Any]:
        return self.data


# -- rules --------------------------------------------------------------------------------------------------------
_RULE = re.compile(r"^\s*([a-z_]+)\s*(>=|<=|==|>|<)\s*([0-9]*\.?[0-9]+)\s*(%?)\s*$")


def parse_rule(rule: str) -> tuple[str, str, float, bool]:
    """``"duplicates>0.05"`` -> (metric, operator, value, compare_fraction)."""
    m = _RULE.match(rule)
    if not m:
        raise CuratorError(f"cannot read --fail-on rule {rule!r}: write METRIC OP VALUE, e.g. duplicates>0.05 or leakage>0")
    name, op, raw, pct = m.groups()
    if name not in METRICS:
        raise CuratorError(f"unknown metric {name!r} in --fail-on {rule!r} (choose from {', '.join(METRICS)})")
    value = float(raw) / (100 if pct else 1)
    return name, op, value, bool(pct) or "." in raw


def check_rules(report: AuditReport, rules: Sequence[str]) -> list[str]:
    """The rules that fire (the audit should fail), each as ``"rule (value)"``."""
    ops = {">": np.greater, ">=": np.greater_equal, "<": np.less, "<=": np.less_equal, "==": np.equal}
    failed = []
    for rule in rules:
        name, op, value, frac = parse_rule(rule)
        metric = report.metrics[name]
        actual = metric["fraction"] if frac else metric["count"]
        if bool(ops[op](actual, value)):
            shown = f"{actual:.4f}" if frac else f"{int(actual)}"
            failed.append(f"{rule.strip()} ({name} = {shown})")
    return failed


# -- the audit ----------------------------------------------------------------------------------------------------
def _words(text: str) -> int:
    return len(text.split())


def _snippet(text: str, n: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"


def _percentiles(values: Sequence[int]) -> dict[str, Any]:
    if not len(values):
        return {"n": 0}
    a = np.asarray(values)
    q = np.percentile(a, [10, 50, 90, 99]).round().astype(int).tolist()
    return {"n": int(a.size), "min": int(a.min()), "p10": q[0], "p50": q[1], "p90": q[2], "p99": q[3], "max": int(a.max()),
            "mean": round(float(a.mean()), 1)}


def _histogram(values: Sequence[int], bins: int = 30) -> dict[str, Any]:
    """Bins over [min, p99] plus an overflow count; the HTML report draws these."""
    if not len(values):
        return {"edges": [], "counts": [], "overflow": 0}
    a = np.asarray(values)
    low = int(a.min())
    top = max(low + 1, int(np.ceil(np.percentile(a, 99))))
    width = max(1, int(np.ceil((top + 1 - low) / bins)))  # whole numbers per bin: no comb on integer data
    edges = np.arange(low, top + width + 1, width)
    counts, edges = np.histogram(a[a < edges[-1]], bins=edges)
    top = int(edges[-1]) - 1
    return {"edges": [int(e) for e in edges], "counts": counts.tolist(), "overflow": int((a > top).sum())}


def _token_lengths(convs: list[list[dict[str, Any]]], model: str) -> tuple[list[int], str]:
    """Token counts with the base model's tokenizer, or word counts when it cannot be loaded (the unit
    says why: without transformers it names the ``[train]`` extra)."""
    from curator.models import token_lengths

    try:
        return token_lengths(convs, model), f"tokens ({model} chat template)"
    except (ModelError, MissingDependency, OSError) as e:
        return [sum(_words(m["content"]) for m in c) for c in convs], f"words (tokenizer unavailable: {e})"


def audit(
    ws: Workspace,
    *,
    semantic: bool = False,
    model: str = DEFAULT_EMBEDDER,
    tokenizer: str = DEFAULT_CHAT_MODEL,
    worst: int = 10,
    progress: ProgressFactory | None = None,
    engine: Engine | None = None,
) -> AuditReport:
    """Audit the active examples. ``semantic`` adds embedding-based duplicates and leakage (slower).

    ``engine`` runs the duplicate and leakage statistics (a dry-run dedup and a leakage search; this
    process by default, or Ray: see :mod:`curator.quality.dedup.engine`); the other sections are
    computed here.
    """
    progress = progress or no_progress
    with ws.connect() as con:
        rows = con.execute(
            """SELECT e.id, e.messages, e.task, e.origin, coalesce(s.split, 'train') FROM examples e
               LEFT JOIN splits s ON s.example_id = e.id WHERE e.status = 'active' ORDER BY e.created_at, e.id"""
        ).fetchall()
        stored = con.execute("SELECT count(*) FROM examples").fetchall()[0][0]
        excluded_by = dict(con.execute(
            """SELECT kind, count(DISTINCT example_id) FROM decisions d JOIN examples e ON e.id = d.example_id
               WHERE d.undone_at IS NULL AND e.status = 'excluded' GROUP BY kind ORDER BY kind"""
        ).fetchall())
    n = len(rows)
    ids = [r[0] for r in rows]
    convs = [orjson.loads(r[1]) for r in rows]
    tasks, origins, splits = [r[2] for r in rows], [r[3] for r in rows], [r[4] for r in rows]
    data: dict[str, Any] = {}

    # counts
    by_split_origin: Counter[str] = Counter(f"{s}/{o}" for s, o in zip(splits, origins, strict=True))
    data["counts"] = {
        "active": n, "stored": int(stored), "excluded": int(stored) - n,
        "excluded_by_kind": {k: int(v) for k, v in excluded_by.items()},
        "by_split": dict(sorted(Counter(splits).items())), "by_origin": dict(sorted(Counter(origins).items())),
        "by_task": dict(sorted(Counter(tasks).items())), "by_split_origin": dict(sorted(by_split_origin.items())),
    }

    # token lengths
    lengths, unit = _token_lengths(convs, tokenizer) if n else ([], "tokens")
    per_split: dict[str, list[int]] = {}
    for s, length in zip(splits, lengths, strict=True):
        per_split.setdefault(s, []).append(length)
    data["lengths"] = {
        "unit": unit, "all": _percentiles(lengths),
        "by_split": {s: _percentiles(v) for s, v in sorted(per_split.items())},
        "histograms": {s: _histogram(v) for s, v in sorted(per_split.items())},
    }

    # validation
    errors: Counter[str] = Counter()
    invalid: list[dict[str, Any]] = []
    for eid, c in zip(ids, convs, strict=True):
        errs = check_chat_record({"messages": c})
        if errs:
            errors.update(errs)
            invalid.append({"id": eid, "errors": errs, "text": _snippet(_flat(c))})
    data["validation"] = {"examples": len(invalid), "errors": dict(errors.most_common()), "worst": invalid[:worst]}

    # responses, refusals, PII, roles
    last = [next((message_text(m) for m in reversed(c) if m["role"] == "assistant"), None) for c in convs]
    words = [_words(t) if t is not None else 0 for t in last]
    task_words: dict[str, list[int]] = {}
    for t, w, r in zip(tasks, words, last, strict=True):
        if r is not None:
            task_words.setdefault(t, []).append(w)
    task_median = {t: float(np.median(v)) for t, v in task_words.items()}
    empty, short, long_ = [], [], []
    refusals, pii_rows = [], []
    pii_kinds: Counter[str] = Counter()
    roles: Counter[str] = Counter()
    turns: list[int] = []
    with_system = multi_turn = 0
    for i, c in enumerate(convs):
        eid, resp, w, med = ids[i], last[i], words[i], task_median.get(tasks[i], 0.0)
        if resp is None or any(m["role"] == "assistant" and not message_text(m).strip() for m in c):
            empty.append({"id": eid, "task": tasks[i], "text": _snippet(_flat(c))})
        elif w < SHORT_WORDS and med >= SHORT_TASK_MEDIAN:
            short.append({"id": eid, "task": tasks[i], "words": w, "task_median": med, "response": _snippet(resp)})
        elif (w > LONG_WORDS and w > LONG_FACTOR * med) or (lengths and lengths[i] > MAX_TOKENS_PER_EXAMPLE):
            long_.append({"id": eid, "task": tasks[i], "words": w, "length": lengths[i] if lengths else None,
                          "response": _snippet(resp)})
        answer = "\n".join(m["content"] for m in c if m["role"] == "assistant")
        phrase = find_refusal(answer) if answer else None
        if phrase is not None:
            refusals.append({"id": eid, "task": tasks[i], "phrase": phrase, "response": _snippet(answer)})
        kinds: Counter[str] = Counter()
        for m in c:
            for p in find_pii(message_text(m)):
                kinds[p.kind] += 1
        if kinds:
            pii_kinds.update(kinds)
            text = _flat(c)
            pii_rows.append({"id": eid, "kinds": dict(kinds), "scrubbed": _snippet(scrub(text)[0])})
        roles.update(m["role"] for m in c)
        turns.append(sum(m["role"] == "user" for m in c))
        with_system += any(m["role"] == "system" for m in c)
        multi_turn += turns[-1] > 1
    long_.sort(key=lambda r: -(r["length"] or r["words"]))
    data["responses"] = {
        "words": _percentiles([w for w, r in zip(words, last, strict=True) if r is not None]),
        "empty": len(empty), "short": len(short), "long": len(long_),
        "rules": {"short": f"< {SHORT_WORDS} words where the task median is >= {SHORT_TASK_MEDIAN}",
                  "long": f"> {LONG_WORDS} words and > {LONG_FACTOR}x the task median, "
                          f"or over {MAX_TOKENS_PER_EXAMPLE} tokens"},
        "worst": {"empty": empty[:worst], "short": short[:worst], "long": long_[:worst]},
    }
    data["refusals"] = {"examples": len(refusals), "worst": refusals[:worst]}
    pii_rows.sort(key=lambda r: -sum(r["kinds"].values()))
    data["pii"] = {"examples": len(pii_rows), "by_kind": dict(pii_kinds.most_common()), "worst": pii_rows[:worst]}
    data["roles"] = {
        "messages_by_role": dict(sorted(roles.items())), "user_turns": _percentiles(turns),
        "with_system": with_system, "multi_turn": multi_turn,
    }
    data["tasks"] = {
        t: {"examples": int(k), "median_response_words": task_median.get(t),
            "by_split": dict(sorted(Counter(s for s, tt in zip(splits, tasks, strict=True) if tt == t).items()))}
        for t, k in sorted(Counter(tasks).items(), key=lambda kv: -kv[1])
    }

    # duplicates and leakage (dry runs, nothing written)
    methods = ("exact", "near", "semantic") if semantic else ("exact", "near")
    dup = dedup(ws, methods, model=model, dry_run=True, samples=worst, progress=progress, engine=engine)
    clusters: Counter[tuple[str, str]] = Counter()
    for d in dup.decisions:
        clusters[(d.method, d.other_id)] = d.cluster_size
    text_of = dict(zip(ids, convs, strict=True))
    biggest = sorted(clusters.items(), key=lambda kv: (-kv[1], kv[0]))[:worst]
    data["duplicates"] = {
        "methods": list(methods), "excluded": dup.excluded,
        "by_method": {m.method: {"pairs": m.pairs, "clusters": m.clusters, "excluded": m.excluded,
                                 "threshold": m.threshold,
                                 "cluster_sizes": {str(k): v for k, v in sorted(m.cluster_sizes.items())}}
                      for m in dup.methods},
        "worst": [{"method": m, "kept_id": k, "cluster_size": size,
                   "text": _snippet(_flat(text_of[k])) if k in text_of else ""} for (m, k), size in biggest],
        "samples": [s | {"method": m.method} for m in dup.methods for s in m.samples[:3]],
    }
    lk_methods = ("exact", "ngram", "semantic") if semantic else ("exact", "ngram")
    leak = find_leakage(ws, lk_methods, model=model, progress=progress, engine=engine)
    data["leakage"] = {
        "methods": list(lk_methods), "pairs": len(leak.pairs), "by_method": leak.by_method,
        "train_examples_leaking": len(leak.train_ids),
        "worst": [p.to_dict() | {"train_text": _snippet(p.train_text), "other_text": _snippet(p.other_text)}
                  for p in leak.pairs[:worst]],
    }

    def metric(count: int, of: int) -> dict[str, float]:
        return {"count": int(count), "fraction": round(count / of, 6) if of else 0.0}

    n_train = sum(s == "train" for s in splits)
    data["metrics"] = {
        "duplicates": metric(dup.excluded, n),
        "leakage": {"count": len(leak.pairs), "fraction": round(len(leak.train_ids) / n_train, 6) if n_train else 0.0},
        "pii": metric(len(pii_rows), n),
        "refusals": metric(len(refusals), n),
        "validation": metric(len(invalid), n),
        "empty": metric(len(empty), n),
        "short": metric(len(short), n),
        "long": metric(len(long_), n),
        "excluded": metric(int(stored) - n, int(stored)),
    }
    return AuditReport(data)


def _flat(messages: list[dict[str, Any]]) -> str:
    return "\n".join(f"{m['role']}: {m['content']}" for m in messages)
