"""ResponsesEngine against recorded streams and injected faults (httpx2 mock transport, no network)."""

from __future__ import annotations

import json

import httpx2
import pytest

from sigmachat.agent.events import ToolCallRecord
from sigmachat.engines.base import HistoryTurn, RunRequest
from sigmachat.engines.model_client import build_model_client
from sigmachat.engines.responses import ResponsesEngine
from tests.conftest import make_settings
from tests.engines.recorded import raw


class FakeResult:
    def __init__(self, name, args):
        self.envelope = {"meta": {"tool": name}, "data": {"echo": args}, "error": None}
        self.model_text = json.dumps(self.envelope)
        self.truncated = False
        self.duration_ms = 1.5
        self.ok = True
        self.summary = f"{name} ok"


class FakeRegistry:
    """Stands in for the tool registry: records calls, answers a fixed envelope."""

    def __init__(self):
        self.calls = []

    def openai_tools(self):
        return [
            {
                "type": "function",
                "name": "search",
                "description": "",
                "parameters": {"type": "object", "properties": {}},
                "strict": False,
            }
        ]

    async def call(self, name, arguments, ctx):
        self.calls.append((name, arguments, ctx.user_id, ctx.portfolio_id))
        return FakeResult(name, arguments)


class Upstream:
    """Scripted upstream: each request pops the next response factory."""

    def __init__(self, *responses):
        self.responses = list(responses)
        self.requests: list[dict] = []

    def handler(self, request: httpx2.Request) -> httpx2.Response:
        self.requests.append(json.loads(request.content))
        factory = self.responses.pop(0)
        return factory(request)


def sse(body: bytes, status=200, headers=None):
    def make(request):
        return httpx2.Response(
            status, headers={"content-type": "text/event-stream", **(headers or {})}, content=body, request=request
        )

    return make


def error(status, headers=None, body=None):
    def make(request):
        return httpx2.Response(
            status,
            headers={"content-type": "application/json", **(headers or {})},
            json=body or {"error": {"message": "x", "type": "server_error"}},
            request=request,
        )

    return make


class DropAfter(httpx2.AsyncByteStream):
    def __init__(self, body: bytes):
        self.body = body

    async def __aiter__(self):
        yield self.body
        raise httpx2.ReadError("connection reset by peer")


def dropping(body: bytes):
    def make(request):
        return httpx2.Response(
            200, headers={"content-type": "text/event-stream"}, stream=DropAfter(body), request=request
        )

    return make


def _engine(tmp_path, upstream: Upstream, **overrides):
    settings = make_settings(tmp_path, openai_api_key="sk-test", retry_base_delay_ms=0, **overrides)
    client = httpx2.AsyncClient(transport=httpx2.MockTransport(upstream.handler))
    mc = build_model_client(settings, http_client=client)
    registry = FakeRegistry()
    sleeps = []

    async def fake_sleep(s):
        sleeps.append(s)

    engine = ResponsesEngine(mc, registry, settings, session_factory=None, sleep=fake_sleep)
    return engine, registry, sleeps


async def _run(engine, **kw):
    req = RunRequest(
        run_id="run_t",
        user_id="u1",
        user_text=kw.pop("text", "hello"),
        conversation_id="thr_1",
        portfolio_id="pf1",
        **kw,
    )
    return [e async for e in engine.stream(req)]


def _types(events):
    return [e.type for e in events]


def _assert_gap_free(events):
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert all(e.run_id == "run_t" for e in events)


async def test_text_stream_becomes_deltas_and_a_finished_run_with_usage(tmp_path):
    up = Upstream(sse(raw("stream-basic-text-responses-1.sse")))
    engine, _, _ = _engine(tmp_path, up)
    events = await _run(engine)
    _assert_gap_free(events)
    assert events[0].type == "run_started" and events[0].model == "gpt-4.1-mini" and events[0].engine == "responses"
    done = events[-1]
    assert done.type == "run_finished"
    assert done.final_text == "".join(e.delta for e in events if e.type == "text_delta")
    assert done.usage.input_tokens > 0 and done.usage.output_tokens > 0
    assert done.ttfb_ms is not None and done.response_id.startswith("resp_")
    body = up.requests[0]
    assert body["stream"] is True and body["instructions"] and body["input"][-1] == {"role": "user", "content": "hello"}


