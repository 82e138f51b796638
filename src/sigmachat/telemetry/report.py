"""The comparison report: Responses path vs ChatKit path over a window of ``runs`` rows.

Definitions (kept here, next to the numbers, so the runbook can point at them):

- Per path, live runs only (shadow runs are compared separately, in pairs).
- Latency (TTFB, completion time) and tokens per second are over *completed* runs;
  percentiles interpolate linearly between the closest ranks (numpy's default).
- Error rate = runs that did not complete / runs, where runs the *user* cancelled are left
  out of both (a cancel says nothing about the path). Interrupted runs (server restart)
  count as errors: the user saw one.
- Tool calls per turn: mean and p95 of tool calls over completed runs.
- Feedback ratio: positive / (positive + negative) of the assistant messages of the window.
- Shadow pairs (a live run and the other engine's answer to the same turn), both completed:
  tool-sequence agreement (same tools in the same order), tool-set agreement (same tools,
  any order: parallel calls may finish in any order), answer length ratio and TTFB ratio
  (shadow / live; medians).
- Verdict: "go" only if every check passes: a minimum sample on each path, ChatKit p95
  TTFB ≤ ratio × Responses p95 TTFB, ChatKit error rate ≤ Responses error rate + delta points.
"""

from __future__ import annotations

import bisect
import datetime as dt
import math
import re
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import func, select

from sigmachat.db.models import Message, RunRecord, as_utc
from sigmachat.db.session import Database
from sigmachat.settings import Settings

PATHS = ("responses", "chatkit")
BASELINE, CANDIDATE = "responses", "chatkit"
TTFB_EDGES_MS = (0, 250, 500, 750, 1000, 1500, 2000, 3000, 5000, 7500, 10_000, 15_000, 30_000, 60_000)
DURATION_EDGES_MS = (0, 1000, 2000, 3000, 5000, 7500, 10_000, 15_000, 20_000, 30_000, 60_000, 120_000)
TIMELINE_BUCKETS = 24

_WINDOW = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$", re.IGNORECASE)
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_window(text: str) -> dt.timedelta:
    """ "30m", "24h", "7d", "2w" → timedelta. Raises ValueError for anything else."""
    match = _WINDOW.match(text or "")
    if not match:
        raise ValueError(f"window must look like 30m, 24h, 7d or 2w, not {text!r}")
    seconds = float(match.group(1)) * _UNIT_S[match.group(2).lower()]
    if seconds <= 0 or seconds > 366 * 86400:
        raise ValueError("window must be more than 0 and at most a year")
    return dt.timedelta(seconds=seconds)


@dataclass(frozen=True, slots=True)
class Thresholds:
    max_ttfb_p95_ratio: float = 1.10
    max_error_rate_delta_points: float = 0.5
    min_runs_per_path: int = 200

    @classmethod
    def from_settings(cls, settings: Settings) -> Thresholds:
        return cls(
            settings.report_max_ttfb_p95_ratio,
            settings.report_max_error_rate_delta_points,
            settings.report_min_runs_per_path,
        )


def _r(value: float | None, digits: int = 3) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else round(float(value), digits)


def distribution(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"n": 0, "mean": None, "p50": None, "p95": None, "p99": None}
    p50, p95, p99 = np.percentile(np.asarray(values, dtype=float), [50, 95, 99])
    return {"n": len(values), "mean": _r(float(np.mean(values))), "p50": _r(p50), "p95": _r(p95), "p99": _r(p99)}


def histogram(values: list[float], edges: tuple[float, ...]) -> list[dict[str, Any]]:
    counts = [0] * len(edges)
    for v in values:
        counts[max(bisect.bisect_right(edges, v) - 1, 0)] += 1
    return [
        {"from_ms": edges[i], "to_ms": edges[i + 1] if i + 1 < len(edges) else None, "count": counts[i]}
        for i in range(len(edges))
    ]


def _median(values: list[float]) -> float | None:
    return _r(float(np.median(values))) if values else None


