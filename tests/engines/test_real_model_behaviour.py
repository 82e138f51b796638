"""What real models do that the offline analyst never does, on both engines: reasoning items
across tool turns, output bounds on the wire, error events in either shape, Chat Completions
upstreams and the API probe (httpx2 mock transport or the in-process simulator, no network)."""

from __future__ import annotations

import json

import httpx2
import pytest

from sigmachat.engines.agents import AgentsEngine
from sigmachat.engines.base import RunRequest
from sigmachat.engines.chat_completions import (
    ChatCompletionsStreamReader,
    chat_messages,
)
from sigmachat.engines.model_client import build_model_client
from sigmachat.engines.responses import ResponsesEngine
from sigmachat.engines.responses_stream import (
    FunctionCall,
    ResponsesStreamReader,
    TextChunk,
    TurnEnd,
)
from sigmachat.sim.app import sim_transport
from tests.conftest import make_settings
from tests.engines.recorded import events, raw
from tests.engines.test_responses_engine import FakeRegistry, Upstream, sse

ENGINES = [ResponsesEngine, AgentsEngine]
PAST_REASONING = "stream-multi-tool-conversation-responses-reasoning-past-reasoning-{}.sse"


class TwoToolRegistry(FakeRegistry):
    """The capture's tools: search, then weather."""

    def openai_tools(self):
        schema = {"type": "object", "properties": {}}
        return [
            {
                "type": "function",
                "name": name,
                "description": "",
                "parameters": schema,
                "strict": False,
            }
            for name in ("search", "weather")
        ]


def _engine(engine_cls, tmp_path, transport, registry=None, **overrides):
    settings = make_settings(
        tmp_path,
        openai_api_key="sk-test",
        retry_base_delay_ms=0,
        fallback_model=None,
        **overrides,
    )
    mc = build_model_client(settings, http_client=httpx2.AsyncClient(transport=transport))
    registry = registry or TwoToolRegistry()

    async def no_sleep(_s):
        return None

    return engine_cls(mc, registry, settings, session_factory=None, sleep=no_sleep), registry


async def _run(engine, text="Tigers game today, do I need a coat?"):
    request = RunRequest(
        run_id="run_t",
        user_id="u1",
        user_text=text,
        conversation_id="thr_1",
        portfolio_id="pf1",
    )
    return [e async for e in engine.stream(request)]


def _reasoning_ids(capture: str) -> list[str]:
    return [
        e["item"]["id"]
        for e in events(capture)
        if e["type"] == "response.output_item.done" and e["item"]["type"] == "reasoning"
    ]


# ---- reasoning continuity -------------------------------------------------------------------


@pytest.mark.parametrize("engine_cls", ENGINES)
async def test_reasoning_items_travel_back_with_the_tool_outputs(tmp_path, engine_cls):
    up = Upstream(*(sse(raw(PAST_REASONING.format(i))) for i in (1, 2, 3)))
    engine, _ = _engine(engine_cls, tmp_path, httpx2.MockTransport(up.handler))
    out = await _run(engine)
    assert out[-1].type == "run_finished" and [t.name for t in out[-1].tool_calls] == [
        "search",
        "weather",
    ]
    first, second, third = up.requests
    # Stateless mode asks for the reasoning back (encrypted), so it can be sent again.
    assert all(r["include"] == ["reasoning.encrypted_content"] for r in up.requests)
    turn1 = _reasoning_ids(PAST_REASONING.format(1))
    turn2 = _reasoning_ids(PAST_REASONING.format(2))
    assert turn1 and turn2

    def reasoning_in(body):
        return [i["id"] for i in body["input"] if i.get("type") == "reasoning"]

    assert reasoning_in(first) == []
    assert reasoning_in(second) == turn1
    assert reasoning_in(third) == turn1 + turn2
    # Each reasoning item comes right before the call it led to, as the model produced them.
    kinds = [i.get("type") for i in third["input"]]
    assert kinds[-6:] == ["reasoning", "function_call", "function_call_output"] * 2


def test_the_reader_keeps_reasoning_items_as_input_items():
    reader = ResponsesStreamReader()
    for e in events(PAST_REASONING.format(1)):
        reader.feed(e)
    [item] = reader.reasoning_items
    assert item["type"] == "reasoning" and item["id"].startswith("rs_") and "status" not in item
    assert item["summary"] and item["summary"][0]["type"] == "summary_text"


