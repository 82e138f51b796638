"""Every log line of a run carries its run_id, and lines logged while an event is handled its seq.

The binding lives in runs/manager.py: ``_drive`` binds run_id for the run's task, ``_emit``
binds seq around the listeners.
"""

from __future__ import annotations

import structlog
from sqlalchemy import select

from sigmachat.agent.events import EventFactory, RunFinished, RunStarted, TextDelta
from sigmachat.chat.conversations import create_conversation
from sigmachat.db.models import User
from sigmachat.logging import configure_logging, get_logger
from sigmachat.runs.event_log import InMemoryEventLog
from sigmachat.runs.manager import RunManager
from tests.conftest import HNW

log = get_logger("tests.engine")


class LoggingEngine:
    name = "responses"

    async def stream(self, request):
        ev = EventFactory(request.run_id)
        log.info("engine_starting")
        yield ev.make(RunStarted, conversation_id=request.conversation_id, model="m", engine=self.name)
        log.info("engine_streaming")
        yield ev.make(TextDelta, delta="hi")
        yield ev.make(RunFinished, final_text="hi", duration_ms=1.0)


async def test_log_lines_of_a_run_carry_run_id_and_seq(services):
    # Other tests leave logging at WARNING (create_app configures it); info lines must pass here.
    configure_logging("DEBUG")
    manager = RunManager(services.db, services.settings, {"responses": LoggingEngine()}, InMemoryEventLog())

    def listener(run, event):
        log.info("listener_saw_event")

    manager.add_listener(listener)
    async with services.db.session() as session:
        user = (await session.execute(select(User).where(User.email == HNW))).scalar_one()
        conv = await create_conversation(session, user.id)
        await session.commit()
    with structlog.testing.capture_logs(processors=[structlog.contextvars.merge_contextvars]) as lines:
        started = await manager.start(
            user_id=user.id, conversation_id=conv.id, text="hi", engine="responses", protocol="legacy_sse"
        )
        await manager.wait_finished(started.run_id, timeout=5)
    run_lines = [
        line
        for line in lines
        if line["event"] in ("engine_starting", "engine_streaming", "listener_saw_event", "run_finished")
    ]
    assert len(run_lines) >= 6
    assert all(line.get("run_id") == started.run_id for line in run_lines), run_lines
    seqs = [line.get("seq") for line in run_lines if line["event"] == "listener_saw_event"]
    assert seqs == [1, 2, 3]
