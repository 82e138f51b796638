"""The comparison report as one self-contained HTML page with inline SVG charts.

Hand-written SVG rather than a plotting library: the page must open offline (no CDN, no
script), the three chart shapes needed (grouped bars, horizontal bars, a two-line series)
are a few dozen lines each, and it keeps matplotlib-sized dependencies out of the server.
"""

from __future__ import annotations

from html import escape
from typing import Any

COLORS = {"responses": "#4C78A8", "chatkit": "#F58518"}
LABELS = {"responses": "Responses", "chatkit": "ChatKit"}
W, H = 720, 260
PAD_L, PAD_R, PAD_T, PAD_B = 56, 16, 28, 52


def _num(v: Any, unit: str = "", digits: int = 0) -> str:
    if v is None:
        return "–"
    return f"{v:,.{digits}f}{unit}"


def _legend(x: float, y: float) -> str:
    parts = []
    for i, (path, color) in enumerate(COLORS.items()):
        parts.append(
            f'<rect x="{x + i * 110}" y="{y - 9}" width="10" height="10" fill="{color}"/>'
            f'<text x="{x + i * 110 + 14}" y="{y}" class="lg">{LABELS[path]}</text>'
        )
    return "".join(parts)


def _axis(max_v: float, fmt: str) -> tuple[str, float]:
    """Y grid lines at 0, 1/4 ... max; returns the SVG and the scale top."""
    top = max_v if max_v > 0 else 1.0
    out = []
    plot_h = H - PAD_T - PAD_B
    for i in range(5):
        v = top * i / 4
        y = PAD_T + plot_h - plot_h * i / 4
        out.append(f'<line x1="{PAD_L}" x2="{W - PAD_R}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>')
        out.append(f'<text x="{PAD_L - 6}" y="{y + 4:.1f}" class="ax" text-anchor="end">{fmt.format(v)}</text>')
    return "".join(out), top


def grouped_bars(title: str, categories: list[str], series: dict[str, list[float]], fmt: str = "{:.0f}") -> str:
    """Bars per category, one per path (e.g. the share of runs in each latency bin)."""
    max_v = max((v for vals in series.values() for v in vals), default=0.0)
    grid, top = _axis(max_v, fmt)
    plot_w, plot_h = W - PAD_L - PAD_R, H - PAD_T - PAD_B
    group_w = plot_w / max(len(categories), 1)
    bar_w = group_w * 0.8 / max(len(series), 1)
    bars, labels = [], []
    for ci, cat in enumerate(categories):
        gx = PAD_L + ci * group_w + group_w * 0.1
        for si, (path, values) in enumerate(series.items()):
            v = values[ci]
            h = plot_h * v / top
            x = gx + si * bar_w
            bars.append(
                f'<rect x="{x:.1f}" y="{PAD_T + plot_h - h:.1f}" width="{bar_w:.1f}" height="{h:.1f}" '
                f'fill="{COLORS[path]}">'
                f"<title>{escape(LABELS[path])} {escape(cat)}: {fmt.format(v)}</title></rect>"
            )
        lx, ly = PAD_L + ci * group_w + group_w / 2, H - PAD_B + 14
        labels.append(
            f'<text x="{lx:.1f}" y="{ly}" class="ax" text-anchor="end" '
            f'transform="rotate(-35 {lx:.1f} {ly})">{escape(cat)}</text>'
        )
    return _svg(title, grid + "".join(bars) + "".join(labels))


