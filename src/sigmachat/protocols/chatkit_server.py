"""The ChatKit protocol over our agent events.

``SigmaChatKitServer`` is the official SDK's ``ChatKitServer``: the SDK drives the protocol
(threads, the user item, stream options, ``thread.updated``) over our ``SqlChatKitStore``, and
our ``respond()`` starts a run through the ``RunManager`` and maps the run's agent events to
ChatKit events with ``ChatKitEventMapper``.

``handle()`` is the edge, in this order, so that a refusal never has anything to undo:

1. parse the request once (the SDK's own ``ChatKitReq`` type) and check it (4xx JSON);
2. admit the run (``RunManager.admit``: busy thread 409, limits 429/503) before the SDK
   writes anything;
3. hand the parsed request to the SDK; return once the run has started, with its id for the
   ``X-Run-Id`` header. The frame that ends each agent event carries ``id: <run_id>:<seq>``.

Each row of a run has one owner: the run manager stores the question, the answer and its tool
calls; the store skips the SDK's writes of those items (see ``ChatContext.run_owns_items``),
and renders them back from the run's rows, identical to the items the stream sent.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import assert_never, cast

import orjson
from chatkit.server import ChatKitServer
from chatkit.store import NotFoundError
from chatkit.types import (
    AssistantMessageContent,
    AssistantMessageContentPartTextDelta,
    AssistantMessageItem,
    ChatKitReq,
    ClientEffectEvent,
    ErrorEvent,
    FeedbackKind,
    ItemsFeedbackReq,
    ItemsListReq,
    ProgressUpdateEvent,
    StreamingReq,
    StreamOptions,
    ThreadItem,
    ThreadItemAddedEvent,
    ThreadItemDoneEvent,
    ThreadItemUpdatedEvent,
    ThreadMetadata,
    ThreadsAddUserMessageReq,
    ThreadsCreateReq,
    ThreadsDeleteReq,
    ThreadsGetByIdReq,
    ThreadsListReq,
    ThreadsRetryAfterItemReq,
    ThreadStreamEvent,
    ThreadsUpdateReq,
    UserMessageInput,
    UserMessageItem,
    Workflow,
    WorkflowItem,
    WorkflowTaskAdded,
    WorkflowTaskUpdated,
    is_streaming_req,
)
from pydantic import TypeAdapter, ValidationError

from sigmachat.agent.events import (
    AgentEvent,
    Info,
    RunFailed,
    RunFinished,
    RunStarted,
    TextDelta,
    ToolCallRecord,
    ToolFinished,
    ToolStarted,
)
from sigmachat.agent.failures import kind
from sigmachat.agent.instructions import MODE_NAMES, Mode
from sigmachat.chat.binding import check_portfolio
from sigmachat.chat.conversations import MAX_TEXT
from sigmachat.errors import AppError, NotFound, ValidationFailed
from sigmachat.logging import get_logger
from sigmachat.portfolio.service import owned_portfolio_id
from sigmachat.protocols.sse import sse_id
from sigmachat.runs.manager import AdmittedRun, RunManager
from sigmachat.settings import Settings
from sigmachat.store.chatkit_store import SqlChatKitStore
from sigmachat.store.items import (
    AnswerRun,
    answer_sources,
    dump_item,
    synthesized_workflow_id,
    tool_task,
    tools_duration,
    user_text,
)

log = get_logger("sigmachat.chatkit")

# mypy flags this union argument on a warm cache but not on a cold one (a mypy caching quirk),
# so the ignore must not itself be reported as unused.
CHATKIT_REQUEST = TypeAdapter[ChatKitReq](ChatKitReq)  # type: ignore[arg-type, unused-ignore]  # a union, as in the SDK
SUPPORTED = (
    ThreadsCreateReq,
    ThreadsAddUserMessageReq,
    ThreadsRetryAfterItemReq,
    ThreadsGetByIdReq,
    ThreadsListReq,
    ThreadsUpdateReq,
    ThreadsDeleteReq,
    ItemsListReq,
    ItemsFeedbackReq,
)
# The frame's SSE id rides on the frame object itself (not a field of the wire type, so the
# SDK's serializer never sees it): only frames that end an agent event have one.
_SSE_ID = "_sigmachat_sse_id"


class NotSupported(AppError):
    """A ChatKit request type this backend does not offer (attachments, actions, ...)."""

    status_code = 400
    code = "not_supported"


def requested_mode(metadata: dict[str, object]) -> Mode | None:
    """The mode a ChatKit request asks for in its ``metadata`` (None: the default)."""
    mode = metadata.get("mode")
    if mode is None:
        return None
    if mode not in MODE_NAMES:
        raise ValidationFailed(f"metadata.mode must be one of {', '.join(MODE_NAMES)}.")
    return cast(Mode, mode)


@dataclass(frozen=True)
class ChatContext:
    """The per-request context the SDK hands to the store and to ``respond()``."""

    user_id: str
    portfolio_id: str | None = None  # validated X-Portfolio-Id header
    locale: str | None = None
    sim_scenario: str | None = None
    # What a closed connection does to the run: ChatKit clients stop by closing ("cancel", the
    # default); our web UI stops through the run API and declares "continue" (X-Disconnect).
    # None: the server's SIGMACHAT_CHATKIT_DISCONNECT.
    disconnect: str | None = None
    admission: AdmittedRun | None = None  # the admitted run of a request that starts one
    # The analyst mode of a thread being created (threads.create's request ``metadata.mode``;
    # ChatKit has no field of its own for it). Applies from the thread's first answer.
    mode: Mode | None = None
    # This request's stream (the producer's queue, set by _start_stream): respond() puts its
    # pre-encoded text-delta frames there directly, past the SDK's per-event loop, which would
    # only pass them through (see EncodedFrame). None: they are yielded like any event.
    frame_sink: Callable[[tuple[str | None, str]], None] | None = None

    @property
    def run_owns_items(self) -> bool:
        """The run manager stores this request's items (the store must not write them again)."""
        return self.admission is not None


