"""Every simulator scenario does what it claims, seen through the openai SDK."""

from __future__ import annotations

import json
from typing import Any

import httpx2
import openai
import pytest

from sigmachat.sim import SCENARIOS, Scenario, SimParams, SimulatedDisconnect, create_sim_app, sim_http_client
from sigmachat.sim.scenarios import INVALID_LOOKBACK_DAYS, question_key
from tests.offline.helpers import envelope, follow_up_input, tool_specs

MODEL = "gpt-4.1-mini"
SIM_URL = "http://sim.sigmachat.local/v1"
GREETING = [{"role": "user", "content": "hello"}]  # answered with text straight away


def sim_client(**params: Any) -> openai.AsyncOpenAI:
    params.setdefault("ttfb_ms", 0)
    params.setdefault("tokens_per_s", 0)
    return openai.AsyncOpenAI(
        api_key="sk-sim", base_url=SIM_URL, http_client=sim_http_client(SimParams(**params)), max_retries=0
    )


async def collect(stream: Any) -> list[Any]:
    events = []
    async for event in stream:
        events.append(event)
    return events


async def create_stream(
    client: openai.AsyncOpenAI, scenario: str | None, *, model: str = MODEL, items: Any = None
) -> Any:
    headers = {"X-Sim-Scenario": scenario} if scenario else None
    return await client.responses.create(
        model=model, input=items or GREETING, tools=tool_specs(), stream=True, extra_headers=headers
    )


async def test_no_scenario_is_a_normal_answer_reporting_the_requested_model() -> None:
    events = await collect(await create_stream(sim_client(), None))
    assert events[-1].type == "response.completed"
    assert events[-1].response.model == MODEL
    assert events[-1].response.metadata == {"sigmachat_offline": "true"}


@pytest.mark.parametrize(
    ("scenario", "exc", "status"),
    [
        ("rate_limit", openai.RateLimitError, 429),
        ("server_error", openai.InternalServerError, 500),
        ("overloaded", openai.InternalServerError, 503),
    ],
)
async def test_status_scenarios(scenario: str, exc: type[Exception], status: int) -> None:
    with pytest.raises(exc) as info:
        await create_stream(sim_client(), scenario)
    err = info.value
    assert isinstance(err, openai.APIStatusError) and err.status_code == status
    assert isinstance(err.body, dict) and err.body.get("message")  # the SDK unwraps {"error": {...}}
    if scenario == "rate_limit":
        assert err.response.headers["retry-after"] == "1"


async def test_retry_after_is_configurable() -> None:
    with pytest.raises(openai.RateLimitError) as info:
        await create_stream(sim_client(retry_after_s=3), "rate_limit")
    assert info.value.response.headers["retry-after"] == "3"
    assert info.value.response.headers["retry-after-ms"] == "3000"


async def test_model_name_suffix_selects_the_scenario_and_is_stripped() -> None:
    client = sim_client(slow_tokens_per_s=0)
    with pytest.raises(openai.RateLimitError):
        await create_stream(client, None, model=f"{MODEL}@rate_limit")
    events = await collect(await create_stream(client, None, model=f"{MODEL}@slow_tokens"))
    assert events[-1].response.model == MODEL


async def test_unknown_scenario_is_a_400() -> None:
    with pytest.raises(openai.BadRequestError) as info:
        await create_stream(sim_client(), "nonsense")
    assert "Unknown simulator scenario" in str(info.value)


async def test_times_one_fails_the_first_attempt_then_succeeds() -> None:
    client = sim_client()
    with pytest.raises(openai.RateLimitError):
        await create_stream(client, "rate_limit;times=1")
    events = await collect(await create_stream(client, "rate_limit;times=1"))  # the retry
    assert events[-1].type == "response.completed"
    # The follow-up model call of the same question (after tool outputs) is not failed again.
    items = follow_up_input("hello", [("get_market_overview", {}, envelope("get_market_overview", {"indices": []}))])
    assert question_key({"input": items}) == question_key({"input": GREETING})
    events = await collect(await create_stream(client, "rate_limit;times=1", items=items))
    assert events[-1].type == "response.completed"
    # A different question gets its own budget.
    with pytest.raises(openai.RateLimitError):
        await create_stream(client, "rate_limit;times=1", items=[{"role": "user", "content": "hi there again"}])


async def test_times_counts_per_question_for_server_errors_too() -> None:
    client = sim_client()
    for _ in range(2):
        with pytest.raises(openai.InternalServerError):
            await create_stream(client, "server_error;times=2")
    assert (await collect(await create_stream(client, "server_error;times=2")))[-1].type == "response.completed"


