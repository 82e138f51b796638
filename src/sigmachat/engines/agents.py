"""AgentsEngine: the analyst on the OpenAI Agents SDK (``Runner.run_streamed``).

The same instructions, the same registry tools (wrapped as ``FunctionTool``s: the model sees
``ToolResult.model_text``, our events keep the envelope) and the same ``AsyncOpenAI`` client
(through ``OpenAIResponsesModel``), so the offline model and the simulator answer it unchanged.
It produces the same agent events as the Responses engine, with the same failure codes for
the same upstream faults: the SDK model is wrapped by ``_GuardedModel``, which retries before
first output exactly like the Responses engine and classifies failures with its
``classify_exception``.

Events come from three places inside the SDK's run (model text, tool calls, retries); they
are queued as (class, fields) and stamped with sequence numbers by the one consumer, so the
sequence is gap-free whatever order the SDK's tasks run in.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from agents import (
    Agent,
    FunctionTool,
    MaxTurnsExceeded,
    ModelSettings,
    OpenAIResponsesModel,
    RunConfig,
    Runner,
    set_tracing_disabled,
)
from agents.models.interface import Model

from sigmachat.agent.events import (
    EventFactory,
    Info,
    RunFailed,
    RunFinished,
    RunStarted,
    TextDelta,
    ToolCallRecord,
    ToolFinished,
    ToolStarted,
    Usage,
)
from sigmachat.agent.failures import kind
from sigmachat.agent.instructions import instructions_for
from sigmachat.engines.base import ModelEngine, RunRequest, aclose_quietly, parse_tool_arguments, tool_outcome
from sigmachat.engines.model_client import ModelClient
from sigmachat.engines.responses import (
    RETRYABLE_BEFORE_OUTPUT,
    UpstreamFailure,
    classify_exception,
    history_items,
)
from sigmachat.logging import get_logger
from sigmachat.settings import Settings
from sigmachat.tools.registry import ToolContext

log = get_logger("sigmachat.engines.agents")

AGENT_NAME = "SigmaSight analyst"


@dataclass
class _RunState:
    """Per-run state shared by the SDK's tasks (the Agents SDK run context)."""

    queue: asyncio.Queue
    tool_ctx: ToolContext
    started: float
    model: str
    text: str = ""
    ttfb_ms: float | None = None
    records: list[ToolCallRecord] = field(default_factory=list)
    attempts: int = 0
    retries: int = 0
    switched: bool = False
    reported_model: str | None = None
    response_id: str | None = None

    def emit(self, cls: type, **fields: Any) -> None:
        self.queue.put_nowait(("event", cls, fields))


