"""OpenTelemetry spans rebuilt from agent events follow the GenAI semantic conventions."""

from __future__ import annotations

import pytest

from sigmachat.telemetry import Telemetry
from tests.telemetry.fakes import FakeRun, synthetic_events

sdk = pytest.importorskip("opentelemetry.sdk.trace")
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter  # noqa: E402


@pytest.fixture
async def traced(settings, services):
    exporter = InMemorySpanExporter()
    provider = sdk.TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    telemetry = Telemetry(settings, services.db, tracer_provider=provider)
    yield telemetry, exporter
    await telemetry.aclose()


async def test_run_with_tools_gives_agent_chat_and_tool_spans(traced):
    telemetry, exporter = traced
    t0 = 1_700_000_000_000
    for e in synthetic_events("run_s", t0=t0, tools=("get_portfolio_complete", "get_factor_exposures")):
        telemetry.recorder(FakeRun("run_s"), e)
    await telemetry.recorder.flush()
    spans = {s.name: s for s in exporter.get_finished_spans()}
    assert set(spans) == {
        "invoke_agent",
        "chat gpt-test",
        "execute_tool get_portfolio_complete",
        "execute_tool get_factor_exposures",
    }
    chats = [s for s in exporter.get_finished_spans() if s.name == "chat gpt-test"]
    assert len(chats) == 2  # the call that asked for the tools, then the one that answered

    root = spans["invoke_agent"]
    a = root.attributes
    assert a["gen_ai.operation.name"] == "invoke_agent" and a["gen_ai.provider.name"] == "openai"
    assert a["gen_ai.request.model"] == "gpt-test" and a["gen_ai.response.id"] == "resp_123"
    assert (a["gen_ai.usage.input_tokens"], a["gen_ai.usage.output_tokens"]) == (1000, 100)
    assert a["gen_ai.response.time_to_first_chunk"] == 0.4
    assert (a["app.run_id"], a["app.chat_backend"]) == ("run_s", "responses")
    assert root.start_time == t0 * 1_000_000 and root.end_time == (t0 + 2400) * 1_000_000

    first, second = sorted(chats, key=lambda s: s.start_time)
    assert first.start_time == t0 * 1_000_000 and first.end_time == (t0 + 50) * 1_000_000  # until the first tool starts
    assert second.start_time == (t0 + 300) * 1_000_000  # after the last tool finished
    assert second.attributes["gen_ai.response.time_to_first_chunk"] == 0.1  # first token at t0+400
    assert (
        second.attributes["gen_ai.response.id"] == "resp_123" and "gen_ai.usage.input_tokens" not in second.attributes
    )
    for chat in chats:
        assert chat.attributes["gen_ai.operation.name"] == "chat" and chat.parent.span_id == root.context.span_id

    tool = spans["execute_tool get_factor_exposures"]
    assert (
        tool.attributes["gen_ai.tool.name"] == "get_factor_exposures"
        and tool.attributes["gen_ai.tool.call.id"] == "call_1"
    )
    assert tool.attributes["gen_ai.operation.name"] == "execute_tool" and tool.attributes["app.run_id"] == "run_s"
    assert tool.parent.span_id == root.context.span_id
    assert tool.start_time == (t0 + 100) * 1_000_000 and tool.end_time == (t0 + 300) * 1_000_000


async def test_failed_run_without_tools_marks_the_error(traced):
    from opentelemetry.trace import StatusCode

    telemetry, exporter = traced
    for e in synthetic_events("run_e", tools=(), fail_code="timeout", engine="agents"):
        telemetry.recorder(FakeRun("run_e", engine="agents", protocol="chatkit"), e)
    spans = {s.name: s for s in exporter.get_finished_spans()}
    assert set(spans) == {"invoke_agent", "chat gpt-test"}
    root, chat = spans["invoke_agent"], spans["chat gpt-test"]
    assert root.status.status_code == StatusCode.ERROR and root.attributes["error.type"] == "timeout"
    assert root.attributes["app.chat_backend"] == "chatkit"
    assert chat.attributes["gen_ai.usage.output_tokens"] == 100  # a single model call carries the run's usage
    await telemetry.recorder.flush()