@dataclass(frozen=True, slots=True)
class EncodedFrame:
    """A frame whose JSON we wrote ourselves: the per-token text delta.

    Byte for byte what the SDK's serializer writes for the ``ThreadItemUpdatedEvent`` it stands
    for (tests compare the two), without building two pydantic models and serializing them
    once per token. The SDK's stream loop passes events it does not know through unchanged
    (it acts only on item added/done/removed/replaced and updated events), so it reaches our
    queue as is; the one SDK step it skips, tracking pending items for a cancelled stream,
    matters only to ``handle_stream_cancelled``, which stores nothing here.
    """

    sse_id: str | None
    data: str


def frame_sse_id(frame: ThreadStreamEvent) -> str | None:
    """The SSE id of a frame that ends an agent event (``<run_id>:<seq>``), else None."""
    value = frame.__dict__.get(_SSE_ID)
    return value if isinstance(value, str) else None


def _with_sse_id(frame: ThreadStreamEvent, value: str) -> ThreadStreamEvent:
    object.__setattr__(frame, _SSE_ID, value)
    return frame


# ---- agent events → ChatKit events ---------------------------------------------------------


def _progress_text(event: Info) -> str:
    if event.kind == "model_switch":
        return "Switching to the backup model…"
    reason = {
        "rate_limited": "The AI service is busy",
        "upstream_overloaded": "The AI service is overloaded",
        "timeout": "The AI service is slow to answer",
        "network_error": "The connection to the AI service dropped",
    }.get(event.reason or "", "The AI service had a problem")
    wait = f" in {max(1, round((event.delay_ms or 0) / 1000))} s" if event.delay_ms else ""
    return f"{reason}; trying again{wait} (attempt {event.attempt})…"