class _GuardedModel(Model):
    """``OpenAIResponsesModel`` with the Responses engine's retry, fallback and failure rules.

    Events of a model call are held back until it produces output (a text delta or a function
    call), so a call that fails before that can be retried without the runner seeing it.
    """

    def __init__(self, engine: AgentsEngine, state: _RunState) -> None:
        self.engine = engine
        self.state = state
        self.inner = OpenAIResponsesModel(model=state.model, openai_client=engine.mc.client)

    async def get_response(self, *args: Any, **kwargs: Any) -> Any:  # pragma: no cover - we always stream
        raise NotImplementedError("AgentsEngine always streams")

    async def stream_response(self, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        state = self.state
        settings = self.engine.settings
        attempt = 0
        while True:
            attempt += 1
            state.attempts += 1
            produced = False
            held: list[Any] = []
            terminal: str | None = None
            detail: str | None = None
            inner = self.inner.stream_response(*args, **kwargs)
            try:
                async for chunk in inner:
                    ctype = getattr(chunk, "type", None)
                    if ctype == "response.output_text.delta":
                        produced = True
                        delta = getattr(chunk, "delta", "") or ""
                        if delta:
                            if state.ttfb_ms is None:
                                state.ttfb_ms = (time.perf_counter() - state.started) * 1000
                            state.text += delta
                            state.emit(TextDelta, delta=delta)
                    elif ctype == "response.output_item.added" and getattr(getattr(chunk, "item", None), "type", None) == "function_call":
                        produced = True
                    elif ctype == "response.completed":
                        terminal = "completed"
                        response = getattr(chunk, "response", None)
                        state.reported_model = getattr(response, "model", None) or state.reported_model
                        state.response_id = getattr(response, "id", None) or state.response_id
                    elif ctype == "response.failed":
                        terminal = "failed"
                    elif ctype == "response.incomplete":
                        terminal = "incomplete"
                        details = getattr(getattr(chunk, "response", None), "incomplete_details", None)
                        detail = getattr(details, "reason", None)
                    elif ctype in ("error", "response.error"):
                        terminal = "error"
                        detail = getattr(chunk, "message", None)
                    if terminal in ("failed", "incomplete", "error"):
                        break  # classified below; the SDK never sees the failed turn
                    if not produced and terminal is None:
                        held.append(chunk)
                        continue
                    for early in held:
                        yield early
                    held.clear()
                    yield chunk
                if terminal is None:
                    raise UpstreamFailure("stream_incomplete", "the upstream stream ended without a terminal event")
                if terminal == "failed":
                    raise UpstreamFailure("response_failed", kind("response_failed").message)
                if terminal == "incomplete":
                    raise UpstreamFailure("response_incomplete", f"The answer stopped early ({detail or 'unknown reason'}).")
                if terminal == "error":
                    raise UpstreamFailure("response_failed", f"upstream stream error: {detail}")
                return
            except (asyncio.CancelledError, GeneratorExit):
                raise
            except Exception as exc:
                failure = classify_exception(exc)
                if failure.code == "internal_error":
                    log.exception("agents_model_unexpected_error")
                if failure.code in RETRYABLE_BEFORE_OUTPUT and not produced and attempt < settings.retry_max_attempts:
                    state.retries += 1
                    delay = self.engine.backoff_ms(attempt, failure.retry_after_ms)
                    state.emit(Info, kind="retry_scheduled", attempt=attempt + 1, delay_ms=delay, reason=failure.code)
                    fallback = self.engine.mc.fallback_model
                    if attempt == 1 and fallback and fallback != state.model:
                        state.emit(Info, kind="model_switch", from_model=state.model, to_model=fallback, reason=failure.code)
                        state.model = fallback
                        state.switched = True
                        self.inner = OpenAIResponsesModel(model=fallback, openai_client=self.engine.mc.client)
                    await self.engine.sleep(delay / 1000)
                    continue
                if failure is exc:
                    raise
                raise failure from exc
            finally:
                await aclose_quietly(inner)


class AgentsEngine(ModelEngine):
    """The Agents SDK engine. Same contract as ``ResponsesEngine``: a RunRequest in, agent events out."""

    name = "agents"

    def __init__(self, model_client: ModelClient, registry: Any, settings: Settings, session_factory: Any, *, sleep: Any = asyncio.sleep) -> None:
        super().__init__(model_client, registry, settings, session_factory, sleep=sleep)
        if not settings.agents_tracing:
            # The SDK exports traces to OpenAI by default; they would carry portfolio data.
            set_tracing_disabled(True)
        self.tools = [self._function_tool(spec) for spec in registry.openai_tools()]

    # ---- tools -----------------------------------------------------------------------------

    def _function_tool(self, spec: dict[str, Any]) -> FunctionTool:
        name = spec["name"]

        async def invoke(tool_context: Any, arguments: str) -> str:
            state: _RunState = tool_context.context
            call_id = tool_context.tool_call_id
            state.emit(ToolStarted, call_id=call_id, name=name, arguments=parse_tool_arguments(arguments))
            result = await self.registry.call(name, arguments, state.tool_ctx)
            record, finished = tool_outcome(call_id, name, arguments, result)
            state.records.append(record)
            state.emit(ToolFinished, **finished)
            return result.model_text

        return FunctionTool(
            name=name,
            description=spec.get("description") or "",
            params_json_schema=spec.get("parameters") or {"type": "object", "properties": {}},
            on_invoke_tool=invoke,
            strict_json_schema=bool(spec.get("strict", False)),
        )

    # ---- run -------------------------------------------------------------------------------

    def _model_settings(self, request: RunRequest) -> ModelSettings:
        kwargs: dict[str, Any] = {"parallel_tool_calls": True}
        if request.sim_scenario:
            kwargs["extra_headers"] = {"X-Sim-Scenario": request.sim_scenario}
        if self.mc.is_openai and not self.mc.offline:
            kwargs["store"] = False  # stateless full-input mode, as on the Responses path
        return ModelSettings(**kwargs)

    async def stream(self, request: RunRequest) -> AsyncIterator[Any]:
        ev = EventFactory(request.run_id)
        started = time.perf_counter()
        model = request.model or self.mc.default_model
        yield ev.make(RunStarted, conversation_id=request.conversation_id, model=model, engine=self.name, offline=self.mc.offline)

        queue: asyncio.Queue = asyncio.Queue()
        state = _RunState(
            queue=queue,
            tool_ctx=ToolContext(
                user_id=request.user_id,
                portfolio_id=request.portfolio_id,
                session_factory=self.session_factory,
                settings=self.settings,
            ),
            started=started,
            model=model,
        )
        agent = Agent(
            name=AGENT_NAME,
            instructions=instructions_for(
                as_of=self.settings.as_of_date,
                portfolio_id=request.portfolio_id,
                mode=request.mode,
                memories=request.memories,
            ),
            tools=list(self.tools),
            model=_GuardedModel(self, state),
            model_settings=self._model_settings(request),
        )
        items = history_items(request.history, self.settings.history_max_messages)
        items.append({"role": "user", "content": request.user_text})
        result = Runner.run_streamed(
            agent,
            items,
            context=state,
            max_turns=self.settings.max_tool_iterations,
            run_config=RunConfig(
                tracing_disabled=not self.settings.agents_tracing,
                trace_include_sensitive_data=False,
                workflow_name="sigmachat",
            ),
        )
        pump = asyncio.create_task(_pump(result, queue), name=f"agents:{request.run_id}")

        def usage() -> Usage:
            u = result.context_wrapper.usage
            return Usage(
                input_tokens=u.input_tokens or 0,
                output_tokens=u.output_tokens or 0,
                cached_tokens=getattr(u.input_tokens_details, "cached_tokens", 0) or 0,
                reasoning_tokens=getattr(u.output_tokens_details, "reasoning_tokens", 0) or 0,
            )

        try:
            while True:
                entry = await queue.get()
                if entry[0] == "event":
                    _tag, cls, fields = entry
                    yield ev.make(cls, **fields)
                    continue
                duration_ms = (time.perf_counter() - started) * 1000
                if entry[0] == "done":
                    yield ev.make(
                        RunFinished,
                        final_text=state.text,
                        usage=usage(),
                        ttfb_ms=state.ttfb_ms,
                        duration_ms=duration_ms,
                        tool_calls=state.records,
                        model=state.reported_model or state.model,
                        response_id=state.response_id,
                        attempts=max(state.attempts, 1),
                        retries=state.retries,
                        fallback_used=state.switched,
                    )
                    return
                exc = entry[1]
                if isinstance(exc, MaxTurnsExceeded):
                    failure = UpstreamFailure("max_tool_iterations", kind("max_tool_iterations").message)
                else:
                    failure = classify_exception(exc)
                    if failure.code == "internal_error" and not isinstance(exc, UpstreamFailure):
                        log.error("agents_run_failed", run_id=request.run_id, error=type(exc).__name__)
                k = kind(failure.code)
                yield ev.make(
                    RunFailed,
                    code=failure.code,
                    message=failure.message if failure.code == "response_incomplete" else k.message,
                    retryable=k.retryable,
                    retry_after_ms=failure.retry_after_ms,
                    partial_text=state.text,
                    usage=usage(),
                    ttfb_ms=state.ttfb_ms,
                    duration_ms=duration_ms,
                    tool_calls=state.records,
                    model=state.model,
                    attempts=max(state.attempts, 1),
                    retries=state.retries,
                    fallback_used=state.switched,
                )
                return
        finally:
            if not pump.done():
                result.cancel()
                pump.cancel()
            await asyncio.gather(pump, return_exceptions=True)


async def _pump(result: Any, queue: asyncio.Queue) -> None:
    """Drive the SDK run to its end; report the end (or the exception) through the queue."""
    try:
        async for _event in result.stream_events():
            pass  # our events are emitted where they happen (model wrapper, tool wrapper)
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # every failure becomes a run_failed event
        queue.put_nowait(("error", exc))
        return
    queue.put_nowait(("done", None))

