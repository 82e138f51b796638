"""Self-contained SVG line charts (no plotting library, no CDN, no network).

A benchmark chart here is a handful of lines over four concurrency levels; a plotting stack
(matplotlib and its fonts) would weigh more than the rest of the benchmark, and a CDN-hosted
JavaScript chart would not open offline. So: a small SVG writer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from html import escape

COLORS = {"direct": "#6b7280", "responses": "#2563eb", "chatkit": "#ea580c"}
FALLBACK = ("#16a34a", "#9333ea", "#0891b2", "#b91c1c")


@dataclass(frozen=True, slots=True)
class Series:
    name: str
    values: list[float | None]  # one per x label; None leaves a gap
    color: str | None = None
    dashed: bool = False


def nice_ticks(vmax: float, count: int = 5, vmin: float = 0.0) -> list[float]:
    """Round tick values (1-2-2.5-5 steps) from at most ``min(vmin, 0)`` to at least ``vmax``."""
    lo = min(vmin, 0.0)
    if math.isnan(vmax) or vmax - lo <= 0:
        return [lo, lo + 1.0]
    raw = (vmax - lo) / count
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    ticks = [math.floor(lo / step) * step]
    while ticks[-1] < vmax:
        ticks.append(round(ticks[-1] + step, 10))
    return ticks


def _fmt(v: float) -> str:
    return f"{v:,.0f}" if abs(v) >= 10 else f"{v:g}"


def line_chart(
    title: str,
    x_labels: list[str],
    series: list[Series],
    *,
    y_label: str,
    x_label: str = "concurrent streams",
    width: int = 560,
    height: int = 320,
) -> str:
    left, right, top, bottom = 64, 132, 36, 48
    pw, ph = width - left - right, height - top - bottom
    values = [v for s in series for v in s.values if v is not None]
    ticks = nice_ticks(max([*values, 1e-9]), vmin=min([0.0, *values])) if values else [0.0, 1.0]
    lo, hi = ticks[0], ticks[-1]

    def x(i: int) -> float:
        return left + (pw * (i + 0.5) / max(len(x_labels), 1))

    def y(v: float) -> float:
        return top + ph - (v - lo) / (hi - lo) * ph

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'font-family="system-ui, sans-serif" font-size="12" role="img" aria-label="{escape(title)}">',
        f'<rect width="{width}" height="{height}" fill="#ffffff"/>',
        f'<text x="{left}" y="20" font-size="14" font-weight="600">{escape(title)}</text>',
    ]
    for t in ticks:
        ty = y(t)
        out.append(f'<line x1="{left}" x2="{left + pw}" y1="{ty:.1f}" y2="{ty:.1f}" stroke="#e5e7eb"/>')
        out.append(f'<text x="{left - 6}" y="{ty + 4:.1f}" text-anchor="end" fill="#374151">{_fmt(t)}</text>')
    if lo < 0 < hi:
        out.append(f'<line x1="{left}" x2="{left + pw}" y1="{y(0):.1f}" y2="{y(0):.1f}" stroke="#9ca3af"/>')
    for i, label in enumerate(x_labels):
        out.append(
            f'<text x="{x(i):.1f}" y="{top + ph + 18}" text-anchor="middle" fill="#374151">{escape(label)}</text>'
        )
    out.append(
        f'<text x="{left + pw / 2:.1f}" y="{height - 8}" text-anchor="middle" fill="#6b7280">{escape(x_label)}</text>'
    )
    out.append(
        f'<text x="14" y="{top + ph / 2:.1f}" text-anchor="middle" fill="#6b7280" '
        f'transform="rotate(-90 14 {top + ph / 2:.1f})">{escape(y_label)}</text>'
    )
    out.append(f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#d1d5db"/>')
    for n, s in enumerate(series):
        color = s.color or COLORS.get(s.name.split(" ")[0], FALLBACK[n % len(FALLBACK)])
        dash = ' stroke-dasharray="5 4"' if s.dashed else ""
        segment: list[str] = []
        for i, v in enumerate(s.values):
            if v is None:
                if len(segment) > 1:
                    out.append(
                        f'<polyline points="{" ".join(segment)}" fill="none" stroke="{color}" stroke-width="2"{dash}/>'
                    )
                segment = []
                continue
            segment.append(f"{x(i):.1f},{y(v):.1f}")
            out.append(
                f'<circle cx="{x(i):.1f}" cy="{y(v):.1f}" r="3" fill="{color}"><title>{escape(s.name)}: '
                f"{v:,.1f}</title></circle>"
            )
        if len(segment) > 1:
            out.append(f'<polyline points="{" ".join(segment)}" fill="none" stroke="{color}" stroke-width="2"{dash}/>')
        ly = top + 8 + n * 18
        out.append(
            f'<line x1="{left + pw + 12}" x2="{left + pw + 32}" y1="{ly}" y2="{ly}" stroke="{color}" '
            f'stroke-width="2"{dash}/>'
        )
        out.append(f'<text x="{left + pw + 38}" y="{ly + 4}" fill="#111827">{escape(s.name)}</text>')
    out.append("</svg>")
    return "\n".join(out)
