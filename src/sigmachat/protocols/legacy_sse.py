"""Agent events → the original product's streaming chat protocol (server-sent events).

Frames: ``id: <run_id>:<seq>``, ``event: <name>``, ``data: {type, run_id, seq, data, timestamp}``.
``message_created`` is the one exception: its fields sit at the top level of ``data`` because
the original frontend reads ``data.assistant_message_id`` there. Framing is sse-starlette's,
with ``\n`` line endings (:data:`SEP`): the original client splits frames on ``"\n\n"`` and
would read nothing from sse-starlette's default ``\r\n``.
"""

from __future__ import annotations

import json
from typing import Any

import orjson
from sse_starlette import ServerSentEvent

from sigmachat.agent.events import (
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

EVENT_NAMES = {
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


def _dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, default=str)


def message_created(
    *, run_id: str, conversation_id: str, user_message_id: str, assistant_message_id: str
) -> ServerSentEvent:
    data = {
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
    data = {"type": "heartbeat", "run_id": run_id, "seq": last_seq, "data": {}, "timestamp": now_ms()}
    return ServerSentEvent(data=_dumps(data), event="heartbeat", sep=SEP)


def payload(event: Any, *, portfolio_id: str | None = None) -> dict[str, Any]:
    """The ``data`` object of the envelope for one agent event."""
    if isinstance(event, RunStarted):
        return {
            "conversation_id": event.conversation_id,
            "model": event.model,
            "engine": event.engine,
            "offline": event.offline,
            "portfolio_id": portfolio_id,
        }
    if isinstance(event, TextDelta):
        return {"delta": event.delta}
    if isinstance(event, ToolStarted):
        return {"tool_call_id": event.call_id, "tool_name": event.name, "tool_args": event.arguments}
    if isinstance(event, ToolFinished):
        return {
            "tool_call_id": event.call_id,
            "tool_name": event.name,
            "tool_result": event.envelope,
            "duration_ms": round(event.duration_ms, 1),
            "truncated": event.truncated,
            "ok": event.ok,
            "summary": event.summary,
        }
    if isinstance(event, Info):
        body = {"info_type": event.kind}
        body.update(
            {
                k: v
                for k, v in event.model_dump(exclude={"type", "run_id", "seq", "ts", "kind"}).items()
                if v is not None
            }
        )
        return body
    if isinstance(event, RunFinished):
        return {
            "final_text": event.final_text,
            "tool_calls_count": len(event.tool_calls),
            "latency_ms": round(event.duration_ms, 1),
            "first_token_ms": None if event.ttfb_ms is None else round(event.ttfb_ms, 1),
            "usage": {"input_tokens": event.usage.input_tokens, "output_tokens": event.usage.output_tokens},
            "model_used": event.model,
            "retry_stats": {"attempts": event.attempts, "retries": event.retries, "fallback_used": event.fallback_used},
        }
    if isinstance(event, RunFailed):
        k = kind(event.code)
        return {
            "error": event.message,
            "error_type": k.legacy_type,
            "code": event.code,
            "retryable": event.retryable,
            "retry_after_ms": event.retry_after_ms,
            "partial_text": event.partial_text,
            # Added for cut answers (code response_incomplete): why it was cut, e.g.
            # max_output_tokens. The upstream's own error code and message never go out.
            "incomplete_reason": event.incomplete_reason,
        }
    raise TypeError(f"not an agent event: {type(event).__name__}")


def encode(event: Any, *, portfolio_id: str | None = None) -> bytes:
    """The frame of one agent event, ready to write (EventSourceResponse passes bytes through)."""
    run_id, seq = event.run_id, event.seq
    if isinstance(event, TextDelta):
        # The per-token frame: only strings and ints, where orjson writes exactly what
        # json.dumps(ensure_ascii=False) writes, several times faster.
        envelope = {
            "type": "token",
            "run_id": run_id,
            "seq": seq,
            "data": {"delta": event.delta},
            "timestamp": event.ts,
        }
        return sse_frame(orjson.dumps(envelope).decode(), event="token", id=f"{run_id}:{seq}", sep=SEP)
    name = EVENT_NAMES[event.type]
    envelope = {
        "type": name,
        "run_id": run_id,
        "seq": seq,
        "data": payload(event, portfolio_id=portfolio_id),
        "timestamp": event.ts,
    }
    return sse_frame(_dumps(envelope), event=name, id=sse_id(run_id, seq), sep=SEP)
