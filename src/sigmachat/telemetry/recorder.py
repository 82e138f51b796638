"""The run recorder: a run-manager listener that turns each run's agent events into one
``runs`` row, Prometheus observations and OpenTelemetry spans.

It is called synchronously for every event of every run, so it only does cheap in-memory
work there; the row is written by a background task when the terminal event arrives. A
failure anywhere in here is logged and counted, never raised: telemetry must not break or
slow down a run.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, overload

from sqlalchemy import insert

from sigmachat.agent.events import (
    AgentEvent,
    Info,
    RunFailed,
    RunFinished,
    RunStarted,
    TerminalEvent,
    TextDelta,
    ToolFinished,
)
from sigmachat.agent.failures import kind as failure_kind
from sigmachat.db.models import RunRecord, table_of
from sigmachat.db.session import Database
from sigmachat.logging import get_logger
from sigmachat.runs.listeners import RunView
from sigmachat.telemetry.metrics import ENGINES, PATHS, STATUSES, Metrics, bounded

if TYPE_CHECKING:
    from sigmachat.telemetry.spans import SpanEmitter

log = get_logger("sigmachat.telemetry")

MAX_OPEN_RUNS = 10_000  # a listener bug must not turn into a memory leak


def path_of(engine: str | None, protocol: str | None) -> str:
    """The chat path a run belongs to: the protocol says it for live runs (ChatKit may run the
    Responses engine as its rollback); a shadow run has no protocol, its engine says it."""
    if protocol == "chatkit":
        return "chatkit"
    if protocol == "legacy_sse":
        return "responses"
    return "chatkit" if engine == "agents" else "responses"


def status_of(terminal: TerminalEvent) -> tuple[str, str | None]:
    if isinstance(terminal, RunFinished):
        return "completed", None
    code = terminal.code or "internal_error"
    return failure_kind(code).message_status, code


def _clip(value: str | None, size: int) -> str | None:
    return value[:size] if value else None


@overload
def _ts(ms: int) -> dt.datetime: ...
@overload
def _ts(ms: int | None) -> dt.datetime | None: ...
def _ts(ms: int | None) -> dt.datetime | None:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC) if ms is not None else None


@dataclass(slots=True)
class RunMeta:
    """What the recorder knows of a run besides its events."""

    run_id: str
    engine: str
    protocol: str
    user_id: str | None = None
    conversation_id: str | None = None
    portfolio_id: str | None = None
    shadow: bool = False
    pair_id: str | None = None

    @property
    def path(self) -> str:
        return path_of(self.engine, self.protocol)

    @classmethod
    def of(cls, run: RunView) -> RunMeta:
        """From the run manager's run (a live run: never a shadow), or itself."""
        if isinstance(run, RunMeta):
            return run
        return cls(
            run_id=run.run_id,
            engine=run.engine or "",
            protocol=run.protocol or "",
            user_id=run.user_id,
            conversation_id=run.conversation_id,
            portfolio_id=run.portfolio_id,
        )


@dataclass(slots=True)
class DeltaRun:
    """Stands for a stretch of consecutive text deltas (only its first timestamp matters)."""

    ts: int
    type: str = "delta_run"


@dataclass(slots=True)
class RunTrace:
    """The events of one run kept for its summary and spans: every non-text event, plus one
    marker per stretch of text deltas (so a long answer costs a counter, not a list)."""

    meta: RunMeta
    started: RunStarted | None = None
    items: list[AgentEvent | DeltaRun] = field(default_factory=list)
    event_count: int = 0
    last_seq: int = 0
    first_delta_ts: int | None = None
    text_chars: int = 0

    def add(self, event: AgentEvent) -> None:
        if isinstance(event, TextDelta):
            self.add_delta(event)
            return
        self.event_count += 1
        self.last_seq = max(self.last_seq, event.seq)
        if isinstance(event, RunStarted) and self.started is None:
            self.started = event
        self.items.append(event)

    def add_delta(self, event: TextDelta) -> None:
        self.event_count += 1
        if event.seq > self.last_seq:
            self.last_seq = event.seq
        self.text_chars += len(event.delta)
        if self.first_delta_ts is None:
            self.first_delta_ts = event.ts
        if not self.items or not isinstance(self.items[-1], DeltaRun):
            self.items.append(DeltaRun(event.ts))


