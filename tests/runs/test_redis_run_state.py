"""Run state on a real Redis: the Streams event log, shared admission, leases, cancels, limits.

Two ``RunManager`` objects on one database and one Redis stand for two instances.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid

import httpx
import pytest
from redis.asyncio import Redis
from sqlalchemy import event, func, select

from sigmachat.agent.events import EventFactory, RunStarted, TextDelta
from sigmachat.chat.conversations import create_conversation, list_messages
from sigmachat.db.models import Message, User
from sigmachat.errors import Conflict, RateLimited
from sigmachat.runs.coordination import RedisCoordinator, RunClaim
from sigmachat.runs.limits import UsageGuard
from sigmachat.runs.manager import RunManager
from sigmachat.runs.redis_log import RedisEventLog, RunLogClosed
from tests.conftest import BASE_URL, HNW, login, make_settings
from tests.runs.fakes import ScriptedEngine


@pytest.fixture
async def redis(redis_server):
    client = Redis.from_url(redis_server.url)
    client.url = redis_server.url  # for the coordinators' lease keeper
    yield client
    await client.aclose()


@pytest.fixture
def prefix() -> str:
    return f"t{uuid.uuid4().hex[:8]}:"  # one namespace per test instead of FLUSHALL


def _instance(services, redis, prefix, engine, *, guard=None, lease_s: float = 9.0) -> RunManager:
    return RunManager(
        services.db,
        services.settings,
        {"responses": engine},
        RedisEventLog(redis, ttl_s=60, prefix=prefix),
        guard,
        RedisCoordinator(redis, lease_ttl_s=lease_s, prefix=prefix, url=redis.url),
    )


async def _user(services, email=HNW) -> User:
    async with services.db.session() as s:
        return (await s.execute(select(User).where(User.email == email))).scalar_one()


async def _conv(services, user):
    async with services.db.session() as s:
        return await create_conversation(s, user.id)


async def _started(services, manager: RunManager):
    """A run of the HNW user's new conversation, started on ``manager``: (user, conversation, run)."""
    user = await _user(services)
    conv = await _conv(services, user)
    run = await manager.start(
        user_id=user.id, conversation_id=conv.id, text="Largest?", engine="responses", protocol="test"
    )
    return user, conv, run


# ---- the event log ---------------------------------------------------------------------------


async def test_redis_log_keeps_the_seq_contract_and_refuses_gaps_and_late_events(redis, prefix):
    log = RedisEventLog(redis, ttl_s=30, prefix=prefix)
    ev = EventFactory("run_1")
    await log.create("run_1", owner_id="user_1", meta={"protocol": "legacy_sse"})
    first, second = (
        ev.make(RunStarted, conversation_id="c", model="m", engine="responses"),
        ev.make(TextDelta, delta="Hi"),
    )
    await log.append("run_1", first)
    with pytest.raises(ValueError, match="seq 3 appended after 1"):
        await log.append("run_1", ev.make(TextDelta, delta="skipped"))  # seq 3 before seq 2
    await log.append("run_1", second)
    assert [e.seq for e in await log.read("run_1")] == [1, 2]
    assert await log.read("run_1", after_seq=1) == [second]
    assert await log.wait("run_1", 1, timeout=0.1) == [second]
    assert await log.wait("run_1", 2, timeout=0.05) == []  # nothing new: waited, returned empty

    async def later() -> None:
        await asyncio.sleep(0.05)
        await log.append("run_1", EventFactory("run_1", start_after=2).make(TextDelta, delta=" there"))

    task = asyncio.create_task(later())
    woke = await log.wait("run_1", 2, timeout=5)  # blocked in XREAD, woken by the append
    await task
    assert [e.delta for e in woke] == [" there"]

    await log.mark_finished("run_1")
    info = await log.info("run_1")
    assert info is not None and info.finished and info.last_seq == 3 and info.owner_id == "user_1"
    assert info.meta == {"protocol": "legacy_sse"}
    with pytest.raises(RunLogClosed):  # e.g. a dead owner waking up after its run was taken over
        await log.append("run_1", EventFactory("run_1", start_after=3).make(TextDelta, delta="late"))
    for key in (f"{prefix}run:run_1:log", f"{prefix}run:run_1:meta"):
        assert 0 < await redis.ttl(key) <= 30  # expires after the run, not kept forever


