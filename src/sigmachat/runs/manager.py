"""The run manager: owns every run from start to persisted end, independent of any HTTP request.

A run's engine writes agent events to the run's event log; persistence happens here when
the run ends; streaming responses (legacy SSE, ChatKit) subscribe to the log and may come
and go. Hence: disconnects do not lose answers, resume replays from a sequence, and cancel
is an explicit operation on the run, not a side effect of a closed socket.

With several instances (``SIGMACHAT_REDIS_URL``) the event log lives in Redis and a
``RunCoordinator`` shares admission, leases and cancels: any instance can resume or cancel
any run, and the runs of an instance that died are closed by a living one (``take_over``).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import dataclasses
import datetime as dt
import functools
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import structlog
from pydantic import BaseModel
from redis.exceptions import RedisError
from sqlalchemy import bindparam, case, func, select, update
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession

from sigmachat.agent.events import (
    AgentEvent,
    EventFactory,
    RunFailed,
    RunFinished,
    RunStarted,
    TerminalEvent,
    TextDelta,
    ToolCallRecord,
    ToolFinished,
    Usage,
    is_terminal,
)
from sigmachat.agent.failures import kind
from sigmachat.chat.binding import bind_portfolio
from sigmachat.chat.conversations import (
    conversation_and_streaming_run,
    get_conversation,
    history_from_messages,
    messages_of,
    title_from_text,
)
from sigmachat.chat.memories import memories_for_context
from sigmachat.db.models import Conversation, Message, as_utc, prefixed_id, table_of, utcnow
from sigmachat.db.session import Database
from sigmachat.engines.base import Engine, RunRequest, aclose_quietly
from sigmachat.errors import Conflict, NotFound, ServiceUnavailable
from sigmachat.logging import get_logger
from sigmachat.runs.coordination import LocalCoordinator, RunClaim, RunCoordinator
from sigmachat.runs.event_log import EventLog, RunLogInfo
from sigmachat.runs.limits import UsageGuard
from sigmachat.runs.listeners import EventListener, FinishListener
from sigmachat.settings import Settings

log = get_logger("sigmachat.runs")

# A cancel still unanswered this long after it was sent is sent again (the first may be lost).
_CANCEL_AGAIN_AFTER_S = 1.0
ORPHAN_GRACE_S = 1.0  # how long an open log without lease or claim may wait for its end

# Built once: constructing this UPDATE (its where clause, its values) was most of a progress
# save's CPU on the event loop, and every live run saves about once a second.
_SAVE_PROGRESS = (
    update(Message)
    .where(Message.id == bindparam("answer_id"), Message.status == "streaming")
    .values(content=bindparam("partial"))
)

# A run's end, the same way: the answer's columns (every outcome sets all of them) and the
# conversation's last activity. Run on a connection: two statements need no unit of work.
_ANSWER_COLUMNS = (
    "model",
    "offline",
    "content",
    "status",
    "error",
    "tool_calls",
    "usage",
    "first_token_ms",
    "latency_ms",
)
_SAVE_ANSWER = (
    update(Message)
    .where(Message.id == bindparam("answer_id"), Message.status == "streaming")
    .values({name: bindparam(f"new_{name}") for name in _ANSWER_COLUMNS})
)
_ANSWER_STATUS = select(Message.status).where(Message.id == bindparam("answer_id"))
# A run's start: its question and the empty answer, and the conversation's title, portfolio and
# time. Core statements on the session's connection, not the ORM's unit of work: its flush was
# the largest single database cost per answer (a tenth of the app's CPU at 200 streams).
_MESSAGES_TABLE = table_of(Message)
_CONVERSATIONS_TABLE = table_of(Conversation)
_NEW_MESSAGES = _MESSAGES_TABLE.insert()
_QUESTION_RUN = (
    update(_MESSAGES_TABLE).where(_MESSAGES_TABLE.c.id == bindparam("message_id")).values(run_id=bindparam("new_run"))
)
_CONVERSATION_AT_START = (
    update(_CONVERSATIONS_TABLE)
    .where(_CONVERSATIONS_TABLE.c.id == bindparam("conversation_id"))
    .values(
        # Only where still unset, as the ORM's flush of the changed attributes did: a rename (or
        # a binding) that landed since the conversation was read stays.
        title=func.coalesce(func.nullif(_CONVERSATIONS_TABLE.c.title, ""), bindparam("new_title")),
        portfolio_id=func.coalesce(_CONVERSATIONS_TABLE.c.portfolio_id, bindparam("new_portfolio_id")),
        updated_at=bindparam("new_updated_at"),
    )
)
_TOUCH_CONVERSATION = (
    update(Conversation).where(Conversation.id == bindparam("conversation_id")).values(updated_at=bindparam("now"))
)

DB_DOWN = "The database is unavailable; your message was not sent. Try again."


@dataclass
class StartedRun:
    run_id: str
    conversation_id: str
    user_message_id: str
    assistant_message_id: str
    engine: str
    portfolio_id: str | None
    reused: bool = False  # an idempotent retry of an earlier send
    answer_created_at: dt.datetime | None = None  # the answer row's time: protocols date the run's items with it
    title: str | None = None  # the conversation's title after this start (set here, once, for both protocols)


@dataclass
class AdmittedRun:
    """A run let in before anything is written: its id, conversation and answer id are claimed
    (on the coordinator, so on every instance) and it counts against the user's limits.

    ``admit()`` makes every refusal (busy conversation, rate, concurrency, budget, shutdown) a
    plain error while nothing has been stored yet, so no protocol ever has to undo a write.
    ``start()`` consumes it; ``release()`` gives the claim back if the run never starts.
    """

    claim: RunClaim
    engine: str
    new_conversation: bool  # the conversation is created after admission (ChatKit threads.create)
    started: bool = False
    lost: bool = False  # its lease was taken over before it started (this process looked dead)
    # Resolved by start(): the started run, or why it could not start (for a protocol that
    # starts the run from inside a stream it does not drive, like ChatKit's respond()).
    outcome: asyncio.Future[StartedRun] = field(default_factory=lambda: asyncio.get_running_loop().create_future())

    @property
    def run_id(self) -> str:
        return self.claim.run_id

    @property
    def user_id(self) -> str:
        return self.claim.user_id

    @property
    def conversation_id(self) -> str:
        return self.claim.conversation_id


class RunMeta(BaseModel):
    """What the event log keeps about a run beside its events (one shape, typed, for every reader)."""

    conversation_id: str
    user_message_id: str
    assistant_message_id: str
    answer_created_at: dt.datetime | None = None  # None only for runs logged by an older version
    engine: str
    protocol: str
    portfolio_id: str | None = None


def _failed(
    factory: EventFactory, code: str, partial_text: str, message: str | None = None, retryable: bool | None = None
) -> RunFailed:
    """A run's failed end that we produce ourselves (cancel, crash, takeover): the failure
    kind's message and retryability unless the caller knows better, next in the sequence."""
    k = kind(code)
    return factory.make(
        RunFailed,
        code=code,
        message=message or k.message,
        retryable=k.retryable if retryable is None else retryable,
        partial_text=partial_text,
    )


