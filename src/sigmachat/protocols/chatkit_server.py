"""The ChatKit protocol over our agent events.

``SigmaChatKitServer`` is the official SDK's ``ChatKitServer``: the SDK parses requests,
persists items through our ``SqlChatKitStore`` and frames the stream. Its ``respond()`` does
not run an agent itself: it starts a run through the ``RunManager`` (so the run outlives the
request and has the same run id and sequence as on the legacy path) and maps the run's agent
events to ChatKit events with ``ChatKitEventMapper``.

The mapping is a pure function of the run's event log (item ids and timestamps derive from the
run), so when a client goes away mid-run the same items can be rebuilt from the log and stored
(``_finish_in_background``): a ChatKit thread ends up the same whether or not anyone watched.

``handle()`` is the edge: it validates the request, checks ownership and conflicts before any
byte is streamed (so those failures are ordinary 4xx JSON errors), starts the stream in its own
task and returns once the run has started, with the run id for the ``X-Run-Id`` header and SSE
``id: <run_id>:<seq>`` lines.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from chatkit.server import ChatKitServer, NonStreamingResult, StreamingResult, is_streaming_req
from chatkit.store import NotFoundError
from chatkit.types import (
    AssistantMessageContent,
    AssistantMessageItem,
    ChatKitReq,
    CustomTask,
    DurationSummary,
    ErrorEvent,
    FeedbackKind,
    ItemsFeedbackReq,
    ItemsListReq,
    ProgressUpdateEvent,
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
    AssistantMessageContentPartTextDelta,
    Workflow,
    WorkflowItem,
    WorkflowTaskAdded,
    WorkflowTaskUpdated,
)
from pydantic import TypeAdapter, ValidationError
from sqlalchemy import select

from sigmachat.agent.events import Info, RunFailed, RunFinished, TextDelta, ToolFinished, ToolStarted, is_terminal
from sigmachat.agent.failures import kind
from sigmachat.chat.binding import check_portfolio
from sigmachat.chat.conversations import title_from_text
from sigmachat.db.models import Message, as_utc
from sigmachat.errors import AppError, Conflict, NotFound, ValidationFailed
from sigmachat.logging import get_logger
from sigmachat.runs.manager import RunManager
from sigmachat.settings import Settings
from sigmachat.store.chatkit_store import SqlChatKitStore
from sigmachat.store.items import tool_title, user_text

log = get_logger("sigmachat.chatkit")

CHATKIT_REQUEST: TypeAdapter[ChatKitReq] = TypeAdapter(ChatKitReq)
MAX_TEXT = 4000  # the legacy send API's limit; one limit for both paths
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


class NotSupported(AppError):
    """A ChatKit request type this backend does not offer (attachments, actions, ...)."""

    status_code = 400
    code = "not_supported"


@dataclass
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
    # Filled in while streaming.
    run_id: str | None = None
    started: asyncio.Event = field(default_factory=asyncio.Event)
    start_error: AppError | None = None
    frame_tag: str | None = None  # the SSE id of the frame being yielded (last frame of a seq)
    finished: bool = False  # the run's terminal event went out on this stream
    gone: bool = False  # the disconnect policy has been applied
    request_type: str | None = None
    thread_id: str | None = None
    user_item_id: str | None = None


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
      loading → complete with the tool's one-line summary), closed with a duration summary
      when text starts or the run ends;
    - retries: ``progress_update``; failure: ``error`` with a plain-language message.

    Item ids and times derive from the run (assistant id, run id, ``base_time`` + seq µs), so
    replaying the event log rebuilds the very same items.
    """

    def __init__(self, *, thread_id: str, run_id: str, assistant_item_id: str, base_time: dt.datetime) -> None:
        self.thread_id = thread_id
        self.run_id = run_id
        self.assistant_item_id = assistant_item_id
        self.base_time = base_time
        self.assistant: AssistantMessageItem | None = None
        self.workflow: WorkflowItem | None = None
        self.workflow_started_ts = 0
        self.workflows = 0
        self.tasks: dict[str, tuple[WorkflowItem, int]] = {}

    def _at(self, seq: int) -> dt.datetime:
        return self.base_time + dt.timedelta(microseconds=seq)

    def _close_workflow(self, ts: int) -> list[ThreadStreamEvent]:
        if self.workflow is None:
            return []
        item = self.workflow
        for i, task in enumerate(item.workflow.tasks):
            if task.status_indicator == "loading":  # stopped before it finished
                item.workflow.tasks[i] = task.model_copy(update={"status_indicator": "complete", "content": "Stopped"})
        item.workflow.summary = DurationSummary(duration=max(0, round((ts - self.workflow_started_ts) / 1000)))
        item.workflow.expanded = False
        self.workflow = None
        return [ThreadItemDoneEvent(item=item.model_copy(deep=True))]

    def _close_assistant(self, text: str | None = None) -> list[ThreadStreamEvent]:
        if self.assistant is None:
            return []
        item = self.assistant
        if text is not None:
            item.content = [AssistantMessageContent(text=text, annotations=[])]
        self.assistant = None
        return [ThreadItemDoneEvent(item=item.model_copy(deep=True))]

    def feed(self, event: Any) -> list[ThreadStreamEvent]:
        out: list[ThreadStreamEvent] = []
        if isinstance(event, TextDelta):
            if self.assistant is None:
                out += self._close_workflow(event.ts)
                self.assistant = AssistantMessageItem(
                    id=self.assistant_item_id,
                    thread_id=self.thread_id,
                    created_at=self._at(event.seq),
                    content=[AssistantMessageContent(text="", annotations=[])],
                )
                out.append(ThreadItemAddedEvent(item=self.assistant.model_copy(deep=True)))
            self.assistant.content[0].text += event.delta
            out.append(
                ThreadItemUpdatedEvent(
                    item_id=self.assistant.id,
                    update=AssistantMessageContentPartTextDelta(content_index=0, delta=event.delta),
                )
            )
        elif isinstance(event, ToolStarted):
            task = CustomTask(title=tool_title(event.name), icon="analytics", status_indicator="loading")
            if self.workflow is None:
                self.workflow = WorkflowItem(
                    id=f"wf_{self.run_id.removeprefix('run_')[:16]}{self.workflows}",
                    thread_id=self.thread_id,
                    created_at=self._at(event.seq),
                    workflow=Workflow(type="custom", tasks=[task], expanded=False),
                )
                self.workflows += 1
                self.workflow_started_ts = event.ts
                self.tasks[event.call_id] = (self.workflow, 0)
                out.append(ThreadItemAddedEvent(item=self.workflow.model_copy(deep=True)))
            else:
                self.workflow.workflow.tasks.append(task)
                index = len(self.workflow.workflow.tasks) - 1
                self.tasks[event.call_id] = (self.workflow, index)
                out.append(ThreadItemUpdatedEvent(item_id=self.workflow.id, update=WorkflowTaskAdded(task_index=index, task=task)))
        elif isinstance(event, ToolFinished):
            found = self.tasks.get(event.call_id)
            if found is not None:
                workflow, index = found
                summary = event.summary or ("Done" if event.ok else "Could not be computed")
                task = workflow.workflow.tasks[index].model_copy(update={"status_indicator": "complete", "content": summary})
                workflow.workflow.tasks[index] = task
                if workflow is self.workflow:
                    out.append(ThreadItemUpdatedEvent(item_id=workflow.id, update=WorkflowTaskUpdated(task_index=index, task=task)))
        elif isinstance(event, Info):
            out.append(ProgressUpdateEvent(icon="reload" if event.kind == "retry_scheduled" else "sparkle", text=_progress_text(event)))
        elif isinstance(event, RunFinished):
            out += self._close_workflow(event.ts)
            if self.assistant is None and event.final_text:
                self.assistant = AssistantMessageItem(
                    id=self.assistant_item_id, thread_id=self.thread_id, created_at=self._at(event.seq),
                    content=[AssistantMessageContent(text=event.final_text, annotations=[])],
                )  # fmt: skip
                out.append(ThreadItemAddedEvent(item=self.assistant.model_copy(deep=True)))
            out += self._close_assistant()
        elif isinstance(event, RunFailed):
            out += self._close_workflow(event.ts)
            out += self._close_assistant()
            k = kind(event.code)
            message = event.message if event.code == "response_incomplete" else k.message
            out.append(ErrorEvent(code="custom", message=message, allow_retry=event.retryable))
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
        self._background: set[asyncio.Task] = set()

    # -- SDK hooks ---------------------------------------------------------------------------

    def get_stream_options(self, thread: ThreadMetadata, context: ChatContext) -> StreamOptions:
        # The stop button cancels the run only under the cancel policy; otherwise it would lie.
        return StreamOptions(allow_cancel=self._disconnect_policy(context) == "cancel")

    def _disconnect_policy(self, context: ChatContext) -> str:
        return context.disconnect or self.settings.chatkit_disconnect

    async def handle_stream_cancelled(self, thread: ThreadMetadata, pending_items: list[ThreadItem], context: ChatContext) -> None:
        # The SDK would store half-streamed items here; our run manager persists the run and
        # _finish_in_background rebuilds its ChatKit items from the event log instead.
        return None

    async def add_feedback(self, thread_id: str, item_ids: list[str], feedback: FeedbackKind, context: ChatContext) -> None:
        await self.store.set_feedback(thread_id, item_ids, feedback, context)

    def _model_for(self, item: UserMessageItem) -> str | None:
        requested = item.inference_options.model if item.inference_options else None
        return requested if requested and requested in self.settings.chatkit_model_allowlist else None

    async def _portfolio_for(self, thread: ThreadMetadata, context: ChatContext) -> str | None:
        if context.portfolio_id:
            return context.portfolio_id
        candidate = (thread.metadata or {}).get("portfolio_id")
        if isinstance(candidate, str) and candidate:
            from sigmachat.portfolio.service import get_owned_portfolio

            try:
                async with self.store.db.session() as session:
                    await get_owned_portfolio(session, context.user_id, candidate)
                return candidate
            except NotFound:
                log.warning("chatkit_foreign_portfolio_in_metadata", thread_id=thread.id)
        return None  # the run manager falls back to the conversation's portfolio

    async def respond(
        self, thread: ThreadMetadata, input_user_message: UserMessageItem | None, context: ChatContext
    ) -> AsyncIterator[ThreadStreamEvent]:
        if input_user_message is None:  # client tool output / structured input: rejected at the edge
            context.start_error = NotSupported("This request type is not supported.")
            context.started.set()
            return
        text = user_text(input_user_message)
        context.thread_id, context.user_item_id = thread.id, input_user_message.id
        try:
            started = await self.runs.start(
                user_id=context.user_id,
                conversation_id=thread.id,
                text=text,
                engine=self.settings.chatkit_engine,
                protocol="chatkit",
                portfolio_id=await self._portfolio_for(thread, context),
                ui_context={"locale": context.locale} if context.locale else None,
                model=self._model_for(input_user_message),
                sim_scenario=context.sim_scenario,
                user_message_id=input_user_message.id,
                assistant_message_id=self.store.generate_item_id("message", thread, context),
            )
        except AppError as exc:
            context.start_error = exc
            context.started.set()
            return
        context.run_id = started.run_id
        context.started.set()
        mapper = await self._mapper(thread.id, started.run_id, started.assistant_message_id, started.user_message_id)
        try:
            async for event in self.runs.subscribe(started.run_id, coalesce=self.settings.stream_coalesce_deltas):
                frames = mapper.feed(event)
                for i, frame in enumerate(frames):
                    # Only the last frame of an agent event carries its id: a client that saw
                    # "run:seq" has seen everything that event produced.
                    context.frame_tag = f"{started.run_id}:{event.seq}" if i == len(frames) - 1 else None
                    yield frame
                if is_terminal(event):
                    context.finished = True
            if thread.title is None:
                thread.title = title_from_text(text)  # the SDK saves it and sends thread.updated
        finally:
            if not context.finished:
                self.stream_gone(context, thread.id)

    # -- runs without a watcher --------------------------------------------------------------

    async def _mapper(self, thread_id: str, run_id: str, assistant_id: str, user_message_id: str) -> ChatKitEventMapper:
        # Items of the run are timed just after the question (base + seq µs): they sort after
        # it and in stream order, and the base never changes, so a replay gives equal items.
        async with self.store.db.session() as session:
            asked = (await session.execute(select(Message.created_at).where(Message.id == user_message_id))).scalar_one_or_none()
        base = as_utc(asked) if asked is not None else dt.datetime.now(dt.UTC)
        return ChatKitEventMapper(thread_id=thread_id, run_id=run_id, assistant_item_id=assistant_id, base_time=base)

    def stream_gone(self, context: ChatContext, thread_id: str) -> None:
        """The client left before the run ended: apply the disconnect policy, finish persistence."""
        if context.run_id is None or context.finished or context.gone:
            return
        context.gone = True  # idempotent: the stream's consumer and respond() both call it
        task = asyncio.get_running_loop().create_task(self._finish_in_background(context, thread_id, context.run_id))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _finish_in_background(self, context: ChatContext, thread_id: str, run_id: str) -> None:
        try:
            if self._disconnect_policy(context) == "cancel":
                await self.runs.cancel(context.user_id, run_id)
            info = await self.runs.log.info(run_id)
            meta = info.meta if info else {}
            if not meta.get("assistant_message_id"):
                return
            mapper = await self._mapper(thread_id, run_id, meta["assistant_message_id"], meta.get("user_message_id", ""))
            text = None
            async for event in self.runs.subscribe(run_id):
                for frame in mapper.feed(event):
                    if isinstance(frame, ThreadItemDoneEvent):
                        await self.store.add_thread_item(thread_id, frame.item, context)
            thread = await self.store.load_thread(thread_id, context)
            if thread.title is None:
                async with self.store.db.session() as session:
                    text = (
                        await session.execute(
                            select(Message.content).where(Message.run_id == run_id, Message.role == "user")
                        )
                    ).scalar_one_or_none()
                thread.title = title_from_text(text or "New chat")
                await self.store.save_thread(thread, context)
        except NotFoundError:
            pass  # the thread was deleted meanwhile
        except Exception:
            log.exception("chatkit_background_finish_failed", run_id=run_id)

    async def drain(self) -> None:
        """Wait for background finishes (shutdown, tests)."""
        while self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)

    async def resume(self, user_id: str, run_id: str, after_seq: int = 0) -> AsyncIterator[tuple[str | None, str]]:
        """ChatKit frames of a run after ``after_seq`` (our extension; ChatKit itself cannot resume).

        The mapper is rebuilt from the run's first event, so the frames are exactly the ones
        the original stream sent after that sequence. ``NotFound`` for unknown or foreign runs.
        """
        info = await self.runs.owned_run_info(user_id, run_id)
        if info is None:
            raise NotFound("Run not found.")
        meta = info.meta
        if meta.get("protocol") != "chatkit" or not meta.get("assistant_message_id"):
            raise NotFound("Run not found.")
        mapper = await self._mapper(meta["conversation_id"], run_id, meta["assistant_message_id"], meta.get("user_message_id", ""))

        async def frames() -> AsyncIterator[tuple[str | None, str]]:
            async for event in self.runs.subscribe(run_id):
                out = mapper.feed(event)
                if event.seq <= after_seq:
                    continue  # the client has these; the mapper still needed them
                for i, frame in enumerate(out):
                    tag = f"{run_id}:{event.seq}" if i == len(out) - 1 else None
                    yield tag, frame.model_dump_json(by_alias=True, exclude_none=True, context={"exclude_metadata": True})

        return frames()

    # -- the edge ----------------------------------------------------------------------------

    def parse(self, body: bytes) -> Any:
        try:
            return CHATKIT_REQUEST.validate_json(body)
        except ValidationError as exc:
            errors = exc.errors()
            types = {e.get("type") for e in errors}
            if "json_invalid" in types:
                raise AppError("The request body is not valid JSON.") from None
            if types & {"union_tag_invalid", "union_tag_not_found"}:
                raise NotSupported("Unknown ChatKit request type.") from None
            details = [{"loc": [str(p) for p in e.get("loc", ())], "message": e.get("msg", ""), "type": e.get("type", "")} for e in errors[:10]]
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

    async def precheck(self, request: Any, context: ChatContext) -> None:
        """Everything that can fail before a stream starts, as ordinary 4xx errors."""
        if not isinstance(request, SUPPORTED):
            label = "Attachments are" if request.type.startswith("attachments.") else f"'{request.type}' is"
            raise NotSupported(f"{label} not supported by this server.")
        if isinstance(request, ThreadsCreateReq):
            self._check_input(request.params.input)
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
            async with self.store.db.session() as session:  # one portfolio per conversation: 409 before writes
                await check_portfolio(session, context.user_id, thread.id, context.portfolio_id)
            if active := await self.runs.active_run_for(thread.id):
                raise Conflict("An answer is already being written in this conversation.", details={"active_run_id": active})
        if isinstance(request, ThreadsDeleteReq) and (active := await self.runs.active_run_for(thread.id)):
            await self.runs.cancel(context.user_id, active)

    async def handle(self, body: bytes, context: ChatContext) -> bytes | StreamHandle:
        """Validate, pre-check, then answer JSON (bytes) or a started stream (StreamHandle)."""
        request = self.parse(body)
        await self.precheck(request, context)
        try:
            result = await self._process_parsed(request, context)
        except NotFoundError:
            raise NotFound("Not found.") from None
        except ValueError as exc:
            raise AppError(str(exc) or "Invalid request.") from None
        if isinstance(result, NonStreamingResult):
            return result.json
        assert isinstance(result, StreamingResult)
        context.request_type = request.type
        return await self._start_stream(result, context)

    async def _process_parsed(self, request: Any, context: ChatContext) -> StreamingResult | NonStreamingResult:
        """``ChatKitServer.process`` for a request parsed once, by our cached adapter.

        The SDK's ``process`` re-parses the body with a ``TypeAdapter(ChatKitReq)`` it builds
        on every call: about 10 ms of schema building per request. Same routing otherwise.
        """
        if is_streaming_req(request):
            return StreamingResult(self._process_streaming(request, context))
        return NonStreamingResult(await self._process_non_streaming(request, context))

    async def _start_stream(self, result: StreamingResult, context: ChatContext) -> StreamHandle:
        # Unbounded: it holds at most one run's events, and a slow client must not slow the
        # ChatKit generator into missing the run's end (the run itself never waits for us).
        queue: asyncio.Queue = asyncio.Queue()
        source = result.json_events
        failure: list[BaseException] = []

        async def produce() -> None:
            try:
                async for chunk in source:
                    tag, context.frame_tag = context.frame_tag, None
                    await queue.put((tag, chunk))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failure.append(exc)
            finally:
                context.started.set()
                await source.aclose()
                queue.put_nowait(None)

        producer = asyncio.get_running_loop().create_task(produce(), name="chatkit-stream")
        try:
            await context.started.wait()
        except asyncio.CancelledError:
            # The client left before the stream began: stop the stream like any disconnect.
            producer.cancel()
            await asyncio.gather(producer, return_exceptions=True)
            if context.thread_id:
                self.stream_gone(context, context.thread_id)
            raise
        if context.start_error is not None or (context.run_id is None and failure):
            producer.cancel()
            await asyncio.gather(producer, return_exceptions=True)
            await self._undo_unanswered(context)
            if context.start_error is not None:
                raise context.start_error
            if isinstance(failure[0], NotFoundError):
                raise NotFound("Thread not found.")
            raise failure[0]
        return StreamHandle(run_id=context.run_id or "", frames=self._frames(queue, producer, context))

    async def _undo_unanswered(self, context: ChatContext) -> None:
        """A rejected run (rate limit, busy thread) leaves no trace: drop what this request stored.

        (A retry keeps its user message: it was there before; the answers after it are gone,
        as the retry asked.)"""
        if context.thread_id is None:
            return
        try:
            if context.request_type == "threads.create":
                await self.store.delete_thread(context.thread_id, context)
            elif context.request_type == "threads.add_user_message" and context.user_item_id:
                await self.store.delete_thread_item(context.thread_id, context.user_item_id, context)
        except NotFoundError:
            pass

    async def _frames(self, queue: asyncio.Queue, producer: asyncio.Task, context: ChatContext) -> AsyncIterator[tuple[str | None, str]]:
        try:
            while True:
                entry = await queue.get()
                if entry is None:
                    return
                tag, chunk = entry
                yield tag, chunk.removeprefix(b"data: ").rstrip(b"\n").decode()
        finally:
            if not producer.done():
                producer.cancel()
                await asyncio.gather(producer, return_exceptions=True)
            if context.thread_id:
                self.stream_gone(context, context.thread_id)
