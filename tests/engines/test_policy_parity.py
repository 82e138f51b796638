"""The same upstream behaviour through both engines gives the same events: the same Info
sequence (retries, their delays, the fallback switch), the same terminal event fields, the
same models asked and the same waits. Scripted upstreams (httpx2 mock transport); the
simulator's fault scenarios run the same comparison in tests/chatkit/test_faults.py."""

from __future__ import annotations

import httpx2
import pytest

from sigmachat.engines.agents import AgentsEngine
from sigmachat.engines.base import RunRequest
from sigmachat.engines.model_client import build_model_client
from sigmachat.engines.responses import ResponsesEngine
from tests.conftest import make_settings
from tests.engines.recorded import raw
from tests.engines.test_responses_engine import FakeRegistry, Upstream, _cut_after_deltas, dropping, error, sse

BASIC = "stream-basic-text-responses-1.sse"
CREATED = b'event: response.created\ndata: {"type":"response.created","response":{"id":"resp_1","model":"m"}}\n\n'


def _basic():
    return sse(raw(BASIC))


def _reset(request):
    raise httpx2.ConnectError("connection reset")


def _incomplete(reason: str):
    return sse(
        _cut_after_deltas(raw(BASIC), 2)
        + b'event: response.incomplete\ndata: {"type":"response.incomplete","response":{"id":"resp_1",'
        + b'"status":"incomplete","incomplete_details":{"reason":"'
        + reason.encode()
        + b'"},"usage":{"input_tokens":5,"output_tokens":7}}}\n\n'
    )


# name -> (upstream responses in order, settings overrides)
SCENARIOS = {
    "429, Retry-After 2 s, then an answer": ([error(429, {"retry-after": "2"}), _basic()], {}),
    "429, Retry-After-ms, then an answer": ([error(429, {"retry-after-ms": "150"}), _basic()], {}),
    "429 with a Retry-After-ms that is not finite": ([error(429, {"retry-after-ms": "1e400"}), _basic()], {}),
    "500 twice, then an answer": ([error(500), error(500), _basic()], {}),
    "503 on every attempt": ([error(503, {"retry-after": "1"})] * 3, {}),
    "503 on every attempt, no fallback": ([error(503)] * 3, {"fallback_model": None}),
    "429 with one attempt allowed": ([error(429, {"retry-after": "1"})], {"retry_max_attempts": 1}),
    "401": ([error(401)], {}),
    "400 with the upstream's code": (
        [error(400, body={"error": {"code": "context_length_exceeded", "message": "too long on gpu-7"}})],
        {},
    ),
    "connection reset, then an answer": ([_reset, _basic()], {}),
    "dropped after output": ([dropping(_cut_after_deltas(raw(BASIC), 5))], {}),
    "no terminal event": ([sse(_cut_after_deltas(raw(BASIC), 3))], {}),
    "malformed event": (
        [sse(_cut_after_deltas(raw(BASIC), 2) + b"event: response.output_text.delta\ndata: {not json\n\n")],
        {},
    ),
    "response.failed": (
        [
            sse(
                CREATED + b'event: response.failed\ndata: {"type":"response.failed","response":{"id":"resp_1",'
                b'"status":"failed","error":{"code":"server_error","message":"boom on shard 3"}}}\n\n'
            )
        ],
        {},
    ),
    "error event, nested": (
        [
            sse(
                CREATED + b'event: error\ndata: {"type":"error","error":{"type":"invalid_request_error",'
                b'"code":"context_length_exceeded","message":"too long"}}\n\n'
            )
        ],
        {},
    ),
    "response.incomplete, content filter": ([_incomplete("content_filter")], {}),
    "response.incomplete, length": ([_incomplete("max_output_tokens")], {}),
    "our output bound cuts the answer": ([_basic()], {"max_output_tokens": 16}),
    "a tool turn, then 429 on the second call": (
        [
            sse(raw("stream-with-tools-responses-1.sse")),
            error(429, {"retry-after": "1"}),
            sse(raw("stream-with-tools-responses-2.sse")),
        ],
        {},
    ),
}