class ChatKitEventMapper:
    """Agent events of one run → ChatKit thread stream events. Deterministic.

    - text: ``thread.item.added`` (assistant message), a ``text_delta`` per delta,
      ``thread.item.done`` with the whole text;
    - tools: one workflow of custom tasks per stretch of tool calls ("Looking up positions",
      loading → complete with the tool's one-line summary), closed with the time the tools
      took when text starts or the run ends;
    - retries: ``progress_update``; failure: ``error`` with a plain-language message;
    - what ChatKit's item types have no field for travels as data in ``client_effect`` events
      (a ChatKit client ignores effects it does not handle): ``sigmachat.run_started`` (the
      answer's id, the offline flag, model, engine), ``sigmachat.tool_finished`` (the tool, its title, ok, the
      error code) and ``sigmachat.run_failed`` (the failure kind: code, status, retryable);
    - every run ends with its answer message (empty if it wrote nothing), annotated with how the
      run went and its tool calls (``store.items.answer_sources``): the item the store renders
      from the answer row when the thread is loaded again.

    Ids and times derive from the run's answer row (its id and ``created_at``), so the items
    equal the ones the store renders from that row later, and a replay of the event log
    rebuilds the very same frames. The last frame of each agent event carries its SSE id.
    """

    def __init__(self, *, thread_id: str, run_id: str, assistant_item_id: str, answer_created_at: dt.datetime) -> None:
        self.thread_id = thread_id
        self.run_id = run_id
        self.assistant_item_id = assistant_item_id
        self.answer_created_at = answer_created_at
        self.assistant: AssistantMessageItem | None = None
        self.workflow: WorkflowItem | None = None
        self.workflow_ms: list[float] = []
        self.workflows = 0
        self.tasks: dict[str, tuple[WorkflowItem, int]] = {}
        self.started: RunStarted | None = None
        self.tool_calls: list[ToolCallRecord] = []  # finished tool calls, as the run manager records them

    def _close_workflow(self) -> list[ThreadStreamEvent]:
        if self.workflow is None:
            return []
        item = self.workflow
        for i, task in enumerate(item.workflow.tasks):
            if task.status_indicator == "loading":  # stopped before it finished
                item.workflow.tasks[i] = task.model_copy(update={"status_indicator": "complete", "content": "Stopped"})
        item.workflow.summary = tools_duration(self.workflow_ms)
        item.workflow.expanded = False
        self.workflow = None
        return [ThreadItemDoneEvent(item=item.model_copy(deep=True))]

    def _close_assistant(self) -> list[ThreadStreamEvent]:
        if self.assistant is None:
            return []
        item = self.assistant
        self.assistant = None
        return [ThreadItemDoneEvent(item=item.model_copy(deep=True))]

    def _end_answer(self, event: RunFinished | RunFailed, text: str) -> list[ThreadStreamEvent]:
        """The run's answer message, annotated as the store renders it from the answer row."""
        out = [] if self.assistant is not None else self._open_assistant(text)
        assert self.assistant is not None
        started = self.started
        run = AnswerRun(
            run_id=self.run_id,
            status="complete" if isinstance(event, RunFinished) else kind(event.code).message_status,
            offline=bool(started and started.offline),
            model=event.model or (started.model if started else None),
            engine=started.engine if started else None,
        )
        if isinstance(event, RunFailed):
            run = dataclasses.replace(run, code=event.code, message=event.message, retryable=event.retryable)
        # The run manager stores the terminal event's tool calls, else the finished ones.
        self.assistant.content[0].annotations = answer_sources(run, event.tool_calls or self.tool_calls)
        return out + self._close_assistant()

    def _open_assistant(self, text: str) -> list[ThreadStreamEvent]:
        self.assistant = AssistantMessageItem(
            id=self.assistant_item_id,
            thread_id=self.thread_id,
            created_at=self.answer_created_at,
            content=[AssistantMessageContent(text=text, annotations=[])],
        )
        return [ThreadItemAddedEvent(item=self.assistant.model_copy(deep=True))]

    def _tool_started(self, event: ToolStarted) -> list[ThreadStreamEvent]:
        task = tool_task(event.name, done=False)
        if self.workflow is None:
            self.workflow = WorkflowItem(
                id=synthesized_workflow_id(self.assistant_item_id, self.workflows),
                thread_id=self.thread_id,
                # Just before the answer: the workflow sorts before the message it led to.
                created_at=self.answer_created_at - dt.timedelta(microseconds=1),
                workflow=Workflow(type="custom", tasks=[task], expanded=False),
            )
            self.workflows += 1
            self.workflow_ms = []
            self.tasks[event.call_id] = (self.workflow, 0)
            return [ThreadItemAddedEvent(item=self.workflow.model_copy(deep=True))]
        self.workflow.workflow.tasks.append(task)
        index = len(self.workflow.workflow.tasks) - 1
        self.tasks[event.call_id] = (self.workflow, index)
        return [ThreadItemUpdatedEvent(item_id=self.workflow.id, update=WorkflowTaskAdded(task_index=index, task=task))]

    def _tool_finished(self, event: ToolFinished) -> list[ThreadStreamEvent]:
        found = self.tasks.get(event.call_id)
        if found is None:
            return []
        workflow, index = found
        task = tool_task(event.name, done=True, ok=event.ok, summary=event.summary)
        workflow.workflow.tasks[index] = task
        self.tool_calls.append(event.record())
        error = event.envelope.get("error") if isinstance(event.envelope, dict) else None
        effect = ClientEffectEvent(
            name="sigmachat.tool_finished",
            data={
                "item_id": workflow.id,
                "task_index": index,
                "name": event.name,
                "title": task.title,
                "ok": event.ok,
                "error_code": error.get("code") if isinstance(error, dict) else None,
                "duration_ms": round(event.duration_ms, 1),
            },
        )
        if workflow is not self.workflow:
            return [effect]
        self.workflow_ms.append(event.duration_ms)
        return [
            ThreadItemUpdatedEvent(item_id=workflow.id, update=WorkflowTaskUpdated(task_index=index, task=task)),
            effect,
        ]

    def text_delta_frame(self, event: TextDelta) -> EncodedFrame | None:
        """A text delta of an answer whose item is open, as the frame ``feed`` would give,
        pre-encoded (``EncodedFrame``); None when ``feed`` must handle it (the first delta
        opens the item). The item's text grows the same way."""
        if self.assistant is None:
            return None
        self.assistant.content[0].text += event.delta
        data = orjson.dumps(
            {
                "type": "thread.item.updated",
                "item_id": self.assistant.id,
                "update": {
                    "type": "assistant_message.content_part.text_delta",
                    "content_index": 0,
                    "delta": event.delta,
                },
            }
        )
        return EncodedFrame(sse_id(self.run_id, event.seq), data.decode())

    def feed(self, event: AgentEvent) -> list[ThreadStreamEvent]:
        out: list[ThreadStreamEvent] = []
        match event:
            case RunStarted():
                self.started = event
                data = {
                    "run_id": self.run_id,
                    "assistant_message_id": self.assistant_item_id,  # the answer's id, even if it never says a word
                    "offline": event.offline,
                    "model": event.model,
                    "engine": event.engine,
                }
                out.append(ClientEffectEvent(name="sigmachat.run_started", data=data))
            case TextDelta():
                if self.assistant is None:
                    out += self._close_workflow()
                    out += self._open_assistant("")
                assert self.assistant is not None
                self.assistant.content[0].text += event.delta
                update = AssistantMessageContentPartTextDelta(content_index=0, delta=event.delta)
                out.append(ThreadItemUpdatedEvent(item_id=self.assistant.id, update=update))
            case ToolStarted():
                out += self._tool_started(event)
            case ToolFinished():
                out += self._tool_finished(event)
            case Info():
                icon = "reload" if event.kind == "retry_scheduled" else "sparkle"
                out.append(ProgressUpdateEvent(icon=icon, text=_progress_text(event)))
            case RunFinished():
                out += self._close_workflow()
                out += self._end_answer(event, event.final_text)
            case RunFailed():
                out += self._close_workflow()
                out += self._end_answer(event, "")
                failure = kind(event.code)
                message = event.message if event.code == "response_incomplete" else failure.message
                data = {**failure.public(), "code": event.code, "retryable": event.retryable, "run_id": self.run_id}
                out.append(ClientEffectEvent(name="sigmachat.run_failed", data=data))
                out.append(ErrorEvent(code="custom", message=message, allow_retry=event.retryable))
            case _:
                assert_never(event)
        if out:
            # Only the last frame of an agent event carries its id: a client that saw
            # "run:seq" has seen everything that event produced.
            _with_sse_id(out[-1], sse_id(self.run_id, event.seq))
        return out