@dataclass(slots=True)
class RunSummary:
    """One row of the ``runs`` table."""

    run_id: str
    path: str
    engine: str
    protocol: str
    conversation_id: str | None
    user_id: str | None
    portfolio_id: str | None
    model: str | None
    offline: bool
    status: str
    error_code: str | None
    upstream_error_code: str | None
    upstream_error_message: str | None
    incomplete_reason: str | None
    attempts: int
    retries: int
    fallback_used: bool
    ttfb_ms: float | None
    duration_ms: float | None
    input_tokens: int
    output_tokens: int
    cached_tokens: int
    reasoning_tokens: int
    output_tokens_per_s: float | None
    tool_call_count: int
    tool_calls: list[dict[str, Any]]
    answer_chars: int
    event_count: int
    last_seq: int
    shadow: bool
    pair_id: str | None
    created_at: dt.datetime
    finished_at: dt.datetime


def summarize(trace: RunTrace, terminal: TerminalEvent) -> RunSummary:
    meta, started = trace.meta, trace.started
    status, code = status_of(terminal)
    started_ts = started.ts if started is not None else terminal.ts
    ttfb = terminal.ttfb_ms
    if ttfb is None and trace.first_delta_ts is not None:
        ttfb = float(trace.first_delta_ts - started_ts)
    duration = terminal.duration_ms
    if duration is None:
        duration = float(terminal.ts - started_ts)
    usage = terminal.usage
    # Output tokens over the streaming time, end minus first token. The engine's own clock
    # (duration - ttfb, perf_counter based) is finer than the events' millisecond stamps.
    tps = None
    if usage.output_tokens > 0:
        if ttfb is not None and duration is not None and duration > ttfb:
            tps = usage.output_tokens / ((duration - ttfb) / 1000)
        elif trace.first_delta_ts is not None and terminal.ts > trace.first_delta_ts:
            tps = usage.output_tokens / ((terminal.ts - trace.first_delta_ts) / 1000)
    finished = [e for e in trace.items if isinstance(e, ToolFinished)]
    if finished:
        tools = [
            {"name": e.name, "call_id": e.call_id, "duration_ms": round(e.duration_ms, 3), "ok": e.ok} for e in finished
        ]
    else:
        tools = [
            {"name": r.name, "call_id": r.call_id, "duration_ms": round(r.duration_ms, 3), "ok": r.ok}
            for r in terminal.tool_calls
        ]
    failed = terminal if isinstance(terminal, RunFailed) else None
    if isinstance(terminal, RunFinished):
        answer_chars = len(terminal.final_text)
    else:
        answer_chars = len(terminal.partial_text) or trace.text_chars
    return RunSummary(
        run_id=meta.run_id,
        path=meta.path,
        engine=meta.engine or (started.engine if started else ""),
        protocol=meta.protocol,
        conversation_id=meta.conversation_id,
        user_id=meta.user_id,
        portfolio_id=meta.portfolio_id,
        model=terminal.model or (started.model if started else None) or None,
        offline=bool(started and started.offline),
        status=status,
        error_code=code,
        upstream_error_code=_clip(failed.upstream_code if failed else None, 80),
        upstream_error_message=_clip(failed.upstream_message if failed else None, 500),
        incomplete_reason=_clip(failed.incomplete_reason if failed else None, 40),
        attempts=terminal.attempts,
        retries=terminal.retries,
        fallback_used=terminal.fallback_used
        or any(isinstance(e, Info) and e.kind == "model_switch" for e in trace.items),
        ttfb_ms=ttfb,
        duration_ms=duration,
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cached_tokens=usage.cached_tokens,
        reasoning_tokens=usage.reasoning_tokens,
        output_tokens_per_s=round(tps, 3) if tps is not None else None,
        tool_call_count=len(tools),
        tool_calls=tools,
        answer_chars=answer_chars,
        event_count=trace.event_count,
        last_seq=trace.last_seq,
        shadow=meta.shadow,
        pair_id=meta.pair_id,
        created_at=_ts(started_ts),
        finished_at=_ts(terminal.ts),
    )


_RUN_ROWS = insert(table_of(RunRecord))  # one row per run (RunSummary's fields are its columns)