def _path_stats(rows: list[dict[str, Any]], feedback: dict[str, int]) -> dict[str, Any]:
    completed = [r for r in rows if r["status"] == "completed"]
    cancelled = sum(1 for r in rows if r["status"] == "cancelled")
    considered = [r for r in rows if r["status"] != "cancelled"]
    errors = [r for r in considered if r["status"] != "completed"]
    by_code = Counter(r["error_code"] or r["status"] for r in errors)
    rate = len(errors) / len(considered) if considered else None
    ttfb = [r["ttfb_ms"] for r in completed if r["ttfb_ms"] is not None]
    duration = [r["duration_ms"] for r in completed if r["duration_ms"] is not None]
    tps = [r["output_tokens_per_s"] for r in completed if r["output_tokens_per_s"] is not None]
    tools = [r["tool_call_count"] for r in completed]
    positive, negative = feedback.get("positive", 0), feedback.get("negative", 0)
    return {
        "runs": len(rows),
        "completed": len(completed),
        "cancelled": cancelled,
        "errors": len(errors),
        "error_rate_pct": _r(100 * rate) if rate is not None else None,
        "errors_by_code": {
            code: {"count": n, "rate_pct": _r(100 * n / len(considered))}
            for code, n in sorted(by_code.items(), key=lambda kv: -kv[1])
        },
        "ttfb_ms": distribution(ttfb),
        "duration_ms": distribution(duration),
        "tokens_per_s": distribution(tps),
        "tool_calls_per_turn": {
            "n": len(tools),
            "mean": _r(float(np.mean(tools))) if tools else None,
            "p95": _r(float(np.percentile(tools, 95))) if tools else None,
        },
        "feedback": {
            "positive": positive,
            "negative": negative,
            "ratio": _r(positive / (positive + negative)) if positive + negative else None,
            "edited": feedback.get("edited", 0),
        },
        "histograms": {
            "ttfb_ms": histogram(ttfb, TTFB_EDGES_MS),
            "duration_ms": histogram(duration, DURATION_EDGES_MS),
        },
    }