# What a client or the runs table reads of a terminal event (not times, not text chunking).
TERMINAL_FIELDS = (
    "type", "code", "message", "retryable", "retry_after_ms", "incomplete_reason", "upstream_code",
    "upstream_message", "model", "attempts", "retries", "fallback_used", "final_text", "partial_text",
)  # fmt: skip


async def _outcome(engine_cls, tmp_path, scenario: str):
    responses, overrides = SCENARIOS[scenario]
    up = Upstream(*responses)
    settings = make_settings(tmp_path, openai_api_key="sk-test", retry_base_delay_ms=0, **overrides)
    mc = build_model_client(settings, http_client=httpx2.AsyncClient(transport=httpx2.MockTransport(up.handler)))
    sleeps: list[float] = []

    async def recorded_sleep(seconds: float) -> None:
        sleeps.append(seconds)

    engine = engine_cls(mc, FakeRegistry(), settings, session_factory=None, sleep=recorded_sleep)
    request = RunRequest(run_id="run_p", user_id="u1", user_text="hello", conversation_id="thr_1", portfolio_id="pf1")
    try:
        events = [e async for e in engine.stream(request)]
    finally:
        await mc.aclose()
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert events[0].type == "run_started" and events[-1].type in ("run_finished", "run_failed")
    sequence = [
        e.model_dump(exclude={"run_id", "seq", "ts"}) if e.type == "info" else e.type
        for e in events
        if e.type not in ("text_delta", "run_started", "tool_started", "tool_finished")
    ]
    last = events[-1]
    terminal = {name: getattr(last, name, None) for name in TERMINAL_FIELDS}
    terminal["output_tokens"] = last.usage.output_tokens
    tools = [(e.type, e.name) for e in events if e.type in ("tool_started", "tool_finished")]
    return sequence, terminal, sorted(tools), [r["model"] for r in up.requests], sleeps


@pytest.mark.parametrize("scenario", list(SCENARIOS))
async def test_both_engines_follow_the_same_upstream_policy(tmp_path, scenario):
    responses = await _outcome(ResponsesEngine, tmp_path, scenario)
    agents = await _outcome(AgentsEngine, tmp_path, scenario)
    assert agents == responses


async def test_the_parity_scenarios_show_what_the_policy_decides(tmp_path):
    """The comparison above could pass with both engines wrong in the same way: pin a few."""
    sequence, terminal, _, models, sleeps = await _outcome(ResponsesEngine, tmp_path, "503 on every attempt")
    assert [s if isinstance(s, str) else (s["kind"], s.get("delay_ms")) for s in sequence] == [
        ("retry_scheduled", 1000),
        ("model_switch", None),
        ("retry_scheduled", 1000),
        "run_failed",
    ]
    assert models == ["gpt-4.1-mini", "gpt-4.1-nano", "gpt-4.1-nano"] and sleeps == [1.0, 1.0]
    assert (terminal["code"], terminal["attempts"], terminal["retries"], terminal["fallback_used"]) == (
        "upstream_overloaded",
        3,
        2,
        True,
    )
    _, terminal, _, _, sleeps = await _outcome(AgentsEngine, tmp_path, "429 with a Retry-After-ms that is not finite")
    assert terminal["type"] == "run_finished" and sleeps == [0.0]  # our backoff, not an overflow
    _, terminal, _, models, _ = await _outcome(AgentsEngine, tmp_path, "a tool turn, then 429 on the second call")
    assert models == ["gpt-4.1-mini", "gpt-4.1-mini", "gpt-4.1-nano"]
    assert (terminal["type"], terminal["attempts"], terminal["retries"]) == ("run_finished", 3, 1)
    _, terminal, _, _, _ = await _outcome(AgentsEngine, tmp_path, "our output bound cuts the answer")
    assert (terminal["code"], terminal["incomplete_reason"]) == ("response_incomplete", "max_output_tokens")
    assert 0 < terminal["output_tokens"] <= 16 and terminal["partial_text"]
