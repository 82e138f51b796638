"""Live answers' partial text is saved about once a period, all due runs in one statement."""

from __future__ import annotations

import asyncio
from contextlib import contextmanager

from sqlalchemy import event, select

from sigmachat.chat.conversations import create_conversation
from sigmachat.db.models import Message, User
from sigmachat.runs.event_log import InMemoryEventLog
from sigmachat.runs.manager import RunManager
from tests.conftest import HNW
from tests.runs.fakes import ScriptedEngine

PERIOD = 5.0  # long: see the first test


@contextmanager
def progress_saves(db):
    """Each progress-save statement's row count, in order."""
    saves: list[int] = []

    def before(conn, cursor, statement, parameters, context, executemany):
        if statement.startswith("UPDATE messages SET content=") and "status" not in statement.split("WHERE")[0]:
            saves.append(len(parameters) if executemany else 1)

    event.listen(db.engine.sync_engine, "before_cursor_execute", before)
    try:
        yield saves
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", before)


async def _gated_runs(services, n: int, period: float):
    gate = asyncio.Event()
    settings = services.settings.model_copy(update={"run_progress_save_s": period})
    manager = RunManager(services.db, settings, {"responses": ScriptedEngine(gate=gate)}, InMemoryEventLog())
    async with services.db.session() as s:
        user = (await s.execute(select(User).where(User.email == HNW))).scalar_one()
        convs = [await create_conversation(s, user.id) for _ in range(n)]
    runs = [
        await manager.start(user_id=user.id, conversation_id=c.id, text="hi", engine="responses", protocol="test")
        for c in convs
    ]
    for run in runs:  # each has written its first delta and waits at the gate
        async for e in manager.subscribe(run.run_id):
            if e.type == "text_delta":
                break
    return manager, gate, runs


async def _answers(services, runs):
    async with services.db.session() as s:
        rows = (
            await s.execute(select(Message).where(Message.id.in_([r.assistant_message_id for r in runs])))
        ).scalars()
        return {m.id: (m.status, m.content) for m in rows}


async def _until(predicate, timeout_s: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not predicate() and loop.time() < deadline:
        await asyncio.sleep(0.01)


async def test_the_runs_due_are_saved_together_once_and_never_after_their_end(services):
    # A long period: nothing is due on its own while the test runs (starts on a slow machine
    # included); the test makes the runs due itself.
    with progress_saves(services.db) as saves:
        manager, gate, runs = await _gated_runs(services, 3, PERIOD)
        assert saves == []  # the first save comes a period after the run's start, not at its first token
        now = asyncio.get_running_loop().time()
        for run in runs:  # all three a period old: due together at the next tick
            manager._active[run.run_id].saved_at = now - PERIOD
        await _until(lambda: saves, PERIOD)
        assert saves == [3]  # one statement for the three
        assert set((await _answers(services, runs)).values()) == {("streaming", "Your largest ")}
        # No run has new text: the saver stops (it starts again with the next token).
        await _until(lambda: manager._progress_saver is None, PERIOD)
        assert manager._progress_saver is None

        gate.set()
        for run in runs:
            await manager.wait_finished(run.run_id, 5)
        await _until(lambda: manager._progress_saver is None, PERIOD)
    assert saves == [3]  # the final saves wrote the rest; no progress save came after them
    final = "Your largest position is **HOME_EQUITY**."
    assert set((await _answers(services, runs)).values()) == {("complete", final)}


async def test_no_progress_is_saved_when_the_period_is_zero(services):
    with progress_saves(services.db) as saves:
        manager, gate, runs = await _gated_runs(services, 1, 0)
        await asyncio.sleep(0.1)
        assert manager._progress_saver is None
        gate.set()
        await manager.wait_finished(runs[0].run_id, 5)
    assert saves == []