@dataclass(frozen=True)
class _Closing:
    """A dead owner's run being taken over, with what its log says."""

    claim: RunClaim
    text: str  # the partial answer streamed before the owner died
    last_seq: int
    terminal_seen: bool
    # The answer's row when its owner had already saved its end (it died before announcing it).
    saved: Message | None = None

    @classmethod
    def of(cls, claim: RunClaim, events: list[AgentEvent]) -> _Closing:
        text = "".join(e.delta for e in events if isinstance(e, TextDelta))
        return cls(claim, text, events[-1].seq if events else 0, any(is_terminal(e) for e in events))

    def terminal(self, factory: EventFactory) -> TerminalEvent:
        """The end to announce: the saved one if the owner saved it, else ``interrupted``."""
        row = self.saved
        if row is not None and row.status == "complete":
            return factory.make(
                RunFinished,
                final_text=row.content or "",
                usage=Usage.model_validate(row.usage or {}),
                duration_ms=row.latency_ms or 0.0,
                ttfb_ms=row.first_token_ms,
                tool_calls=[ToolCallRecord.model_validate(t) for t in row.tool_calls or []],
                model=row.model,
            )
        if row is not None and isinstance(error := row.error, dict) and error.get("code"):
            retryable = bool(error["retryable"]) if "retryable" in error else None
            message = str(error["message"]) if error.get("message") else None
            return _failed(factory, str(error["code"]), row.content or "", message, retryable)
        return _failed(factory, "interrupted", self.text)


@dataclass
class _ActiveRun:
    run_id: str
    user_id: str
    conversation_id: str
    assistant_message_id: str
    engine: str
    protocol: str
    portfolio_id: str | None = None
    claim: RunClaim | None = None
    task: asyncio.Task[None] | None = None
    text: str = ""
    last_seq: int = 0
    started: RunStarted | None = None  # kept here so persisting never depends on reading the log back
    tools: list[ToolFinished] = field(default_factory=list)
    cancel_code: str | None = None
    cancel_asked_at: float | None = None  # loop time of the last cancel sent to its task
    finished: asyncio.Event = field(default_factory=asyncio.Event)
    # Loop time of the last progress save; the run's start counts as one: the first save comes a
    # period in, not at the first token (one write fewer per answer, ~2 of every 3 on short ones).
    saved_at: float = field(default_factory=lambda: asyncio.get_running_loop().time())
    saving: asyncio.Task[None] | None = None  # the progress save in flight (at most one)
    closing: asyncio.Task[None] | None = None  # the run's closing steps (held here: the loop keeps only weak refs)
    terminal: TerminalEvent | None = None  # how it ends, once decided (None: an exception nothing caught)


def _is_cancel(event: AgentEvent) -> bool:
    """Whether a run's last event is the end a user's cancel gives it."""
    return isinstance(event, RunFailed) and event.code == "cancelled"


def coalesce_deltas(events: list[AgentEvent]) -> list[AgentEvent]:
    """Each stretch of consecutive text deltas as one delta carrying the last one's seq and ts."""
    out: list[AgentEvent] = []
    stretch: list[TextDelta] = []

    def close() -> None:
        if len(stretch) == 1:
            out.append(stretch[0])
        elif stretch:
            last = stretch[-1]
            out.append(last.model_copy(update={"delta": "".join(d.delta for d in stretch)}))
        stretch.clear()

    for event in events:
        if isinstance(event, TextDelta):
            stretch.append(event)
            continue
        close()
        out.append(event)
    close()
    return out


