"""The run manager: owns every run from start to persisted end, independent of any HTTP request.

A run's engine writes agent events to the run's event log; persistence happens here when
the run ends; streaming responses (legacy SSE, ChatKit) subscribe to the log and may come
and go. Hence: disconnects do not lose answers, resume replays from a sequence, and cancel
is an explicit operation on the run, not a side effect of a closed socket.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import structlog
from sqlalchemy import select, update
from sqlalchemy.exc import DBAPIError, OperationalError

from sigmachat.agent.events import (
    EventFactory,
    RunFailed,
    RunFinished,
    RunStarted,
    TextDelta,
    ToolCallRecord,
    ToolFinished,
    is_terminal,
)
from sigmachat.agent.failures import kind
from sigmachat.chat.conversations import get_conversation, history_from_messages, list_messages, title_from_text
from sigmachat.chat.memories import memories_for_context
from sigmachat.db.models import Conversation, Message, as_utc, prefixed_id, utcnow
from sigmachat.db.session import Database
from sigmachat.engines.base import Engine, RunRequest, aclose_quietly
from sigmachat.errors import Conflict, NotFound, ServiceUnavailable
from sigmachat.logging import get_logger
from sigmachat.runs.event_log import EventLog
from sigmachat.runs.limits import UsageGuard
from sigmachat.settings import Settings

log = get_logger("sigmachat.runs")

STATUS_BY_CODE = {"cancelled": "cancelled", "response_incomplete": "incomplete", "interrupted": "interrupted"}


@dataclass
class StartedRun:
    run_id: str
    conversation_id: str
    user_message_id: str
    assistant_message_id: str
    engine: str
    portfolio_id: str | None
    reused: bool = False  # an idempotent retry of an earlier send


@dataclass
class _ActiveRun:
    run_id: str
    user_id: str
    conversation_id: str
    assistant_message_id: str
    engine: str
    protocol: str
    portfolio_id: str | None = None
    task: asyncio.Task | None = None
    text: str = ""
    last_seq: int = 0
    cancel_code: str | None = None
    finished: asyncio.Event = field(default_factory=asyncio.Event)


class RunManager:
    def __init__(
        self,
        db: Database,
        settings: Settings,
        engines: dict[str, Engine],
        event_log: EventLog,
        guard: UsageGuard | None = None,
    ) -> None:
        self.db = db
        self.guard = guard
        self.settings = settings
        self.engines = engines
        self.log = event_log
        self._active: dict[str, _ActiveRun] = {}  # run_id -> run
        self._by_conversation: dict[str, str] = {}  # conversation_id -> active run_id
        self._lock = asyncio.Lock()
        self._accepting = True
        self._listeners: list[Any] = []  # callables(run, event) for telemetry
        self._finish_listeners: list[Any] = []  # callables(run, request, terminal)

    # ---- lifecycle -------------------------------------------------------------------------

    async def recover_interrupted(self) -> int:
        """Runs left 'streaming' by a crash can never finish: mark them interrupted."""
        async with self.db.session() as session:
            result = await session.execute(
                update(Message)
                .where(Message.status == "streaming")
                .values(status="interrupted", error={"code": "interrupted", "message": kind("interrupted").message})
            )
            await session.commit()
            return result.rowcount or 0

    async def shutdown(self, grace_s: float) -> None:
        """Stop accepting runs, let running ones finish within ``grace_s``, interrupt the rest."""
        self._accepting = False
        if getattr(self, "_sweeper", None) is not None:
            self._sweeper.cancel()
        runs = list(self._active.values())
        if not runs:
            return
        pending = [r.finished.wait() for r in runs]
        try:
            await asyncio.wait_for(asyncio.gather(*pending), timeout=grace_s)
        except TimeoutError:
            for r in list(self._active.values()):
                r.cancel_code = "interrupted"
                if r.task:
                    r.task.cancel()
            await asyncio.gather(*(r.finished.wait() for r in runs), return_exceptions=True)

    def start_sweeper(self, interval_s: float = 60.0) -> None:
        """Expire finished runs' event logs periodically (they stay resumable for run_log_ttl_s)."""

        async def sweep() -> None:
            while True:
                await asyncio.sleep(interval_s)
                try:
                    await self.log.expire()
                except Exception:
                    log.exception("run_log_expire_failed")

        self._sweeper = asyncio.get_running_loop().create_task(sweep(), name="run-log-sweeper")

    def active_count(self) -> int:
        return len(self._active)

    def active_run_for(self, conversation_id: str) -> str | None:
        return self._by_conversation.get(conversation_id)

    # ---- start -----------------------------------------------------------------------------

    async def start(
        self,
        *,
        user_id: str,
        conversation_id: str,
        text: str,
        engine: str,
        protocol: str,
        client_message_id: str | None = None,
        portfolio_id: str | None = None,
        ui_context: dict[str, Any] | None = None,
        model: str | None = None,
        sim_scenario: str | None = None,
        user_message_id: str | None = None,
        assistant_message_id: str | None = None,
    ) -> StartedRun:
        if not self._accepting:
            raise ServiceUnavailable("The server is shutting down; try again in a moment.", headers={"Retry-After": "5"})
        if engine not in self.engines:
            raise ServiceUnavailable(f"The {engine} engine is not available.")
        async with self._lock:
            try:
                return await self._start_locked(
                    user_id, conversation_id, text, engine, protocol, client_message_id,
                    portfolio_id, ui_context, model, sim_scenario, user_message_id, assistant_message_id,
                )  # fmt: skip
            except (OperationalError, DBAPIError) as exc:
                log.error("run_start_db_error", error=type(exc).__name__)
                raise ServiceUnavailable("The database is unavailable; your message was not sent. Try again.") from exc

    async def _start_locked(
        self, user_id, conversation_id, text, engine, protocol, client_message_id,
        portfolio_id, ui_context, model, sim_scenario, user_message_id, assistant_message_id,
    ) -> StartedRun:  # fmt: skip
        async with self.db.session() as session:
            conv = await get_conversation(session, user_id, conversation_id)
            if client_message_id:
                existing = await self._find_idempotent(session, conv.id, client_message_id)
                if existing is not None:
                    return existing
            if self.guard is not None:
                self.guard.check_concurrency(sum(1 for r in self._active.values() if r.user_id == user_id))
                await self.guard.check_budget(session, user_id)
                await self.guard.check_send(user_id)
            active = self._by_conversation.get(conv.id)
            if active is None:
                streaming = (
                    await session.execute(
                        select(Message.run_id).where(Message.conversation_id == conv.id, Message.status == "streaming")
                    )
                ).scalar_one_or_none()
                active = streaming
            if active:
                raise Conflict(
                    "An answer is already being written in this conversation.", details={"active_run_id": active}
                )
            messages = await list_messages(session, user_id, conv.id)
            # ChatKit stores its user message item before the run starts (and keeps it on
            # retry): reuse that row, and keep it out of the history the model sees twice.
            stored = next((m for m in messages if user_message_id and m.id == user_message_id and m.role == "user"), None)
            history = history_from_messages([m for m in messages if m is not stored])
            run_id = f"run_{uuid.uuid4().hex}"
            now = utcnow()
            pf = portfolio_id or conv.portfolio_id
            if stored is not None:
                user_msg = stored
                user_msg.run_id = run_id
                now = max(now, as_utc(stored.created_at) + dt.timedelta(microseconds=1))
            else:
                user_msg = Message(
                    id=user_message_id or prefixed_id("msg"),
                    conversation_id=conv.id,
                    user_id=user_id,
                    item_type="user_message",
                    role="user",
                    content=text,
                    status="complete",
                    run_id=run_id,
                    client_message_id=client_message_id,
                    created_at=now,
                )
            assistant = Message(
                id=assistant_message_id or prefixed_id("msg"),
                conversation_id=conv.id,
                user_id=user_id,
                item_type="assistant_message",
                role="assistant",
                content="",
                status="streaming",
                run_id=run_id,
                engine=engine,
                created_at=now + dt.timedelta(microseconds=1),
            )
            # Mode and memories are read as the run starts: a change applies from the next turn, on either path.
            mode = conv.mode
            memories = await memories_for_context(session, user_id, pf)
            session.add_all([user_msg, assistant])
            if not conv.title:
                conv.title = title_from_text(text)
            conv.updated_at = now
            await session.commit()

        request = RunRequest(
            run_id=run_id,
            user_id=user_id,
            user_text=text,
            conversation_id=conv.id,
            portfolio_id=pf,
            history=history,
            model=model,
            ui_context=ui_context,
            sim_scenario=sim_scenario,
            mode=mode,
            memories=memories,
        )
        run = _ActiveRun(run_id, user_id, conv.id, assistant.id, engine, protocol, portfolio_id=pf)
        meta = {
            "conversation_id": conv.id,
            "user_message_id": user_msg.id,
            "assistant_message_id": assistant.id,
            "engine": engine,
            "protocol": protocol,
            "portfolio_id": pf,
        }
        await self.log.create(run_id, owner_id=user_id, meta=meta)
        self._active[run_id] = run
        self._by_conversation[conv.id] = run_id
        run.task = asyncio.create_task(self._drive(run, request), name=f"run:{run_id}")
        log.info("run_started", run_id=run_id, conversation_id=conv.id, engine=engine, protocol=protocol)
        return StartedRun(run_id, conv.id, user_msg.id, assistant.id, engine, pf)

    async def _find_idempotent(self, session, conversation_id: str, client_message_id: str) -> StartedRun | None:
        user_msg = (
            await session.execute(
                select(Message).where(
                    Message.conversation_id == conversation_id, Message.client_message_id == client_message_id
                )
            )
        ).scalar_one_or_none()
        if user_msg is None:
            return None
        assistant = (
            await session.execute(
                select(Message).where(Message.run_id == user_msg.run_id, Message.role == "assistant")
            )
        ).scalar_one_or_none()
        conv = await session.get(Conversation, conversation_id)
        return StartedRun(
            run_id=user_msg.run_id,
            conversation_id=conversation_id,
            user_message_id=user_msg.id,
            assistant_message_id=assistant.id if assistant else "",
            engine=assistant.engine if assistant and assistant.engine else "responses",
            portfolio_id=conv.portfolio_id if conv else None,
            reused=True,
        )

    # ---- drive -----------------------------------------------------------------------------

    def add_finish_listener(self, listener: Any) -> None:
        """``listener(run, request, terminal)`` after a run is persisted (the shadow comparison)."""
        self._finish_listeners.append(listener)

    def add_listener(self, listener: Any) -> None:
        """``listener(run_meta: dict, event)`` is called for every event (telemetry)."""
        self._listeners.append(listener)

    async def _emit(self, run: _ActiveRun, event: Any) -> None:
        await self.log.append(run.run_id, event)
        run.last_seq = event.seq
        if isinstance(event, TextDelta):
            run.text += event.delta
        # Log lines written while handling a stream event carry its sequence number.
        with structlog.contextvars.bound_contextvars(seq=event.seq):
            for listener in self._listeners:
                try:
                    listener(run, event)
                except Exception:  # telemetry must never break a run
                    log.exception("run_listener_failed", run_id=run.run_id)

    async def _drive(self, run: _ActiveRun, request: RunRequest) -> None:
        # This task's own context: every log line of the run (engine, tools, telemetry) has its id.
        structlog.contextvars.bind_contextvars(run_id=run.run_id)
        engine = self.engines[run.engine]
        terminal: Any = None
        stream = engine.stream(request)
        try:
            async for event in stream:
                if is_terminal(event):
                    terminal = event  # emitted after it is persisted, below
                    break
                await self._emit(run, event)
            if terminal is None:
                terminal = self._failure(run, "internal_error", "The engine ended without a result.")
        except asyncio.CancelledError:
            terminal = self._failure(run, run.cancel_code or "cancelled")
        except Exception:
            log.exception("run_crashed", run_id=run.run_id)
            terminal = self._failure(run, "internal_error")
        finally:
            await aclose_quietly(stream)
            if run.last_seq == 0:
                # Even a run that died before its engine said anything starts with run_started.
                await self._emit(run, EventFactory(run.run_id).make(RunStarted, conversation_id=run.conversation_id, model="", engine=run.engine))
                terminal = terminal.model_copy(update={"seq": 2})
            # Persist before announcing the end: whoever sees "done" can load the saved answer.
            await self._persist_with_retry(run, terminal)
            await self._emit(run, terminal)
            await self.log.mark_finished(run.run_id)
            self._active.pop(run.run_id, None)
            if self._by_conversation.get(run.conversation_id) == run.run_id:
                del self._by_conversation[run.conversation_id]
            run.finished.set()
            for listener in self._finish_listeners:
                try:
                    listener(run, request, terminal)
                except Exception:  # the comparison must never affect the live run
                    log.exception("run_finish_listener_failed", run_id=run.run_id)
            log.info("run_finished", run_id=run.run_id, outcome=getattr(terminal, "type", None), last_seq=run.last_seq)

    def _failure(self, run: _ActiveRun, code: str, message: str | None = None) -> RunFailed:
        """The terminal failure we produce ourselves (cancel, crash), next in the run's sequence."""
        k = kind(code)
        return EventFactory(run.run_id, start_after=run.last_seq).make(
            RunFailed, code=code, message=message or k.message, retryable=k.retryable, partial_text=run.text
        )

    async def _persist_with_retry(self, run: _ActiveRun, terminal: Any, attempts: int = 4) -> None:
        """A transient database error must not leave the answer 'streaming' forever."""
        for attempt in range(1, attempts + 1):
            try:
                await self._persist(run, terminal)
                return
            except Exception:
                log.exception("run_persist_failed", run_id=run.run_id, attempt=attempt)
                if attempt < attempts:
                    await asyncio.sleep(0.25 * 2**attempt)

    async def _persist(self, run: _ActiveRun, terminal: Any) -> None:
        events = await self.log.read(run.run_id)
        started = next((e for e in events if isinstance(e, RunStarted)), None)
        tool_events = [e for e in events if isinstance(e, ToolFinished)]
        async with self.db.session() as session:
            msg = await session.get(Message, run.assistant_message_id)
            if msg is None:  # conversation deleted while the run was going
                return
            msg.model = (terminal.model if terminal is not None else None) or (started.model if started else None)
            msg.offline = bool(started and started.offline)
            if isinstance(terminal, RunFinished):
                msg.content = terminal.final_text
                msg.status = "complete"
                msg.error = None
            else:
                msg.content = run.text
                code = terminal.code if terminal is not None else "internal_error"
                msg.status = STATUS_BY_CODE.get(code, "failed")
                msg.error = {
                    "code": code,
                    "message": terminal.message if terminal is not None else kind(code).message,
                    "retryable": terminal.retryable if terminal is not None else True,
                }
            records = list(getattr(terminal, "tool_calls", None) or [])
            if not records and tool_events:
                records = [
                    ToolCallRecord(call_id=e.call_id, name=e.name, summary=e.summary, ok=e.ok, duration_ms=e.duration_ms, truncated=e.truncated)
                    for e in tool_events
                ]
            msg.tool_calls = [r.model_dump() for r in records]
            usage = getattr(terminal, "usage", None)
            msg.usage = usage.model_dump() if usage is not None else None
            msg.first_token_ms = getattr(terminal, "ttfb_ms", None)
            msg.latency_ms = getattr(terminal, "duration_ms", None)
            conv = await session.get(Conversation, run.conversation_id)
            if conv is not None:
                conv.updated_at = utcnow()
            await session.commit()

    # ---- cancel / subscribe ----------------------------------------------------------------

    async def cancel(self, user_id: str, run_id: str) -> bool:
        """Stop a run on purpose (owner only). Returns False when it had already finished."""
        info = await self.log.info(run_id)
        if info is None or info.owner_id != user_id:
            if await self._persisted_run_owner(run_id) == user_id:
                return False
            raise NotFound("Run not found.")
        run = self._active.get(run_id)
        if run is None or run.task is None or run.task.done():
            return False
        run.cancel_code = "cancelled"
        run.task.cancel()
        try:
            await asyncio.wait_for(run.finished.wait(), timeout=self.settings.cancel_grace_s)
        except TimeoutError:
            log.warning("cancel_slow", run_id=run_id)
        return True

    async def _persisted_run_owner(self, run_id: str) -> str | None:
        async with self.db.session() as session:
            return (
                await session.execute(select(Message.user_id).where(Message.run_id == run_id).limit(1))
            ).scalar_one_or_none()

    async def owned_run_info(self, user_id: str, run_id: str):
        info = await self.log.info(run_id)
        if info is None or info.owner_id != user_id:
            return None
        return info

    async def subscribe(self, run_id: str, after_seq: int = 0, poll_s: float = 1.0) -> AsyncIterator[Any]:
        """Replay events after ``after_seq`` then follow live until the terminal event."""
        seq = after_seq
        while True:
            events = await self.log.wait(run_id, seq, timeout=poll_s)
            for event in events:
                if event.seq <= seq:
                    continue
                seq = event.seq
                yield event
                if is_terminal(event):
                    return
            info = await self.log.info(run_id)
            if info is None or (info.finished and seq >= info.last_seq):
                return

    async def wait_finished(self, run_id: str, timeout: float | None = None) -> None:
        run = self._active.get(run_id)
        if run is not None:
            await asyncio.wait_for(run.finished.wait(), timeout)
