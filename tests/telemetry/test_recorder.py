"""The run recorder: one runs row per run from its agent events, without ever breaking a run."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from sigmachat.db.models import RunRecord
from sigmachat.telemetry import RunRecorder, Telemetry
from tests.telemetry.fakes import FakeRun, synthetic_events


async def _rows(services) -> dict[str, RunRecord]:
    async with services.db.session() as session:
        return {r.run_id: r for r in (await session.execute(select(RunRecord))).scalars()}


async def test_a_finished_run_becomes_one_row_with_every_column(services):
    telemetry = services.telemetry
    run = FakeRun("run_a", portfolio_id="pf-1")
    for event in synthetic_events("run_a", tools=("get_portfolio_complete", "get_factor_exposures")):
        telemetry.recorder(run, event)
    await telemetry.recorder.flush()
    row = (await _rows(services))["run_a"]
    assert (row.path, row.engine, row.protocol, row.status, row.error_code) == (
        "responses",
        "responses",
        "legacy_sse",
        "completed",
        None,
    )
    assert (row.user_id, row.conversation_id, row.portfolio_id, row.model) == ("user-1", "thr_1", "pf-1", "gpt-test")
    assert (row.attempts, row.fallback_used, row.ttfb_ms, row.duration_ms) == (2, True, 400.0, 2400.0)
    assert (row.input_tokens, row.output_tokens, row.cached_tokens, row.reasoning_tokens) == (1000, 100, 200, 10)
    assert row.output_tokens_per_s == 50.0  # 100 tokens / (2.4 s - 0.4 s)
    assert row.tool_call_count == 2
    assert [(t["name"], t["duration_ms"], t["ok"]) for t in row.tool_calls] == [
        ("get_portfolio_complete", 100.0, True), ("get_factor_exposures", 100.0, True)]  # fmt: skip
    assert row.answer_chars == len("Hello world")
    assert (row.event_count, row.last_seq, row.shadow, row.pair_id) == (8, 8, False, None)
    created = row.created_at.replace(tzinfo=dt.UTC) if row.created_at.tzinfo is None else row.created_at
    assert created == dt.datetime.fromtimestamp(1_700_000_000, dt.UTC)
    assert telemetry.recorder.open_runs == 0


async def test_failed_and_chatkit_runs(services):
    rec = services.telemetry.recorder
    for event in synthetic_events("run_f", fail_code="timeout", output_tokens=0):
        rec(FakeRun("run_f"), event)
    for event in synthetic_events("run_c", engine="agents"):
        rec(FakeRun("run_c", engine="agents", protocol="chatkit"), event)
    for event in synthetic_events("run_x", fail_code="cancelled"):
        rec(FakeRun("run_x", protocol="chatkit"), event)
    await rec.flush()
    rows = await _rows(services)
    assert (
        rows["run_f"].status,
        rows["run_f"].error_code,
        rows["run_f"].attempts,
        rows["run_f"].output_tokens_per_s,
    ) == ("failed", "timeout", 3, None)
    assert (rows["run_c"].path, rows["run_c"].engine) == ("chatkit", "agents")
    assert (rows["run_x"].path, rows["run_x"].status, rows["run_x"].error_code) == ("chatkit", "cancelled", "cancelled")


async def test_a_database_failure_is_logged_and_counted_never_raised(services):
    class BrokenDb:
        def session(self):
            raise OSError("disk full")

    telemetry = services.telemetry
    rec = RunRecorder(BrokenDb(), telemetry.metrics)
    for event in synthetic_events("run_b"):
        rec(FakeRun("run_b"), event)  # must not raise
    await rec.flush()
    assert telemetry.metrics.write_failures._value.get() == 1


async def test_a_listener_bug_does_not_escape(services):
    rec = services.telemetry.recorder
    rec(FakeRun("run_bad"), object())  # not an event at all
    assert rec.open_runs == 0


async def test_otel_enabled_without_endpoint_builds_an_sdk_provider(settings, services):
    telemetry = Telemetry(
        settings.model_copy(update={"otel_enabled": True, "otel_endpoint": "http://127.0.0.1:9/v1/traces"}), services.db
    )
    assert telemetry._own_provider is not None
    await telemetry.aclose()
