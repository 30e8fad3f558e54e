"""The audit as a self-contained HTML page: inline SVG plots and tables, no scripts, no external URLs.

Plots: token length histograms per split, composition by origin and split (stacked bars),
duplicate cluster sizes per method, PII kinds. Tables: the fail-on metrics, counts, and the
worst offenders of every section with their example ids.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from curator import __version__
from curator.html.charts import nice_ticks
from curator.quality.audit import AuditReport, parse_rule

__all__ = ["render_html"]

PALETTE = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7", "#9c755f")
SPLIT_COLORS = {"train": "#4e79a7", "eval": "#f28e2b", "test": "#59a14f"}
_CSS = """
body{font:14px/1.45 -apple-system,'Segoe UI',Helvetica,Arial,sans-serif;margin:24px auto;max-width:1180px;color:#222;padding:0 16px}
h1{font-size:24px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
h3{font-size:15px;margin:16px 0 6px}.meta{color:#666;font-size:12px}
.cards{display:flex;flex-wrap:wrap;gap:10px;margin:14px 0}
.card{border:1px solid #ddd;border-radius:6px;padding:8px 12px;min-width:120px;background:#fafafa}
.card b{display:block;font-size:20px}.card.bad{border-color:#e15759;background:#fdeeee}.card span{color:#666;font-size:12px}
table{border-collapse:collapse;margin:6px 0 12px;font-size:13px}
th,td{border:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f2f2f2}td.num{text-align:right;font-variant-numeric:tabular-nums}
code{font:12px ui-monospace,Menlo,Consolas,monospace;color:#555}
.grid{display:flex;flex-wrap:wrap;gap:18px;align-items:flex-start}
.txt{max-width:520px;white-space:pre-wrap;word-break:break-word}
.muted{color:#888}svg text{font:11px -apple-system,'Segoe UI',Helvetica,Arial,sans-serif;fill:#333}
"""


def _e(x: Any) -> str:
    return html.escape("" if x is None else str(x))


def _fmt(x: Any) -> str:
    if isinstance(x, float):
        return f"{x:.4g}"
    if isinstance(x, int):
        return f"{x:,}"
    return _e(x)


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]], *, text_cols: Sequence[int] = ()) -> str:
    if not rows:
        return '<p class="muted">none</p>'
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = []
    for r in rows:
        cells = []
        for i, c in enumerate(r):
            if i in text_cols:
                cells.append(f'<td class="txt">{_e(c)}</td>')
            elif isinstance(c, int | float):
                cells.append(f'<td class="num">{_fmt(c)}</td>')
            elif isinstance(c, str) and len(c) == 64 and all(ch in "0123456789abcdef" for ch in c):
                cells.append(f'<td><code title="{c}">{c[:16]}</code></td>')
            else:
                cells.append(f"<td>{_e(c)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _axes(w: int, h: int, pad: tuple[int, int, int, int], top_value: float, title: str) -> tuple[list[str], float]:
    """Title, round gridlines and labels from 0 to just above ``top_value``; returns (elements, axis maximum)."""
    left, right, top, bottom = pad
    ticks = nice_ticks(0.0, max(float(top_value), 1.0), 4)
    ymax = ticks[-1]
    out = [f'<text x="{w / 2}" y="14" text-anchor="middle" font-weight="bold">{_e(title)}</text>']
    for v in ticks:
        y = h - bottom - (h - top - bottom) * v / ymax
        out.append(f'<line x1="{left}" x2="{w - right}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eee"/>')
        out.append(f'<text x="{left - 4}" y="{y + 4:.1f}" text-anchor="end">{_fmt(int(v) if v == int(v) else v)}</text>')
    out.append(f'<line x1="{left}" x2="{left}" y1="{top}" y2="{h - bottom}" stroke="#999"/>')
    out.append(f'<line x1="{left}" x2="{w - right}" y1="{h - bottom}" y2="{h - bottom}" stroke="#999"/>')
    return out, ymax


def histogram_svg(hist: dict[str, Any], title: str, color: str, unit: str, w: int = 360, h: int = 220) -> str:
    """A bar histogram from ``{"edges", "counts", "overflow"}`` as an SVG element."""
    counts = list(hist.get("counts") or [])
    edges = list(hist.get("edges") or [])
    overflow = int(hist.get("overflow") or 0)
    pad = (44, 10, 24, 34)
    left, right, top, bottom = pad
    if not counts:
        return f'<svg width="{w}" height="{h}" role="img"><text x="10" y="20">{_e(title)}: no data</text></svg>'
    bars = counts + ([overflow] if overflow else [])
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" role="img" aria-label="{_e(title)}">']
    axes, ymax = _axes(w, h, pad, max(bars), title)
    out += axes
    pw = (w - left - right) / len(bars)
    ph = h - top - bottom
    for i, c in enumerate(bars):
        bh = ph * c / ymax
        fill = "#bbb" if overflow and i == len(bars) - 1 else color
        label = f"&gt; {edges[-1]:g}" if overflow and i == len(bars) - 1 else f"{edges[i]:g}–{edges[i + 1]:g}"
        out.append(f'<rect x="{left + i * pw + 0.5:.1f}" y="{h - bottom - bh:.1f}" width="{max(pw - 1, 0.5):.1f}" '
                   f'height="{bh:.1f}" fill="{fill}"><title>{label}: {c}</title></rect>')
    for frac in (0, 0.5, 1):
        x = left + frac * pw * len(counts)
        out.append(f'<text x="{x:.1f}" y="{h - bottom + 14}" text-anchor="middle">{edges[0] + frac * (edges[-1] - edges[0]):.0f}</text>')
    out.append(f'<text x="{(left + w - right) / 2}" y="{h - 4}" text-anchor="middle" class="muted">{_e(unit)}</text>')
    out.append("</svg>")
    return "".join(out)


def stacked_svg(groups: dict[str, dict[str, int]], title: str, w: int = 520, row_h: int = 30) -> str:
    """Horizontal stacked bars: one row per group (split), segments by key (origin), with a legend."""
    keys = sorted({k for g in groups.values() for k in g})
    colors = {k: PALETTE[i % len(PALETTE)] for i, k in enumerate(keys)}
    left, right, top = 60, 20, 26
    h = top + row_h * len(groups) + 40
    total_max = max((sum(g.values()) for g in groups.values()), default=1) or 1
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" role="img" aria-label="{_e(title)}">',
           f'<text x="{w / 2}" y="14" text-anchor="middle" font-weight="bold">{_e(title)}</text>']
    pw = w - left - right
    for r, (name, g) in enumerate(groups.items()):
        y = top + r * row_h
        out.append(f'<text x="{left - 6}" y="{y + row_h / 2 + 4}" text-anchor="end">{_e(name)}</text>')
        x = float(left)
        for k in keys:
            v = g.get(k, 0)
            if not v:
                continue
            bw = pw * v / total_max
            out.append(f'<rect x="{x:.1f}" y="{y + 4}" width="{bw:.1f}" height="{row_h - 8}" fill="{colors[k]}">'
                       f"<title>{_e(name)} / {_e(k)}: {v}</title></rect>")
            if bw > 34:
                out.append(f'<text x="{x + bw / 2:.1f}" y="{y + row_h / 2 + 4}" text-anchor="middle" '
                           f'style="fill:#fff">{_fmt(v)}</text>')
            x += bw
    lx = left
    ly = top + row_h * len(groups) + 18
    for k in keys:
        out.append(f'<rect x="{lx}" y="{ly - 9}" width="10" height="10" fill="{colors[k]}"/>'
                   f'<text x="{lx + 14}" y="{ly}">{_e(k)}</text>')
        lx += 24 + 7 * len(k)
    out.append("</svg>")
    return "".join(out)


def bars_svg(values: dict[str, int], title: str, color: str = "#4e79a7", w: int = 360, h: int = 220,
             xlabel: str = "") -> str:
    """Vertical bars for a small ``label -> count`` mapping."""
    if not values:
        return f'<svg width="{w}" height="60" role="img"><text x="10" y="20">{_e(title)}: none</text></svg>'
    pad = (44, 10, 24, 34)
    left, right, top, bottom = pad
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" role="img" aria-label="{_e(title)}">']
    axes, ymax = _axes(w, h, pad, max(values.values()), title)
    out += axes
    pw = (w - left - right) / len(values)
    ph = h - top - bottom
    for i, (k, v) in enumerate(values.items()):
        bh = ph * v / ymax
        x = left + i * pw
        bw = min(pw * 0.7, 48.0)
        out.append(f'<rect x="{x + (pw - bw) / 2:.1f}" y="{h - bottom - bh:.1f}" width="{bw:.1f}" height="{bh:.1f}" '
                   f'fill="{color}"><title>{_e(k)}: {v}</title></rect>')
        out.append(f'<text x="{x + pw / 2:.1f}" y="{h - bottom - bh - 3:.1f}" text-anchor="middle">{_fmt(v)}</text>')
        out.append(f'<text x="{x + pw / 2:.1f}" y="{h - bottom + 14}" text-anchor="middle">{_e(k)}</text>')
    if xlabel:
        out.append(f'<text x="{(left + w - right) / 2}" y="{h - 4}" text-anchor="middle">{_e(xlabel)}</text>')
    out.append("</svg>")
    return "".join(out)


def _cards(report: AuditReport, failed: Sequence[str]) -> str:
    bad_metrics = {parse_rule(f.split(" (")[0])[0] for f in failed}
    out = ['<div class="cards">']
    d = report.data
    out.append(f'<div class="card"><b>{d["counts"]["active"]:,}</b><span>active examples</span></div>')
    for name, m in report.metrics.items():
        cls = "card bad" if name in bad_metrics else "card"
        out.append(f'<div class="{cls}"><b>{m["count"]:,}</b><span>{_e(name)} · {m["fraction"]:.2%}</span></div>')
    out.append("</div>")
    return "".join(out)


def render_html(report: AuditReport, path: str | Path, *, failed: Sequence[str] = (), title: str = "Dataset audit") -> Path:
    """Write the audit page to ``path`` (one file, no external resources) and return the path."""
    d = report.data
    c = d["counts"]
    parts: list[str] = [
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">",
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{_e(title)}</h1>",
        f'<div class="meta">curator-loop {_e(__version__)} · {datetime.now(UTC).isoformat(timespec="seconds")} · '
        f'{c["active"]:,} active of {c["stored"]:,} stored examples</div>',
        _cards(report, failed),
    ]
    if failed:
        parts.append("<p><b>Failed rules:</b> " + ", ".join(_e(f) for f in failed) + "</p>")

    # composition
    parts.append('<h2 id="composition">Composition</h2><div class="grid">')
    groups: dict[str, dict[str, int]] = {}
    for key, v in c["by_split_origin"].items():
        split, origin = key.split("/", 1)
        groups.setdefault(split, {})[origin] = v
    order = {"train": 0, "eval": 1, "test": 2}
    groups = dict(sorted(groups.items(), key=lambda kv: order.get(kv[0], 9)))
    parts.append(stacked_svg(groups, "Examples by split and origin"))
    rows = [[s, *[g.get(o, 0) for o in sorted(c["by_origin"])], sum(g.values())] for s, g in groups.items()]
    parts.append("<div>" + _table(["split", *sorted(c["by_origin"]), "total"], rows))
    if c["excluded_by_kind"]:
        parts.append("<h3>Excluded by decision</h3>" + _table(["kind", "examples"], list(c["excluded_by_kind"].items())))
    parts.append("</div></div>")
    tasks = d["tasks"]
    parts.append("<h3>Examples per task</h3>" + _table(
        ["task", "examples", "train", "eval", "test", "median response words"],
        [[t, v["examples"], v["by_split"].get("train", 0), v["by_split"].get("eval", 0), v["by_split"].get("test", 0),
          v["median_response_words"]] for t, v in list(tasks.items())[:30]]))

    # lengths
    ln = d["lengths"]
    parts.append(f'<h2 id="lengths">Lengths</h2><p class="meta">unit: {_e(ln["unit"])}; histograms cover the minimum to the '
                 "99th percentile, the grey bar counts the longer ones</p><div class=\"grid\">")
    for s, hist in sorted(ln["histograms"].items(), key=lambda kv: order.get(kv[0], 9)):
        parts.append(histogram_svg(hist, f"{s} ({ln['by_split'][s]['n']:,} examples)", SPLIT_COLORS.get(s, PALETTE[4]),
                                   ln["unit"].split(" ")[0]))
    parts.append("</div>")
    prow = [[s, p["n"], p["min"], p["p10"], p["p50"], p["p90"], p["p99"], p["max"]]
            for s, p in [*ln["by_split"].items(), ("all", ln["all"])] if p.get("n")]
    parts.append(_table(["split", "n", "min", "p10", "p50", "p90", "p99", "max"], prow))

    # duplicates
    du = d["duplicates"]
    parts.append('<h2 id="duplicates">Duplicates</h2><p class="meta">dry run of <code>curator dedup</code> '
                 f"({', '.join(du['methods'])}): {du['excluded']:,} examples would be excluded</p><div class=\"grid\">")
    for m, v in du["by_method"].items():
        parts.append(bars_svg({k: n for k, n in v["cluster_sizes"].items()}, f"{m}: cluster sizes ({v['clusters']:,})",
                              PALETTE[list(du["by_method"]).index(m) % len(PALETTE)], w=300, xlabel="members"))
    parts.append("</div>")
    parts.append(_table(["method", "threshold", "pairs", "clusters", "would exclude"],
                        [[m, v["threshold"] if v["threshold"] is not None else "folded text", v["pairs"], v["clusters"],
                          v["excluded"]] for m, v in du["by_method"].items()]))
    parts.append("<h3>Largest clusters</h3>" + _table(
        ["method", "kept id", "size", "kept text"], [[w["method"], w["kept_id"], w["cluster_size"], w["text"]]
                                                     for w in du["worst"]], text_cols=(3,)))
    parts.append("<h3>Sample pairs</h3>" + _table(
        ["method", "dropped id", "score", "dropped text", "kept text"],
        [[s["method"], s["example_id"], s["score"], s["example_text"], s["kept_text"]] for s in du["samples"]],
        text_cols=(3, 4)))

    # leakage
    lk = d["leakage"]
    parts.append(f'<h2 id="leakage">Leakage</h2><p class="meta">train against eval/test ({", ".join(lk["methods"])}): '
                 f'{lk["pairs"]:,} leaking pairs, {lk["train_examples_leaking"]:,} train examples; '
                 "<code>curator leakage --fix</code> excludes the train copies</p>")
    parts.append(_table(["method", "pairs"], list(lk["by_method"].items())))
    parts.append(_table(["method", "score", "train id", "train text", "split", "other id", "other text"],
                        [[p["method"], p["score"], p["train_id"], p["train_text"], p["other_split"], p["other_id"],
                          p["other_text"]] for p in lk["worst"]], text_cols=(3, 6)))

    # problems
    parts.append('<h2 id="problems">Content problems</h2><div class="grid">')
    parts.append(bars_svg(d["pii"]["by_kind"], "PII-looking strings by kind", PALETTE[3], w=420))
    rs = d["responses"]
    parts.append(bars_svg({"empty": rs["empty"], "short": rs["short"], "long": rs["long"],
                           "refusal": d["refusals"]["examples"], "invalid": d["validation"]["examples"]},
                          "Response problems (examples)", PALETTE[1], w=420))
    parts.append("</div>")
    parts.append(f"<h3>PII-looking strings ({d['pii']['examples']:,} examples)</h3>" + _table(
        ["id", "kinds", "text (scrubbed)"],
        [[p["id"], ", ".join(f"{k} {v}" for k, v in p["kinds"].items()), p["scrubbed"]] for p in d["pii"]["worst"]],
        text_cols=(2,)))
    parts.append(f"<h3>Boilerplate refusals ({d['refusals']['examples']:,})</h3>" + _table(
        ["id", "task", "phrase", "response"],
        [[r["id"], r["task"], r["phrase"], r["response"]] for r in d["refusals"]["worst"]], text_cols=(3,)))
    parts.append(f"<h3>Empty responses ({rs['empty']:,})</h3>" + _table(
        ["id", "task", "example"], [[r["id"], r["task"], r["text"]] for r in rs["worst"]["empty"]], text_cols=(2,)))
    parts.append(f"<h3>Very short responses ({rs['short']:,}; {_e(rs['rules']['short'])})</h3>" + _table(
        ["id", "task", "words", "task median", "response"],
        [[r["id"], r["task"], r["words"], r["task_median"], r["response"]] for r in rs["worst"]["short"]],
        text_cols=(4,)))
    parts.append(f"<h3>Very long responses ({rs['long']:,}; {_e(rs['rules']['long'])})</h3>" + _table(
        ["id", "task", "words", "length", "response"],
        [[r["id"], r["task"], r["words"], r["length"], r["response"]] for r in rs["worst"]["long"]], text_cols=(4,)))
    va = d["validation"]
    parts.append(f"<h3>Validation errors ({va['examples']:,} examples)</h3>"
                 + _table(["error", "count"], list(va["errors"].items()))
                 + _table(["id", "errors", "example"], [[r["id"], ", ".join(r["errors"]), r["text"]] for r in va["worst"]],
                          text_cols=(2,)))

    # roles
    ro = d["roles"]
    parts.append('<h2 id="roles">Roles</h2>' + _table(
        ["messages by role", *ro["messages_by_role"]], [["count", *ro["messages_by_role"].values()]]))
    ut = ro["user_turns"]
    parts.append(f"<p>{ro['with_system']:,} examples with a system prompt; {ro['multi_turn']:,} multi-turn; "
                 f"user turns per example p50 {ut.get('p50', 0)}, max {ut.get('max', 0)}</p>")
    parts.append("</body></html>\n")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(parts), encoding="utf-8")
    tmp.replace(path)
    return path
