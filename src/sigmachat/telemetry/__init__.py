"""Telemetry of both chat paths: how each performs, on the same traffic.

- ``recorder``: a run listener writing one ``runs`` row per run, feeding metrics and spans;
- ``metrics``: Prometheus metrics (a registry per app, bounded labels), served at /metrics;
- ``spans``: OpenTelemetry GenAI spans rebuilt from the agent events;
- ``shadow``: the sampled shadow runs by the other engine;
- ``report``: the comparison report and its go / no-go verdict (JSON, CLI, HTML).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from opentelemetry import trace

from sigmachat.db.session import Database
from sigmachat.settings import Settings
from sigmachat.telemetry.metrics import Metrics
from sigmachat.telemetry.recorder import RunMeta, RunRecorder, RunSummary, summarize
from sigmachat.telemetry.shadow import ShadowRunner
from sigmachat.telemetry.spans import SpanEmitter, build_tracer_provider

if TYPE_CHECKING:
    from sigmachat.runs.manager import RunManager


class Telemetry:
    """One per app: metrics registry, tracer, run recorder and shadow runner."""

    def __init__(self, settings: Settings, db: Database, *, tracer_provider: Any = None) -> None:
        self.settings = settings
        self.metrics = Metrics()
        self._own_provider = None
        if tracer_provider is None:
            tracer_provider = self._own_provider = build_tracer_provider(settings)
        tracer = (
            tracer_provider.get_tracer("sigmachat") if tracer_provider is not None else trace.get_tracer("sigmachat")
        )
        self.spans = SpanEmitter(tracer)
        self.recorder = RunRecorder(db, self.metrics, self.spans)
        self.shadow = ShadowRunner(settings, self.recorder)

    def attach(self, runs: RunManager) -> None:
        """Listen to every event of every run of this run manager; shadow with its engines."""
        runs.add_listener(self.recorder)
        self.shadow.engines = runs.engines
        # The shadow hook needs the run's request, which event listeners do not see: the run
        # manager calls ``finish_listener(run, request, terminal)`` after a run is persisted.
        runs.add_finish_listener(self.shadow.maybe_shadow)

    async def aclose(self) -> None:
        await self.shadow.aclose()
        await self.recorder.flush()
        if self._own_provider is not None:
            self._own_provider.shutdown()


__all__ = ["Metrics", "RunMeta", "RunRecorder", "RunSummary", "ShadowRunner", "SpanEmitter", "Telemetry", "summarize"]