class RunManager:
    def __init__(
        self,
        db: Database,
        settings: Settings,
        engines: dict[str, Engine],
        event_log: EventLog,
        guard: UsageGuard | None = None,
        coordinator: RunCoordinator | None = None,
    ) -> None:
        self.db = db
        self.guard = guard
        self.settings = settings
        self.engines = engines
        self.events = event_log  # the runs' event log (not a logger)
        self.coordinator: RunCoordinator = coordinator or LocalCoordinator()
        self._active: dict[str, _ActiveRun] = {}  # run_id -> run driven by this process
        self._admitted: dict[str, AdmittedRun] = {}  # run_id -> admitted here, not yet started
        self._taking_over: dict[str, asyncio.Task[None]] = {}  # run_id -> closing a dead owner's run
        # SQLite lets one writer in at a time, and a transaction that reads and then writes fails
        # at once ("database is locked") when another holds the write lock: there, starts take
        # turns. PostgreSQL needs no turns (one run per conversation is the coordinator's atomic
        # admission); serialised, each start's several awaits on a loop busy streaming a hundred
        # answers queued sends for a minute or more (the cluster soak).
        self._start_turns = asyncio.Lock() if db.engine.dialect.name == "sqlite" else None
        self._writing = 0  # starts writing their run now (the drain waits for them)
        self._no_writes = asyncio.Event()
        self._no_writes.set()
        self._accepting = True
        self._tasks: list[asyncio.Task[None]] = []
        # Live runs whose text changed since their last progress save, and the one task that
        # saves them together (see _save_progress_loop); it runs only while there are some.
        self._unsaved: dict[str, _ActiveRun] = {}
        self._progress_saver: asyncio.Task[None] | None = None
        self._listeners: list[EventListener] = []  # telemetry
        self._finish_listeners: list[FinishListener] = []  # the shadow comparison

    # ---- lifecycle -------------------------------------------------------------------------

    async def recover_interrupted(self) -> int:
        """Runs left 'streaming' by a crash can never finish: mark them interrupted.

        Alone (no shared coordinator) every 'streaming' row is an earlier process's. With
        several instances only runs whose lease has lapsed are closed: a live lease means
        another instance is writing that answer right now.
        """
        if not self.coordinator.shared:
            async with self.db.session() as session:
                result = await session.execute(
                    update(Message)
                    .where(Message.status == "streaming")
                    .values(
                        status=kind("interrupted").message_status,
                        error={"code": "interrupted", "message": kind("interrupted").message},
                    )
                )
                await session.commit()
                return getattr(result, "rowcount", 0) or 0  # an UPDATE's CursorResult
        async with self.db.session() as session:
            rows = (
                await session.execute(
                    select(Message.run_id, Message.user_id, Message.conversation_id, Message.id).where(
                        Message.status == "streaming", Message.role == "assistant"
                    )
                )
            ).all()
        alive = await self.coordinator.live_runs([r.run_id for r in rows if r.run_id])
        claims = [
            RunClaim(row.run_id or "", row.user_id, row.conversation_id, row.id, "")
            for row in rows
            if row.run_id not in alive
        ]
        return await self.take_over_many(claims, registered=False) if claims else 0

    @property
    def draining(self) -> bool:
        return not self._accepting

    def begin_drain(self) -> None:
        """Stop admitting runs (new sends answer 503, /readyz answers 503); running ones go on."""
        self._accepting = False

    async def shutdown(self, grace_s: float) -> None:
        """Stop accepting runs, let running ones finish within ``grace_s``, interrupt the rest.

        Interrupted runs are closed like any other: partial answer saved, terminal event in the
        log (so clients following from another instance end cleanly), conversation released.
        """
        self._accepting = False
        # A start writing its run right now registers it after this line: wait for it, so that
        # every run of this instance is drained (starts that come later refuse).
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._no_writes.wait(), grace_s)
        runs = list(self._active.values())
        if runs:
            try:
                await asyncio.wait_for(asyncio.gather(*(r.finished.wait() for r in runs)), timeout=grace_s)
            except TimeoutError:
                for r in list(self._active.values()):
                    r.cancel_code = "interrupted"
                    if r.task:
                        r.task.cancel()
                await asyncio.gather(*(r.finished.wait() for r in runs), return_exceptions=True)
        if self._taking_over:  # closing dead instances' runs: let them finish, briefly
            await asyncio.wait(list(self._taking_over.values()), timeout=10)
        if self._progress_saver is not None:
            self._tasks.append(self._progress_saver)
        for task in [*self._tasks, *self._taking_over.values()]:
            task.cancel()
        await asyncio.gather(*self._tasks, *self._taking_over.values(), return_exceptions=True)
        self._tasks.clear()
        await self.coordinator.aclose()

    def start_sweeper(self, interval_s: float = 60.0) -> None:
        """Background upkeep: expire finished logs; with a shared coordinator, renew this
        instance's leases, close runs whose owner died, and obey cancels sent elsewhere."""

        async def sweep() -> None:
            while True:
                await asyncio.sleep(interval_s)
                try:
                    await self.events.expire()
                except Exception:
                    log.exception("run_log_expire_failed")

        loop = asyncio.get_running_loop()
        self._tasks.append(loop.create_task(sweep(), name="run-log-sweeper"))
        if self.coordinator.shared:
            self._loop = loop
            self._tasks.append(loop.create_task(self._lease_loop(), name="run-leases"))
            self.coordinator.start(self._cancel_here)
            self.coordinator.keep_leases(self._runs_here, self._leases_lost)

    def _runs_here(self) -> list[str]:
        """This process's run ids, admitted ones included, safe to call from the lease keeper's thread.

        An admitted run holds a lease from its admission on, and under load it can wait longer
        than a lease for its start (the start lock, the ChatKit store): its lease must be renewed
        too, or a survivor (or this instance's own sweep) takes over a run that is about to start.
        """
        for _ in range(5):
            try:
                return list(self._active) + list(self._admitted)
            except RuntimeError:  # a dict changed size under us: try again
                continue
        return []

    def _leases_lost(self, run_ids: list[str]) -> None:
        """From the lease keeper's thread: another instance closed these runs (we looked dead)."""

        def stop() -> None:
            for run_id in run_ids:
                admitted = self._admitted.get(run_id)
                if admitted is not None and not admitted.lost:
                    log.warning("run_lease_lost", run_id=run_id, started=False)
                    admitted.lost = True  # start() refuses it, before anything is written
                run = self._active.get(run_id)
                # Once: the keeper reports the lost lease every period until the run is gone.
                if run is not None and run.task is not None and run.cancel_code != "interrupted":
                    log.warning("run_lease_lost", run_id=run_id, started=True)
                    run.cancel_code = "interrupted"
                    run.task.cancel()

        self._loop.call_soon_threadsafe(stop)

    async def _lease_loop(self) -> None:
        # Dead owners are found within lease + one period (6 s + 2 s by default, well under the
        # 15 s promise). Renewing our own leases is the lease keeper's job (a thread: keep_leases).
        period = self.settings.run_lease_ttl_s / 3
        while True:
            await asyncio.sleep(period)
            try:
                # Cancels asked on another instance whose message this one missed.
                for run_id in await self.coordinator.cancel_requests(list(self._active)):
                    await self._cancel_here(run_id)
                mine = self._active.keys() | self._admitted.keys() | self._taking_over.keys()
                # Each look's finds are closed together in a task of their own, and the next look
                # does not wait for them: a run whose lease lapsed just after one look must not
                # wait for that look's batch (the cluster soak: one run still 'streaming' 24 s
                # after its owner was killed).
                found = [c for c in await self.coordinator.dead_runs() if c.run_id not in mine]
                if found:
                    task = asyncio.get_running_loop().create_task(self._take_over_dead(found))
                    for claim in found:
                        self._taking_over[claim.run_id] = task
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis or the database unreachable: try again next period
                log.warning("run_lease_loop_failed", error=type(exc).__name__)

    async def _take_over_dead(self, claims: list[RunClaim]) -> None:
        try:
            await self.take_over_many(claims)
        except Exception as exc:  # Redis or the database unreachable: the next look tries again
            log.warning("run_takeover_failed", run_ids=[c.run_id for c in claims], error=type(exc).__name__)
        finally:
            for claim in claims:
                self._taking_over.pop(claim.run_id, None)

    async def take_over(self, claim: RunClaim, *, registered: bool = True) -> int:
        """Close one run whose owner is gone (see ``take_over_many``). Returns 1 if this
        instance closed it, 0 if another one got there first."""
        return await self.take_over_many([claim], registered=registered)

    async def take_over_many(
        self, claims: list[RunClaim], *, registered: bool = True, owner_gone: bool | None = None
    ) -> int:
        """Close runs whose owner is gone: keep each partial answer from its log, mark it
        ``interrupted``, release its conversation, append the terminal event so followers end
        cleanly. Returns how many of them this instance closed (another one may get there first).

        All together, in a fixed number of steps however many there are: a dead instance leaves
        dozens of runs, and on a survivor busy with a hundred streams each awaited step waits
        behind their callbacks. One at a time each took its own database connection from a pool
        the streams' saves were using, and the last of 50 closed up to 20 s after the kill
        (the cluster soak; the issue promises 15 s).

        ``owner_gone``: whatever the rows say, no owner will announce these ends (default: a
        sweep's finds, ``registered``). An owner killed after saving its answer is announced
        with what it saved, not as ``interrupted``.
        """
        owner_gone = registered if owner_gone is None else owner_gone
        won = await asyncio.gather(*(self.coordinator.claim_takeover(c.run_id, registered=registered) for c in claims))
        mine = [c for c, ok in zip(claims, won, strict=True) if ok]
        if not mine:
            return 0
        logs = await asyncio.gather(*(self._log_of(c.run_id) for c in mine))
        closing = [_Closing.of(c, events) for c, events in zip(mine, logs, strict=True)]
        k = kind("interrupted")
        table = _MESSAGES_TABLE
        texts = {c.claim.assistant_message_id: c.text for c in closing if c.text}
        # One statement for all of them; RETURNING says which rows were still 'streaming'.
        close = (
            update(table)
            .where(table.c.id.in_([c.claim.assistant_message_id for c in closing]), table.c.status == "streaming")
            .values(
                status=k.message_status,
                error={"code": "interrupted", "message": k.message, "retryable": k.retryable},
                content=case(texts, value=table.c.id, else_=table.c.content) if texts else table.c.content,
            )
            .returning(table.c.id)
        )
        async with self.db.engine.begin() as conn:
            flipped = set((await conn.execute(close)).scalars())
        # Start-up recovery reads rows, then leases, then claims: in between a live owner can
        # persist its answer and release its lease (the cluster soak: a complete answer whose
        # client was told "interrupted"). A row no longer 'streaming' is its owner's to
        # announce. A sweep's find is different: its claim still stands with its lease lapsed, so
        # its owner is gone even if it saved the answer before dying; release and announce it.
        closing = [c for c in closing if owner_gone or c.claim.assistant_message_id in flipped]
        if unflipped := [c.claim.assistant_message_id for c in closing if c.claim.assistant_message_id not in flipped]:
            async with self.db.session() as session:
                rows = (await session.execute(select(Message).where(Message.id.in_(unflipped)))).scalars()
                saved = {row.id: row for row in rows}
            closing = [dataclasses.replace(c, saved=saved.get(c.claim.assistant_message_id)) for c in closing]
        # Free the conversations before announcing the ends, as a run's own end does (_close).
        await asyncio.gather(*(self.coordinator.release(c.claim) for c in closing if c.claim.run_id))
        await asyncio.gather(*(self._announce_takeover(c) for c in closing if c.claim.run_id))
        for c in closing:
            log.warning(
                "run_taken_over", run_id=c.claim.run_id, dead_owner=c.claim.instance_id, partial_chars=len(c.text)
            )
        return len(closing)

    async def _log_of(self, run_id: str) -> list[AgentEvent]:
        return await self.events.read(run_id) if run_id else []

    async def _announce_takeover(self, c: _Closing) -> None:
        """End a taken-over run's log: its terminal event (unless it has one), then finished."""
        run_id = c.claim.run_id
        if not c.terminal_seen and await self.events.info(run_id) is not None:
            factory = EventFactory(run_id, start_after=c.last_seq)
            try:
                if c.last_seq == 0:
                    await self.events.append(
                        run_id, factory.make(RunStarted, conversation_id=c.claim.conversation_id, model="", engine="")
                    )
                await self.events.append(run_id, c.terminal(factory))
            except Exception as exc:  # the dead owner's log may be gone or already closed
                log.warning("run_takeover_append_failed", run_id=run_id, error=type(exc).__name__)
        await self.events.mark_finished(run_id)

    async def _cancel_here(self, run_id: str) -> None:
        run = self._active.get(run_id)
        if run is None or run.task is None or run.task.done() or run.closing is not None:
            return  # gone, or its end already decided: it ends as it was going to
        now = asyncio.get_running_loop().time()
        if run.cancel_code is None:
            run.cancel_code = "cancelled"
        elif run.cancel_code != "cancelled" or now - (run.cancel_asked_at or now) < _CANCEL_AGAIN_AFTER_S:
            # The same cancel arrives by message and again from the lease loop's look: cancelling
            # twice at once would cut the engine's clean-up (closing its upstream) short.
            return
        # Asked again a while later, the run still going: the first cancel was lost (a library
        # that swallows one, as Python 3.11's wait_for does when a result lands in the same turn).
        # The cluster test saw it once: "cancelled" answered, the answer ran on to "done".
        run.cancel_asked_at = now
        run.task.cancel()

    def active_count(self) -> int:
        return len(self._active)

    async def active_run_for(self, conversation_id: str) -> str | None:
        """The run writing in a conversation now, on any instance."""
        return await self.coordinator.active_run_for(conversation_id)

    async def active_runs_for(self, conversation_ids: list[str]) -> list[str | None]:
        """The runs writing in these conversations now (None where none), in one look-up."""
        return await self.coordinator.active_runs_for(conversation_ids)

    # ---- start -----------------------------------------------------------------------------

    async def admit(
        self, *, user_id: str, conversation_id: str, engine: str, new: bool = False, portfolio_id: str | None = None
    ) -> AdmittedRun:
        """Let a run in, or refuse it, before anything is written (both protocols call this).

        Refusals: shutting down or no such engine (503), an unknown or foreign conversation
        (404), a send naming another portfolio than the conversation's (409
        ``portfolio_mismatch``), a conversation with an answer in progress (409), send rate, concurrent runs or
        the daily budget (429), the database or the shared run state unreachable (503). The
        claim is taken on the coordinator: from now on the conversation is busy on every
        instance. ``new``: the conversation does not exist yet (its id is reserved here).
        """
        if not self._accepting:
            raise ServiceUnavailable(
                "The server is shutting down; try again in a moment.", headers={"Retry-After": "5"}
            )
        if engine not in self.engines:
            raise ServiceUnavailable(f"The {engine} engine is not available.")
        # Without taking turns: admission only reads the database, and the coordinator's
        # admit is one atomic step (a Lua script; in one process, no await between check and
        # claim). Queued behind every start's writes, sends waited tens of seconds at 100
        # streams on one instance, longer than a lease (found by the cluster soak).
        try:
            return await self._admit(user_id, conversation_id, engine, new, portfolio_id)
        except (OperationalError, DBAPIError) as exc:
            log.error("run_admit_db_error", error=type(exc).__name__)
            raise ServiceUnavailable(DB_DOWN) from exc
        except RedisError as exc:
            # Without the shared run state no instance could resume or close this run.
            log.error("run_admit_redis_error", error=type(exc).__name__)
            raise ServiceUnavailable(
                "Live answers are unavailable right now (run state store unreachable); your message was not sent. "
                "Try again shortly.",
                headers={"Retry-After": "5"},
            ) from exc

    async def _admit(
        self, user_id: str, conversation_id: str, engine: str, new: bool, portfolio_id: str | None
    ) -> AdmittedRun:
        streaming: str | None = None
        async with self.db.session() as session:
            if not new:
                conv, streaming = await conversation_and_streaming_run(session, user_id, conversation_id)
                bind_portfolio(conv, portfolio_id)  # one portfolio per conversation (not committed here)
                conversation_id = conv.id
            if self.guard is not None:
                self.guard.check_concurrency(await self.coordinator.active_count_for_user(user_id))
                await self.guard.check_budget(session, user_id)
                await self.guard.check_send(user_id)
            if not new:
                active = await self.coordinator.active_run_for(conversation_id) or streaming
                if active:
                    raise Conflict(
                        "An answer is already being written in this conversation.", details={"active_run_id": active}
                    )
        run_id = f"run_{uuid.uuid4().hex}"
        claim = RunClaim(run_id, user_id, conversation_id, prefixed_id("msg"), self.coordinator.instance_id)
        # One atomic step on the shared state: of two instances racing for one conversation
        # (or a user's last concurrent slot) exactly one wins, before any write.
        verdict = await self.coordinator.admit(claim, self.settings.max_concurrent_runs_per_user if self.guard else 0)
        if not verdict.ok:
            if verdict.active_run_id:
                raise Conflict(
                    "An answer is already being written in this conversation.",
                    details={"active_run_id": verdict.active_run_id},
                )
            assert self.guard is not None
            self.guard.check_concurrency(verdict.user_active)
        admitted = AdmittedRun(claim, engine, new)
        self._admitted[run_id] = admitted
        return admitted

    async def release(self, admitted: AdmittedRun) -> None:
        """Give back the claim of a run that never started (idempotent; a started run keeps it)."""
        if admitted.started or self._admitted.pop(admitted.run_id, None) is None:
            return
        await self.coordinator.release(admitted.claim)

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
        user_item: dict[str, Any] | None = None,
        admission: AdmittedRun | None = None,
    ) -> StartedRun:
        """Start a run: store the question and an empty answer, then drive the engine in a task.

        Without an ``admission`` the run is admitted here (after an idempotent retry of the
        same ``client_message_id`` has been recognised). ``user_item`` is the protocol's own
        JSON of the question, stored with its row so the protocol reads it back exactly.
        """
        if admission is None:
            if client_message_id:
                try:
                    async with self.db.session() as session:
                        await get_conversation(session, user_id, conversation_id)
                        existing = await self._find_idempotent(session, user_id, conversation_id, client_message_id)
                except (OperationalError, DBAPIError) as exc:
                    log.error("run_start_db_error", error=type(exc).__name__)
                    raise ServiceUnavailable(DB_DOWN) from exc
                if existing is not None:
                    return existing
            admission = await self.admit(
                user_id=user_id, conversation_id=conversation_id, engine=engine, portfolio_id=portfolio_id
            )
        try:
            async with self._writing_a_run():
                if not self._accepting:  # a drain began while this start waited for its turn
                    raise ServiceUnavailable(
                        "The server is shutting down; try again in a moment.", headers={"Retry-After": "5"}
                    )
                if admission.lost:  # another instance closed this claim: its conversation may be busy again
                    raise ServiceUnavailable(
                        "This server was too busy to start your answer; try again.", headers={"Retry-After": "1"}
                    )
                async with self.db.session() as session:
                    conv = await get_conversation(session, admission.user_id, conversation_id)
                    if conv.id != admission.conversation_id:
                        raise ValueError("The admission was for another conversation.")
                    started = await self._write_run(
                        session, conv, admission.claim, text, admission.engine, protocol, client_message_id,
                        portfolio_id, ui_context, model, sim_scenario, user_message_id or prefixed_id("msg"), user_item,
                    )  # fmt: skip
                admission.started = True
                self._admitted.pop(admission.run_id, None)
        except (OperationalError, DBAPIError) as exc:
            log.error("run_start_db_error", error=type(exc).__name__)
            failure = ServiceUnavailable(DB_DOWN)
            self._settle(admission, failure)
            raise failure from exc
        except RedisError as exc:
            log.error("run_start_redis_error", error=type(exc).__name__)
            failure = ServiceUnavailable(
                "Live answers are unavailable right now (run state store unreachable); your message was not sent. "
                "Try again shortly.",
                headers={"Retry-After": "5"},
            )
            self._settle(admission, failure)
            raise failure from exc
        except Exception as exc:
            self._settle(admission, exc)
            raise
        finally:
            await self.release(admission)  # a no-op once the run started
        self._settle(admission, started)
        return started

    @contextlib.asynccontextmanager
    async def _writing_a_run(self) -> AsyncIterator[None]:
        """A start's writes: on SQLite one at a time; counted, for the drain."""
        async with self._start_turns or contextlib.nullcontext():
            self._writing += 1  # no await between this and the caller's drain check
            self._no_writes.clear()
            try:
                yield
            finally:
                self._writing -= 1
                if not self._writing:
                    self._no_writes.set()

    @staticmethod
    def _settle(admission: AdmittedRun, result: StartedRun | Exception) -> None:
        if admission.outcome.done():
            return
        if isinstance(result, Exception):
            admission.outcome.set_exception(result)
            admission.outcome.exception()  # marks it retrieved: only a protocol waiting on it cares
        else:
            admission.outcome.set_result(result)

    async def _write_run(
        self, session: AsyncSession, conv: Conversation, claim: RunClaim, text: str, engine: str, protocol: str,
        client_message_id: str | None, portfolio_id: str | None, ui_context: dict[str, Any] | None,
        model: str | None, sim_scenario: str | None, user_message_id: str, user_item: dict[str, Any] | None,
    ) -> StartedRun:  # fmt: skip
        user_id, run_id = claim.user_id, claim.run_id
        messages = await messages_of(session, conv)  # conv was loaded as the caller's just before
        # A retried ChatKit question keeps its row (it is this run's question again): reuse
        # it, and keep it out of the history the model would otherwise see twice.
        stored = next((m for m in messages if user_message_id and m.id == user_message_id and m.role == "user"), None)
        history = history_from_messages([m for m in messages if m is not stored])
        now = utcnow()
        pf = bind_portfolio(conv, portfolio_id)  # binds a conversation that had no portfolio yet
        if stored is not None:
            now = max(now, as_utc(stored.created_at) + dt.timedelta(microseconds=1))
        answer_at = now + dt.timedelta(microseconds=1)
        answer_id = claim.assistant_message_id
        rows: list[dict[str, Any]] = []
        if stored is None:
            rows.append({
                "id": user_message_id, "conversation_id": conv.id, "user_id": user_id, "item_type": "user_message",
                "role": "user", "content": text, "status": "complete", "run_id": run_id,
                "client_message_id": client_message_id, "payload": user_item, "engine": None, "created_at": now,
            })  # fmt: skip
        rows.append({
            "id": answer_id, "conversation_id": conv.id, "user_id": user_id, "item_type": "assistant_message",
            "role": "assistant", "content": "", "status": "streaming", "run_id": run_id,
            "client_message_id": None, "payload": None, "engine": engine, "created_at": answer_at,
        })  # fmt: skip
        # Mode and memories are read as the run starts: a change applies from the next turn, on either path.
        mode = conv.mode
        memories = await memories_for_context(session, user_id, pf)
        title = conv.title or title_from_text(text)  # the one place a conversation gets its automatic title
        meta = RunMeta(
            conversation_id=conv.id,
            user_message_id=user_message_id,
            assistant_message_id=answer_id,
            answer_created_at=answer_at,
            engine=engine,
            protocol=protocol,
            portfolio_id=pf,
        )
        # The log first: if it cannot be created (Redis down) nothing has been written yet.
        await self.events.create(run_id, owner_id=user_id, meta=meta.model_dump(mode="json"))
        session.expunge_all()  # what was loaded is read-only from here: nothing for the ORM to flush
        conn = await session.connection()
        await conn.execute(_NEW_MESSAGES, rows)
        if stored is not None:
            await conn.execute(_QUESTION_RUN, {"message_id": stored.id, "new_run": run_id})
        await conn.execute(
            _CONVERSATION_AT_START,
            {"conversation_id": conv.id, "new_title": title, "new_portfolio_id": pf, "new_updated_at": now},
        )
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
        run = _ActiveRun(run_id, user_id, conv.id, answer_id, engine, protocol, portfolio_id=pf, claim=claim)
        self._active[run_id] = run
        run.task = asyncio.create_task(self._drive(run, request), name=f"run:{run_id}")
        log.info("run_started", run_id=run_id, conversation_id=conv.id, engine=engine, protocol=protocol)
        return StartedRun(
            run_id, conv.id, user_message_id, answer_id, engine, pf, answer_created_at=answer_at, title=title
        )

    async def _find_idempotent(
        self, session: AsyncSession, user_id: str, conversation_id: str, client_message_id: str
    ) -> StartedRun | None:
        user_msg = (
            await session.execute(
                select(Message).where(
                    Message.conversation_id == conversation_id,
                    Message.user_id == user_id,
                    Message.client_message_id == client_message_id,
                )
            )
        ).scalar_one_or_none()
        if user_msg is None or user_msg.run_id is None:
            return None
        assistant = (
            await session.execute(select(Message).where(Message.run_id == user_msg.run_id, Message.role == "assistant"))
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
            answer_created_at=as_utc(assistant.created_at) if assistant else None,
            title=conv.title if conv else None,
        )

    # ---- drive -----------------------------------------------------------------------------

    def add_finish_listener(self, listener: FinishListener) -> None:
        """``listener(run, request, terminal)`` after a run is persisted (the shadow comparison)."""
        self._finish_listeners.append(listener)

    def add_listener(self, listener: EventListener) -> None:
        """``listener(run, event)`` is called for every event of every run (telemetry)."""
        self._listeners.append(listener)

    async def _emit(self, run: _ActiveRun, event: AgentEvent) -> None:
        await self.events.append(run.run_id, event)
        run.last_seq = event.seq
        if isinstance(event, TextDelta):
            run.text += event.delta
            if self._progress_saver is None:
                self._start_progress_saver()
            self._unsaved[run.run_id] = run
        elif isinstance(event, ToolFinished):
            run.tools.append(event)
        elif isinstance(event, RunStarted):
            run.started = event
        # Log lines written while handling a stream event carry its sequence number.
        # (bind/reset rather than the bound_contextvars context manager: a third of the cost,
        # once per token.)
        tokens = structlog.contextvars.bind_contextvars(seq=event.seq)
        try:
            for listener in self._listeners:
                try:
                    listener(run, event)
                except Exception:  # telemetry must never break a run
                    log.exception("run_listener_failed", run_id=run.run_id)
        finally:
            structlog.contextvars.reset_contextvars(**tokens)

    def _start_progress_saver(self) -> None:
        if self.settings.run_progress_save_s:
            # A context of its own: it is started from whichever run's token came first, and its
            # log lines must not carry that run's id.
            self._progress_saver = asyncio.get_running_loop().create_task(
                self._save_progress_loop(), name="run-progress-saver", context=contextvars.Context()
            )

    async def _save_progress_loop(self) -> None:
        """Save the live runs' partial answers about once per ``run_progress_save_s`` each (the
        first a period after the run's start), off the token path and all in one statement.

        One transaction for every run due, not one per run: at 200 live answers that was 200
        write transactions a second, each a pooled connection, a begin and a commit (about a
        sixth of the answer's statements). A tick comes every half period, so each run is saved
        every one to one and a half periods. A slow database delays the next tick instead of
        queueing saves. Ends when no run has unsaved text; the next token starts it again.
        """
        every = self.settings.run_progress_save_s
        loop = asyncio.get_running_loop()
        try:
            while self._unsaved:
                await asyncio.sleep(every / 2)
                now = loop.time()
                due = [run for run in self._unsaved.values() if now - run.saved_at >= every]
                if not due:
                    continue
                for run in due:
                    del self._unsaved[run.run_id]
                    run.saved_at = now
                write = loop.create_task(self._save_progress(due))
                for run in due:
                    run.saving = write  # the run's final save waits for it (see _close)
                await write
        finally:
            self._progress_saver = None

    async def _save_progress(self, runs: list[_ActiveRun]) -> None:
        # The text as it is now: a run's later tokens only make it more complete.
        partials = [{"answer_id": run.assistant_message_id, "partial": run.text} for run in runs]
        try:
            # A connection, not an ORM session: one statement needs no unit of work.
            async with self.db.engine.begin() as conn:
                await conn.execute(_SAVE_PROGRESS, partials)
        except Exception as exc:  # the final persist writes the whole answer anyway
            log.warning("run_progress_save_failed", runs=len(runs), error=type(exc).__name__)
        finally:
            for run in runs:
                run.saving = None

    async def _drive(self, run: _ActiveRun, request: RunRequest) -> None:
        # This task's own context: every log line of the run (engine, tools, telemetry) has its id.
        structlog.contextvars.bind_contextvars(run_id=run.run_id)
        engine = self.engines[run.engine]
        terminal: TerminalEvent | None = None
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
            # The closing steps in a task of their own, shielded: a second cancel of this task (the
            # user's stop, the drain's deadline, a lost lease) while they run must not cut them short.
            # Cut short, a run stayed registered here with its conversation claimed: its lost lease
            # reported every period, and a drain waiting for it forever (found by the cluster soak).
            run.terminal = terminal
            run.closing = asyncio.ensure_future(self._close(run, request, stream, terminal))
            await asyncio.shield(run.closing)

    async def _close(
        self, run: _ActiveRun, request: RunRequest, stream: AsyncIterator[AgentEvent], terminal: TerminalEvent | None
    ) -> None:
        """Persist the run's end, announce it in the log, release its claim; never raises."""
        try:
            await aclose_quietly(stream)
            if terminal is None:  # left by an exception none of the above catches (e.g. GeneratorExit)
                terminal = self._failure(run, "internal_error")
            if run.last_seq == 0:
                # Even a run that died before its engine said anything starts with run_started.
                try:
                    await self._emit(
                        run,
                        EventFactory(run.run_id).make(
                            RunStarted, conversation_id=run.conversation_id, model="", engine=run.engine
                        ),
                    )
                except Exception as exc:  # the log is closed (taken over) or unreachable: persist anyway
                    log.warning("run_log_close_failed", run_id=run.run_id, error=type(exc).__name__)
                terminal = terminal.model_copy(update={"seq": 2})
            self._unsaved.pop(run.run_id, None)  # the final save writes it all
            if run.saving is not None:  # no progress save may land after the final one
                await asyncio.gather(run.saving, return_exceptions=True)
            # Persist before announcing the end: whoever sees "done" can load the saved answer.
            await self._persist_with_retry(run, terminal)
            # And free the conversation before announcing it: a client that sees "done" and sends
            # its next question at once must not get 409 busy (on Redis, a follower on another
            # instance can see the end before a release that came after it).
            await self._unregister(run)
            # The answer is saved and the claim given back; a failing log (Redis gone, or the run
            # taken over while we looked dead) must not leave this run registered or locked.
            closing = (
                functools.partial(self._emit, run, terminal),
                functools.partial(self.events.mark_finished, run.run_id),
            )
            for step in closing:
                try:
                    await step()
                except Exception as exc:
                    log.warning("run_log_close_failed", run_id=run.run_id, error=type(exc).__name__)
        finally:
            await self._unregister(run)  # a no-op unless the end was cut short before it
            run.finished.set()
        for listener in self._finish_listeners:
            try:
                listener(run, request, terminal)
            except Exception:  # the comparison must never affect the live run
                log.exception("run_finish_listener_failed", run_id=run.run_id)
        log.info("run_finished", run_id=run.run_id, outcome=terminal.type, last_seq=run.last_seq)

    async def _unregister(self, run: _ActiveRun) -> None:
        """Forget the run here and give its claim (conversation, user slot, lease) back; once."""
        self._active.pop(run.run_id, None)
        claim, run.claim = run.claim, None
        if claim is not None:
            try:
                await self.coordinator.release(claim)
            except Exception as exc:  # the lease lapses and a living instance releases it
                log.warning("run_release_failed", run_id=run.run_id, error=type(exc).__name__)

    def _failure(self, run: _ActiveRun, code: str, message: str | None = None) -> RunFailed:
        """The terminal failure we produce ourselves (cancel, crash), next in the run's sequence."""
        return _failed(EventFactory(run.run_id, start_after=run.last_seq), code, run.text, message)

    async def _persist_with_retry(self, run: _ActiveRun, terminal: TerminalEvent, attempts: int = 4) -> None:
        """A transient database error must not leave the answer 'streaming' forever."""
        for attempt in range(1, attempts + 1):
            try:
                await self._persist(run, terminal)
                return
            except Exception:
                log.exception("run_persist_failed", run_id=run.run_id, attempt=attempt)
                if attempt < attempts:
                    await asyncio.sleep(0.25 * 2**attempt)

    async def _persist(self, run: _ActiveRun, terminal: TerminalEvent) -> None:
        started, tool_events = run.started, run.tools
        values: dict[str, Any] = {
            "model": terminal.model or (started.model if started else None),
            "offline": bool(started and started.offline),
        }
        if isinstance(terminal, RunFinished):
            values.update(content=terminal.final_text, status="complete", error=None)
        else:
            error: dict[str, str | bool] = {
                "code": terminal.code,
                "message": terminal.message,
                "retryable": terminal.retryable,
            }
            if terminal.incomplete_reason:
                error["incomplete_reason"] = terminal.incomplete_reason
            values.update(content=run.text, status=kind(terminal.code).message_status, error=error)
        records = list(terminal.tool_calls)
        if not records and tool_events:
            records = [e.record() for e in tool_events]
        values.update(
            tool_calls=[r.model_dump() for r in records],
            usage=terminal.usage.model_dump(),
            first_token_ms=terminal.ttfb_ms,
            latency_ms=terminal.duration_ms,
        )
        # Two UPDATEs, no ORM loads or unit of work: this runs once per run, on the event
        # loop, and was the largest database share of a streamed answer's CPU.
        params = {f"new_{name}": values[name] for name in _ANSWER_COLUMNS}
        async with self.db.engine.begin() as conn:
            done = await conn.execute(_SAVE_ANSWER, {"answer_id": run.assistant_message_id, **params})
            if not done.rowcount:
                status = (
                    await conn.execute(_ANSWER_STATUS, {"answer_id": run.assistant_message_id})
                ).scalar_one_or_none()
                if status is not None:
                    # Closed by another instance while this one looked dead (lease lapsed): its
                    # record stands; a late writer must not overwrite it.
                    log.warning("run_persist_skipped_closed_elsewhere", run_id=run.run_id, status=status)
                return  # (None: the conversation was deleted while the run was going)
            await conn.execute(_TOUCH_CONVERSATION, {"conversation_id": run.conversation_id, "now": utcnow()})

    # ---- cancel / subscribe ----------------------------------------------------------------

    async def cancel(self, user_id: str, run_id: str) -> bool:
        """Stop a run on purpose (owner only), on whichever instance drives it.

        Returns False when it had already finished."""
        admitted = self._admitted.get(run_id)
        if admitted is not None and admitted.user_id == user_id:
            return False  # admitted, not started: nothing runs yet (its request fails or starts it)
        info = await self.events.info(run_id)
        if info is None or info.owner_id != user_id:
            if await self._persisted_run_owner(run_id) == user_id:
                return False
            raise NotFound("Run not found.")
        run = self._active.get(run_id)
        if run is None:
            if info.finished or not self.coordinator.shared:
                return False
            # Driven by another instance: signal it, then wait for the run's end in the log.
            await self.coordinator.publish_cancel(run_id)
            ended = await self._log_finished_within(run_id, self.settings.cancel_grace_s)
        else:
            if run.task is None or run.task.done():
                return False
            ended = await self._stop_here(run, self.settings.cancel_grace_s)
            if not ended and run.terminal is not None and not _is_cancel(run.terminal):
                return False  # its end was decided before the cancel (a slow save): not cancelled
        if not ended:
            log.warning("cancel_slow", run_id=run_id)
            return True  # still stopping: it ends as cancelled
        # A run already closing when the cancel came (its last token written, its answer being
        # saved) ends as it was going to: that is "already finished", not "cancelled".
        return await self._ended_cancelled(run_id)

    async def _stop_here(self, run: _ActiveRun, timeout_s: float) -> bool:
        """Cancel a run of this process and wait for its end, asking again while it goes on."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while (left := deadline - loop.time()) > 0:
            await self._cancel_here(run.run_id)
            try:
                await asyncio.wait_for(run.finished.wait(), timeout=min(left, _CANCEL_AGAIN_AFTER_S))
                return True
            except TimeoutError:
                continue
        return False

    async def _log_finished_within(self, run_id: str, timeout_s: float) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while loop.time() < deadline:
            now = await self.events.info(run_id)
            if now is None or now.finished:
                return True
            await asyncio.sleep(0.1)
        return False

    async def _ended_cancelled(self, run_id: str) -> bool:
        """Whether a finished run's terminal event is the user's cancel (True if the log is gone:
        the cancel was asked for and the run has ended)."""
        info = await self.events.info(run_id)
        if info is None:
            return True
        last = (await self.events.read(run_id, info.last_seq - 1))[-1:]
        return not last or _is_cancel(last[0])

    async def _persisted_run_owner(self, run_id: str) -> str | None:
        async with self.db.session() as session:
            return (
                await session.execute(select(Message.user_id).where(Message.run_id == run_id).limit(1))
            ).scalar_one_or_none()

    async def owned_run_info(self, user_id: str, run_id: str) -> RunLogInfo | None:
        info = await self.events.info(run_id)
        if info is None or info.owner_id != user_id:
            return None
        return info

    async def owned_run(self, user_id: str, run_id: str) -> RunMeta | None:
        """The caller's run, while its event log lives (another user's run reads as unknown)."""
        info = await self.owned_run_info(user_id, run_id)
        return RunMeta.model_validate(info.meta) if info is not None else None

    async def subscribe(
        self, run_id: str, after_seq: int = 0, poll_s: float = 1.0, *, coalesce: bool = False
    ) -> AsyncIterator[AgentEvent]:
        """Replay events after ``after_seq`` then follow live until the terminal event.

        ``coalesce``: consecutive text deltas already waiting when the subscriber asks for more
        (it reads slower than the model writes) come as one ``TextDelta`` with the seq and
        timestamp of the last: the text is the same, the seq still only increases, and a
        resume from that seq continues exactly after them.
        """
        seq = after_seq
        quiet = 0  # looks in a row that brought nothing new
        while True:
            events = await self.events.wait(run_id, seq, timeout=poll_s)
            if coalesce and len(events) > 1:
                events = coalesce_deltas([e for e in events if e.seq > seq])
            before = seq
            for event in events:
                if event.seq <= seq:
                    continue
                seq = event.seq
                yield event
                if is_terminal(event):
                    return
            if seq > before:
                quiet = 0
                continue  # a live run: ask the log for its state only when it had nothing new
            info = await self.events.info(run_id)
            if info is None or (info.finished and seq >= info.last_seq):
                return
            quiet += 1
            if quiet >= 2 and not info.finished:
                await self._end_orphaned_log(run_id, info)

    async def _end_orphaned_log(self, run_id: str, info: RunLogInfo) -> None:
        """End a log that nobody will end: its run holds no lease (so no owner and no takeover
        has it), yet the log is open. An owner killed between giving back its claim and
        announcing its end leaves exactly that, and its followers waited for ever (the cluster
        soak: a client timed out on an answer saved complete). Announced as the row says."""
        if not self.coordinator.shared or run_id in self._active:
            return
        try:
            meta = RunMeta.model_validate(info.meta)
            if not await self._unheld(run_id, meta.conversation_id):
                return
            # Every closer (the owner, a takeover) gives the claim back just before it announces
            # the end: look again after a moment before calling the log orphaned.
            await asyncio.sleep(ORPHAN_GRACE_S)
            now = await self.events.info(run_id)
            if now is None or now.finished or now.last_seq > info.last_seq:
                return
            if not await self._unheld(run_id, meta.conversation_id):
                return
            claim = RunClaim(run_id, info.owner_id, meta.conversation_id, meta.assistant_message_id, "")
            if await self.take_over_many([claim], registered=False, owner_gone=True):
                log.warning("run_log_orphan_closed", run_id=run_id)
        except Exception as exc:  # Redis or the database unreachable: the next quiet look tries again
            log.warning("run_log_orphan_close_failed", run_id=run_id, error=type(exc).__name__)

    async def _unheld(self, run_id: str, conversation_id: str) -> bool:
        """Neither a lease (an owner or a takeover) nor its conversation's claim holds the run.
        (A run still claimed is an owner that died with its claim: the sweep closes it.)"""
        if await self.coordinator.live_runs([run_id]):
            return False
        return await self.coordinator.active_run_for(conversation_id) != run_id

    async def wait_finished(self, run_id: str, timeout: float | None = None) -> None:
        run = self._active.get(run_id)
        if run is not None:
            await asyncio.wait_for(run.finished.wait(), timeout)