# ---- output bounds on the wire --------------------------------------------------------------


@pytest.mark.parametrize("engine_cls", ENGINES)
async def test_both_engines_send_the_output_bound(tmp_path, engine_cls):
    up = Upstream(sse(raw("stream-basic-text-responses-1.sse")))
    engine, _ = _engine(engine_cls, tmp_path, httpx2.MockTransport(up.handler), max_output_tokens=777)
    assert (await _run(engine))[-1].type == "run_finished"
    assert up.requests[0]["max_output_tokens"] == 777


@pytest.mark.parametrize("engine_cls", ENGINES)
@pytest.mark.parametrize(
    ("base_url", "param"),
    [
        ("http://sim.sigmachat.local/v1", "max_tokens"),
        (None, "max_completion_tokens"),
    ],  # a compatible server; OpenAI
)
async def test_both_engines_send_the_output_bound_over_chat_completions(tmp_path, engine_cls, base_url, param):
    seen: list[dict] = []
    inner = sim_transport(ttfb_ms=0, tokens_per_s=0)

    class Recording(httpx2.AsyncBaseTransport):
        async def handle_async_request(self, request):
            seen.append({"path": request.url.path, **json.loads(request.content or b"{}")})
            return await inner.handle_async_request(request)

    engine, _ = _engine(
        engine_cls,
        tmp_path,
        Recording(),
        max_output_tokens=555,
        upstream_api="chat_completions",
        openai_base_url=base_url,
    )
    assert (await _run(engine, "hello"))[-1].type == "run_finished"
    assert seen[0]["path"].endswith("/chat/completions")
    assert seen[0][param] == 555 and seen[0]["stream_options"] == {"include_usage": True}


# ---- error events, and whose words reach whom ----------------------------------------------

CREATED = (
    b'event: response.created\ndata: {"type":"response.created","response":{"id":"resp_1","model":"m",'
    b'"status":"in_progress","output":[]}}\n\n'
)
NESTED_ERROR = (
    b'event: error\ndata: {"type":"error","error":{"type":"invalid_request_error","code":"context_length_exceeded",'
    b'"message":"Your input exceeds the context window of this model (internal host gpu-7)."}}\n\n'
)
FLAT_ERROR = (
    b'event: error\ndata: {"type":"error","code":"server_is_sad","message":"Upstream shard 12 failed.",'
    b'"param":null,"sequence_number":1}\n\n'
)


@pytest.mark.parametrize("engine_cls", ENGINES)
@pytest.mark.parametrize(
    ("body", "code", "words"),
    [
        (NESTED_ERROR, "context_length_exceeded", "gpu-7"),
        (FLAT_ERROR, "server_is_sad", "shard 12"),
    ],
)
async def test_an_error_event_keeps_the_upstreams_code_for_telemetry_only(tmp_path, engine_cls, body, code, words):
    up = Upstream(sse(CREATED + body))
    engine, _ = _engine(engine_cls, tmp_path, httpx2.MockTransport(up.handler))
    failed = (await _run(engine))[-1]
    assert failed.type == "run_failed" and failed.code == "response_failed"
    assert failed.upstream_code == code and words in failed.upstream_message
    assert words not in failed.message  # the user's message is ours


def test_the_reader_understands_both_error_shapes():
    for event, code in ((json.loads(NESTED_ERROR.split(b"data: ")[1]), "context_length_exceeded"),
                        (json.loads(FLAT_ERROR.split(b"data: ")[1]), "server_is_sad")):  # fmt: skip
        [end] = ResponsesStreamReader().feed(event)
        assert end.status == "failed" and end.error_code == code and end.error_message


# ---- the Chat Completions reader ------------------------------------------------------------


def _chunk(delta=None, finish=None, usage=None, index=0):
    choices = [] if delta is None else [{"index": index, "delta": delta, "finish_reason": finish}]
    out = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "model": "m",
        "choices": choices,
    }
    if usage:
        out["usage"] = usage
    return out


