"""The audit as a self-contained HTML page: inline SVG plots and tables, no scripts, no external URLs.

Plots: token length histograms per split, composition by origin and split (stacked bars),
duplicate cluster sizes per method, PII kinds. Tables: the fail-on metrics, counts, and the
worst offenders of every section with their example ids.  This module picks the numbers, rows and
charts; ``curator/html/templates/audit.html`` lays them out.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from curator import __version__
from curator.html import write_page
from curator.html.charts import TABLEAU, bar_chart, histogram, stacked_rows
from curator.quality.audit import AuditReport, parse_rule

__all__ = ["render_html"]

SPLIT_COLORS = {"train": "#4e79a7", "eval": "#f28e2b", "test": "#59a14f"}
_ORDER = {"train": 0, "eval": 1, "test": 2}


def _t(headers: Sequence[str], rows: Sequence[Sequence[Any]], text_cols: Sequence[int] = ()) -> dict[str, Any]:
    return {"headers": list(headers), "rows": [list(r) for r in rows], "text_cols": list(text_cols)}


def _cards(report: AuditReport, failed: Sequence[str]) -> list[dict[str, Any]]:
    bad_metrics = {parse_rule(f.split(" (")[0])[0] for f in failed}
    return [{"name": name, "count": m["count"], "fraction": m["fraction"], "bad": name in bad_metrics}
            for name, m in report.metrics.items()]


def _context(report: AuditReport, failed: Sequence[str], title: str) -> dict[str, Any]:
    d = report.data
    c = d["counts"]
    groups: dict[str, dict[str, int]] = {}
    for key, v in c["by_split_origin"].items():
        split, origin = key.split("/", 1)
        groups.setdefault(split, {})[origin] = v
    groups = dict(sorted(groups.items(), key=lambda kv: _ORDER.get(kv[0], 9)))
    origins = sorted(c["by_origin"])
    ln, du, lk, rs, va, ro = d["lengths"], d["duplicates"], d["leakage"], d["responses"], d["validation"], d["roles"]
    methods = list(du["by_method"])
    tables = {
        "composition": _t(["split", *origins, "total"],
                          [[s, *[g.get(o, 0) for o in origins], sum(g.values())] for s, g in groups.items()]),
        "excluded": _t(["kind", "examples"], list(c["excluded_by_kind"].items())),
        "tasks": _t(["task", "examples", "train", "eval", "test", "median response words"],
                    [[t, v["examples"], v["by_split"].get("train", 0), v["by_split"].get("eval", 0),
                      v["by_split"].get("test", 0), v["median_response_words"]]
                     for t, v in list(d["tasks"].items())[:30]]),
        "percentiles": _t(["split", "n", "min", "p10", "p50", "p90", "p99", "max"],
                          [[s, p["n"], p["min"], p["p10"], p["p50"], p["p90"], p["p99"], p["max"]]
                           for s, p in [*ln["by_split"].items(), ("all", ln["all"])] if p.get("n")]),
        "dup_methods": _t(["method", "threshold", "pairs", "clusters", "would exclude"],
                          [[m, v["threshold"] if v["threshold"] is not None else "folded text", v["pairs"],
                            v["clusters"], v["excluded"]] for m, v in du["by_method"].items()]),
        "dup_clusters": _t(["method", "kept id", "size", "kept text"],
                           [[w["method"], w["kept_id"], w["cluster_size"], w["text"]] for w in du["worst"]], (3,)),
        "dup_samples": _t(["method", "dropped id", "score", "dropped text", "kept text"],
                          [[s["method"], s["example_id"], s["score"], s["example_text"], s["kept_text"]]
                           for s in du["samples"]], (3, 4)),
        "leak_methods": _t(["method", "pairs"], list(lk["by_method"].items())),
        "leak_pairs": _t(["method", "score", "train id", "train text", "split", "other id", "other text"],
                         [[p["method"], p["score"], p["train_id"], p["train_text"], p["other_split"], p["other_id"],
                           p["other_text"]] for p in lk["worst"]], (3, 6)),
        "pii": _t(["id", "kinds", "text (scrubbed)"],
                  [[p["id"], ", ".join(f"{k} {v}" for k, v in p["kinds"].items()), p["scrubbed"]]
                   for p in d["pii"]["worst"]], (2,)),
        "refusals": _t(["id", "task", "phrase", "response"],
                       [[r["id"], r["task"], r["phrase"], r["response"]] for r in d["refusals"]["worst"]], (3,)),
        "empty": _t(["id", "task", "example"], [[r["id"], r["task"], r["text"]] for r in rs["worst"]["empty"]], (2,)),
        "short": _t(["id", "task", "words", "task median", "response"],
                    [[r["id"], r["task"], r["words"], r["task_median"], r["response"]] for r in rs["worst"]["short"]],
                    (4,)),
        "long": _t(["id", "task", "words", "length", "response"],
                   [[r["id"], r["task"], r["words"], r["length"], r["response"]] for r in rs["worst"]["long"]], (4,)),
        "validation_errors": _t(["error", "count"], list(va["errors"].items())),
        "validation": _t(["id", "errors", "example"], [[r["id"], ", ".join(r["errors"]), r["text"]]
                                                       for r in va["worst"]], (2,)),
        "roles": _t(["messages by role", *ro["messages_by_role"]], [["count", *ro["messages_by_role"].values()]]),
    }
    charts = {
        "composition": stacked_rows(groups, "Examples by split and origin"),
        "lengths": [histogram(hist, f"{s} ({ln['by_split'][s]['n']:,} examples)", SPLIT_COLORS.get(s, TABLEAU[4]),
                              ln["unit"].split(" ")[0])
                    for s, hist in sorted(ln["histograms"].items(), key=lambda kv: _ORDER.get(kv[0], 9))],
        "clusters": [bar_chart(dict(v["cluster_sizes"]), f"{m}: cluster sizes ({v['clusters']:,})",
                               TABLEAU[methods.index(m) % len(TABLEAU)], w=300, xlabel="members")
                     for m, v in du["by_method"].items()],
        "pii": bar_chart(d["pii"]["by_kind"], "PII-looking strings by kind", TABLEAU[3], w=420),
        "problems": bar_chart({"empty": rs["empty"], "short": rs["short"], "long": rs["long"],
                               "refusal": d["refusals"]["examples"], "invalid": va["examples"]},
                              "Response problems (examples)", TABLEAU[1], w=420),
    }
    return {
        "title": title, "version": __version__, "generated": datetime.now(UTC).isoformat(timespec="seconds"),
        "failed": list(failed), "cards": _cards(report, failed), "d": d, "c": c, "tables": tables, "charts": charts,
    }


def render_html(report: AuditReport, path: str | Path, *, failed: Sequence[str] = (), title: str = "Dataset audit") -> Path:
    """Write the audit page to ``path`` (one file, no external resources) and return the path."""
    return write_page(path, "audit.html", **_context(report, failed, title))
