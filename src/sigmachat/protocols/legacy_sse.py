"""Agent events → the original product's streaming chat protocol (server-sent events).

Frames: ``id: <run_id>:<seq>``, ``event: <name>``, ``data: {type, run_id, seq, data, timestamp}``.
``message_created`` is the one exception: its fields sit at the top level of ``data`` because
the original frontend reads ``data.assistant_message_id`` there. Framing is sse-starlette's,
with ``\n`` line endings (:data:`SEP`): the original client splits frames on ``"\n\n"`` and
would read nothing from sse-starlette's default ``\r\n``.

Each frame's shape is a ``TypedDict`` below, built by one exhaustive ``match`` over the agent
event union (mypy reports a member without its case). TypedDicts rather than pydantic models:
frames only go out, they are built from events that pydantic has already validated, and the
bytes are ``json.dumps`` of a plain dict (pinned by tests/protocols/test_legacy_sse_golden.py:
``NaN``, ``1e+16``). A TypedDict is that plain dict, checked by mypy at no cost at run time; a
model would validate again and dump once per frame, per token too.
"""

from __future__ import annotations

import json
from typing import Any, Literal, NotRequired, TypedDict, assert_never

import orjson
from sse_starlette import ServerSentEvent

from sigmachat.agent.events import (
    AgentEvent,
    Info,
    RunFailed,
    RunFinished,
    RunStarted,
    TextDelta,
    ToolFinished,
    ToolStarted,
    now_ms,
)
from sigmachat.agent.failures import kind
from sigmachat.protocols.sse import parse_last_event_id, sse_id
from sigmachat.protocols.sse_response import sse_frame

__all__ = ["encode", "heartbeat", "message_created", "parse_last_event_id", "payload", "sse_id"]

FrameName = Literal["start", "token", "tool_call", "tool_result", "info", "done", "error", "heartbeat"]

EVENT_NAMES: dict[str, FrameName] = {
    "run_started": "start",
    "text_delta": "token",
    "tool_started": "tool_call",
    "tool_finished": "tool_result",
    "info": "info",
    "run_finished": "done",
    "run_failed": "error",
}


# Line separator of every legacy frame, pings included (the response is built with it too).
SEP = "\n"


# ---- the frames' shapes (key order is the wire order) ----------------------------------------


class StartData(TypedDict):
    conversation_id: str | None
    model: str
    engine: str
    offline: bool
    portfolio_id: str | None


class TokenData(TypedDict):
    delta: str


class ToolCallData(TypedDict):
    tool_call_id: str
    tool_name: str
    tool_args: dict[str, Any]  # the model's JSON arguments, as given


class ToolResultData(TypedDict):
    tool_call_id: str
    tool_name: str
    tool_result: dict[str, Any]  # the tool's JSON envelope, as the model saw it
    duration_ms: float
    truncated: bool
    ok: bool
    summary: str


class InfoData(TypedDict):
    info_type: Literal["retry_scheduled", "model_switch"]
    # Present only when set (a retry has attempt, delay and reason; a switch the two models).
    attempt: NotRequired[int]
    delay_ms: NotRequired[int]
    reason: NotRequired[str]
    from_model: NotRequired[str]
    to_model: NotRequired[str]


class UsageData(TypedDict):
    input_tokens: int
    output_tokens: int


class RetryStats(TypedDict):
    attempts: int
    retries: int
    fallback_used: bool


class DoneData(TypedDict):
    final_text: str
    tool_calls_count: int
    latency_ms: float
    first_token_ms: float | None
    usage: UsageData
    model_used: str | None
    retry_stats: RetryStats


class ErrorData(TypedDict):
    error: str
    error_type: str  # the original product's error type (agent/failures.py owns it)
    code: str
    retryable: bool
    retry_after_ms: int | None
    partial_text: str
    # Added for cut answers (code response_incomplete): why it was cut, e.g. max_output_tokens.
    incomplete_reason: str | None


class HeartbeatData(TypedDict):
    pass


FrameData = StartData | TokenData | ToolCallData | ToolResultData | InfoData | DoneData | ErrorData | HeartbeatData


class Envelope(TypedDict):
    """``data:`` of every frame but ``message_created``."""

    type: FrameName
    run_id: str
    seq: int
    data: FrameData
    timestamp: int


class MessageCreated(TypedDict):
    """``data:`` of the first frame: its fields at the top level, where the original frontend reads them."""

    type: Literal["message_created"]
    run_id: str
    user_message_id: str
    assistant_message_id: str
    conversation_id: str
    timestamp: int


