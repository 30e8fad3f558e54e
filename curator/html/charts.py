"""Tiny inline-SVG charts for self-contained HTML reports (no plotting library, no external URLs).

Each builder returns :class:`markupsafe.Markup`, so a template puts it in as markup: that is safe
because every builder escapes each text it embeds (titles, axis labels, legend entries, tooltips:
task names, run ids, origins) and writes numbers itself.  ``tests/test_html.py`` checks it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from markupsafe import Markup

__all__ = ["PALETTE", "TABLEAU", "bar_chart", "ci_bar", "histogram", "line_chart", "nice_ticks", "stacked_bars",
           "stacked_rows"]

PALETTE = ("#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2", "#be185d", "#4b5563")
#: The audit page's colours.
TABLEAU = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7", "#9c755f")


def _e(x: Any) -> str:
    return escape("" if x is None else str(x))


def _count(x: Any) -> str:
    """A count as the audit shows it (thousands separators; floats to 4 significant digits)."""
    if isinstance(x, float):
        return f"{x:.4g}"
    if isinstance(x, int):
        return f"{x:,}"
    return _e(x)


def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """Round tick values (steps of 1, 2, 2.5 or 5 times a power of ten) covering [lo, hi]."""
    if hi <= lo:
        hi = lo + 1.0
    raw = (hi - lo) / n
    mag = 10.0 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw * (1 - 1e-9))
    start, stop = math.floor(lo / step + 1e-9) * step, math.ceil(hi / step - 1e-9) * step
    return [round(start + i * step, 12) for i in range(round((stop - start) / step) + 1)]


def line_chart(
    series: Mapping[str, Sequence[tuple[float, float]]],
    *,
    title: str,
    x_label: str = "",
    y_label: str = "",
    width: int = 560,
    height: int = 260,
    x_ticks: Sequence[tuple[float, str]] | None = None,
) -> Markup:
    """Lines (with points) for each named series of (x, y); legend under the title."""
    pts = [p for s in series.values() for p in s]
    if not pts:
        return Markup(f'<svg width="{width}" height="60"><text x="10" y="30">{escape(title)}: no data</text></svg>')
    left, right, top, bottom = 52, 16, 44, 40
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    x0, x1 = min(xs), max(xs)
    y0, y1 = min(ys), max(ys)
    if x1 == x0:
        x0, x1 = x0 - 0.5, x1 + 0.5
    pad = (y1 - y0) * 0.1 or abs(y1) * 0.1 or 0.1
    y0, y1 = (max(y0 - pad, 0.0) if y0 >= 0 else y0 - pad), y1 + pad
    y_ticks = nice_ticks(y0, y1)
    y0, y1 = y_ticks[0], y_ticks[-1]

    def sx(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * (width - left - right)

    def sy(y: float) -> float:
        return height - bottom - (y - y0) / (y1 - y0) * (height - top - bottom)

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
           f'aria-label="{escape(title)}" style="font:11px sans-serif">',
           f'<text x="{left}" y="14" style="font-weight:bold;font-size:13px">{escape(title)}</text>']
    for y in y_ticks:
        out.append(f'<line x1="{left}" x2="{width - right}" y1="{sy(y):.1f}" y2="{sy(y):.1f}" stroke="#e5e7eb"/>')
        out.append(f'<text x="{left - 4}" y="{sy(y) + 4:.1f}" text-anchor="end">{y:.3g}</text>')
    for x, label in x_ticks or [(x, f"{x:g}") for x in nice_ticks(x0, x1) if x0 <= x <= x1]:
        out.append(f'<text x="{sx(x):.1f}" y="{height - bottom + 14}" text-anchor="middle">{escape(label)}</text>')
    out.append(f'<text x="{(left + width - right) / 2}" y="{height - 6}" text-anchor="middle">{escape(x_label)}</text>')
    out.append(f'<text x="12" y="{(top + height - bottom) / 2}" transform="rotate(-90 12 {(top + height - bottom) / 2})" '
               f'text-anchor="middle">{escape(y_label)}</text>')
    lx = left
    for i, (name, s) in enumerate(series.items()):
        color = PALETTE[i % len(PALETTE)]
        pts_s = sorted(s)
        if pts_s:
            path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in pts_s)
            out.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{path}"/>')
            if len(pts_s) <= 30:
                out.extend(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="3" fill="{color}"/>' for x, y in pts_s)
        out.append(f'<rect x="{lx}" y="22" width="10" height="10" fill="{color}"/>'
                   f'<text x="{lx + 14}" y="31">{escape(name)}</text>')
        lx += 24 + 7 * len(name)
    out.append("</svg>")
    return Markup("".join(out))


def stacked_bars(
    bars: Mapping[str, Mapping[str, float]], *, title: str, width: int = 560, height: int = 260
) -> Markup:
    """One vertical bar per key, stacked by category (e.g. snapshot -> origin -> count)."""
    if not bars:
        return Markup(f'<svg width="{width}" height="60"><text x="10" y="30">{escape(title)}: no data</text></svg>')
    cats = sorted({c for b in bars.values() for c in b})
    left, right, top, bottom = 52, 16, 44, 48
    total_max = max(sum(b.values()) for b in bars.values()) or 1
    n = len(bars)
    slot = (width - left - right) / n
    bw = min(60.0, slot * 0.6)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
           f'aria-label="{escape(title)}" style="font:11px sans-serif">',
           f'<text x="{left}" y="14" style="font-weight:bold;font-size:13px">{escape(title)}</text>']
    scale = (height - top - bottom) / total_max
    for i, (name, b) in enumerate(bars.items()):
        x = left + i * slot + (slot - bw) / 2
        y = float(height - bottom)
        for j, c in enumerate(cats):
            v = float(b.get(c, 0))
            if v <= 0:
                continue
            h = v * scale
            y -= h
            out.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{bw:.1f}" height="{h:.1f}" '
                       f'fill="{PALETTE[j % len(PALETTE)]}"><title>{escape(c)}: {v:g}</title></rect>')
        out.append(f'<text x="{x + bw / 2:.1f}" y="{y - 4:.1f}" text-anchor="middle">{sum(b.values()):g}</text>')
        out.append(f'<text x="{x + bw / 2:.1f}" y="{height - bottom + 14}" text-anchor="middle">{escape(name)}</text>')
    lx = left
    for j, c in enumerate(cats):
        out.append(f'<rect x="{lx}" y="22" width="10" height="10" fill="{PALETTE[j % len(PALETTE)]}"/>'
                   f'<text x="{lx + 14}" y="31">{escape(c)}</text>')
        lx += 24 + 7 * len(c)
    out.append("</svg>")
    return Markup("".join(out))


def _axes(w: int, h: int, pad: tuple[int, int, int, int], top_value: float, title: str) -> tuple[list[str], float]:
    """Title, round gridlines and labels from 0 to just above ``top_value``; returns (elements, axis maximum)."""
    left, right, top, bottom = pad
    ticks = nice_ticks(0.0, max(float(top_value), 1.0), 4)
    ymax = ticks[-1]
    out = [f'<text x="{w / 2}" y="14" text-anchor="middle" font-weight="bold">{_e(title)}</text>']
    for v in ticks:
        y = h - bottom - (h - top - bottom) * v / ymax
        out.append(f'<line x1="{left}" x2="{w - right}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eee"/>')
        out.append(f'<text x="{left - 4}" y="{y + 4:.1f}" text-anchor="end">{_count(int(v) if v == int(v) else v)}</text>')
    out.append(f'<line x1="{left}" x2="{left}" y1="{top}" y2="{h - bottom}" stroke="#999"/>')
    out.append(f'<line x1="{left}" x2="{w - right}" y1="{h - bottom}" y2="{h - bottom}" stroke="#999"/>')
    return out, ymax


def histogram(hist: dict[str, Any], title: str, color: str, unit: str, w: int = 360, h: int = 220) -> Markup:
    """A bar histogram from ``{"edges", "counts", "overflow"}`` (the grey last bar counts the overflow)."""
    counts = list(hist.get("counts") or [])
    edges = [float(e) for e in hist.get("edges") or []]
    overflow = int(hist.get("overflow") or 0)
    pad = (44, 10, 24, 34)
    left, right, top, bottom = pad
    if not counts:
        return Markup(f'<svg width="{w}" height="{h}" role="img"><text x="10" y="20">{_e(title)}: no data</text></svg>')
    bars = [int(c) for c in counts] + ([overflow] if overflow else [])
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" role="img" aria-label="{_e(title)}">']
    axes, ymax = _axes(w, h, pad, max(bars), title)
    out += axes
    pw = (w - left - right) / len(bars)
    ph = h - top - bottom
    for i, c in enumerate(bars):
        bh = ph * c / ymax
        fill = "#bbb" if overflow and i == len(bars) - 1 else _e(color)
        label = f"&gt; {edges[-1]:g}" if overflow and i == len(bars) - 1 else f"{edges[i]:g}–{edges[i + 1]:g}"
        out.append(f'<rect x="{left + i * pw + 0.5:.1f}" y="{h - bottom - bh:.1f}" width="{max(pw - 1, 0.5):.1f}" '
                   f'height="{bh:.1f}" fill="{fill}"><title>{label}: {c}</title></rect>')
    for frac in (0, 0.5, 1):
        x = left + frac * pw * len(counts)
        out.append(f'<text x="{x:.1f}" y="{h - bottom + 14}" text-anchor="middle">'
                   f'{edges[0] + frac * (edges[-1] - edges[0]):.0f}</text>')
    out.append(f'<text x="{(left + w - right) / 2}" y="{h - 4}" text-anchor="middle" class="muted">{_e(unit)}</text>')
    out.append("</svg>")
    return Markup("".join(out))


def stacked_rows(groups: dict[str, dict[str, int]], title: str, w: int = 520, row_h: int = 30) -> Markup:
    """Horizontal stacked bars: one row per group (split), segments by key (origin), with a legend."""
    keys = sorted({k for g in groups.values() for k in g})
    colors = {k: TABLEAU[i % len(TABLEAU)] for i, k in enumerate(keys)}
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
                       f"<title>{_e(name)} / {_e(k)}: {_e(v)}</title></rect>")
            if bw > 34:
                out.append(f'<text x="{x + bw / 2:.1f}" y="{y + row_h / 2 + 4}" text-anchor="middle" '
                           f'style="fill:#fff">{_count(v)}</text>')
            x += bw
    lx = left
    ly = top + row_h * len(groups) + 18
    for k in keys:
        out.append(f'<rect x="{lx}" y="{ly - 9}" width="10" height="10" fill="{colors[k]}"/>'
                   f'<text x="{lx + 14}" y="{ly}">{_e(k)}</text>')
        lx += 24 + 7 * len(k)
    out.append("</svg>")
    return Markup("".join(out))


def bar_chart(values: dict[str, int], title: str, color: str = TABLEAU[0], w: int = 360, h: int = 220,
              xlabel: str = "") -> Markup:
    """Vertical bars for a small ``label -> count`` mapping."""
    if not values:
        return Markup(f'<svg width="{w}" height="60" role="img"><text x="10" y="20">{_e(title)}: none</text></svg>')
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
                   f'fill="{_e(color)}"><title>{_e(k)}: {_e(v)}</title></rect>')
        out.append(f'<text x="{x + pw / 2:.1f}" y="{h - bottom - bh - 3:.1f}" text-anchor="middle">{_count(v)}</text>')
        out.append(f'<text x="{x + pw / 2:.1f}" y="{h - bottom + 14}" text-anchor="middle">{_e(k)}</text>')
    if xlabel:
        out.append(f'<text x="{(left + w - right) / 2}" y="{h - 4}" text-anchor="middle">{_e(xlabel)}</text>')
    out.append("</svg>")
    return Markup("".join(out))


def ci_bar(label: str, delta: float | None, low: float | None, high: float | None, verdict: str = "",
           width: int = 220, height: int = 18) -> Markup:
    """A confidence interval as a bar around its point estimate, with a dashed line at 0 (empty when unknown)."""
    if low is None or high is None or delta is None:
        return Markup("")
    lo, hi = min(low, 0.0), max(high, 0.0)
    span = (hi - lo) or 1.0
    pad = 8

    def x(v: float) -> float:
        return pad + (v - lo) / span * (width - 2 * pad)

    color = {"worse": "#b3261e", "better": "#1a7f37"}.get(verdict, "#57606a")
    return Markup(
        f'<svg width="{width}" height="{height}" role="img" aria-label="CI of {_e(label)}">'
        f'<line x1="{x(0):.1f}" y1="1" x2="{x(0):.1f}" y2="{height - 1}" stroke="#999" stroke-dasharray="2,2"/>'
        f'<line x1="{x(low):.1f}" y1="{height / 2}" x2="{x(high):.1f}" y2="{height / 2}" '
        f'stroke="{color}" stroke-width="3"/>'
        f'<circle cx="{x(delta):.1f}" cy="{height / 2}" r="4" fill="{color}"/></svg>'
    )