# ---- two instances ---------------------------------------------------------------------------


async def test_a_run_on_one_instance_is_followed_resumed_and_cancelled_from_another(services, redis, prefix):
    gate = asyncio.Event()
    a = _instance(services, redis, prefix, ScriptedEngine(gate=gate))
    b = _instance(services, redis, prefix, ScriptedEngine())
    a.start_sweeper()
    b.start_sweeper()
    try:
        user, conv, run = await _started(services, a)
        assert await b.active_run_for(conv.id) == run.run_id
        assert await b.active_runs_for([conv.id, "conv_unknown"]) == [run.run_id, None]  # a page in one look-up
        with pytest.raises(Conflict):  # one run per conversation, whichever instance is asked
            await b.start(user_id=user.id, conversation_id=conv.id, text="again", engine="responses", protocol="test")
        await asyncio.sleep(0.2)  # the gate holds the run after its first text delta
        assert await b.cancel(user.id, run.run_id) is True  # reaches A through pub/sub
        events = [e async for e in b.subscribe(run.run_id, after_seq=2)]
        assert events[-1].type == "run_failed" and events[-1].code == "cancelled"
        assert [e.seq for e in events] == list(range(3, events[-1].seq + 1))
        async with services.db.session() as s:
            assistant = (await list_messages(s, user.id, conv.id))[1]
        assert assistant.status == "cancelled" and assistant.content == "Your largest "
        assert await b.active_run_for(conv.id) is None
    finally:
        await a.shutdown(1)
        await b.shutdown(1)


class _DeafCoordinator(RedisCoordinator):
    """An instance whose cancel listener hears nothing (reconnecting, or not yet subscribed)."""

    def start(self, on_cancel) -> None:
        return None


async def test_a_cancel_whose_message_the_owner_missed_still_stops_the_run(services, redis, prefix):
    gate = asyncio.Event()
    a = _instance(services, redis, prefix, ScriptedEngine(gate=gate), lease_s=1.5)
    a.coordinator = _DeafCoordinator(redis, lease_ttl_s=1.5, prefix=prefix, url=redis.url)
    b = _instance(services, redis, prefix, ScriptedEngine(), lease_s=1.5)
    a.start_sweeper()
    b.start_sweeper()
    try:
        user, conv, run = await _started(services, a)
        await asyncio.sleep(0.2)  # the gate holds the run after its first text delta
        # The pub/sub message is lost; the kept request reaches A at its lease loop's next look.
        assert await b.cancel(user.id, run.run_id) is True

        async def until_the_end():
            return [e async for e in b.subscribe(run.run_id, after_seq=2)]

        events = await asyncio.wait_for(until_the_end(), timeout=10)  # without the kept request: never
        assert events[-1].type == "run_failed" and events[-1].code == "cancelled"
    finally:
        gate.set()
        await a.shutdown(1)
        await b.shutdown(1)


class _SlowReleaseCoordinator(RedisCoordinator):
    """A release that takes a while (a slow Redis round trip), to expose what a follower sees meanwhile."""

    async def release(self, claim: RunClaim) -> None:
        await asyncio.sleep(0.3)
        await super().release(claim)


async def test_a_follower_that_sees_the_end_can_send_the_next_question_at_once(services, redis, prefix):
    """The owner frees the conversation before it announces the end: a client on another instance
    that sees "done" and sends at once is not refused as busy (it was, between the two steps)."""
    a = RunManager(
        services.db, services.settings, {"responses": ScriptedEngine()},
        RedisEventLog(redis, ttl_s=60, prefix=prefix), None,
        _SlowReleaseCoordinator(redis, lease_ttl_s=9.0, prefix=prefix, url=redis.url),
    )  # fmt: skip
    b = _instance(services, redis, prefix, ScriptedEngine())
    try:
        user = await _user(services)
        conv = await _conv(services, user)
        run = await a.start(user_id=user.id, conversation_id=conv.id, text="one", engine="responses", protocol="test")
        events = [e async for e in b.subscribe(run.run_id, after_seq=0)]
        assert events[-1].type == "run_finished"
        again = await b.start(user_id=user.id, conversation_id=conv.id, text="two", engine="responses", protocol="test")
        assert again.run_id != run.run_id
    finally:
        await a.shutdown(5)
        await b.shutdown(5)


