"""OpenTelemetry spans of a run, built from its agent events (GenAI semantic conventions).

Spans are created after the fact with explicit start and end times taken from the events,
so the engines need no tracing code and both paths are traced identically:

- ``invoke_agent`` (the whole run): usage, response id, time to first chunk, outcome;
- ``chat {model}`` per model call, reconstructed from the tool boundaries (a model call
  ends where its tool calls start and the next one begins when they have all finished);
- ``execute_tool {name}`` per tool call.

Every span carries ``app.run_id`` and ``app.chat_backend``. Only the ``opentelemetry-api`` is
required: without an SDK the tracer is a no-op. With ``otel_enabled`` (and the ``otel``
extra) an SDK tracer provider exports over OTLP/HTTP.
"""

from __future__ import annotations

from typing import Any

from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer

from sigmachat.agent.events import AgentEvent, RunFailed, RunFinished, TerminalEvent, ToolFinished, ToolStarted
from sigmachat.logging import get_logger
from sigmachat.settings import Settings
from sigmachat.telemetry.recorder import DeltaRun, RunSummary, RunTrace

log = get_logger("sigmachat.telemetry")

AGENT_NAME = "sigmasight_analyst"
_MS = 1_000_000  # ns per ms


def build_tracer_provider(settings: Settings) -> Any | None:
    """An SDK tracer provider exporting over OTLP/HTTP when ``otel_enabled``; else None
    (the API's global tracer is used: a no-op unless the process configured one, e.g.
    under ``opentelemetry-instrument``)."""
    if not settings.otel_enabled:
        return None
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        log.warning("otel_sdk_missing", hint="pip install 'sigmachat[otel]'")
        return None
    provider = TracerProvider(resource=Resource.create({"service.name": settings.otel_service_name}))
    exporter = OTLPSpanExporter(endpoint=settings.otel_endpoint) if settings.otel_endpoint else OTLPSpanExporter()
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def model_segments(items: list[AgentEvent | DeltaRun], start_ts: int, end_ts: int) -> list[tuple[int, int, int | None]]:
    """(start, end, first text delta ts) of each model call, from the run's kept items."""
    segments: list[tuple[int, int, int | None]] = []
    seg_start: int = start_ts
    first_delta: int | None = None
    open_tools, in_tools = 0, False
    for item in items:
        if isinstance(item, ToolStarted):
            if not in_tools:
                segments.append((seg_start, item.ts, first_delta))
                in_tools, first_delta = True, None
            open_tools += 1
        elif isinstance(item, ToolFinished):
            open_tools = max(open_tools - 1, 0)
            if in_tools and open_tools == 0:
                in_tools, seg_start = False, item.ts
        elif isinstance(item, DeltaRun) and not in_tools and first_delta is None:
            first_delta = item.ts
    if not in_tools:
        segments.append((seg_start, end_ts, first_delta))
    return segments


class SpanEmitter:
    def __init__(self, tracer: Tracer, *, provider_name: str = "openai") -> None:
        self.tracer = tracer
        self.provider_name = provider_name

    def emit(self, trace_: RunTrace, terminal: TerminalEvent, summary: RunSummary) -> None:
        started = trace_.started
        start_ts = started.ts if started is not None else terminal.ts
        end_ts = max(terminal.ts, start_ts)
        provider = "sigmasight.offline" if summary.offline else self.provider_name
        request_model = (started.model if started is not None else None) or summary.model or "unknown"
        common: dict[str, str | bool] = {
            "gen_ai.provider.name": provider,
            "gen_ai.request.model": request_model,
            "app.run_id": summary.run_id,
            "app.chat_backend": summary.path,
        }
        if summary.shadow:
            common["app.shadow"] = True
            common["app.pair_id"] = summary.pair_id or ""
        failure = terminal if isinstance(terminal, RunFailed) else None

        root = self.tracer.start_span(
            "invoke_agent", kind=SpanKind.INTERNAL, start_time=start_ts * _MS,
            attributes={**common, "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": AGENT_NAME,
                        "gen_ai.conversation.id": summary.conversation_id or "", "app.engine": summary.engine},
        )  # fmt: skip
        root.set_attribute("gen_ai.usage.input_tokens", summary.input_tokens)
        root.set_attribute("gen_ai.usage.output_tokens", summary.output_tokens)
        if summary.model:
            root.set_attribute("gen_ai.response.model", summary.model)
        response_id = terminal.response_id if isinstance(terminal, RunFinished) else None
        if response_id:
            root.set_attribute("gen_ai.response.id", response_id)
        if summary.ttfb_ms is not None:
            root.set_attribute("gen_ai.response.time_to_first_chunk", summary.ttfb_ms / 1000)
        ctx = trace.set_span_in_context(root)

        segments = model_segments(trace_.items, start_ts, end_ts)
        for i, (s, e, first_delta) in enumerate(segments):
            last = i == len(segments) - 1
            span = self.tracer.start_span(
                f"chat {request_model}", context=ctx, kind=SpanKind.CLIENT, start_time=s * _MS,
                attributes={**common, "gen_ai.operation.name": "chat"},
            )  # fmt: skip
            if first_delta is not None:
                span.set_attribute("gen_ai.response.time_to_first_chunk", max(first_delta - s, 0) / 1000)
            if len(segments) == 1:  # usage is per run; it belongs to a chat span only when there was one call
                span.set_attribute("gen_ai.usage.input_tokens", summary.input_tokens)
                span.set_attribute("gen_ai.usage.output_tokens", summary.output_tokens)
            if last and response_id:
                span.set_attribute("gen_ai.response.id", response_id)
            if last and failure is not None:
                span.set_status(Status(StatusCode.ERROR, failure.code))
                span.set_attribute("error.type", failure.code)
            span.end(end_time=max(e, s) * _MS)

        started_tools = {i.call_id: i for i in trace_.items if isinstance(i, ToolStarted)}
        for item in trace_.items:
            if not isinstance(item, ToolFinished):
                continue
            begun = started_tools.get(item.call_id)
            t0 = begun.ts if begun is not None else int(item.ts - item.duration_ms)
            span = self.tracer.start_span(
                f"execute_tool {item.name}", context=ctx, kind=SpanKind.INTERNAL, start_time=t0 * _MS,
                attributes={**common, "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": item.name,
                            "gen_ai.tool.call.id": item.call_id, "gen_ai.tool.type": "function"},
            )  # fmt: skip
            if not item.ok:
                span.set_status(Status(StatusCode.ERROR, "tool error"))
                span.set_attribute("error.type", "tool_error")
            span.end(end_time=max(item.ts, t0) * _MS)

        if failure is not None:
            root.set_status(Status(StatusCode.ERROR, failure.code))
            root.set_attribute("error.type", failure.code)
        root.end(end_time=end_ts * _MS)