class RunRecorder:
    """``recorder(run, event)``: the listener to register with ``RunManager.add_listener``."""

    def __init__(self, db: Database, metrics: Metrics, spans: SpanEmitter | None = None) -> None:
        self.db = db
        self.metrics = metrics
        self.spans = spans
        self._open: dict[str, RunTrace] = {}
        self._active_paths: dict[str, str] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._pending: list[RunSummary] = []  # finished runs whose rows are not written yet
        self._writer: asyncio.Task[None] | None = None
        # Called with each summary after its row is written (shadow pairing, tests).
        self.on_summary: list[Callable[[RunSummary], object]] = []

    def __call__(self, run: RunView, event: AgentEvent) -> None:
        # A run's most frequent event, once per token: it only counts in its open trace.
        if type(event) is TextDelta and (trace := self._open.get(event.run_id)) is not None:
            trace.add_delta(event)
            return
        try:
            self._on_event(run, event)
        except Exception:  # never let telemetry break a run
            log.exception("telemetry_listener_failed", run_id=getattr(event, "run_id", None))

    def _on_event(self, run: RunView, event: AgentEvent) -> None:
        trace = self._open.get(event.run_id)
        if trace is None:
            if len(self._open) >= MAX_OPEN_RUNS:
                log.warning("telemetry_too_many_open_runs", dropped=next(iter(self._open)))
                self._drop(next(iter(self._open)))
            trace = self._open[event.run_id] = RunTrace(RunMeta.of(run))
            if not trace.meta.shadow:
                self._active_paths[event.run_id] = trace.meta.path
                self.metrics.active.labels(bounded(trace.meta.path, PATHS)).inc()
        trace.add(event)
        if isinstance(event, ToolFinished) and not trace.meta.shadow:
            self.metrics.tool_duration.labels(
                bounded(trace.meta.path, PATHS), self.metrics.tool_label(event.name), "true" if event.ok else "false"
            ).observe(max(event.duration_ms, 0.0) / 1000)
        if isinstance(event, RunFinished | RunFailed):
            self._finish(trace, event)

    def _drop(self, run_id: str) -> None:
        self._open.pop(run_id, None)
        path = self._active_paths.pop(run_id, None)
        if path is not None:
            self.metrics.active.labels(bounded(path, PATHS)).dec()

    def _finish(self, trace: RunTrace, terminal: TerminalEvent) -> None:
        self._drop(trace.meta.run_id)
        summary = summarize(trace, terminal)
        self._observe(summary)
        if self.spans is not None:
            try:
                self.spans.emit(trace, terminal, summary)
            except Exception:
                log.exception("telemetry_spans_failed", run_id=summary.run_id)
        self._pending.append(summary)
        if self._writer is None or self._writer.done():
            task = self._writer = asyncio.get_running_loop().create_task(self._write_pending(), name="runs-rows")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _observe(self, s: RunSummary) -> None:
        m = self.metrics
        path = bounded(s.path, PATHS)
        status = bounded(s.status, STATUSES)
        if s.shadow:
            m.shadow_runs.labels(path, status, m.error_label(s.error_code)).inc()
            return
        m.runs.labels(path, bounded(s.engine, ENGINES), status, m.error_label(s.error_code)).inc()
        for kind, value in (
            ("input", s.input_tokens),
            ("output", s.output_tokens),
            ("cached", s.cached_tokens),
            ("reasoning", s.reasoning_tokens),
        ):
            if value:
                m.tokens.labels(path, kind).inc(value)
        if s.ttfb_ms is not None:
            m.ttfb.labels(path).observe(s.ttfb_ms / 1000)
        if s.duration_ms is not None:
            m.duration.labels(path).observe(s.duration_ms / 1000)
        if s.output_tokens_per_s is not None and s.status == "completed":
            m.tokens_per_s.labels(path).observe(s.output_tokens_per_s)

    async def _write_pending(self) -> None:
        """One writer at a time: the rows of runs that end together share one INSERT and one
        commit (under load, dozens), instead of a task, an ORM unit of work and a commit each."""
        await asyncio.sleep(0)  # let the runs ending in this loop iteration join the batch
        while self._pending:
            batch, self._pending = self._pending, []
            written = await self._insert(batch)
            if not written and len(batch) > 1:
                # One bad row must not lose the others: retry them one by one.
                written = [s for s in batch if await self._insert([s])]
            for summary in written:
                for callback in list(self.on_summary):
                    try:
                        callback(summary)
                    except Exception:
                        log.exception("telemetry_callback_failed", run_id=summary.run_id)

    async def _insert(self, batch: list[RunSummary]) -> list[RunSummary]:
        try:
            # A connection, not an ORM session: the rows are plain dicts already, and the
            # session's bulk-insert machinery cost more than the statement (once per answer).
            async with self.db.engine.begin() as conn:
                await conn.execute(_RUN_ROWS, [asdict(s) for s in batch])
        except Exception:
            if len(batch) == 1:
                self.metrics.write_failures.inc()
                log.exception("telemetry_row_failed", run_id=batch[0].run_id)
            else:
                log.warning("telemetry_batch_failed", rows=len(batch))
            return []
        return batch

    @property
    def open_runs(self) -> int:
        return len(self._open)

    def active_by_path(self) -> dict[str, int]:
        """Live runs streaming now in this process, per path."""
        counts = dict.fromkeys(PATHS, 0)
        for path in self._active_paths.values():
            counts[path] = counts.get(path, 0) + 1
        return counts

    async def flush(self, timeout: float | None = 10.0) -> None:
        """Wait for the rows being written (tests; shutdown)."""
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=timeout)