async def test_tool_loop_runs_calls_and_feeds_outputs_back(tmp_path):
    up = Upstream(sse(raw("stream-with-tools-responses-1.sse")), sse(raw("stream-with-tools-responses-2.sse")))
    engine, registry, _ = _engine(tmp_path, up)
    events = await _run(engine)
    _assert_gap_free(events)
    types = _types(events)
    assert types[:5] == ["run_started", "tool_started", "tool_started", "tool_finished", "tool_finished"]
    assert types[-1] == "run_finished" and "text_delta" in types
    assert sorted(c[0] for c in registry.calls) == ["search", "weather"]
    assert all(c[2:] == ("u1", "pf1") for c in registry.calls)  # the conversation's user and portfolio
    second = up.requests[1]["input"]
    kinds = [i.get("type") for i in second]
    assert kinds.count("function_call") == 2 and kinds.count("function_call_output") == 2
    out = next(i for i in second if i.get("type") == "function_call_output")
    assert json.loads(out["output"])["meta"]["tool"] in ("search", "weather")
    assert up.requests[1]["instructions"] == up.requests[0]["instructions"]  # stateless full-input
    assert len(events[-1].tool_calls) == 2


async def test_history_is_replayed_with_tool_calls(tmp_path):
    up = Upstream(sse(raw("stream-basic-text-responses-1.sse")))
    engine, _, _ = _engine(tmp_path, up)
    history = [
        HistoryTurn("user", "first question"),
        HistoryTurn(
            "assistant",
            "first answer",
            [ToolCallRecord(call_id="call_a", name="search", arguments={"q": 1}, output='{"data":1}')],
        ),
    ]
    await _run(engine, history=history)
    items = up.requests[0]["input"]
    assert items[0] == {"role": "user", "content": "first question"}
    assert items[1]["type"] == "function_call" and items[1]["call_id"] == "call_a"
    assert items[2] == {"type": "function_call_output", "call_id": "call_a", "output": '{"data":1}'}
    assert items[3] == {"role": "assistant", "content": "first answer"}


async def test_rate_limit_before_output_is_retried_honouring_retry_after_and_switching_model(tmp_path):
    up = Upstream(error(429, {"retry-after": "2"}), sse(raw("stream-basic-text-responses-1.sse")))
    engine, _, sleeps = _engine(tmp_path, up)
    events = await _run(engine)
    types = _types(events)
    assert types[:3] == ["run_started", "info", "info"]
    assert events[1].kind == "retry_scheduled" and events[1].reason == "rate_limited" and events[1].delay_ms >= 2000
    assert events[2].kind == "model_switch" and events[2].to_model == "gpt-4.1-nano"
    assert sleeps == [events[1].delay_ms / 1000]
    assert up.requests[1]["model"] == "gpt-4.1-nano"
    assert events[-1].type == "run_finished" and events[-1].retries == 1 and events[-1].fallback_used


@pytest.mark.parametrize(
    ("status", "code"), [(500, "upstream_error"), (503, "upstream_overloaded"), (429, "rate_limited")]
)
async def test_persistent_upstream_errors_fail_after_max_attempts(tmp_path, status, code):
    up = Upstream(*[error(status)] * 3)
    engine, _, _ = _engine(tmp_path, up, fallback_model=None)
    events = await _run(engine)
    assert _types(events) == ["run_started", "info", "info", "run_failed"]
    assert events[-1].code == code and events[-1].retryable and len(up.requests) == 3


async def test_auth_error_is_not_retried(tmp_path):
    up = Upstream(error(401))
    engine, _, _ = _engine(tmp_path, up)
    events = await _run(engine)
    assert _types(events) == ["run_started", "run_failed"]
    assert events[-1].code == "upstream_auth" and not events[-1].retryable


async def test_connection_reset_before_first_byte_is_retried(tmp_path):
    def reset(request):
        raise httpx2.ConnectError("connection reset")

    up = Upstream(reset, sse(raw("stream-basic-text-responses-1.sse")))
    engine, _, _ = _engine(tmp_path, up)
    events = await _run(engine)
    assert events[1].type == "info" and events[1].reason == "network_error"
    assert events[-1].type == "run_finished"


def _cut_after_deltas(body: bytes, n: int) -> bytes:
    blocks = body.split(b"\n\n")
    out, seen = [], 0
    for b in blocks:
        out.append(b)
        if b"output_text.delta" in b:
            seen += 1
            if seen == n:
                break
    return b"\n\n".join(out) + b"\n\n"


