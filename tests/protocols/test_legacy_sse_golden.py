"""Golden bytes: one frame of each kind of the legacy stream, pinned byte for byte.

The original frontend parses these frames; any change to the envelope, a field's name or
order, number formatting (``1e+16``, ``NaN``, rounding to 0.1 ms), unicode or escaping is a
contract change, and this test must fail on it. The expected frames were recorded from the
encoder before its frames became typed (dict building with isinstance chains).
"""

# ruff: noqa: E501  (a golden frame is one line on the wire and is pinned as one line here)

from __future__ import annotations

import typing

import pytest

from sigmachat.agent.events import (
    AgentEvent,
    EventFactory,
    Info,
    RunFailed,
    RunFinished,
    RunStarted,
    TextDelta,
    ToolCallRecord,
    ToolFinished,
    ToolStarted,
    Usage,
)
from sigmachat.protocols import legacy_sse

TS = 1764430000123


def _events() -> dict[str, AgentEvent]:
    ev = EventFactory("run_g")
    events: dict[str, AgentEvent] = {
        "start": ev.make(
            RunStarted, ts=TS, conversation_id="conv_1", model="gpt-4.1-mini", engine="responses", offline=True
        ),
        "token": ev.make(TextDelta, ts=TS, delta='Ünïcode "q"\nline\\ 📈'),
        "tool_call": ev.make(
            ToolStarted,
            ts=TS,
            call_id="call_1",
            name="get_positions",
            arguments={"limit": 5, "sort": "wéight", "x": None},
        ),
        "tool_result": ev.make(
            ToolFinished,
            ts=TS,
            call_id="call_1",
            name="get_positions",
            envelope={
                "ok": False,
                "error": {"code": "bad_input", "message": "No €"},
                "data": {"w": 0.1, "n": 1e16, "nan": float("nan")},
            },
            duration_ms=12.3456,
            truncated=True,
            ok=False,
            summary="Could not be computed",
        ),
        "info_retry": ev.make(Info, ts=TS, kind="retry_scheduled", attempt=2, delay_ms=800, reason="rate_limited"),
        "info_switch": ev.make(Info, ts=TS, kind="model_switch", from_model="gpt-4.1", to_model="gpt-4.1-mini"),
        "done": ev.make(
            RunFinished,
            ts=TS,
            final_text="Done ✓",
            usage=Usage(input_tokens=1200, output_tokens=240, cached_tokens=7),
            ttfb_ms=412.349,
            duration_ms=2310.75,
            tool_calls=[ToolCallRecord(call_id="call_1", name="get_positions")],
            model="gpt-4.1-mini",
            attempts=3,
            retries=1,
            fallback_used=True,
        ),
    }
    ev2 = EventFactory("run_h")
    events["done_minimal"] = ev2.make(RunFinished, ts=TS, final_text="", duration_ms=5.0)
    events["error"] = ev2.make(
        RunFailed,
        ts=TS,
        code="response_incomplete",
        message="Cut short.",
        retryable=False,
        partial_text="Half",
        incomplete_reason="max_output_tokens",
        # Telemetry only: must never reach the wire.
        upstream_code="secret_upstream",
        upstream_message="host internal-1",
    )
    events["error_retry"] = ev2.make(
        RunFailed, ts=TS, code="rate_limited", message="Busy", retryable=True, retry_after_ms=1500
    )
    return events