async def test_the_concurrent_run_cap_counts_a_user_s_runs_on_every_instance(services, redis, prefix):
    settings = services.settings.model_copy(update={"max_concurrent_runs_per_user": 1, "send_rate_limit": ""})
    gate = asyncio.Event()
    a = _instance(services, redis, prefix, ScriptedEngine(gate=gate), guard=UsageGuard(settings))
    b = _instance(services, redis, prefix, ScriptedEngine(), guard=UsageGuard(settings))
    a.settings = b.settings = settings
    try:
        user = await _user(services)
        c1, c2 = await _conv(services, user), await _conv(services, user)
        await a.start(user_id=user.id, conversation_id=c1.id, text="one", engine="responses", protocol="test")
        with pytest.raises(RateLimited):
            await b.start(user_id=user.id, conversation_id=c2.id, text="two", engine="responses", protocol="test")
        async with services.db.session() as s:
            assert not await list_messages(s, user.id, c2.id)  # refused before anything was written
    finally:
        gate.set()
        await a.shutdown(5)
        await b.shutdown(5)


async def test_a_dead_owner_s_run_is_closed_by_a_survivor_with_its_partial_answer(services, redis, prefix):
    """The owner stops renewing (we cancel its upkeep and never let the engine finish)."""
    gate = asyncio.Event()
    a = _instance(services, redis, prefix, ScriptedEngine(gate=gate), lease_s=1.0)
    b = _instance(services, redis, prefix, ScriptedEngine(), lease_s=1.0)
    b.start_sweeper()
    try:
        user, conv, run = await _started(services, a)
        await asyncio.sleep(0.1)
        # A "dies": its task is frozen at the gate and it renews nothing (no sweeper started).
        events = [e async for e in b.subscribe(run.run_id, after_seq=0)]  # ends when B closes the run
        assert events[-1].type == "run_failed" and events[-1].code == "interrupted"
        assert events[-1].partial_text == "Your largest "
        async with services.db.session() as s:
            assistant = (await list_messages(s, user.id, conv.id))[1]
        assert assistant.status == "interrupted" and assistant.content == "Your largest "
        # The conversation is free as soon as a follower has seen the end: no wait, no 409.
        assert await b.active_run_for(conv.id) is None
        again = await b.start(
            user_id=user.id, conversation_id=conv.id, text="retry", engine="responses", protocol="test"
        )
        await b.wait_finished(again.run_id, 5)
    finally:
        a._active.clear()  # the "dead" instance never writes again; drop its frozen task
        await b.shutdown(1)


async def test_a_dead_owner_s_runs_are_closed_together_in_one_transaction(services, redis, prefix):
    """Regression (the cluster soak): closed one by one, each taking its own connection from a pool
    the survivor's streams were using, the last of 50 dead runs closed up to 20 s after the kill."""
    gate = asyncio.Event()
    a = _instance(services, redis, prefix, ScriptedEngine(gate=gate), lease_s=1.0)
    b = _instance(services, redis, prefix, ScriptedEngine(), lease_s=1.0)
    try:
        user = await _user(services)
        convs = [await _conv(services, user) for _ in range(3)]
        runs = [
            await a.start(user_id=user.id, conversation_id=c.id, text="Largest?", engine="responses", protocol="test")
            for c in convs
        ]
        await asyncio.sleep(0.1)
        dead: list[RunClaim] = []
        for _ in range(40):  # A renews nothing (no sweeper): its leases lapse after 1 s
            dead = await b.coordinator.dead_runs()
            if len(dead) == 3:
                break
            await asyncio.sleep(0.1)
        assert sorted(c.run_id for c in dead) == sorted(r.run_id for r in runs)
        transactions = []
        listener = lambda conn: transactions.append(conn)  # noqa: E731
        event.listen(services.db.engine.sync_engine, "begin", listener)
        try:
            assert await b.take_over_many(dead) == 3
        finally:
            event.remove(services.db.engine.sync_engine, "begin", listener)
        assert len(transactions) == 1
        for run, conv in zip(runs, convs, strict=True):
            events = [e async for e in b.subscribe(run.run_id, after_seq=0)]
            assert events[-1].type == "run_failed" and events[-1].partial_text == "Your largest "
            async with services.db.session() as s:
                assistant = (await list_messages(s, user.id, conv.id))[1]
            assert assistant.status == "interrupted" and assistant.content == "Your largest "
            assert await b.active_run_for(conv.id) is None
        assert await b.take_over_many(dead) == 0  # closed once: a second survivor finds nothing to do
    finally:
        a._active.clear()  # the "dead" instance never writes again; drop its frozen tasks
        await b.shutdown(1)


