"""Runs outlive their requests: persistence, cancel, one active run, idempotency, resume, shutdown."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select

from sigmachat.chat.conversations import create_conversation, history_from_messages, list_messages
from sigmachat.db.models import Message, User
from sigmachat.errors import Conflict, NotFound
from sigmachat.runs.event_log import InMemoryEventLog
from sigmachat.runs.manager import RunManager
from tests.conftest import HEDGE, HNW
from tests.runs.fakes import ScriptedEngine


async def _user(services, email):
    async with services.db.session() as s:
        return (await s.execute(select(User).where(User.email == email))).scalar_one()


async def _setup(services, engine):
    manager = RunManager(services.db, services.settings, {"responses": engine}, InMemoryEventLog())
    user = await _user(services, HNW)
    async with services.db.session() as s:
        conv = await create_conversation(s, user.id)
    return manager, user, conv


async def _collect(manager, run_id, after=0):
    return [e async for e in manager.subscribe(run_id, after)]


async def test_successful_run_persists_user_and_assistant_messages_with_tool_calls(services):
    manager, user, conv = await _setup(services, ScriptedEngine())
    run = await manager.start(
        user_id=user.id, conversation_id=conv.id, text="Largest position?", engine="responses", protocol="test"
    )
    events = await _collect(manager, run.run_id)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert events[0].type == "run_started" and events[-1].type == "run_finished"
    await manager.wait_finished(run.run_id, 5)
    async with services.db.session() as s:
        msgs = await list_messages(s, user.id, conv.id)
    user_msg, assistant = msgs
    assert user_msg.role == "user" and user_msg.content == "Largest position?" and user_msg.run_id == run.run_id
    assert assistant.status == "complete" and "HOME_EQUITY" in assistant.content
    assert assistant.tool_calls[0]["name"] == "get_portfolio_complete"
    assert assistant.usage["input_tokens"] == 100 and assistant.first_token_ms == 5.0
    assert history_from_messages(msgs)[1].tool_calls[0].name == "get_portfolio_complete"


async def test_failed_run_keeps_partial_text_and_error(services):
    manager, user, conv = await _setup(services, ScriptedEngine(fail_code="network_error"))
    run = await manager.start(user_id=user.id, conversation_id=conv.id, text="hi", engine="responses", protocol="test")
    events = await _collect(manager, run.run_id)
    assert events[-1].type == "run_failed"
    await manager.wait_finished(run.run_id, 5)
    async with services.db.session() as s:
        assistant = (await list_messages(s, user.id, conv.id))[1]
    assert assistant.status == "failed" and assistant.content.startswith("Your largest")
    assert assistant.error["code"] == "network_error"


async def test_cancel_stops_the_run_stores_partial_as_cancelled_and_closes_the_engine(services):
    gate = asyncio.Event()
    engine = ScriptedEngine(gate=gate)
    manager, user, conv = await _setup(services, engine)
    run = await manager.start(user_id=user.id, conversation_id=conv.id, text="hi", engine="responses", protocol="test")
    seen = []
    async for e in manager.subscribe(run.run_id):
        seen.append(e)
        if e.type == "text_delta":
            break
    assert await manager.cancel(user.id, run.run_id) is True
    assert engine.closed.is_set()
    rest = await _collect(manager, run.run_id, seen[-1].seq)
    assert rest[-1].type == "run_failed" and rest[-1].code == "cancelled"
    assert rest[-1].seq == seen[-1].seq + 1  # no gap
    async with services.db.session() as s:
        assistant = (await list_messages(s, user.id, conv.id))[1]
    assert assistant.status == "cancelled" and assistant.content == "Your largest "
    assert await manager.cancel(user.id, run.run_id) is False  # already finished


async def test_cancel_by_another_user_is_not_found(services):
    gate = asyncio.Event()
    manager, user, conv = await _setup(services, ScriptedEngine(gate=gate))
    other = await _user(services, HEDGE)
    run = await manager.start(user_id=user.id, conversation_id=conv.id, text="hi", engine="responses", protocol="test")
    with pytest.raises(NotFound):
        await manager.cancel(other.id, run.run_id)
    with pytest.raises(NotFound):
        await manager.cancel(user.id, "run_unknown")
    gate.set()
    await manager.wait_finished(run.run_id, 5)


async def test_one_active_run_per_conversation_and_idempotent_send(services):
    gate = asyncio.Event()
    engine = ScriptedEngine(gate=gate)
    manager, user, conv = await _setup(services, engine)
    first = await manager.start(
        user_id=user.id,
        conversation_id=conv.id,
        text="hi",
        engine="responses",
        protocol="test",
        client_message_id="c-1",
    )
    with pytest.raises(Conflict) as exc:
        await manager.start(user_id=user.id, conversation_id=conv.id, text="again", engine="responses", protocol="test")
    assert exc.value.details == {"active_run_id": first.run_id}
    again = await manager.start(
        user_id=user.id,
        conversation_id=conv.id,
        text="hi",
        engine="responses",
        protocol="test",
        client_message_id="c-1",
    )
    assert again.reused and again.run_id == first.run_id and again.user_message_id == first.user_message_id
    gate.set()
    await manager.wait_finished(first.run_id, 5)
    async with services.db.session() as s:
        rows = (await s.execute(select(Message).where(Message.conversation_id == conv.id))).scalars().all()
    assert len(rows) == 2  # no duplicate message from the retried send
    assert len(engine.requests) == 1


async def test_subscriber_leaving_does_not_stop_the_run_and_resume_replays(services):
    gate = asyncio.Event()
    manager, user, conv = await _setup(services, ScriptedEngine(gate=gate))
    run = await manager.start(user_id=user.id, conversation_id=conv.id, text="hi", engine="responses", protocol="test")
    sub = manager.subscribe(run.run_id)
    first = [await sub.__anext__() for _ in range(2)]
    await sub.aclose()  # the client went away
    gate.set()
    await manager.wait_finished(run.run_id, 5)
    replay = await _collect(manager, run.run_id, first[-1].seq)
    assert replay[0].seq == first[-1].seq + 1 and replay[-1].type == "run_finished"
    async with services.db.session() as s:
        assert (await list_messages(s, user.id, conv.id))[1].status == "complete"


async def test_shutdown_interrupts_runs_that_outlive_the_grace_period(services):
    gate = asyncio.Event()  # never set: the run hangs
    manager, user, conv = await _setup(services, ScriptedEngine(gate=gate))
    run = await manager.start(user_id=user.id, conversation_id=conv.id, text="hi", engine="responses", protocol="test")
    await asyncio.sleep(0)
    await manager.shutdown(grace_s=0.05)
    events = await _collect(manager, run.run_id)
    assert events[-1].type == "run_failed" and events[-1].code == "interrupted"
    async with services.db.session() as s:
        assert (await list_messages(s, user.id, conv.id))[1].status == "interrupted"
    from sigmachat.errors import ServiceUnavailable

    with pytest.raises(ServiceUnavailable):
        await manager.start(user_id=user.id, conversation_id=conv.id, text="x", engine="responses", protocol="test")


async def test_runs_left_streaming_by_a_crash_are_marked_interrupted_on_start(services):
    manager, user, conv = await _setup(services, ScriptedEngine())
    async with services.db.session() as s:
        s.add(
            Message(
                conversation_id=conv.id,
                user_id=user.id,
                role="assistant",
                item_type="assistant_message",
                status="streaming",
                run_id="run_x",
            )
        )
        await s.commit()
    assert await manager.recover_interrupted() == 1
    async with services.db.session() as s:
        row = (await s.execute(select(Message).where(Message.run_id == "run_x"))).scalar_one()
    assert row.status == "interrupted"


async def test_engine_crash_becomes_internal_error_event_not_an_exception(services):
    class Broken(ScriptedEngine):
        async def stream(self, request):
            raise RuntimeError("boom")
            yield  # pragma: no cover

    manager, user, conv = await _setup(services, Broken())
    run = await manager.start(user_id=user.id, conversation_id=conv.id, text="hi", engine="responses", protocol="test")
    events = await _collect(manager, run.run_id)
    assert [e.type for e in events] == ["run_started", "run_failed"]
    assert events[-1].code == "internal_error" and [e.seq for e in events] == [1, 2]


async def test_a_slow_subscriber_can_get_waiting_deltas_coalesced_without_changing_text_or_seq(services):
    chunks = ("Your ", "largest ", "position ", "is ", "**HOME_EQUITY**.")
    manager, user, conv = await _setup(services, ScriptedEngine(chunks))
    run = await manager.start(user_id=user.id, conversation_id=conv.id, text="hi", engine="responses", protocol="test")
    await manager.wait_finished(run.run_id, 5)  # a subscriber that arrives late: everything is waiting
    every = await _collect(manager, run.run_id)
    merged = [e async for e in manager.subscribe(run.run_id, coalesce=True)]
    deltas = [e for e in merged if e.type == "text_delta"]
    assert len(deltas) == 1 and deltas[0].delta == "".join(chunks)
    last_delta = [e for e in every if e.type == "text_delta"][-1]
    assert deltas[0].seq == last_delta.seq  # the frame carries its last event's id
    seqs = [e.seq for e in merged]
    assert seqs == sorted(seqs) and merged[-1].seq == every[-1].seq
    assert [e.type for e in merged] == ["run_started", "tool_started", "tool_finished", "text_delta", "run_finished"]
    # Resuming after the coalesced frame continues exactly after the deltas it covered.
    assert [e.type for e in await _collect(manager, run.run_id, after=deltas[0].seq)] == ["run_finished"]
    # Off (the default): one event per delta, as before.
    assert [e.delta for e in every if e.type == "text_delta"] == list(chunks)


class _SlowToCloseEngine(ScriptedEngine):
    """Finishes its answer, then takes until ``release`` to close (the run is closing meanwhile)."""

    def __init__(self, release: asyncio.Event):
        super().__init__()
        self.release = release

    async def stream(self, request):
        try:
            async for event in super().stream(request):
                yield event
        finally:
            await self.release.wait()


async def test_a_cancel_arriving_while_the_run_closes_a_finished_answer_says_already_finished(services):
    release = asyncio.Event()
    manager, user, conv = await _setup(services, _SlowToCloseEngine(release))
    run = await manager.start(user_id=user.id, conversation_id=conv.id, text="hi", engine="responses", protocol="test")
    engine = manager.engines["responses"]
    await asyncio.wait_for(engine.closed.wait(), 5)  # the answer is written; its run is closing
    cancel = asyncio.create_task(manager.cancel(user.id, run.run_id))
    await asyncio.sleep(0.05)
    release.set()
    assert await cancel is False  # the answer was complete: nothing was cancelled
    events = await _collect(manager, run.run_id)
    assert events[-1].type == "run_finished"
    async with services.db.session() as s:
        assert (await list_messages(s, user.id, conv.id))[1].status == "complete"


async def test_a_closing_slower_than_the_cancel_grace_still_says_already_finished(services):
    release = asyncio.Event()
    engine = _SlowToCloseEngine(release)
    manager, user, conv = await _setup(services, engine)
    manager.settings = services.settings.model_copy(update={"cancel_grace_s": 0.2})
    run = await manager.start(user_id=user.id, conversation_id=conv.id, text="hi", engine="responses", protocol="test")
    await asyncio.wait_for(engine.closed.wait(), 5)
    # The save outlasts the grace: the cancel must not promise "cancelled" for a complete answer.
    assert await manager.cancel(user.id, run.run_id) is False
    release.set()
    assert (await _collect(manager, run.run_id))[-1].type == "run_finished"


class _DeafOnceEngine(ScriptedEngine):
    """Loses the first cancel that reaches it while it waits (as a library that swallows one does)."""

    def __init__(self, gate: asyncio.Event):
        super().__init__(gate=gate)
        self.lost = 0

    async def stream(self, request):
        async for event in super().stream(request):
            yield event
            if event.type == "text_delta" and not self.lost:
                try:
                    await self.gate.wait()
                except asyncio.CancelledError:
                    self.lost += 1
                    await self.gate.wait()


async def test_a_lost_cancel_is_asked_again_and_the_run_ends_cancelled(services):
    gate = asyncio.Event()
    engine = _DeafOnceEngine(gate)
    manager, user, conv = await _setup(services, engine)
    run = await manager.start(user_id=user.id, conversation_id=conv.id, text="hi", engine="responses", protocol="test")
    async for e in manager.subscribe(run.run_id):
        if e.type == "text_delta":
            break
    assert await manager.cancel(user.id, run.run_id) is True
    assert engine.lost == 1  # the first cancel was lost; the second stopped it
    try:
        events = await asyncio.wait_for(_collect(manager, run.run_id), 5)
    finally:
        gate.set()  # a run that ignored both must not outlive the test
    assert events[-1].type == "run_failed" and events[-1].code == "cancelled"
    async with services.db.session() as s:
        assert (await list_messages(s, user.id, conv.id))[1].status == "cancelled"