GOLDEN = {
    "start": (
        "id: run_g:1\nevent: start\n"
        r'data: {"type":"start","run_id":"run_g","seq":1,"data":{"conversation_id":"conv_1","model":"gpt-4.1-mini","engine":"responses","offline":true,"portfolio_id":"pf_1"},"timestamp":1764430000123}'
        "\n\n"
    ),
    "token": (
        "id: run_g:2\nevent: token\n"
        r'data: {"type":"token","run_id":"run_g","seq":2,"data":{"delta":"Ünïcode \"q\"\nline\\ 📈"},"timestamp":1764430000123}'
        "\n\n"
    ),
    "tool_call": (
        "id: run_g:3\nevent: tool_call\n"
        r'data: {"type":"tool_call","run_id":"run_g","seq":3,"data":{"tool_call_id":"call_1","tool_name":"get_positions","tool_args":{"limit":5,"sort":"wéight","x":null}},"timestamp":1764430000123}'
        "\n\n"
    ),
    "tool_result": (
        "id: run_g:4\nevent: tool_result\n"
        r'data: {"type":"tool_result","run_id":"run_g","seq":4,"data":{"tool_call_id":"call_1","tool_name":"get_positions","tool_result":{"ok":false,"error":{"code":"bad_input","message":"No €"},"data":{"w":0.1,"n":1e+16,"nan":NaN}},"duration_ms":12.3,"truncated":true,"ok":false,"summary":"Could not be computed"},"timestamp":1764430000123}'
        "\n\n"
    ),
    "info_retry": (
        "id: run_g:5\nevent: info\n"
        r'data: {"type":"info","run_id":"run_g","seq":5,"data":{"info_type":"retry_scheduled","attempt":2,"delay_ms":800,"reason":"rate_limited"},"timestamp":1764430000123}'
        "\n\n"
    ),
    "info_switch": (
        "id: run_g:6\nevent: info\n"
        r'data: {"type":"info","run_id":"run_g","seq":6,"data":{"info_type":"model_switch","from_model":"gpt-4.1","to_model":"gpt-4.1-mini"},"timestamp":1764430000123}'
        "\n\n"
    ),
    "done": (
        "id: run_g:7\nevent: done\n"
        r'data: {"type":"done","run_id":"run_g","seq":7,"data":{"final_text":"Done ✓","tool_calls_count":1,"latency_ms":2310.8,"first_token_ms":412.3,"usage":{"input_tokens":1200,"output_tokens":240},"model_used":"gpt-4.1-mini","retry_stats":{"attempts":3,"retries":1,"fallback_used":true}},"timestamp":1764430000123}'
        "\n\n"
    ),
    "done_minimal": (
        "id: run_h:1\nevent: done\n"
        r'data: {"type":"done","run_id":"run_h","seq":1,"data":{"final_text":"","tool_calls_count":0,"latency_ms":5.0,"first_token_ms":null,"usage":{"input_tokens":0,"output_tokens":0},"model_used":null,"retry_stats":{"attempts":1,"retries":0,"fallback_used":false}},"timestamp":1764430000123}'
        "\n\n"
    ),
    "error": (
        "id: run_h:2\nevent: error\n"
        r'data: {"type":"error","run_id":"run_h","seq":2,"data":{"error":"Cut short.","error_type":"FATAL_ERROR","code":"response_incomplete","retryable":false,"retry_after_ms":null,"partial_text":"Half","incomplete_reason":"max_output_tokens"},"timestamp":1764430000123}'
        "\n\n"
    ),
    "error_retry": (
        "id: run_h:3\nevent: error\n"
        r'data: {"type":"error","run_id":"run_h","seq":3,"data":{"error":"Busy","error_type":"RATE_LIMITED","code":"rate_limited","retryable":true,"retry_after_ms":1500,"partial_text":"","incomplete_reason":null},"timestamp":1764430000123}'
        "\n\n"
    ),
}


@pytest.mark.parametrize("kind", list(GOLDEN))
def test_each_frame_kind_keeps_its_exact_bytes(kind):
    event = _events()[kind]
    frame = legacy_sse.encode(event, portfolio_id="pf_1" if kind == "start" else None)
    assert frame == GOLDEN[kind].encode()


def test_message_created_and_heartbeat_keep_their_exact_bytes(monkeypatch):
    monkeypatch.setattr(legacy_sse, "now_ms", lambda: TS)
    created = legacy_sse.message_created(
        run_id="run_g", conversation_id="conv_1", user_message_id="msg_u", assistant_message_id="msg_a"
    )
    assert created.encode() == (
        b"id: run_g:0\nevent: message_created\n"
        b'data: {"type":"message_created","run_id":"run_g","user_message_id":"msg_u","assistant_message_id":"msg_a","conversation_id":"conv_1","timestamp":1764430000123}'
        b"\n\n"
    )
    # No id: a heartbeat must not move the client's Last-Event-ID.
    assert legacy_sse.heartbeat("run_g", 7).encode() == (
        b'event: heartbeat\ndata: {"type":"heartbeat","run_id":"run_g","seq":7,"data":{},"timestamp":1764430000123}\n\n'
    )


def test_every_event_type_has_a_golden_frame():
    # A new member of the union must get its pinned frame here too.
    union = typing.get_args(typing.get_args(AgentEvent)[0])  # AgentEvent is Annotated[<union>, discriminator]
    assert {type(e) for e in _events().values()} == set(union)
