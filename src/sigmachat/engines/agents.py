"""AgentsEngine: the analyst on the OpenAI Agents SDK (``Runner.run_streamed``).

The same instructions, the same registry tools (wrapped as ``FunctionTool``s: the model sees
``ToolResult.model_text``, our events keep the envelope; a tool the agent lacks is answered by
the registry too, through the SDK's tool-not-found hook) and the same ``AsyncOpenAI`` client
(through ``OpenAIResponsesModel``, or ``OpenAIChatCompletionsModel`` for a Chat Completions
upstream), so the offline model and the simulator answer it unchanged.
It produces the same agent events as the Responses engine, with the same failure codes for
the same upstream faults: the SDK model is wrapped by ``_GuardedModel``, which reads the end
of each model turn and leaves classification, retries, fallback and the terminal failure to
the upstream policy both engines share (``upstream_policy.py``).

Events come from three places inside the SDK's run (model text, tool calls, retries); they
are queued as (class, fields) and stamped with sequence numbers by the one consumer, so the
sequence is gap-free whatever order the SDK's tasks run in (an event emitted after the run's
end is never stamped).
"""

from __future__ import annotations

import asyncio
import time
import typing
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, cast

import pydantic
from agents import (
    Agent,
    FunctionTool,
    ModelSettings,
    OpenAIChatCompletionsModel,
    OpenAIResponsesModel,
    RunConfig,
    Runner,
    RunResultStreaming,
    TResponseInputItem,
    set_tracing_disabled,
)
from agents.models.interface import Model
from agents.run_config import ToolErrorFormatterArgs
from agents.tool_context import ToolContext as SdkToolContext
from openai._models import construct_type
from openai.types.responses import ResponseStreamEvent

from sigmachat.agent.events import (
    AgentEvent,
    EventFactory,
    Info,
    RunFinished,
    RunStarted,
    TextDelta,
    ToolCallRecord,
    ToolFinished,
    ToolStarted,
    Usage,
)
from sigmachat.agent.instructions import instructions_for
from sigmachat.engines.base import (
    ModelEngine,
    OutputBudget,
    RunRequest,
    Sleep,
    ToolCaller,
    aclose_quietly,
    parse_tool_arguments,
    tool_outcome,
)
from sigmachat.engines.chat_completions import (
    INCOMPLETE_FINISH_REASONS,
    max_tokens_param,
)
from sigmachat.engines.model_client import ModelClient
from sigmachat.engines.responses import STATELESS_INCLUDE, history_items
from sigmachat.engines.upstream_events import stream_response_events
from sigmachat.engines.upstream_policy import ModelCalls
from sigmachat.settings import Settings
from sigmachat.tools.runtime import SessionFactory, ToolContext

AGENT_NAME = "SigmaSight analyst"


# What the SDK's tasks emit during a run (the consumer stamps them), and the queue that carries
# them: an event's (class, fields), then the run's end (None) or the exception that ended it.
_Emitted = type[TextDelta] | type[ToolStarted] | type[ToolFinished] | type[Info]
_Entry = tuple[_Emitted, dict[str, Any]] | BaseException | None


@dataclass
class _RunState:
    """Per-run state shared by the SDK's tasks (the Agents SDK run context)."""

    queue: asyncio.Queue[_Entry]
    tool_ctx: ToolContext
    started: float
    calls: ModelCalls  # the model in use, attempts, retries, fallback (the upstream policy's count)
    text: str = ""
    ttfb_ms: float | None = None
    records: list[ToolCallRecord] = field(default_factory=list)
    reported_model: str | None = None
    response_id: str | None = None
    api: str = "responses"  # the upstream API of this run (ModelClient.api)
    # Arguments of the function calls the model made, by call_id: an unknown tool's call
    # reaches the registry through the SDK's tool-not-found hook, which is not given them.
    call_arguments: dict[str, str] = field(default_factory=dict)

    def emit(self, cls: _Emitted, **fields: Any) -> None:
        self.queue.put_nowait((cls, fields))


def _event_classes() -> dict[str, type[pydantic.BaseModel]]:
    """Each Responses stream-event class by the ``type`` literal it carries."""
    union = typing.get_args(ResponseStreamEvent)[0]  # Annotated[Union[...], PropertyInfo]
    out: dict[str, type[pydantic.BaseModel]] = {}
    for cls in typing.get_args(union):
        for literal in typing.get_args(cls.model_fields["type"].annotation):
            out[literal] = cls
    return out