async def test_reset_before_first_byte_is_a_connection_error() -> None:
    with pytest.raises(openai.APIConnectionError) as info:
        await create_stream(sim_client(), "reset_before_first_byte")
    assert isinstance(info.value.__cause__, httpx2.ReadError)


async def test_drop_mid_stream_delivers_some_text_then_a_connection_error() -> None:
    stream = await create_stream(sim_client(), "drop_mid_stream")
    seen: list[Any] = []
    with pytest.raises(openai.APIConnectionError):
        async for event in stream:
            seen.append(event)
    deltas = [e for e in seen if e.type == "response.output_text.delta"]
    assert deltas, "some text arrives before the drop"
    assert not any(e.type in ("response.completed", "response.failed", "response.incomplete") for e in seen)


async def test_no_terminal_event_ends_the_body_cleanly_without_completed() -> None:
    events = await collect(await create_stream(sim_client(), "no_terminal_event"))
    types = [e.type for e in events]
    assert "response.output_text.delta" in types and types[-1] == "response.output_item.done"
    assert "response.completed" not in types


async def test_malformed_event_breaks_json_parsing_mid_stream() -> None:
    stream = await create_stream(sim_client(), "malformed_event")
    seen: list[Any] = []
    with pytest.raises(json.JSONDecodeError):
        async for event in stream:
            seen.append(event)
    assert any(e.type == "response.output_text.delta" for e in seen)


async def test_response_failed_carries_an_error_object() -> None:
    events = await collect(await create_stream(sim_client(), "response_failed"))
    assert [e.type for e in events] == ["response.created", "response.in_progress", "response.failed"]
    failed = events[-1].response
    assert failed.status == "failed" and failed.error.code == "server_error" and failed.error.message
    assert [e.sequence_number for e in events] == [0, 1, 2]


async def test_response_incomplete_after_some_text() -> None:
    events = await collect(await create_stream(sim_client(), "response_incomplete"))
    assert events[-1].type == "response.incomplete"
    resp = events[-1].response
    assert resp.status == "incomplete" and resp.incomplete_details.reason == "max_output_tokens"
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text and resp.output[-1].content[0].text == text
    assert [e.sequence_number for e in events] == list(range(len(events)))


async def test_slow_tokens_paces_at_the_slow_rate() -> None:
    sleeps: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        sleeps.append(seconds)

    app = create_sim_app(SimParams(ttfb_ms=0, tokens_per_s=1000, slow_tokens_per_s=5), sleep=fake_sleep)
    from sigmachat.offline.transport import OfflineTransport

    client = openai.AsyncOpenAI(
        api_key="x",
        base_url=SIM_URL,
        http_client=httpx2.AsyncClient(transport=OfflineTransport(app.server)),
        max_retries=0,
    )
    await collect(await create_stream(client, "slow_tokens"))
    assert sleeps and set(sleeps) == {0.2}
    sleeps.clear()
    await collect(await create_stream(client, None))
    assert set(sleeps) == {0.001}


async def test_tool_error_calls_a_tool_with_invalid_arguments_then_acknowledges_the_error() -> None:
    client = sim_client()
    question = [{"role": "user", "content": "What is my largest position?"}]
    events = await collect(await create_stream(client, "tool_error", items=question))
    calls = [e.item for e in events if e.type == "response.output_item.done" and e.item.type == "function_call"]
    assert [c.name for c in calls] == ["get_prices_historical"]
    assert json.loads(calls[0].arguments)["lookback_days"] == INVALID_LOOKBACK_DAYS
    error = {"type": "validation_error", "message": "lookback_days must be between 1 and 180", "retryable": False}
    items = follow_up_input(
        "What is my largest position?",
        [
            (
                "get_prices_historical",
                json.loads(calls[0].arguments),
                envelope("get_prices_historical", None, error=error),
            )
        ],
    )
    events = await collect(await create_stream(client, "tool_error", items=items))
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert events[-1].type == "response.completed"
    assert "historical prices" in text and "lookback_days must be between 1 and 180" in text and "invalid" in text


async def test_non_streaming_requests_get_the_closest_equivalent() -> None:
    client = sim_client()
    with pytest.raises(openai.RateLimitError):
        await client.responses.create(model=MODEL, input="hello", extra_headers={"X-Sim-Scenario": "rate_limit"})
    with pytest.raises(openai.APIConnectionError):
        await client.responses.create(model=MODEL, input="hello", extra_headers={"X-Sim-Scenario": "drop_mid_stream"})
    failed = await client.responses.create(
        model=MODEL, input="hello", extra_headers={"X-Sim-Scenario": "response_failed"}
    )
    assert failed.status == "failed" and failed.error is not None
    incomplete = await client.responses.create(
        model=MODEL, input="hello", extra_headers={"X-Sim-Scenario": "response_incomplete"}
    )
    assert incomplete.status == "incomplete" and incomplete.incomplete_details.reason == "max_output_tokens"
    ok = await client.responses.create(model=MODEL, input="hello")
    assert ok.status == "completed" and ok.output_text