async def test_a_busy_event_loop_does_not_lose_its_leases(services, redis, prefix):
    """Regression (found by the cluster soak): leases renewed on the event loop lapsed while a
    saturated instance streamed, and a survivor took over runs that were still being written."""
    import time

    gate = asyncio.Event()
    a = _instance(services, redis, prefix, ScriptedEngine(gate=gate), lease_s=1.0)
    a.start_sweeper()
    try:
        user, conv, run = await _started(services, a)
        time.sleep(2.5)  # the event loop is blocked for 2.5 leases
        assert await redis.exists(f"{prefix}run:{run.run_id}:lease") == 1
        gate.set()
        await a.wait_finished(run.run_id, 5)
        async with services.db.session() as s:
            assert (await list_messages(s, user.id, conv.id))[1].status == "complete"
    finally:
        gate.set()
        await a.shutdown(2)


async def test_an_admitted_run_keeps_its_lease_until_it_starts(services, redis, prefix):
    """Regression (the cluster soak at 100 streams): a run admitted but not yet started (waiting
    for the start lock or the ChatKit store) held a lease nobody renewed. Past one lease the
    instance's own sweep or a survivor took it over, and the run then started on a released
    claim and ended ``interrupted`` while its owner was alive."""
    a = _instance(services, redis, prefix, ScriptedEngine(), lease_s=1.0)
    b = _instance(services, redis, prefix, ScriptedEngine(), lease_s=1.0)
    a.start_sweeper()
    b.start_sweeper()
    try:
        user = await _user(services)
        conv = await _conv(services, user)
        admitted = await a.admit(user_id=user.id, conversation_id=conv.id, engine="responses")
        await asyncio.sleep(3.0)  # three leases between admission and start; both sweeps ran meanwhile
        assert await b.active_run_for(conv.id) == admitted.run_id  # still claimed, on every instance
        run = await a.start(user_id=user.id, conversation_id=conv.id, text="Largest?", engine="responses",
                            protocol="test", admission=admitted)  # fmt: skip
        await a.wait_finished(run.run_id, 10)
        async with services.db.session() as s:
            assistant = (await list_messages(s, user.id, conv.id))[1]
        assert assistant.status == "complete"
    finally:
        await a.shutdown(2)
        await b.shutdown(2)


async def test_an_admission_taken_over_before_its_start_is_refused_and_writes_nothing(services, redis, prefix):
    """An instance that looked dead long enough for a survivor to close its admitted run must not
    start that run afterwards: its conversation is free again and may have a new run."""
    from sigmachat.errors import ServiceUnavailable

    a = _instance(services, redis, prefix, ScriptedEngine(), lease_s=1.0)
    b = _instance(services, redis, prefix, ScriptedEngine(), lease_s=1.0)
    a.start_sweeper()
    try:
        user = await _user(services)
        conv = await _conv(services, user)
        admitted = await a.admit(user_id=user.id, conversation_id=conv.id, engine="responses")
        await redis.delete(f"{prefix}run:{admitted.run_id}:lease")  # A looked dead: its lease lapsed
        assert await b.take_over(admitted.claim) == 1  # and a survivor closed the run
        for _ in range(50):  # A's lease keeper notices within a third of a lease
            if admitted.lost:
                break
            await asyncio.sleep(0.1)
        assert admitted.lost
        with pytest.raises(ServiceUnavailable):
            await a.start(user_id=user.id, conversation_id=conv.id, text="Largest?", engine="responses",
                          protocol="test", admission=admitted)  # fmt: skip
        async with services.db.session() as s:
            assert not await list_messages(s, user.id, conv.id)
        assert await a.active_run_for(conv.id) is None
    finally:
        await a.shutdown(2)
        await b.shutdown(2)