async def test_drop_mid_stream_after_output_fails_and_keeps_partial_text(tmp_path):
    body = _cut_after_deltas(raw("stream-basic-text-responses-1.sse"), 5)
    up = Upstream(dropping(body))
    engine, _, _ = _engine(tmp_path, up)
    events = await _run(engine)
    deltas = "".join(e.delta for e in events if e.type == "text_delta")
    assert events[-1].type == "run_failed" and events[-1].code == "network_error"
    assert events[-1].partial_text == deltas and deltas
    assert len(up.requests) == 1  # never retried once output started


async def test_stream_without_terminal_event_is_a_failure_not_a_success(tmp_path):
    body = _cut_after_deltas(raw("stream-basic-text-responses-1.sse"), 3)
    up = Upstream(sse(body))
    engine, _, _ = _engine(tmp_path, up)
    events = await _run(engine)
    assert events[-1].type == "run_failed" and events[-1].code == "stream_incomplete"
    assert events[-1].partial_text


async def test_malformed_event_fails_with_its_code(tmp_path):
    body = (
        _cut_after_deltas(raw("stream-basic-text-responses-1.sse"), 2)
        + b"event: response.output_text.delta\ndata: {not json\n\n"
    )
    up = Upstream(sse(body))
    engine, _, _ = _engine(tmp_path, up)
    events = await _run(engine)
    assert events[-1].type == "run_failed" and events[-1].code == "malformed_event"


async def test_incomplete_response_reports_reason(tmp_path):
    body = _cut_after_deltas(raw("stream-basic-text-responses-1.sse"), 2) + (
        b'event: response.incomplete\ndata: {"type":"response.incomplete",'
        b'"response":{"id":"resp_1","status":"incomplete",'
        b'"incomplete_details":{"reason":"max_output_tokens"},"usage":{"input_tokens":5,"output_tokens":7}}}\n\n'
    )
    up = Upstream(sse(body))
    engine, _, _ = _engine(tmp_path, up)
    events = await _run(engine)
    assert events[-1].code == "response_incomplete" and "max_output_tokens" in events[-1].message
    assert events[-1].usage.output_tokens == 7


async def test_response_failed_event(tmp_path):
    body = (
        b'event: response.created\ndata: {"type":"response.created","response":{"id":"resp_1"}}\n\n'
        b'event: response.failed\ndata: {"type":"response.failed","response":{"id":"resp_1","status":"failed",'
        b'"error":{"code":"server_error","message":"boom"}}}\n\n'
    )
    engine, _, _ = _engine(tmp_path, Upstream(sse(body)))
    events = await _run(engine)
    assert events[-1].code == "response_failed" and events[-1].retryable


async def test_max_tool_iterations(tmp_path):
    up = Upstream(*[sse(raw("stream-with-tools-responses-1.sse"))] * 2)
    engine, _, _ = _engine(tmp_path, up, max_tool_iterations=2)
    events = await _run(engine)
    assert events[-1].type == "run_failed" and events[-1].code == "max_tool_iterations"
    assert _types(events).count("tool_finished") == 4


async def test_previous_response_id_mode_sends_only_new_items_when_upstream_is_openai(tmp_path):
    up = Upstream(sse(raw("stream-with-tools-responses-1.sse")), sse(raw("stream-with-tools-responses-2.sse")))
    engine, _, _ = _engine(tmp_path, up, responses_previous_response_id=True)
    assert engine.mc.is_openai  # no base URL: api.openai.com
    events = await _run(engine)
    assert events[-1].type == "run_finished"
    first, second = up.requests
    assert "previous_response_id" not in first and first["store"] is True
    assert second["previous_response_id"].startswith("resp_")
    assert {i["type"] for i in second["input"]} == {"function_call_output"}


async def test_previous_response_id_is_never_used_with_a_compatible_server(tmp_path):
    up = Upstream(sse(raw("stream-with-tools-responses-1.sse")), sse(raw("stream-with-tools-responses-2.sse")))
    engine, _, _ = _engine(
        tmp_path, up, responses_previous_response_id=True, openai_base_url="http://localhost:11434/v1"
    )
    await _run(engine)
    assert all("previous_response_id" not in r and "store" not in r for r in up.requests)