# ---- the server ----------------------------------------------------------------------------


@dataclass
class StreamHandle:
    run_id: str
    frames: AsyncIterator[tuple[str | None, str]]  # (SSE id or None, JSON data)


class SigmaChatKitServer(ChatKitServer[ChatContext]):
    def __init__(self, store: SqlChatKitStore, runs: RunManager, settings: Settings) -> None:
        super().__init__(store)
        self.store: SqlChatKitStore = store
        self.runs = runs
        self.settings = settings
        self._background: set[asyncio.Task[object]] = set()

    # -- SDK hooks ---------------------------------------------------------------------------

    def get_stream_options(self, thread: ThreadMetadata, context: ChatContext) -> StreamOptions:
        # The stop button cancels the run only under the cancel policy; otherwise it would lie.
        return StreamOptions(allow_cancel=self._disconnect_policy(context) == "cancel")

    def _disconnect_policy(self, context: ChatContext) -> str:
        return context.disconnect or self.settings.chatkit_disconnect

    async def handle_stream_cancelled(
        self, thread: ThreadMetadata, pending_items: list[ThreadItem], context: ChatContext
    ) -> None:
        # The SDK would store half-streamed items here; the run manager stores the run's
        # answer whatever happens to the stream (it owns those rows).
        return None

    async def add_feedback(
        self, thread_id: str, item_ids: list[str], feedback: FeedbackKind, context: ChatContext
    ) -> None:
        await self.store.set_feedback(thread_id, item_ids, feedback, context)

    def _model_for(self, item: UserMessageItem) -> str | None:
        requested = item.inference_options.model if item.inference_options else None
        return requested if requested and requested in self.settings.chatkit_model_allowlist else None

    async def _portfolio_for(self, thread: ThreadMetadata, context: ChatContext) -> str | None:
        if context.portfolio_id:
            return context.portfolio_id
        candidate = (thread.metadata or {}).get("portfolio_id")
        if isinstance(candidate, str) and candidate:
            try:
                return await owned_portfolio_id(self.store.db, context.user_id, candidate)
            except NotFound:
                log.warning("chatkit_foreign_portfolio_in_metadata", thread_id=thread.id)
        return None  # the run manager falls back to the conversation's portfolio

    async def respond(
        self, thread: ThreadMetadata, input_user_message: UserMessageItem | None, context: ChatContext
    ) -> AsyncIterator[ThreadStreamEvent]:
        admission = context.admission
        if input_user_message is None or admission is None:  # the edge admits only user messages
            raise NotSupported("This request type is not supported.")
        started = await self.runs.start(
            user_id=context.user_id,
            conversation_id=thread.id,
            text=user_text(input_user_message),
            engine=admission.engine,
            protocol="chatkit",
            portfolio_id=await self._portfolio_for(thread, context),
            ui_context={"locale": context.locale} if context.locale else None,
            model=self._model_for(input_user_message),
            sim_scenario=context.sim_scenario,
            user_message_id=input_user_message.id,
            user_item=dump_item(input_user_message),
            admission=admission,
        )
        assert started.answer_created_at is not None
        mapper = ChatKitEventMapper(
            thread_id=thread.id,
            run_id=started.run_id,
            assistant_item_id=started.assistant_message_id,
            answer_created_at=started.answer_created_at,
        )
        sink = context.frame_sink
        async for event in self.runs.subscribe(started.run_id, coalesce=self.settings.stream_coalesce_deltas):
            if isinstance(event, TextDelta) and (encoded := mapper.text_delta_frame(event)) is not None:
                if sink is not None:
                    # In order with what we yield: the SDK's generators pull, so this one runs
                    # again only once its last event has reached the same queue.
                    sink((encoded.sse_id, encoded.data))
                else:
                    # Not a ThreadStreamEvent: the SDK passes it through to _start_stream (see EncodedFrame).
                    yield cast(ThreadStreamEvent, encoded)
                continue
            for frame in mapper.feed(event):
                yield frame
        if thread.title is None and started.title:
            thread.title = started.title  # stored by the run manager; the SDK sends thread.updated

    # -- runs whose client left --------------------------------------------------------------

    def _client_left(self, context: ChatContext, run_id: str) -> None:
        """Apply the disconnect policy. The run manager stores the answer either way."""
        if self._disconnect_policy(context) != "cancel":
            return
        user_id = context.user_id
        task = asyncio.get_running_loop().create_task(
            self.runs.cancel(user_id, run_id), name=f"chatkit-cancel:{run_id}"
        )
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def drain(self) -> None:
        """Wait for background cancels (shutdown, tests)."""
        while self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)

    async def resume(self, user_id: str, run_id: str, after_seq: int = 0) -> AsyncIterator[tuple[str | None, str]]:
        """ChatKit frames of a run after ``after_seq`` (our extension; ChatKit itself cannot resume).

        The mapper is rebuilt from the run's first event, so the frames are exactly the ones
        the original stream sent after that sequence. ``NotFound`` for unknown or foreign runs.
        """
        meta = await self.runs.owned_run(user_id, run_id)
        if meta is None or meta.protocol != "chatkit":
            raise NotFound("Run not found.")
        mapper = ChatKitEventMapper(
            thread_id=meta.conversation_id,
            run_id=run_id,
            assistant_item_id=meta.assistant_message_id,
            # Logged by an older version (no time): ids still match, times are only close.
            answer_created_at=meta.answer_created_at or dt.datetime.now(dt.UTC),
        )

        async def frames() -> AsyncIterator[tuple[str | None, str]]:
            async for event in self.runs.subscribe(run_id):
                encoded = mapper.text_delta_frame(event) if isinstance(event, TextDelta) else None
                out: list[ThreadStreamEvent | EncodedFrame] = [encoded] if encoded else [*mapper.feed(event)]
                if event.seq <= after_seq:
                    continue  # the client has these; the mapper still needed them
                for frame in out:
                    yield self._wire(frame)

        return frames()

    def _wire(self, frame: ThreadStreamEvent | EncodedFrame) -> tuple[str | None, str]:
        """A frame as (SSE id, JSON data): the SDK's serialization, or ours for an EncodedFrame."""
        if isinstance(frame, EncodedFrame):
            return frame.sse_id, frame.data
        return frame_sse_id(frame), self._serialize(frame).decode()

    # -- the edge ----------------------------------------------------------------------------

    @staticmethod
    def parse(body: bytes) -> ChatKitReq:
        """The one parse of a request, with the SDK's own type; errors as our 4xx."""
        try:
            return CHATKIT_REQUEST.validate_json(body)
        except ValidationError as exc:
            errors = exc.errors()
            types = {e.get("type") for e in errors}
            if "json_invalid" in types:
                raise AppError("The request body is not valid JSON.") from None
            if types & {"union_tag_invalid", "union_tag_not_found"}:
                raise NotSupported("Unknown ChatKit request type.") from None
            details = [
                {"loc": [str(p) for p in e.get("loc", ())], "message": e.get("msg", ""), "type": e.get("type", "")}
                for e in errors[:10]
            ]
            raise ValidationFailed("Invalid ChatKit request.", details=details) from None

    @staticmethod
    def _check_input(message: UserMessageInput) -> None:
        if message.attachments:
            raise NotSupported("Attachments are not supported.")
        text = "".join(getattr(part, "text", "") for part in message.content).strip()
        if not text:
            raise ValidationFailed("The message is empty.")
        if len(text) > MAX_TEXT:
            raise ValidationFailed(f"The message is too long (at most {MAX_TEXT} characters).")

    async def _owned_thread(self, thread_id: str, context: ChatContext) -> ThreadMetadata:
        try:
            return await self.store.load_thread(thread_id, context)
        except NotFoundError:
            raise NotFound("Thread not found.") from None

    async def precheck(self, request: ChatKitReq, context: ChatContext) -> None:
        """What can be wrong with the request itself, as ordinary 4xx errors (nothing written yet)."""
        if not isinstance(request, SUPPORTED):
            label = "Attachments are" if request.type.startswith("attachments.") else f"'{request.type}' is"
            raise NotSupported(f"{label} not supported by this server.")
        if isinstance(request, ThreadsCreateReq):
            self._check_input(request.params.input)
            requested_mode(request.metadata)  # an unknown mode is a 422 before anything is written
            return
        if isinstance(request, ThreadsListReq):
            return
        thread = await self._owned_thread(request.params.thread_id, context)
        if isinstance(request, ThreadsUpdateReq) and not 0 < len(request.params.title.strip()) <= 200:
            raise ValidationFailed("A thread title has 1 to 200 characters.")
        if isinstance(request, ThreadsAddUserMessageReq):
            self._check_input(request.params.input)
        if isinstance(request, ThreadsRetryAfterItemReq):
            try:
                item = await self.store.load_item(thread.id, request.params.item_id, context)
            except NotFoundError:
                raise NotFound("Item not found.") from None
            if not isinstance(item, UserMessageItem):
                raise ValidationFailed("Only a user message can be retried.")
        if isinstance(request, ItemsFeedbackReq):
            for item_id in request.params.item_ids:
                try:
                    await self.store.load_item(thread.id, item_id, context)
                except NotFoundError:
                    raise NotFound("Item not found.") from None
        if isinstance(request, ThreadsAddUserMessageReq | ThreadsRetryAfterItemReq):
            # One portfolio per conversation: 409 portfolio_mismatch before anything is written.
            async with self.store.db.session() as session:
                await check_portfolio(session, context.user_id, thread.id, context.portfolio_id)
        if isinstance(request, ThreadsDeleteReq) and (active := await self.runs.active_run_for(thread.id)):
            await self.runs.cancel(context.user_id, active)

    async def handle(self, body: bytes, context: ChatContext) -> bytes | StreamHandle:
        """Parse, check, admit, then answer JSON (bytes) or a started stream (StreamHandle)."""
        request = self.parse(body)
        await self.precheck(request, context)
        if not is_streaming_req(request):
            try:
                # The SDK's own dispatch, given the request we parsed (its process() would parse again).
                return await self._process_non_streaming(request, context)
            except NotFoundError:
                raise NotFound("Not found.") from None
            except ValueError as exc:
                raise AppError(str(exc) or "Invalid request.") from None
        new = isinstance(request, ThreadsCreateReq)
        # A new thread's id is reserved with the run (the store hands it to the SDK), so even
        # threads.create is admitted, conversation included, before anything is written.
        thread_id = self.store.generate_thread_id(context) if new else getattr(request.params, "thread_id", "")
        admission = await self.runs.admit(
            user_id=context.user_id, conversation_id=thread_id, engine=self.settings.chatkit_engine, new=new
        )
        mode = requested_mode(request.metadata) if new else None
        return await self._start_stream(
            request, dataclasses.replace(context, admission=admission, mode=mode), admission
        )

    async def _start_stream(self, request: StreamingReq, context: ChatContext, admission: AdmittedRun) -> StreamHandle:
        # Unbounded: it holds at most one run's frames, and a slow client must not slow the
        # SDK's generator into missing the run's end (the run itself never waits for us).
        queue: asyncio.Queue[tuple[str | None, str] | None] = asyncio.Queue()
        failure: list[BaseException] = []
        context = dataclasses.replace(context, frame_sink=queue.put_nowait)

        async def produce() -> None:
            try:
                async for event in self._process_streaming_impl(request, context):
                    queue.put_nowait(self._wire(event))  # unbounded: never waits
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failure.append(exc)
            finally:
                queue.put_nowait(None)
                await self.runs.release(admission)  # the run never started: its claim is free again

        producer = asyncio.get_running_loop().create_task(produce(), name=f"chatkit-stream:{admission.run_id}")
        try:
            pending: set[asyncio.Future[object]] = {producer, admission.outcome}  # type: ignore[arg-type]
            await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            # The client left before the stream began: stop the stream like any disconnect.
            await _stop(producer)
            if admission.started:
                self._client_left(context, admission.run_id)
            raise
        if not admission.outcome.done() or admission.outcome.exception() is not None:
            await _stop(producer)
            error = admission.outcome.exception() if admission.outcome.done() else (failure[0] if failure else None)
            if isinstance(error, NotFoundError):
                raise NotFound("Thread not found.")
            raise error or AppError("The answer could not be started.")
        return StreamHandle(run_id=admission.run_id, frames=self._frames(queue, producer, failure, context, admission))

    async def _frames(
        self,
        queue: asyncio.Queue[tuple[str | None, str] | None],
        producer: asyncio.Task[None],
        failure: list[BaseException],
        context: ChatContext,
        admission: AdmittedRun,
    ) -> AsyncIterator[tuple[str | None, str]]:
        complete = False
        try:
            while (entry := await queue.get()) is not None:
                yield entry
            complete = not failure
        finally:
            await _stop(producer)
            if not complete:
                self._client_left(context, admission.run_id)


async def _stop(task: asyncio.Task[None]) -> None:
    if not task.done():
        task.cancel()
    await asyncio.gather(task, return_exceptions=True)
