"""Prometheus metrics of both chat paths, in a registry of their own (one per app).

A registry per app (not the library's global one) keeps two apps in one process, as in the
tests, from double-registering or reading each other's numbers. Every label takes values
from a small fixed set: unknown values are folded into ``other`` so a misbehaving upstream
or a new code can never blow up the number of series.
"""

from __future__ import annotations

import re

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from sigmachat.agent.failures import KINDS

PATHS = ("responses", "chatkit")
ENGINES = ("responses", "agents")
STATUSES = ("completed", "failed", "cancelled", "incomplete", "interrupted")
TOKEN_KINDS = ("input", "output", "cached", "reasoning")
MAX_TOOL_LABELS = 64
_TOOL_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")

CONTENT_TYPE = CONTENT_TYPE_LATEST

# Buckets sized for chat: first tokens in 0.1..10 s, answers in 1..120 s, 5..300 tokens/s.
TTFB_BUCKETS = (0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 7.5, 10.0, 15.0, 30.0, 60.0)
DURATION_BUCKETS = (0.5, 1.0, 2.0, 3.0, 5.0, 7.5, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0, 90.0, 120.0, 300.0)
TPS_BUCKETS = (5.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 80.0, 100.0, 150.0, 200.0, 300.0, 500.0)
TOOL_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


def bounded(value: str | None, allowed: tuple[str, ...] | frozenset[str] | dict) -> str:
    return value if value is not None and value in allowed else "other"


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = self.registry = registry or CollectorRegistry()
        self.runs = Counter(
            "sigmachat_runs", "Finished live runs by chat path, engine, status and error code.",
            ["path", "engine", "status", "error_code"], registry=r,
        )  # fmt: skip
        self.shadow_runs = Counter(
            "sigmachat_shadow_runs", "Finished shadow runs (the other engine on a sampled turn).",
            ["path", "status", "error_code"], registry=r,
        )  # fmt: skip
        self.tokens = Counter("sigmachat_tokens", "Model tokens of live runs.", ["path", "kind"], registry=r)
        self.ttfb = Histogram(
            "sigmachat_run_ttfb_seconds", "Time from run start to the first answer token (live runs).",
            ["path"], buckets=TTFB_BUCKETS, registry=r,
        )  # fmt: skip
        self.duration = Histogram(
            "sigmachat_run_duration_seconds", "Time from run start to its end (live runs, every outcome).",
            ["path"], buckets=DURATION_BUCKETS, registry=r,
        )  # fmt: skip
        self.tokens_per_s = Histogram(
            "sigmachat_run_output_tokens_per_second", "Output tokens / (end - first token), completed live runs.",
            ["path"], buckets=TPS_BUCKETS, registry=r,
        )  # fmt: skip
        self.tool_duration = Histogram(
            "sigmachat_tool_duration_seconds", "Duration of one tool call (live runs).",
            ["path", "tool", "ok"], buckets=TOOL_BUCKETS, registry=r,
        )  # fmt: skip
        self.active = Gauge(
            "sigmachat_active_streams", "Live runs streaming right now (this process).", ["path"], registry=r
        )
        self.flag_evaluations = Counter(
            "sigmachat_flag_evaluations", "chat_backend flag evaluations by answer and matching rule.",
            ["backend", "reason"], registry=r,
        )  # fmt: skip
        self.flag_version = Gauge(
            "sigmachat_flag_version", "Version of the chat_backend flag last evaluated here.", registry=r
        )
        self.write_failures = Counter(
            "sigmachat_telemetry_write_failures",
            "Runs rows that could not be written (the run itself was unaffected).",
            registry=r,
        )  # fmt: skip
        for path in PATHS:  # series exist (at 0) before the first run, so rate() and alerts work
            self.active.labels(path)
        self._tools: set[str] = set()

    def tool_label(self, name: str) -> str:
        if name in self._tools:
            return name
        if _TOOL_NAME.match(name) and len(self._tools) < MAX_TOOL_LABELS:
            self._tools.add(name)
            return name
        return "other"

    @staticmethod
    def error_label(code: str | None) -> str:
        return "none" if not code else bounded(code, KINDS)

    def flag_evaluated(self, decision) -> None:
        """Observer for RolloutService: counts each answer of the flag."""
        reasons = ("kill_switch", "allow_user", "allow_portfolio", "deny_user", "percentage", "default", "error")
        self.flag_evaluations.labels(bounded(decision.backend, PATHS), bounded(decision.reason, reasons)).inc()
        self.flag_version.set(decision.flag_version)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
