"""The in-process transport: the openai client talks to the offline model, streaming for real."""

from __future__ import annotations

import asyncio
import json

import httpx2
import openai
import pytest

from sigmachat.engines.model_client import build_model_client
from sigmachat.offline.server import OfflineModelServer, Pacing
from sigmachat.offline.transport import OFFLINE_BASE_URL, OfflineTransport, offline_http_client
from tests.conftest import make_settings
from tests.offline.helpers import MODEL, envelope, follow_up_input, offline_client, parse_sse, request_body, tool_specs


class Gate:
    """A sleep that waits until the test opens the gate: pacing without wall-clock time."""

    def __init__(self) -> None:
        self.opened = asyncio.Event()
        self.waits = 0

    async def __call__(self, seconds: float) -> None:
        self.waits += 1
        await self.opened.wait()


async def test_stream_is_produced_incrementally_not_buffered() -> None:
    gate = Gate()
    server = OfflineModelServer(model_name=MODEL, pacing=Pacing(ttfb_ms=0, tokens_per_s=50), sleep=gate)
    async with httpx2.AsyncClient(transport=OfflineTransport(server), base_url=OFFLINE_BASE_URL) as http:
        body = request_body([{"role": "user", "content": "hello"}])
        async with http.stream("POST", "/responses", json=body) as resp:
            assert resp.status_code == 200
            assert resp.headers["content-type"].startswith("text/event-stream")
            chunks = resp.aiter_raw()
            received = b""
            # created, in_progress, output_item.added, content_part.added: not paced.
            for _ in range(4):
                received += await chunks.__anext__()
            assert b"response.content_part.added" in received
            # The first text delta is held at the pacing gate: the client already has the
            # opening events while the rest of the body does not exist yet.
            pending = asyncio.ensure_future(chunks.__anext__())
            for _ in range(10):
                await asyncio.sleep(0)
            assert not pending.done() and gate.waits == 1
            assert b"response.output_text.delta" not in received
            gate.opened.set()
            received += await pending
            async for chunk in chunks:
                received += chunk
    events = parse_sse(received)
    assert events[-1]["type"] == "response.completed"
    assert gate.waits == sum(1 for e in events if e["type"] == "response.output_text.delta")


async def test_openai_client_streams_typed_events_for_a_tool_turn() -> None:
    client = offline_client()
    stream = await client.responses.create(
        model=MODEL,
        input=[{"role": "user", "content": "What is my largest position?"}],
        tools=tool_specs(),
        stream=True,
    )
    types, calls = [], []
    async for event in stream:
        types.append(event.type)
        if event.type == "response.output_item.done" and event.item.type == "function_call":
            calls.append(event.item)
        if event.type == "response.completed":
            completed = event.response
    assert types[0] == "response.created" and types[-1] == "response.completed"
    assert [c.name for c in calls] == ["get_portfolio_complete"]
    assert json.loads(calls[0].arguments) == {
        "portfolio_id": None,
        "include_holdings": True,
        "include_timeseries": False,
    }
    assert completed.metadata == {"sigmachat_offline": "true"}
    assert completed.model == MODEL
    assert completed.usage.input_tokens > 0 and completed.usage.output_tokens > 0


async def test_openai_client_non_streaming_answer_from_tool_outputs() -> None:
    client = offline_client()
    holdings = {
        "nav": 1000000,
        "holdings": [{"symbol": "MSFT", "name": "Microsoft Corporation", "market_value": 250000, "weight": 0.25}],
    }
    items = follow_up_input(
        "What is my largest position?",
        [
            (
                "get_portfolio_complete",
                {"portfolio_id": None},
                envelope("get_portfolio_complete", holdings, price_source="demo"),
            )
        ],
    )
    response = await client.responses.create(model=MODEL, input=items, tools=tool_specs())
    assert response.status == "completed"
    assert (
        "**MSFT**" in response.output_text
        and "$250,000" in response.output_text
        and "25.0% of NAV" in response.output_text
    )
    assert "demo data" in response.output_text
    assert response.metadata["sigmachat_offline"] == "true"