async def test_a_run_cancelled_again_while_it_closes_still_closes_and_the_drain_ends(services, redis, prefix):
    """Regression (the cluster soak at 100 streams): a second cancel (a lost lease reported again,
    the drain's deadline, the user's stop) landing while a run saved its end cut the closing short.
    The run stayed registered with its conversation claimed, and a SIGTERM drain never ended."""
    gate = asyncio.Event()
    a = _instance(services, redis, prefix, ScriptedEngine(gate=gate))
    try:
        user = await _user(services)
        conv = await _conv(services, user)
        started = await a.start(
            user_id=user.id, conversation_id=conv.id, text="Largest?", engine="responses", protocol="test"
        )
        await asyncio.sleep(0.2)  # the gate holds the run after its first text delta
        run = a._active[started.run_id]
        assert run.task is not None
        run.cancel_code = "interrupted"
        run.task.cancel()
        for _ in range(3):  # the run takes the first cancel and starts closing (saving its answer)
            await asyncio.sleep(0)
        run.task.cancel()
        await asyncio.wait_for(run.finished.wait(), 10)
        await asyncio.wait_for(a.shutdown(30), 10)  # nothing left to drain
        assert a.active_count() == 0
        assert await a.active_run_for(conv.id) is None
        async with services.db.session() as s:
            assistant = (await list_messages(s, user.id, conv.id))[1]
        assert assistant.status == "interrupted" and assistant.content == "Your largest "
        events = await a.events.read(started.run_id)
        assert events[-1].type == "run_failed" and events[-1].code == "interrupted"
    finally:
        gate.set()
        with contextlib.suppress(TimeoutError):  # without the fix the run never closes: fail, not hang
            await asyncio.wait_for(a.shutdown(1), 10)


async def test_a_sweep_that_saw_a_run_just_before_it_finished_does_not_take_it_over(services, redis, prefix):
    """Regression (the cluster soak): a sweep read the claims, the owner then finished and released
    its run (claim and lease gone), and the sweep took the finished run over ("run_taken_over"
    with the owner alive, counted as a takeover by the soak)."""
    a = _instance(services, redis, prefix, ScriptedEngine())
    b = _instance(services, redis, prefix, ScriptedEngine())
    try:
        user, conv, run = await _started(services, a)
        seen_by_sweep = RunClaim(run.run_id, user.id, conv.id, run.assistant_message_id, a.coordinator.instance_id)
        await a.wait_finished(run.run_id, 10)
        assert await b.take_over(seen_by_sweep) == 0
        assert await redis.exists(f"{prefix}run:{run.run_id}:lease") == 0  # no takeover lease left behind
        async with services.db.session() as s:
            assert (await list_messages(s, user.id, conv.id))[1].status == "complete"
    finally:
        await a.shutdown(1)
        await b.shutdown(1)


async def test_start_up_recovery_leaves_runs_with_a_live_lease_alone(services, redis, prefix):
    """Regression: recovery used to mark every 'streaming' row interrupted, live instances' runs included."""
    manager = _instance(services, redis, prefix, ScriptedEngine())
    user = await _user(services)
    live_conv, dead_conv = await _conv(services, user), await _conv(services, user)
    live = RunClaim("run_live", user.id, live_conv.id, "msg_live", "other-instance")
    assert (await RedisCoordinator(redis, lease_ttl_s=30, prefix=prefix).admit(live, 0)).ok
    async with services.db.session() as s:
        for conv_id, run_id, msg_id in ((live_conv.id, "run_live", "msg_live"), (dead_conv.id, "run_dead", "msg_dead")):
            s.add(Message(id=msg_id, conversation_id=conv_id, user_id=user.id, role="assistant",
                          item_type="assistant_message", status="streaming", run_id=run_id))  # fmt: skip
        await s.commit()
    assert await manager.recover_interrupted() == 1
    async with services.db.session() as s:
        status = dict((await s.execute(select(Message.run_id, Message.status).where(Message.user_id == user.id))).all())
    assert status["run_live"] == "streaming" and status["run_dead"] == "interrupted"