def _shadow_pairs(live: dict[str, dict[str, Any]], shadows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    groups: dict[tuple[str, str], list[tuple[dict, dict]]] = defaultdict(list)
    for s in shadows:
        base = live.get(s["pair_id"] or "")
        if base is not None:
            groups[(s["path"], base["path"])].append((base, s))
    out = []
    for (shadow_path, live_path), pairs in sorted(groups.items()):
        both = [(b, s) for b, s in pairs if b["status"] == "completed" and s["status"] == "completed"]
        names = lambda r: [t.get("name") for t in (r["tool_calls"] or [])]  # noqa: E731
        seq_same = sum(1 for b, s in both if names(b) == names(s))
        set_same = sum(1 for b, s in both if sorted(names(b)) == sorted(names(s)))
        length = [s["answer_chars"] / b["answer_chars"] for b, s in both if b["answer_chars"]]
        ttfb = [s["ttfb_ms"] / b["ttfb_ms"] for b, s in both if b["ttfb_ms"] and s["ttfb_ms"] is not None]
        out.append({
            "shadow_path": shadow_path,
            "live_path": live_path,
            "pairs": len(pairs),
            "both_completed": len(both),
            "shadow_failed": sum(1 for _, s in pairs if s["status"] != "completed"),
            "tool_sequence_agreement": _r(seq_same / len(both)) if both else None,
            "tool_set_agreement": _r(set_same / len(both)) if both else None,
            "answer_length_ratio": _median(length),
            "ttfb_ratio": _median(ttfb),
        })  # fmt: skip
    return out


def _timeline(rows: list[dict[str, Any]], since: dt.datetime, until: dt.datetime) -> list[dict[str, Any]]:
    """Median tokens/s per path in TIMELINE_BUCKETS equal slices of the window."""
    span = (until - since).total_seconds()
    size = span / TIMELINE_BUCKETS if span > 0 else 1.0
    buckets: dict[int, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        if r["status"] != "completed" or r["output_tokens_per_s"] is None:
            continue
        i = min(int((as_utc(r["created_at"]) - since).total_seconds() // size), TIMELINE_BUCKETS - 1)
        buckets[max(i, 0)][r["path"]].append(r["output_tokens_per_s"])
    out = []
    for i in range(TIMELINE_BUCKETS):
        point: dict[str, Any] = {"start": (since + dt.timedelta(seconds=i * size)).isoformat()}
        for path in PATHS:
            values = buckets.get(i, {}).get(path, [])
            point[path] = _median(values)
            point[f"{path}_runs"] = len(values)
        out.append(point)
    return out


def _fmt_ms(v: float | None) -> str:
    return "n/a" if v is None else f"{v:,.0f} ms"


def _fmt_pct(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.2f}%"


def verdict(paths: dict[str, dict[str, Any]], th: Thresholds) -> dict[str, Any]:
    checks = []
    for path in (BASELINE, CANDIDATE):
        n = paths[path]["runs"] - paths[path]["cancelled"]
        ok = n >= th.min_runs_per_path
        checks.append({
            "name": f"sample_{path}",
            "passed": ok,
            "detail": f"{n} {path} runs (minimum {th.min_runs_per_path})",
            "reason": None if ok else f"Too few {path} runs to judge: {n} < {th.min_runs_per_path}.",
        })  # fmt: skip

    base, cand = paths[BASELINE]["ttfb_ms"]["p95"], paths[CANDIDATE]["ttfb_ms"]["p95"]
    reason: str | None
    if base is None or cand is None:
        ok, ratio = False, None
        reason = f"No TTFB data for {'responses' if base is None else 'chatkit'}: p95 cannot be compared."
    else:
        ratio = cand / base if base > 0 else math.inf
        ok = ratio <= th.max_ttfb_p95_ratio
        reason = None if ok else (
            f"ChatKit p95 TTFB {_fmt_ms(cand)} is {ratio:.2f}× Responses ({_fmt_ms(base)}); "
            f"limit {th.max_ttfb_p95_ratio:.2f}×."
        )  # fmt: skip
    checks.append({
        "name": "ttfb_p95",
        "passed": ok,
        "detail": f"ChatKit {_fmt_ms(cand)} vs Responses {_fmt_ms(base)}"
                  + (f" ({ratio:.2f}×)" if ratio is not None and math.isfinite(ratio) else ""),
        "reason": reason,
    })  # fmt: skip

    base_e, cand_e = paths[BASELINE]["error_rate_pct"], paths[CANDIDATE]["error_rate_pct"]
    if base_e is None or cand_e is None:
        ok = False
        reason = f"No runs on {'responses' if base_e is None else 'chatkit'}: error rates cannot be compared."
    else:
        ok = cand_e <= base_e + th.max_error_rate_delta_points + 1e-9
        reason = None if ok else (
            f"ChatKit error rate {cand_e:.2f}% exceeds Responses {base_e:.2f}% "
            f"+ {th.max_error_rate_delta_points:g} points."
        )  # fmt: skip
    checks.append({
        "name": "error_rate",
        "passed": ok,
        "detail": f"ChatKit {_fmt_pct(cand_e)} vs Responses {_fmt_pct(base_e)}",
        "reason": reason,
    })  # fmt: skip
    passed = all(c["passed"] for c in checks)
    return {
        "decision": "go" if passed else "no_go",
        "checks": checks,
        "reasons": [c["reason"] for c in checks if not c["passed"]],
    }


def compute_report(
    rows: list[dict[str, Any]],
    feedback: dict[str, dict[str, int]],
    *,
    since: dt.datetime,
    until: dt.datetime,
    thresholds: Thresholds,
) -> dict[str, Any]:
    """The report from plain rows (dicts with the ``runs`` columns). Pure: no I/O."""
    live = [r for r in rows if not r["shadow"]]
    shadows = [r for r in rows if r["shadow"]]
    paths = {p: _path_stats([r for r in live if r["path"] == p], feedback.get(p, {})) for p in PATHS}
    return {
        "window": {"since": since.isoformat(), "until": until.isoformat()},
        "thresholds": {
            "max_ttfb_p95_ratio": thresholds.max_ttfb_p95_ratio,
            "max_error_rate_delta_points": thresholds.max_error_rate_delta_points,
            "min_runs_per_path": thresholds.min_runs_per_path,
        },
        "paths": paths,
        "shadow": _shadow_pairs({r["run_id"]: r for r in live}, shadows),
        "timeline": _timeline(live, since, until),
        "verdict": verdict(paths, thresholds),
    }


_COLUMNS = (
    "run_id", "path", "status", "error_code", "ttfb_ms", "duration_ms", "output_tokens_per_s",
    "tool_call_count", "tool_calls", "answer_chars", "shadow", "pair_id", "created_at",
)  # fmt: skip


async def load(
    db: Database, since: dt.datetime, until: dt.datetime
) -> tuple[list[dict[str, Any]], dict[str, dict[str, int]]]:
    """The window's runs rows and, per path, the feedback given on their answers."""
    cols = [getattr(RunRecord, c) for c in _COLUMNS]
    async with db.session() as session:
        result = await session.execute(
            select(*cols).where(RunRecord.created_at >= since, RunRecord.created_at <= until)
        )
        rows = [dict(zip(_COLUMNS, row, strict=True)) for row in result.all()]
        fb = await session.execute(
            select(RunRecord.path, Message.feedback, func.count(), func.count(Message.feedback_edited_text))
            .join(Message, Message.run_id == RunRecord.run_id)
            .where(
                RunRecord.shadow.is_(False),
                RunRecord.created_at >= since,
                RunRecord.created_at <= until,
                Message.role == "assistant",
                Message.feedback.in_(("positive", "negative")),
            )
            .group_by(RunRecord.path, Message.feedback)
        )
        feedback: dict[str, dict[str, int]] = defaultdict(dict)
        for path, value, count, edited in fb.all():
            assert value is not None  # the query keeps only positive/negative feedback
            feedback[path][value] = count
            # An answer the user rated and rewrote (the original API's edited_text).
            feedback[path]["edited"] = feedback[path].get("edited", 0) + edited
    return rows, dict(feedback)


async def build_report(
    db: Database, settings: Settings, window: dt.timedelta, *, now: dt.datetime | None = None
) -> dict[str, Any]:
    until = now or dt.datetime.now(dt.UTC)
    since = until - window
    rows, feedback = await load(db, since, until)
    return compute_report(rows, feedback, since=since, until=until, thresholds=Thresholds.from_settings(settings))