def line_chart(title: str, x_labels: list[str], series: dict[str, list[float | None]], fmt: str = "{:.0f}") -> str:
    """One line per path; a missing point (no runs in that slice) breaks the line."""
    max_v = max((v for vals in series.values() for v in vals if v is not None), default=0.0)
    grid, top = _axis(max_v, fmt)
    plot_w, plot_h = W - PAD_L - PAD_R, H - PAD_T - PAD_B
    n = max(len(x_labels), 2)
    x_of = lambda i: PAD_L + plot_w * i / (n - 1)  # noqa: E731
    body = []
    for path, values in series.items():
        segment: list[str] = []
        for i, v in enumerate(values + [None]):
            if v is None:
                if len(segment) > 1:
                    body.append(
                        f'<polyline points="{" ".join(segment)}" fill="none" stroke="{COLORS[path]}" stroke-width="2"/>'
                    )
                segment = []
                continue
            x, y = x_of(i), PAD_T + plot_h - plot_h * v / top
            segment.append(f"{x:.1f},{y:.1f}")
            body.append(
                f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="{COLORS[path]}">'
                f"<title>{escape(x_labels[i])}: {fmt.format(v)}</title></circle>"
            )
    for i in range(0, len(x_labels), max(len(x_labels) // 6, 1)):
        body.append(
            f'<text x="{x_of(i):.1f}" y="{H - PAD_B + 16}" class="ax" text-anchor="middle">{escape(x_labels[i])}</text>'
        )
    return _svg(title, grid + "".join(body))


def _svg(title: str, inner: str) -> str:
    return (
        f'<figure><svg viewBox="0 0 {W} {H}" width="100%" role="img" aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">'
        f'<text x="{PAD_L}" y="16" class="tt">{escape(title)}</text>{_legend(W - 240, 16)}{inner}</svg></figure>'
    )


def _bin_label(b: dict[str, Any]) -> str:
    lo = b["from_ms"] / 1000
    return f"≥{lo:g}s" if b["to_ms"] is None else f"{lo:g}–{b['to_ms'] / 1000:g}s"


def _share(hist: list[dict[str, Any]]) -> list[float]:
    total = sum(b["count"] for b in hist)
    return [100 * b["count"] / total if total else 0.0 for b in hist]


def render_html(report: dict[str, Any]) -> str:
    paths = report["paths"]
    v = report["verdict"]
    go = v["decision"] == "go"

    checks = "".join(
        f'<tr class="{"ok" if c["passed"] else "bad"}"><td>{"✔" if c["passed"] else "✘"}</td>'
        f"<td>{escape(c['name'])}</td>"
        f"<td>{escape(c['detail'])}</td><td>{escape(c['reason'] or '')}</td></tr>"
        for c in v["checks"]
    )

    def row(label: str, getter, unit: str = "", digits: int = 0) -> str:
        return (
            f"<tr><th>{escape(label)}</th>"
            + "".join(f"<td>{_num(getter(paths[p]), unit, digits)}</td>" for p in COLORS)
            + "</tr>"
        )

    table = "".join([
        row("runs", lambda s: s["runs"]),
        row("completed", lambda s: s["completed"]),
        row("cancelled by the user", lambda s: s["cancelled"]),
        row("error rate", lambda s: s["error_rate_pct"], " %", 2),
        *(row(f"TTFB {q}", lambda s, q=q: s["ttfb_ms"][q], " ms") for q in ("p50", "p95", "p99")),
        *(row(f"completion {q}", lambda s, q=q: s["duration_ms"][q], " ms") for q in ("p50", "p95", "p99")),
        *(row(f"tokens/s {q}", lambda s, q=q: s["tokens_per_s"][q], "", 1) for q in ("p50", "p95", "p99")),
        row("tool calls per turn (mean)", lambda s: s["tool_calls_per_turn"]["mean"], "", 2),
        row(
            "feedback positive share",
            lambda s: None if s["feedback"]["ratio"] is None else 100 * s["feedback"]["ratio"],
            " %",
            1,
        ),
        row("feedback given", lambda s: s["feedback"]["positive"] + s["feedback"]["negative"]),
        row("answers edited by the user", lambda s: s["feedback"].get("edited", 0)),
    ])  # fmt: skip

    ttfb_bins = paths["responses"]["histograms"]["ttfb_ms"]
    dur_bins = paths["responses"]["histograms"]["duration_ms"]
    charts = [
        grouped_bars("TTFB distribution (% of completed runs)", [_bin_label(b) for b in ttfb_bins],
                     {p: _share(paths[p]["histograms"]["ttfb_ms"]) for p in COLORS}, "{:.0f}%"),
        grouped_bars("Completion time distribution (% of completed runs)", [_bin_label(b) for b in dur_bins],
                     {p: _share(paths[p]["histograms"]["duration_ms"]) for p in COLORS}, "{:.0f}%"),
    ]  # fmt: skip
    codes = sorted({c for p in COLORS for c in paths[p]["errors_by_code"]})
    charts.append(
        grouped_bars(
            "Error rate by code (% of runs, user cancels excluded)",
            ["all errors", *codes],
            {
                p: [
                    paths[p]["error_rate_pct"] or 0.0,
                    *((paths[p]["errors_by_code"].get(c) or {}).get("rate_pct", 0.0) for c in codes),
                ]
                for p in COLORS
            },
            "{:.1f}%",
        )
    )
    timeline = report["timeline"]
    charts.append(
        line_chart(
            "Output tokens per second over time (median per slice)",
            [t["start"][5:16].replace("T", " ") for t in timeline],
            {p: [t[p] for t in timeline] for p in COLORS},
        )
    )

    shadow_rows = (
        "".join(
            f"<tr><td>{LABELS.get(s['shadow_path'], s['shadow_path'])} shadowing "
            f"{LABELS.get(s['live_path'], s['live_path'])}</td>"
            f"<td>{s['pairs']}</td><td>{s['both_completed']}</td><td>{s['shadow_failed']}</td>"
            f"<td>{_num(None if s['tool_sequence_agreement'] is None else 100 * s['tool_sequence_agreement'], ' %', 1)}"
            "</td>"
            f"<td>{_num(None if s['tool_set_agreement'] is None else 100 * s['tool_set_agreement'], ' %', 1)}</td>"
            f"<td>{_num(s['answer_length_ratio'], '×', 2)}</td><td>{_num(s['ttfb_ratio'], '×', 2)}</td></tr>"
            for s in report["shadow"]
        )
        or '<tr><td colspan="8">No shadow pairs in this window '
        "(shadow_sample_rate is 0, or no turn was sampled).</td></tr>"
    )

    w = report["window"]
    th = report["thresholds"]
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>SigmaSight Chat: Responses vs ChatKit</title>
<style>
body{{font:14px/1.45 system-ui,-apple-system,Segoe UI,sans-serif;margin:24px auto;max-width:900px;\
color:#1d2430;padding:0 16px}}
h1{{font-size:22px;margin:0 0 4px}} h2{{font-size:16px;margin:28px 0 8px}}
.verdict{{padding:12px 16px;border-radius:6px;font-weight:600;font-size:18px;margin:16px 0}}
.go{{background:#e3f4e6;color:#1d6b2e}} .nogo{{background:#fbe4e4;color:#9b1c1c}}
table{{border-collapse:collapse;width:100%}} td,th{{border-bottom:1px solid #e4e7ec;padding:5px 8px;text-align:left}}
td{{font-variant-numeric:tabular-nums}} tr.bad td{{color:#9b1c1c}} tr.ok td:first-child{{color:#1d6b2e}}
.muted{{color:#667085}} figure{{margin:12px 0}}
svg .grid{{stroke:#e4e7ec}} svg .ax{{font-size:10px;fill:#667085}} \
svg .tt{{font-size:13px;font-weight:600;fill:#1d2430}} svg .lg{{font-size:11px;fill:#1d2430}}
</style></head><body>
<h1>Responses vs ChatKit</h1>
<div class="muted">{escape(w["since"][:16].replace("T", " "))} → \
{escape(w["until"][:16].replace("T", " "))}\
 UTC · live runs only; latency over completed runs</div>
<div class="verdict {"go" if go else "nogo"}">Verdict: {"GO" if go else "NO-GO"}</div>
<table><tr><th></th><th>check</th><th>measured</th><th>why it failed</th></tr>{checks}</table>
<div class="muted">Thresholds: ChatKit p95 TTFB ≤ {th["max_ttfb_p95_ratio"]:g}× Responses; \
error rate ≤ Responses + {th["max_error_rate_delta_points"]:g} points; \
at least {th["min_runs_per_path"]} runs per path.</div>
<h2>Per path</h2>
<table><tr><th></th><th>Responses</th><th>ChatKit</th></tr>{table}</table>
<h2>Charts</h2>
{"".join(charts)}
<h2>Shadow pairs</h2>
<table><tr><th>pair</th><th>pairs</th><th>both completed</th><th>shadow failed</th>\
<th>same tool sequence</th><th>same tool set</th>\
<th>answer length ratio</th><th>TTFB ratio</th></tr>{shadow_rows}</table>
<p class="muted">Ratios are shadow ÷ live, medians over pairs where both completed.</p>
</body></html>
"""