async def test_start_up_recovery_leaves_an_answer_its_owner_saved_meanwhile_to_its_owner(services, redis, prefix):
    """Regression (the cluster soak): recovery read a 'streaming' row, then the live owner saved
    the answer and released its lease, then recovery claimed the run and announced it
    "interrupted": the client was told the answer broke while the database held it complete."""
    manager = _instance(services, redis, prefix, ScriptedEngine())
    user = await _user(services)
    conv = await _conv(services, user)
    log = manager.events
    await log.create("run_saved", owner_id=user.id, meta={})
    ev = EventFactory("run_saved")
    await log.append("run_saved", ev.make(RunStarted, conversation_id=conv.id, model="m", engine="responses"))
    await log.append("run_saved", ev.make(TextDelta, delta="All of it."))
    async with services.db.session() as s:
        s.add(Message(id="msg_saved", conversation_id=conv.id, user_id=user.id, role="assistant", run_id="run_saved",
                      item_type="assistant_message", status="complete", content="All of it."))  # fmt: skip
        await s.commit()
    # What recovery saw a moment earlier: the row streaming, no live lease (just released).
    seen = RunClaim("run_saved", user.id, conv.id, "msg_saved", "")
    assert await manager.take_over_many([seen], registered=False) == 0
    assert [e.type for e in await log.read("run_saved")] == ["run_started", "text_delta"]  # the owner's to end
    async with services.db.session() as s:
        row = await s.get(Message, "msg_saved")
    assert (row.status, row.content, row.error) == ("complete", "All of it.", None)


async def _saved_run(services, manager, user, conv, run_id: str, msg_id: str) -> None:
    """A run whose owner saved it complete and died before announcing its end in the log."""
    from sigmachat.runs.manager import RunMeta

    meta = RunMeta(conversation_id=conv.id, user_message_id="msg_q", assistant_message_id=msg_id,
                   engine="responses", protocol="legacy_sse")  # fmt: skip
    await manager.events.create(run_id, owner_id=user.id, meta=meta.model_dump(mode="json"))
    ev = EventFactory(run_id)
    await manager.events.append(run_id, ev.make(RunStarted, conversation_id=conv.id, model="m", engine="responses"))
    await manager.events.append(run_id, ev.make(TextDelta, delta="All "))
    async with services.db.session() as s:
        s.add(Message(id=msg_id, conversation_id=conv.id, user_id=user.id, role="assistant", run_id=run_id,
                      item_type="assistant_message", status="complete", content="All of it.", model="m",
                      usage={"input_tokens": 3, "output_tokens": 4}))  # fmt: skip
        await s.commit()


async def test_an_owner_killed_after_saving_its_answer_is_announced_with_what_it_saved(services, redis, prefix):
    """Regression (the cluster soak): killed between saving 'complete' and giving back its claim,
    the survivor announced the run 'interrupted' while the database held the whole answer."""
    manager = _instance(services, redis, prefix, ScriptedEngine())
    user = await _user(services)
    conv = await _conv(services, user)
    await _saved_run(services, manager, user, conv, "run_k", "msg_k")
    claim = RunClaim("run_k", user.id, conv.id, "msg_k", "dead-instance")
    assert (await RedisCoordinator(redis, lease_ttl_s=1, prefix=prefix).admit(claim, 0)).ok
    await redis.delete(f"{prefix}run:run_k:lease")  # its lease lapsed: the sweep finds it dead
    assert [c.run_id for c in await manager.coordinator.dead_runs()] == ["run_k"]
    assert await manager.take_over_many(await manager.coordinator.dead_runs()) == 1
    end = (await manager.events.read("run_k"))[-1]
    assert end.type == "run_finished" and end.final_text == "All of it." and end.usage.output_tokens == 4
    assert await manager.active_run_for(conv.id) is None
    async with services.db.session() as s:
        assert (await s.get(Message, "msg_k")).status == "complete"