# ---- building frames -------------------------------------------------------------------------


def _dumps(obj: object) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, default=str)


def message_created(
    *, run_id: str, conversation_id: str, user_message_id: str, assistant_message_id: str
) -> ServerSentEvent:
    data: MessageCreated = {
        "type": "message_created",
        "run_id": run_id,
        "user_message_id": user_message_id,
        "assistant_message_id": assistant_message_id,
        "conversation_id": conversation_id,
        "timestamp": now_ms(),
    }
    return ServerSentEvent(data=_dumps(data), event="message_created", id=sse_id(run_id, 0), sep=SEP)


def heartbeat(run_id: str, last_seq: int) -> ServerSentEvent:
    # No id: a heartbeat must not move the client's Last-Event-ID.
    data: Envelope = {"type": "heartbeat", "run_id": run_id, "seq": last_seq, "data": {}, "timestamp": now_ms()}
    return ServerSentEvent(data=_dumps(data), event="heartbeat", sep=SEP)


def _info_data(event: Info) -> InfoData:
    data: InfoData = {"info_type": event.kind}
    if event.attempt is not None:
        data["attempt"] = event.attempt
    if event.delay_ms is not None:
        data["delay_ms"] = event.delay_ms
    if event.reason is not None:
        data["reason"] = event.reason
    if event.from_model is not None:
        data["from_model"] = event.from_model
    if event.to_model is not None:
        data["to_model"] = event.to_model
    return data


def payload(event: AgentEvent, *, portfolio_id: str | None = None) -> FrameData:
    """The ``data`` object of the envelope for one agent event."""
    match event:
        case RunStarted():
            return StartData(
                conversation_id=event.conversation_id,
                model=event.model,
                engine=event.engine,
                offline=event.offline,
                portfolio_id=portfolio_id,
            )
        case TextDelta():
            return TokenData(delta=event.delta)
        case ToolStarted():
            return ToolCallData(tool_call_id=event.call_id, tool_name=event.name, tool_args=event.arguments)
        case ToolFinished():
            return ToolResultData(
                tool_call_id=event.call_id,
                tool_name=event.name,
                tool_result=event.envelope,
                duration_ms=round(event.duration_ms, 1),
                truncated=event.truncated,
                ok=event.ok,
                summary=event.summary,
            )
        case Info():
            return _info_data(event)
        case RunFinished():
            return DoneData(
                final_text=event.final_text,
                tool_calls_count=len(event.tool_calls),
                latency_ms=round(event.duration_ms, 1),
                first_token_ms=None if event.ttfb_ms is None else round(event.ttfb_ms, 1),
                usage=UsageData(input_tokens=event.usage.input_tokens, output_tokens=event.usage.output_tokens),
                model_used=event.model,
                retry_stats=RetryStats(
                    attempts=event.attempts, retries=event.retries, fallback_used=event.fallback_used
                ),
            )
        case RunFailed():
            # The upstream's own error code and message never go out (they may name internals).
            return ErrorData(
                error=event.message,
                error_type=kind(event.code).legacy_type,
                code=event.code,
                retryable=event.retryable,
                retry_after_ms=event.retry_after_ms,
                partial_text=event.partial_text,
                incomplete_reason=event.incomplete_reason,
            )
        case _:
            assert_never(event)


def encode(event: AgentEvent, *, portfolio_id: str | None = None) -> bytes:
    """The frame of one agent event, ready to write (EventSourceResponse passes bytes through)."""
    run_id, seq = event.run_id, event.seq
    if isinstance(event, TextDelta):
        # The per-token frame, built inline (same shapes as payload()'s, checked by mypy): only
        # strings and ints, where orjson writes exactly what json.dumps(ensure_ascii=False)
        # writes, several times faster.
        token: Envelope = {
            "type": "token",
            "run_id": run_id,
            "seq": seq,
            "data": {"delta": event.delta},
            "timestamp": event.ts,
        }
        return sse_frame(orjson.dumps(token).decode(), event="token", id=f"{run_id}:{seq}", sep=SEP)
    name = EVENT_NAMES[event.type]
    envelope: Envelope = {
        "type": name,
        "run_id": run_id,
        "seq": seq,
        "data": payload(event, portfolio_id=portfolio_id),
        "timestamp": event.ts,
    }
    return sse_frame(_dumps(envelope), event=name, id=sse_id(run_id, seq), sep=SEP)