def test_chat_reader_streams_text_and_assembles_tool_calls_without_ids():
    reader = ChatCompletionsStreamReader()
    out = []
    for chunk in (
        _chunk({"role": "assistant", "content": ""}),
        _chunk({"content": "Looking"}),
        _chunk({"tool_calls": [{"index": 0, "function": {"name": "search", "arguments": '{"q":'}}]}),
        _chunk({"tool_calls": [{"index": 0, "function": {"arguments": ' "x"}'}}]}),
        _chunk(
            {
                "tool_calls": [
                    {
                        "index": 1,
                        "id": "call_b",
                        "function": {"name": "weather", "arguments": "{}"},
                    }
                ]
            }
        ),
        _chunk({}, "tool_calls"),
        _chunk(
            None,
            usage={
                "prompt_tokens": 10,
                "completion_tokens": 7,
                "completion_tokens_details": {"reasoning_tokens": 2},
            },
        ),
    ):
        out += reader.feed(chunk)
    assert [o.delta for o in out if isinstance(o, TextChunk)] == ["Looking"]
    end = reader.finish()
    calls = [o for o in end if isinstance(o, FunctionCall)]
    assert [(c.call_id, c.name, c.arguments) for c in calls] == [
        ("call_0", "search", '{"q": "x"}'),
        ("call_b", "weather", "{}"),
    ]
    [turn] = [o for o in end if isinstance(o, TurnEnd)]
    assert turn.status == "completed" and (
        turn.usage.input_tokens,
        turn.usage.output_tokens,
        turn.usage.reasoning_tokens,
    ) == (10, 7, 2)


def test_chat_reader_maps_length_to_incomplete_and_no_finish_to_nothing():
    cut = ChatCompletionsStreamReader()
    cut.feed(_chunk({"content": "abc"}, "length"))
    [turn] = cut.finish()
    assert turn.status == "incomplete" and turn.incomplete_reason == "max_output_tokens"
    unfinished = ChatCompletionsStreamReader()
    unfinished.feed(_chunk({"content": "abc"}))
    assert unfinished.finish() == []  # the engine calls this stream_incomplete


def test_chat_messages_group_parallel_calls_and_drop_reasoning():
    items = [
        {"role": "user", "content": "q"},
        {"type": "reasoning", "id": "rs_1", "summary": []},
        {"type": "function_call", "call_id": "c1", "name": "a", "arguments": "{}"},
        {"type": "function_call", "call_id": "c2", "name": "b", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c1", "output": "1"},
        {"type": "function_call_output", "call_id": "c2", "output": "2"},
    ]
    messages = chat_messages("be brief", items)
    assert [m["role"] for m in messages] == [
        "system",
        "user",
        "assistant",
        "tool",
        "tool",
    ]
    assert [c["id"] for c in messages[2]["tool_calls"]] == ["c1", "c2"]


# ---- the upstream API probe -----------------------------------------------------------------


@pytest.mark.parametrize("engine_cls", ENGINES)
async def test_auto_probes_once_and_then_speaks_chat_completions_to_a_server_without_responses(tmp_path, engine_cls):
    paths: list[tuple[str, str]] = []
    inner = sim_transport(ttfb_ms=0, tokens_per_s=0, apis=("chat_completions",))

    class Recording(httpx2.AsyncBaseTransport):
        async def handle_async_request(self, request):
            paths.append((request.method, request.url.path))
            return await inner.handle_async_request(request)

    engine, _ = _engine(engine_cls, tmp_path, Recording(), upstream_api="auto")
    for _ in range(2):
        assert (await _run(engine, "hello"))[-1].type == "run_finished"
    assert paths[0] == ("POST", "/v1/responses")  # the probe, once
    assert paths[1:] == [("POST", "/v1/chat/completions")] * 2
    assert await engine.mc.api() == "chat_completions"


async def test_auto_stays_on_responses_where_the_server_has_it(tmp_path):
    paths: list[str] = []
    inner = sim_transport(ttfb_ms=0, tokens_per_s=0)

    class Recording(httpx2.AsyncBaseTransport):
        async def handle_async_request(self, request):
            paths.append(request.url.path)
            return await inner.handle_async_request(request)

    engine, _ = _engine(ResponsesEngine, tmp_path, Recording(), upstream_api="auto")
    assert (await _run(engine, "hello"))[-1].type == "run_finished"
    assert paths == [
        "/v1/responses",
        "/v1/responses",
    ]  # the probe (400 for an empty body), then the call