def test_scenario_grammar() -> None:
    assert Scenario.parse("rate_limit") == Scenario("rate_limit")
    assert Scenario.parse("rate_limit;times=2") == Scenario("rate_limit", 2)
    assert Scenario.parse(" none ") is None
    with pytest.raises(ValueError):
        Scenario.parse("rate_limit;times=x")
    with pytest.raises(ValueError):
        Scenario.parse("rate_limit;color=blue")
    assert set(SCENARIOS) == {
        "rate_limit",
        "server_error",
        "overloaded",
        "reset_before_first_byte",
        "drop_mid_stream",
        "no_terminal_event",
        "malformed_event",
        "response_failed",
        "response_incomplete",
        "slow_tokens",
        "tool_error",
        "unknown_tool",
        "invalid_json_arguments",
        "unknown_tool_loop",
        "ramble",
        "echo_context",
    }


async def test_asgi_app_works_through_httpx2_asgi_transport() -> None:
    app = create_sim_app(SimParams(ttfb_ms=0, tokens_per_s=0))
    http = httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app))
    client = openai.AsyncOpenAI(api_key="x", base_url=SIM_URL, http_client=http, max_retries=0)
    models = await client.models.list()
    assert {"sigmasight-offline-analyst", "gpt-4.1-mini"} <= {m.id for m in models.data}
    events = await collect(await create_stream(client, None))
    assert events[-1].type == "response.completed"
    with pytest.raises(openai.RateLimitError):
        await create_stream(client, "rate_limit")
    # ASGITransport buffers the body, so a drop surfaces at create() as a connection error.
    with pytest.raises(openai.APIConnectionError) as info:
        await create_stream(client, "drop_mid_stream")
    assert isinstance(info.value.__cause__, SimulatedDisconnect)


async def test_asgi_app_from_settings_uses_sim_pacing(tmp_path) -> None:
    from tests.conftest import make_settings

    settings = make_settings(tmp_path, sim_ttfb_ms=12, sim_tokens_per_s=34)
    app = create_sim_app(settings)
    assert (app.server.pacing.ttfb_ms, app.server.pacing.tokens_per_s) == (12, 34)
    assert create_sim_app(settings, tokens_per_s=0).server.pacing.tokens_per_s == 0


async def test_non_streaming_answers_wait_for_the_whole_generation() -> None:
    sleeps: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        sleeps.append(seconds)

    from sigmachat.offline.transport import OfflineTransport

    app = create_sim_app(SimParams(ttfb_ms=100, tokens_per_s=10, slow_tokens_per_s=1), sleep=fake_sleep)
    client = openai.AsyncOpenAI(
        api_key="x",
        base_url=SIM_URL,
        http_client=httpx2.AsyncClient(transport=OfflineTransport(app.server)),
        max_retries=0,
    )
    normal = await client.responses.create(model=MODEL, input="hello")
    assert sleeps == [pytest.approx(0.1 + normal.usage.output_tokens / 10)]
    sleeps.clear()
    slow = await client.responses.create(model=MODEL, input="hello", extra_headers={"X-Sim-Scenario": "slow_tokens"})
    assert sleeps == [pytest.approx(0.1 + slow.usage.output_tokens / 1)]


async def test_chat_completions_stream_like_openai_with_usage_and_done() -> None:
    """The same model over /v1/chat/completions: content deltas, a finish_reason, a usage chunk
    (asked for with stream_options), and the stream ends with [DONE]."""
    from sigmachat.sim.app import sim_transport

    transport = sim_transport(ttfb_ms=0, tokens_per_s=0)
    async with httpx2.AsyncClient(transport=transport, base_url="http://sim.local/v1") as http:
        body = {"model": "m", "messages": [{"role": "user", "content": "hello"}], "stream": True,
                "stream_options": {"include_usage": True}}  # fmt: skip
        resp = await http.post("/chat/completions", json=body)
        lines = [ln[len("data: ") :] for ln in resp.text.split("\n") if ln.startswith("data: ")]
    assert lines[-1] == "[DONE]"
    chunks = [json.loads(ln) for ln in lines[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    text = "".join(ch["delta"].get("content") or "" for c in chunks for ch in c["choices"])
    assert text.strip()
    assert [ch["finish_reason"] for c in chunks for ch in c["choices"] if ch["finish_reason"]] == ["stop"]
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] > 0