_EVENT_CLASSES = _event_classes()
# pydantic's own model_construct: the openai SDK overrides it with a recursive constructor
# that costs ten times more. Delta events hold only scalars, so nothing needs recursion.
_model_construct = pydantic.BaseModel.model_construct.__func__  # type: ignore[attr-defined]
_FIELDS = {t: dict.fromkeys(cls.model_fields) for t, cls in _EVENT_CLASSES.items()}
# Events the Agents runner reads beyond their type: the final (or failed) response and each
# finished output item (it collects those). Everything else it only passes along.
_DEEP = frozenset(
    {"response.completed", "response.failed", "response.incomplete", "response.output_item.done", "error"}
)
_FINAL = frozenset({"response.completed", "response.failed", "response.incomplete"})
# What a final ``Response`` repeats of the request: every tool's schema and the instructions
# (14 KB with our 18 tools). Nothing reads them back (the runner takes output, usage, id and
# model; tracing records the response only with sensitive data on, which we never turn on), and
# building them cost ~3 ms per model turn, a twentieth of a text answer's CPU on this path.
_ECHOES: dict[str, Any] = {"tools": [], "instructions": None}


def build_deep_validators() -> None:
    """Build the validators of the events read in depth now, once per process, not in the
    first answer: the openai SDK defers them, and building them costs ~0.45 s of CPU (the
    finished output item alone 0.25 s), which held up every stream on the loop at that moment."""
    for etype in _DEEP:
        _EVENT_CLASSES[etype].model_rebuild()  # a no-op once built


def stream_event(data: dict[str, Any]) -> Any:
    """One upstream event dict as the SDK's typed event, built by the class its ``type`` names.

    Most events (the deltas: one per token) are built without validation, missing fields as
    ``None`` (compatible servers omit ``sequence_number`` / ``output_index``), nested objects
    left as dicts: the runner reads only their ``type``. The events whose nested ``Response``
    or item the runner reads (``_DEEP``) are validated as that one class, or, when incomplete,
    built by the SDK's own lenient constructor for it. Unknown types get the SDK's union constructor, as before.
    """
    etype = data.get("type")
    if not isinstance(etype, str) or (cls := _EVENT_CLASSES.get(etype)) is None:
        return construct_type(type_=ResponseStreamEvent, value=data)
    if etype in _FINAL and isinstance(response := data.get("response"), dict):
        data = {**data, "response": {**response, **_ECHOES}}
    if etype in _DEEP:
        # pydantic's validator (compiled) when the event is complete: a finished output item
        # costs ~60 µs that way, ~2 ms through the SDK's recursive constructor. Events with
        # fields missing (older or compatible servers) get the lenient constructor where the
        # fields are missing (see _validate_leniently).
        try:
            return cls.model_validate(data)
        except pydantic.ValidationError as exc:
            return _validate_leniently(cls, data, exc)
    return _model_construct(cls, **{**_FIELDS[etype], **data})


def _validate_leniently(cls: type[pydantic.BaseModel], data: dict[str, Any], exc: pydantic.ValidationError) -> Any:
    """``cls`` from ``data`` that failed validation: the SDK's lenient constructor builds only
    the parts that failed, and pydantic validates the rest (it takes those parts as built).

    A final response without a field this SDK version requires (``usage`` without
    ``cache_write_tokens``: every recorded OpenAI stream, and compatible servers) took
    0.7-0.9 ms per model turn through the lenient constructor for the whole event, 0.3-0.5 ms
    this way (the usage details built leniently, the event validated twice). An error in a
    field of the event itself (compatible servers omit ``sequence_number``) still builds the
    whole event leniently.
    """
    parts: dict[tuple[str, ...], Any] = {}
    for error in exc.errors():
        part = _lenient_part(cls, error["loc"])
        if part is None:
            return construct_type(type_=cls, value=data)
        parts[part[0]] = part[1]
    patched = dict(data)
    for path, annotation in parts.items():
        holder = patched
        for key in path[:-1]:
            if not isinstance(holder.get(key), dict):
                return construct_type(type_=cls, value=data)
            holder[key] = holder = dict(holder[key])
        holder[path[-1]] = construct_type(type_=annotation, value=holder.get(path[-1]))
    try:
        return cls.model_validate(patched)
    except pydantic.ValidationError:
        return construct_type(type_=cls, value=data)


