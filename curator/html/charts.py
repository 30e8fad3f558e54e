"""Tiny inline-SVG charts for self-contained HTML reports (no plotting library, no external URLs)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

__all__ = ["PALETTE", "line_chart", "nice_ticks", "stacked_bars"]

PALETTE = ("#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2", "#be185d", "#4b5563")


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
    series: dict[str, Sequence[tuple[float, float]]],
    *,
    title: str,
    x_label: str = "",
    y_label: str = "",
    width: int = 560,
    height: int = 260,
    x_ticks: Sequence[tuple[float, str]] | None = None,
) -> str:
    """Lines (with points) for each named series of (x, y); legend under the title."""
    pts = [p for s in series.values() for p in s]
    if not pts:
        return f'<svg width="{width}" height="60"><text x="10" y="30">{escape(title)}: no data</text></svg>'
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
    return "".join(out)


def stacked_bars(
    bars: dict[str, dict[str, float]], *, title: str, width: int = 560, height: int = 260
) -> str:
    """One vertical bar per key, stacked by category (e.g. snapshot -> origin -> count)."""
    if not bars:
        return f'<svg width="{width}" height="60"><text x="10" y="30">{escape(title)}: no data</text></svg>'
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
        y = height - bottom
        for j, c in enumerate(cats):
            v = b.get(c, 0)
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
    return "".join(out)
