"""Shadow runs: the other engine answers a sampled turn in the background, recorded and paired,
never shown and never stored as a message."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select

from sigmachat.agent.events import RunFailed, RunFinished
from sigmachat.chat.conversations import create_conversation, list_messages
from sigmachat.db.models import Message, RunRecord, User
from sigmachat.engines.base import HistoryTurn, RunRequest
from sigmachat.runs.event_log import InMemoryEventLog
from sigmachat.runs.manager import RunManager
from sigmachat.services import Services
from sigmachat.telemetry import ShadowRunner
from tests.conftest import HNW, make_settings
from tests.telemetry.fakes import FakeEngine, FakeRun


@pytest.fixture
async def shadow_services(settings):
    svc = Services.build(
        make_settings(settings.var_dir, shadow_sample_rate=1.0, shadow_max_concurrent=1, shadow_timeout_s=0.5)
    )
    yield svc
    await svc.aclose()


def _request(run_id: str = "run_live") -> RunRequest:
    return RunRequest(run_id=run_id, user_id="user-1", user_text="What is my largest position?",
                      conversation_id="thr_1",
                      portfolio_id="pf-1", history=[HistoryTurn("user", "hi"), HistoryTurn("assistant", "hello")],
                      sim_scenario="drop_mid_stream")  # fmt: skip


async def _rows(svc) -> list[RunRecord]:
    async with svc.db.session() as session:
        return list((await session.execute(select(RunRecord).order_by(RunRecord.created_at))).scalars())


def _runner(svc, engines, **kw) -> ShadowRunner:
    return ShadowRunner(svc.settings, svc.telemetry.recorder, engines, **kw)


async def test_the_other_engine_answers_the_same_input_and_is_recorded_as_a_pair(shadow_services):
    svc = shadow_services
    agents = FakeEngine(
        "agents", "AAPL is your largest position, at 12% of NAV.", tools=("get_portfolio_complete", "get_top_positions")
    )
    runner = _runner(svc, {"responses": FakeEngine("responses"), "agents": agents})
    task = runner.maybe_shadow(
        FakeRun("run_live", portfolio_id="pf-1"),
        _request(),
        RunFinished(run_id="run_live", seq=9, final_text="x", duration_ms=1),
    )
    assert task is not None
    await task
    await svc.telemetry.recorder.flush()

    (sent,) = agents.requests
    assert sent.run_id.startswith("run_shadow_") and sent.run_id != "run_live"
    assert (sent.user_text, sent.portfolio_id, [h.text for h in sent.history]) == (
        "What is my largest position?",
        "pf-1",
        ["hi", "hello"],
    )
    assert sent.sim_scenario is None  # fault injection is for the live run only

    (row,) = await _rows(svc)
    assert (row.shadow, row.pair_id, row.run_id) == (True, "run_live", sent.run_id)
    assert (row.path, row.engine, row.protocol, row.status) == ("chatkit", "agents", "shadow", "completed")
    assert [t["name"] for t in row.tool_calls] == ["get_portfolio_complete", "get_top_positions"]
    assert row.answer_chars == len(agents.text) and row.user_id == "user-1" and row.portfolio_id == "pf-1"
    # Shadow runs count apart from live traffic.
    text = svc.telemetry.metrics.exposition().decode()
    assert 'sigmachat_shadow_runs_total{error_code="none",path="chatkit",status="completed"} 1.0' in text
    assert "sigmachat_runs_total{" not in text


async def test_when_not_to_shadow(shadow_services):
    svc = shadow_services
    engines = {"responses": FakeEngine("responses"), "agents": FakeEngine("agents")}
    failed = RunFailed(run_id="run_live", seq=3, code="timeout", message="x", retryable=True)
    assert _runner(svc, engines).maybe_shadow(FakeRun("run_live"), _request(), failed) is None
    assert (
        _runner(svc, {"responses": engines["responses"]}).maybe_shadow(FakeRun("run_live"), _request()) is None
    )  # no other engine
    task = _runner(svc, engines, sample=lambda: 0.99).maybe_shadow(FakeRun("run_live"), _request())
    assert task is not None  # a rate of 1 samples every turn
    await task
    zero = Services.build(make_settings(svc.settings.var_dir))  # shadow_sample_rate defaults to 0
    try:
        assert (
            ShadowRunner(zero.settings, zero.telemetry.recorder, engines).maybe_shadow(FakeRun("run_live"), _request())
            is None
        )
    finally:
        await zero.aclose()
    sampled = ShadowRunner(
        svc.settings.model_copy(update={"shadow_sample_rate": 0.25}),
        svc.telemetry.recorder,
        engines,
        sample=lambda: 0.3,
    )
    assert sampled.maybe_shadow(FakeRun("run_live"), _request()) is None


async def test_busy_shadow_slots_skip_instead_of_queueing(shadow_services):
    svc = shadow_services
    gate = asyncio.Event()
    runner = _runner(svc, {"responses": FakeEngine("responses"), "agents": FakeEngine("agents", gate=gate)})
    first = runner.maybe_shadow(FakeRun("run_1"), _request("run_1"))
    assert first is not None
    assert runner.maybe_shadow(FakeRun("run_2"), _request("run_2")) is None and runner.skipped_busy == 1
    gate.set()
    await first
    assert runner.in_flight == 0


async def test_a_hanging_or_crashing_shadow_is_recorded_as_failed(shadow_services):
    svc = shadow_services

    class Crashing:
        name = "agents"

        async def stream(self, request):
            raise RuntimeError("engine bug")
            yield  # pragma: no cover

    for engine, code in ((FakeEngine("agents", hang=True), "timeout"), (Crashing(), "internal_error")):
        runner = _runner(svc, {"responses": FakeEngine("responses"), "agents": engine})
        await runner.maybe_shadow(FakeRun(f"run_{code}"), _request(f"run_{code}"))
    await svc.telemetry.recorder.flush()
    rows = {r.pair_id: r for r in await _rows(svc)}
    assert (rows["run_timeout"].status, rows["run_timeout"].error_code) == ("failed", "timeout")
    assert (rows["run_internal_error"].status, rows["run_internal_error"].error_code) == ("failed", "internal_error")
    assert rows["run_timeout"].tool_call_count == 1  # what happened before the timeout is kept


async def test_shadow_runs_never_appear_in_conversation_history(shadow_services):
    """A real run manager answers the live turn; the shadow of that turn leaves no message."""
    svc = shadow_services
    live_engine = FakeEngine("responses", "Live answer.")
    shadow_engine = FakeEngine("agents", "Shadow answer that nobody sees.")
    manager = RunManager(svc.db, svc.settings, {"responses": live_engine, "agents": shadow_engine}, InMemoryEventLog())
    svc.telemetry.attach(manager)
    async with svc.db.session() as session:
        user = (await session.execute(select(User).where(User.email == HNW))).scalar_one()
        conv = await create_conversation(session, user.id)
        await session.commit()
    started = await manager.start(
        user_id=user.id,
        conversation_id=conv.id,
        text="What is my largest position?",
        engine="responses",
        protocol="legacy_sse",
    )
    await manager.wait_finished(started.run_id, timeout=5)
    assert len(live_engine.requests) == 1
    # attach() registered the shadow as the manager's finish listener: the live run's end
    # started it in the background; wait for it.
    await asyncio.gather(*svc.telemetry.shadow._tasks)
    await svc.telemetry.recorder.flush()

    async with svc.db.session() as session:
        history = await list_messages(session, user.id, conv.id)
        everywhere = (await session.execute(select(Message.content))).scalars().all()
    assert [(m.role, m.content) for m in history] == [
        ("user", "What is my largest position?"),
        ("assistant", "Live answer."),
    ]
    assert not any("Shadow answer" in c for c in everywhere)
    assert (
        await manager.events.info(shadow_engine.requests[0].run_id) is None
    )  # not in the event log either: nothing to stream or resume
    rows = {r.run_id: r for r in await _rows(svc)}
    assert rows[started.run_id].shadow is False and rows[started.run_id].path == "responses"
    (shadow_row,) = [r for r in rows.values() if r.shadow]
    assert shadow_row.pair_id == started.run_id and shadow_row.conversation_id == conv.id


async def test_attach_registers_the_shadow_hook_when_the_manager_offers_one(shadow_services):
    class Manager:
        engines = {"responses": FakeEngine("responses"), "agents": FakeEngine("agents")}

        def __init__(self):
            self.listeners, self.finish_listeners = [], []

        def add_listener(self, fn):
            self.listeners.append(fn)

        def add_finish_listener(self, fn):
            self.finish_listeners.append(fn)

    manager = Manager()
    shadow_services.telemetry.attach(manager)
    assert manager.listeners == [shadow_services.telemetry.recorder]
    (hook,) = manager.finish_listeners
    task = hook(FakeRun("run_live"), _request(), RunFinished(run_id="run_live", seq=5, final_text="x", duration_ms=1))
    await task
    await shadow_services.telemetry.recorder.flush()
    assert [(r.shadow, r.pair_id) for r in await _rows(shadow_services)] == [(True, "run_live")]