def _lenient_part(cls: type[pydantic.BaseModel], loc: tuple[int | str, ...]) -> tuple[tuple[str, ...], Any] | None:
    """The path and type of the part an error at ``loc`` is in: the model holding the field that
    failed (``response.usage.input_tokens_details``), or the first field on the way that is not
    a model (a list, a union). ``None`` for an error in a field of ``cls`` itself."""
    model: Any = cls
    path: list[str] = []
    annotation: Any = None
    for i, key in enumerate(loc):
        if not isinstance(key, str) or (field := model.model_fields.get(key)) is None or i == len(loc) - 1:
            break  # the field that failed (or a list index, a union tag): its holder is the part
        path.append(key)
        annotation = field.annotation
        inner = [a for a in typing.get_args(annotation) if a is not type(None)]
        model = inner[0] if typing.get_origin(annotation) is typing.Union and len(inner) == 1 else annotation
        if not (isinstance(model, type) and issubclass(model, pydantic.BaseModel)):
            break
    return (tuple(path), annotation) if path else None


# Takes a ``*.delta`` event (type, fields) before it is typed; True: taken, not to be passed on.
DeltaHook = Callable[[str, dict[str, Any]], bool]


class DictStreamResponsesModel(OpenAIResponsesModel):
    """``OpenAIResponsesModel`` whose streamed events are decoded by ``type`` (see
    ``stream_event``) instead of being validated against the whole stream-event union.

    Only the streaming fetch changes: the request is built by the SDK (the same kwargs) and
    sent through the same ``AsyncOpenAI`` client by ``stream_response_events``; the SDK's
    ``stream_response`` (spans, terminal-failure errors, closing) runs unchanged on top.
    ``_fetch_response`` is the SDK's internal seam for this (openai-agents is pinned <0.30;
    tests/engines/test_agents_model.py covers it).

    ``on_delta``, when set, sees each ``*.delta`` event as its dict first: the events it takes
    are neither typed nor passed through the SDK's stream layers (see ``_GuardedModel._delta``).
    """

    def __init__(self, *args: Any, on_delta: DeltaHook | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.on_delta = on_delta

    async def _fetch_response(self, *args: Any, **kwargs: Any) -> Any:
        if not kwargs.get("stream"):
            return await super()._fetch_response(*args, **kwargs)
        create_kwargs = self._build_response_create_kwargs(*args, **kwargs)
        return _typed_events(stream_response_events(self._get_client(), **create_kwargs), self.on_delta)


def _type_of(item: object) -> str | None:
    """The ``type`` of an output item, built as a model or left as a dict (see stream_event)."""
    return item.get("type") if isinstance(item, dict) else getattr(item, "type", None)


async def _typed_events(events: AsyncIterator[dict[str, Any]], on_delta: DeltaHook | None) -> AsyncIterator[Any]:
    try:
        async for data in events:
            if on_delta is not None:
                etype = data.get("type")
                if isinstance(etype, str) and etype.endswith(".delta") and on_delta(etype, data):
                    continue
            yield stream_event(data)
    finally:
        await aclose_quietly(events)


class _TappedChatModel(OpenAIChatCompletionsModel):
    """``OpenAIChatCompletionsModel`` that lets us see the raw chunks its stream handler
    consumes: the handler reports ``response.completed`` whatever the ``finish_reason``, so
    a cut answer (``length``) or a stream that never finished would otherwise pass as done."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.tap: _ChunkTap | None = None

    async def _fetch_response(self, *args: Any, **kwargs: Any) -> Any:
        result = await super()._fetch_response(*args, **kwargs)
        if isinstance(result, tuple):
            response, stream = result
            self.tap = _ChunkTap(stream)
            return response, self.tap
        return result


class _ChunkTap:
    """Passes a chat chunk stream through unchanged, remembering its finish_reason."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.finish_reason: str | None = None
        self.response = getattr(stream, "response", None)  # the SDK reads the request id from it

    def __aiter__(self) -> _ChunkTap:
        return self

    async def __anext__(self) -> Any:
        chunk = await self.stream.__anext__()
        for choice in getattr(chunk, "choices", None) or []:
            if getattr(choice, "index", 0) == 0 and getattr(choice, "finish_reason", None):
                self.finish_reason = choice.finish_reason
        return chunk

    async def aclose(self) -> None:
        await aclose_quietly(self.stream)


@dataclass(slots=True)
class _Turn:
    """One model call's output so far: shared by the stream loop and the delta hook."""

    budget: OutputBudget
    produced: bool = False  # output the runner has seen or will see: no retry after it


class _GuardedModel(Model):
    """The SDK model of the run's upstream API (``OpenAIResponsesModel`` or the Chat
    Completions model) under the upstream policy both engines share (retry, fallback, failure
    classification) and our output bound.

    Events of a model call are held back until it produces output (a text delta or a function
    call), so a call that fails before that can be retried without the runner seeing it.
    """

    def __init__(self, engine: AgentsEngine, state: _RunState) -> None:
        self.engine = engine
        self.state = state
        self.turn = _Turn(OutputBudget(engine.settings.max_output_tokens))  # the model call under way
        self.inner = self._sdk_model(state.calls.model)

    def _sdk_model(self, model: str) -> Model:
        if self.state.api == "chat_completions":
            return _TappedChatModel(model=model, openai_client=self.engine.mc.client)
        return DictStreamResponsesModel(model=model, openai_client=self.engine.mc.client, on_delta=self._delta)

    def _show(self, delta: str) -> None:
        state = self.state
        if state.ttfb_ms is None:
            state.ttfb_ms = (time.perf_counter() - state.started) * 1000
        state.text += delta
        state.emit(TextDelta, delta=delta)

    def _delta(self, etype: str, data: dict[str, Any]) -> bool:
        """The per-token path: a delta taken as its dict, before it is typed and passed through
        three generator layers (the SDK model's and ours) only to be dropped below.

        A text delta within the bound is shown here; one that reaches the bound is left to the
        stream loop, which ends the turn (``bounded``). Other deltas (function-call arguments,
        reasoning) are taken and dropped: the runner builds its items from the done events.
        """
        if etype != "response.output_text.delta":
            return True
        delta = data.get("delta")
        budget = self.turn.budget
        if not isinstance(delta, str) or not budget.admit_below_limit(delta):
            return False
        self.turn.produced = True
        if delta:
            self._show(delta)
        return True

    async def get_response(self, *args: Any, **kwargs: Any) -> Any:  # pragma: no cover - we always stream
        raise NotImplementedError("AgentsEngine always streams")

    async def stream_response(self, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        state = self.state
        policy = self.engine.policy
        limit = self.engine.settings.max_output_tokens
        attempt = 0
        while True:
            attempt += 1
            state.calls.attempts += 1
            turn = self.turn = _Turn(OutputBudget(limit))
            budget = turn.budget
            held: list[Any] = []
            # How this turn ended (see UpstreamPolicy.turn_failure), and what the end said.
            terminal: str | None = None
            detail: str | None = None
            upstream: tuple[str | None, str | None] = (None, None)
            reported: Usage | None = None  # a failed or cut response's usage (the runner never sees it)
            inner = self.inner.stream_response(*args, **kwargs)
            try:
                async for chunk in inner:
                    ctype = getattr(chunk, "type", None)
                    if ctype == "response.output_text.delta":
                        # Only the deltas _delta left: at the bound, or from a model without the hook.
                        delta = getattr(chunk, "delta", "") or ""
                        if delta and not budget.admit(delta):
                            terminal = "bounded"
                        else:
                            turn.produced = True
                            if delta:
                                self._show(delta)
                            if budget.exhausted:
                                terminal = "bounded"
                    elif (
                        ctype == "response.output_item.added"
                        and _type_of(getattr(chunk, "item", None)) == "function_call"
                    ):
                        turn.produced = True
                    elif ctype == "response.output_item.done":
                        self._remember_call(getattr(chunk, "item", None), budget)
                    elif ctype == "response.completed":
                        terminal = "completed"
                        response = getattr(chunk, "response", None)
                        for item in getattr(response, "output", None) or []:
                            self._remember_call(item, None)
                        state.reported_model = getattr(response, "model", None) or state.reported_model
                        state.response_id = getattr(response, "id", None) or state.response_id
                        tap = getattr(self.inner, "tap", None)
                        if tap is not None:
                            if tap.finish_reason is None:
                                terminal = None  # a chat stream that never said it finished
                                break
                            if tap.finish_reason in INCOMPLETE_FINISH_REASONS:
                                terminal, detail = "incomplete", INCOMPLETE_FINISH_REASONS[tap.finish_reason]
                                reported = _usage(getattr(response, "usage", None))
                    elif ctype == "response.failed":
                        terminal = "failed"
                        response = getattr(chunk, "response", None)
                        error = getattr(response, "error", None)
                        upstream = (getattr(error, "code", None), getattr(error, "message", None))
                        reported = _usage(getattr(response, "usage", None))
                    elif ctype == "response.incomplete":
                        terminal = "incomplete"
                        response = getattr(chunk, "response", None)
                        detail = getattr(getattr(response, "incomplete_details", None), "reason", None)
                        reported = _usage(getattr(response, "usage", None))
                    elif ctype in ("error", "response.error"):
                        terminal = "error"
                        upstream = _error_event_fields(chunk)
                    if terminal in ("failed", "incomplete", "error", "bounded"):
                        break  # the policy's failure below; the SDK never sees the failed turn
                    if ctype is not None and ctype.endswith(".delta"):
                        # Emitted above where it matters; the runner builds its items from
                        # the output items and the final response, so a delta would only
                        # cost each SDK layer CPU per token for nobody.
                        continue
                    if not turn.produced and terminal is None:
                        held.append(chunk)
                        continue
                    for early in held:
                        yield early
                    held.clear()
                    yield chunk
                failure = policy.turn_failure(
                    terminal, error_code=upstream[0], error_message=upstream[1], incomplete_reason=detail,
                    usage=reported, estimated_tokens=budget.used,
                )  # fmt: skip
                if failure is not None:
                    raise failure
                return
            except (asyncio.CancelledError, GeneratorExit):
                raise
            except Exception as exc:
                failure = policy.classify(exc)
                retry = policy.retry(failure, attempt=attempt, produced=turn.produced, calls=state.calls)
                if retry is None:
                    if failure is exc:
                        raise
                    raise failure from exc
                for notice in retry.notices():
                    state.emit(Info, **notice)
                if retry.to_model is not None:
                    self.inner = self._sdk_model(retry.to_model)
                await self.engine.sleep(retry.delay_ms / 1000)
                continue
            finally:
                await aclose_quietly(inner)

    def _remember_call(self, item: object, budget: OutputBudget | None) -> None:
        if getattr(item, "type", None) != "function_call":
            return
        call_id = getattr(item, "call_id", None)
        arguments = getattr(item, "arguments", None) or ""
        if call_id and call_id not in self.state.call_arguments:
            self.state.call_arguments[call_id] = arguments
            if budget is not None:
                budget.admit(arguments)


def _usage(sdk_usage: object) -> Usage | None:
    """A usage report of the SDK (a response's, or the run's ``context_wrapper.usage``) as ours."""
    if sdk_usage is None:
        return None
    return Usage(
        input_tokens=getattr(sdk_usage, "input_tokens", 0) or 0,
        output_tokens=getattr(sdk_usage, "output_tokens", 0) or 0,
        cached_tokens=getattr(getattr(sdk_usage, "input_tokens_details", None), "cached_tokens", 0) or 0,
        reasoning_tokens=getattr(getattr(sdk_usage, "output_tokens_details", None), "reasoning_tokens", 0) or 0,
    )


def _error_event_fields(chunk: object) -> tuple[str | None, str | None]:
    """(code, message) of an error event object, flat or nested (see responses_stream.error_fields)."""
    nested = getattr(chunk, "error", None)
    code = getattr(chunk, "code", None) or getattr(nested, "code", None)
    message = getattr(chunk, "message", None) or getattr(nested, "message", None)
    if isinstance(nested, dict):
        code = code or nested.get("code")
        message = message or nested.get("message")
    return code, message


class AgentsEngine(ModelEngine):
    """The Agents SDK engine. Same contract as ``ResponsesEngine``: a RunRequest in, agent events out."""

    name = "agents"

    def __init__(
        self,
        model_client: ModelClient,
        registry: ToolCaller,
        settings: Settings,
        session_factory: SessionFactory,
        *,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        super().__init__(model_client, registry, settings, session_factory, sleep=sleep)
        if not settings.agents_tracing:
            # The SDK exports traces to OpenAI by default; they would carry portfolio data.
            set_tracing_disabled(True)
        self.tools = [self._function_tool(spec) for spec in registry.openai_tools()]
        build_deep_validators()

    # ---- tools -----------------------------------------------------------------------------

    def _function_tool(self, spec: dict[str, Any]) -> FunctionTool:
        name = spec["name"]

        async def invoke(tool_context: SdkToolContext[_RunState], arguments: str) -> str:
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

    async def _tool_error(self, args: ToolErrorFormatterArgs[_RunState]) -> str | None:
        """The SDK's hook for a call to a tool the agent does not have: answer it as the
        Responses engine does, through the registry (the same recoverable "unknown tool"
        error text, the same tool events), instead of the SDK ending the run."""
        if args.kind != "tool_not_found":
            return None  # the SDK's own message for the other kinds
        state: _RunState = args.run_context.context
        arguments = state.call_arguments.get(args.call_id, "{}")
        state.emit(ToolStarted, call_id=args.call_id, name=args.tool_name, arguments=parse_tool_arguments(arguments))
        result = await self.registry.call(args.tool_name, arguments, state.tool_ctx)
        record, finished = tool_outcome(args.call_id, args.tool_name, arguments, result)
        state.records.append(record)
        state.emit(ToolFinished, **finished)
        return result.model_text

    # ---- run -------------------------------------------------------------------------------

    def _model_settings(self, request: RunRequest, api: str) -> ModelSettings:
        limit = self.settings.max_output_tokens
        kwargs: dict[str, Any] = {"parallel_tool_calls": True}
        if request.sim_scenario:
            kwargs["extra_headers"] = {"X-Sim-Scenario": request.sim_scenario}
        if self.mc.is_openai and not self.mc.offline:
            kwargs["store"] = False  # stateless full-input mode, as on the Responses path
        if api == "chat_completions":
            kwargs["include_usage"] = True  # most servers send no usage on a stream otherwise
            if max_tokens_param(self.mc.is_openai) == "max_tokens":
                kwargs["max_tokens"] = limit
            else:
                kwargs["extra_args"] = {"max_completion_tokens": limit}
        else:
            kwargs["max_tokens"] = limit  # sent as max_output_tokens
            kwargs["response_include"] = list(STATELESS_INCLUDE)
        return ModelSettings(**kwargs)

    async def stream(self, request: RunRequest) -> AsyncIterator[AgentEvent]:
        ev = EventFactory(request.run_id)
        started = time.perf_counter()
        model = request.model or self.mc.default_model
        yield ev.make(
            RunStarted, conversation_id=request.conversation_id, model=model, engine=self.name, offline=self.mc.offline
        )

        queue: asyncio.Queue[_Entry] = asyncio.Queue()
        api = await self.mc.api()
        state = _RunState(
            queue=queue,
            tool_ctx=self.tool_context(request),
            started=started,
            calls=ModelCalls(model=model),
            api=api,
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
            model_settings=self._model_settings(request, api),
        )
        items = history_items(request.history, self.settings.history_max_messages)
        items.append({"role": "user", "content": request.user_text})
        result = Runner.run_streamed(
            agent,
            # The dicts are Responses input items (the SDK types them as TypedDicts).
            cast(list[TResponseInputItem], items),
            context=state,
            max_turns=self.settings.max_tool_iterations,
            run_config=RunConfig(
                tracing_disabled=not self.settings.agents_tracing,
                trace_include_sensitive_data=False,
                workflow_name="sigmachat",
                # A call to a tool the agent lacks goes back to the model as a tool error
                # (our registry's, see _tool_error), as on the Responses engine.
                tool_not_found_behavior="return_error_to_model",
                tool_error_formatter=self._tool_error,
            ),
        )
        pump = asyncio.create_task(_pump(result, queue), name=f"agents:{request.run_id}")

        def usage() -> Usage:
            return _usage(result.context_wrapper.usage) or Usage()

        try:
            while True:
                entry = await queue.get()
                if isinstance(entry, tuple):
                    cls, fields = entry
                    yield ev.make(cls, **fields)
                    continue
                duration_ms = (time.perf_counter() - started) * 1000
                if entry is None:
                    yield ev.make(
                        RunFinished,
                        final_text=state.text,
                        usage=usage(),
                        ttfb_ms=state.ttfb_ms,
                        duration_ms=duration_ms,
                        tool_calls=state.records,
                        model=state.reported_model or state.calls.model,
                        response_id=state.response_id,
                        attempts=max(state.calls.attempts, 1),
                        retries=state.calls.retries,
                        fallback_used=state.calls.fallback_used,
                    )
                    return
                yield self.policy.run_failed(
                    ev, self.policy.classify(entry), state.calls, partial_text=state.text, usage=usage(),
                    ttfb_ms=state.ttfb_ms, duration_ms=duration_ms, tool_calls=state.records,
                )  # fmt: skip
                return
        finally:
            if not pump.done():
                result.cancel()
                pump.cancel()
            await asyncio.gather(pump, return_exceptions=True)


async def _pump(result: RunResultStreaming, queue: asyncio.Queue[_Entry]) -> None:
    """Drive the SDK run to its end; report the end (or the exception) through the queue."""
    try:
        async for _event in result.stream_events():
            pass  # our events are emitted where they happen (model wrapper, tool wrapper)
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # every failure becomes a run_failed event
        queue.put_nowait(exc)
        return
    queue.put_nowait(None)