async def test_models_endpoint_lists_the_offline_model() -> None:
    client = offline_client()
    models = await client.models.list()
    assert MODEL in [m.id for m in models.data]
    model = await client.models.retrieve(MODEL)
    assert model.id == MODEL


@pytest.mark.parametrize(
    ("content", "status", "param"),
    [
        (b"{not json", 400, None),
        (json.dumps({"input": "hi"}).encode(), 400, "model"),
        (json.dumps({"model": MODEL}).encode(), 400, "input"),
        (json.dumps({"model": MODEL, "input": 5}).encode(), 400, "input"),
        (json.dumps([1, 2]).encode(), 400, None),
        (
            json.dumps({"model": MODEL, "input": "hi", "previous_response_id": "resp_x"}).encode(),
            400,
            "previous_response_id",
        ),
    ],
)
async def test_bad_requests_get_openai_format_errors(content: bytes, status: int, param: str | None) -> None:
    async with httpx2.AsyncClient(transport=OfflineTransport(model_name=MODEL), base_url=OFFLINE_BASE_URL) as http:
        resp = await http.post("/responses", content=content, headers={"content-type": "application/json"})
    assert resp.status_code == status
    error = resp.json()["error"]
    assert error["type"] == "invalid_request_error" and error["message"] and error["param"] == param


async def test_unknown_path_and_wrong_method() -> None:
    async with httpx2.AsyncClient(transport=OfflineTransport(model_name=MODEL), base_url=OFFLINE_BASE_URL) as http:
        assert (await http.get("/embeddings")).status_code == 404
        assert (await http.get("/chat/completions")).status_code == 405
        assert (await http.get("/responses")).status_code == 405
        assert (await http.get("/models/nope")).status_code == 404


async def test_openai_sdk_raises_bad_request_for_invalid_input() -> None:
    client = offline_client()
    with pytest.raises(openai.BadRequestError):
        await client.responses.create(model=MODEL, input=None)  # type: ignore[arg-type]


async def test_offline_http_client_from_settings(tmp_path) -> None:
    settings = make_settings(tmp_path, offline_ttfb_ms=0, offline_tokens_per_s=0)
    client = openai.AsyncOpenAI(api_key="offline", base_url=OFFLINE_BASE_URL, http_client=offline_http_client(settings))
    response = await client.responses.create(model=settings.offline_model_name, input="hello")
    assert "offline analyst" in response.output_text
    assert response.model == settings.offline_model_name
    # created_at is the as-of date's close, so answers are reproducible
    assert response.created_at == 1752267600


async def test_fault_scenarios_only_with_fault_injection_enabled(tmp_path) -> None:
    plain = make_settings(tmp_path, offline_ttfb_ms=0, offline_tokens_per_s=0)
    client = openai.AsyncOpenAI(
        api_key="offline", base_url=OFFLINE_BASE_URL, http_client=offline_http_client(plain), max_retries=0
    )
    response = await client.responses.create(model="m", input="hello", extra_headers={"X-Sim-Scenario": "rate_limit"})
    assert response.status == "completed"

    demo = make_settings(tmp_path, offline_ttfb_ms=0, offline_tokens_per_s=0, allow_fault_injection=True)
    client = build_model_client(demo).client  # the app's offline client: the simulator's scenarios plugged in
    with pytest.raises(openai.RateLimitError):
        await client.responses.create(model="m", input="hello", extra_headers={"X-Sim-Scenario": "rate_limit"})


async def test_cancelling_the_consumer_closes_the_generator() -> None:
    gate = Gate()
    server = OfflineModelServer(model_name=MODEL, pacing=Pacing(ttfb_ms=0, tokens_per_s=50), sleep=gate)
    client = offline_client(server)
    stream = await client.responses.create(model=MODEL, input="hello", stream=True)
    first = await stream.__anext__()
    assert first.type == "response.created"
    await stream.close()  # the client gives up mid-answer; nothing hangs
    assert not gate.opened.is_set()