async def test_a_follower_of_a_log_nobody_will_end_gets_the_saved_end(services, redis, prefix):
    """Regression (the cluster soak): an owner killed after giving back its claim but before
    announcing its end left an open log with no lease and no claim; its followers (and every
    resume) waited until they timed out."""
    manager = _instance(services, redis, prefix, ScriptedEngine())
    user = await _user(services)
    conv = await _conv(services, user)
    await _saved_run(services, manager, user, conv, "run_o", "msg_o")

    async def follow() -> list:
        return [e async for e in manager.subscribe("run_o", after_seq=1, poll_s=0.1)]

    events = await asyncio.wait_for(follow(), timeout=10)
    assert [e.type for e in events] == ["text_delta", "run_finished"]
    assert events[-1].final_text == "All of it."
    assert (await manager.events.info("run_o")).finished


# ---- the app with Redis ----------------------------------------------------------------------


async def test_rate_limits_on_redis_are_shared_and_the_redis_storage_starts(
    tmp_path, template_db, redis_server, prefix
):
    """Regression: SIGMACHAT_RATE_LIMIT_STORAGE=async+redis:// crashed the app at start-up (coredis missing)."""
    import shutil

    from asgi_lifespan import LifespanManager

    from sigmachat.api.app import create_app

    shutil.copy(template_db, tmp_path / "sigmachat.db")
    settings = make_settings(tmp_path, redis_url=redis_server.url, redis_prefix=prefix, send_rate_limit="2/minute",
                             rate_limit_storage="async+" + redis_server.url)  # fmt: skip
    apps = [create_app(settings), create_app(settings)]
    async with LifespanManager(apps[0]), LifespanManager(apps[1]):
        clients = [httpx.AsyncClient(transport=httpx.ASGITransport(app=a), base_url=BASE_URL) for a in apps]
        try:
            headers = await login(clients[0])
            codes = []
            for i in range(3):
                client = clients[i % 2]  # alternate instances, as a balancer would
                conv = (await client.post("/api/v1/chat/conversations", json={}, headers=headers)).json()["id"]
                resp = await client.post(
                    "/api/v1/chat/send", json={"conversation_id": conv, "text": "hi"}, headers=headers
                )
                codes.append(resp.status_code)
            assert codes == [200, 200, 429]
        finally:
            for c in clients:
                await c.aclose()


async def test_redis_down_means_a_clear_503_on_new_runs_and_nothing_written(tmp_path, template_db, prefix):
    import shutil

    from asgi_lifespan import LifespanManager

    from sigmachat.api.app import create_app
    from sigmachat.bench.cluster import start_redis

    shutil.copy(template_db, tmp_path / "sigmachat.db")
    redis_proc = start_redis(tmp_path)
    settings = make_settings(tmp_path, redis_url=redis_proc.url, redis_prefix=prefix)
    app = create_app(settings)
    try:
        async with LifespanManager(app):
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE_URL) as client:
                headers = await login(client)
                conv = (await client.post("/api/v1/chat/conversations", json={}, headers=headers)).json()["id"]
                redis_proc.stop()  # Redis goes away
                resp = await client.post(
                    "/api/v1/chat/send", json={"conversation_id": conv, "text": "hi"}, headers=headers
                )
                assert resp.status_code == 503
                body = resp.json()["error"]
                assert body["code"] == "service_unavailable" and "unavailable" in body["message"]
                assert "Traceback" not in resp.text and "redis" not in resp.text.lower()
                ready = await client.get("/readyz")
                assert ready.status_code == 503 and ready.json()["checks"]["redis"] == "unreachable"
                msgs = await client.get(f"/api/v1/chat/conversations/{conv}/messages", headers=headers)
                assert msgs.status_code == 200 and msgs.json()["messages"] == []  # nothing half-written
                async with app.state.services.db.session() as s:
                    assert (
                        await s.execute(select(func.count()).select_from(Message).where(Message.status == "streaming"))
                    ).scalar_one() == 0
    finally:
        redis_proc.stop()


def test_serve_refuses_several_workers_without_redis(monkeypatch) -> None:
    from typer.testing import CliRunner

    from sigmachat.cli.main import app
    from sigmachat.settings import get_settings

    monkeypatch.delenv("SIGMACHAT_REDIS_URL", raising=False)
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, ["serve", "--workers", "2"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 2
    assert "needs SIGMACHAT_REDIS_URL" in result.output
