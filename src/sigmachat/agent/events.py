"""Agent events: the one typed stream every engine produces and every consumer reads.

Engines (Responses, Agents SDK) translate provider streams into these events; protocol
encoders (legacy SSE, ChatKit), persistence and telemetry read only these. Every event
carries the run id, a gap-free per-run sequence number (1, 2, 3, ...) and a timestamp (ms).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, TypeGuard, TypeVar

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter


def now_ms() -> int:
    return int(time.time() * 1000)


class Usage(BaseModel):
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            cached_tokens=self.cached_tokens + other.cached_tokens,
            reasoning_tokens=self.reasoning_tokens + other.reasoning_tokens,
        )


class ToolCallRecord(BaseModel):
    """What a finished run remembers of one tool call (persisted with the assistant message)."""

    call_id: str
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    summary: str = ""
    ok: bool = True
    duration_ms: float = 0.0
    truncated: bool = False
    output: str = ""  # the (truncated) JSON text the model saw; replayed as history next turn


@dataclass(slots=True)
class HistoryTurn:
    """One earlier message of the conversation, as the model sees it next turn (engines replay it)."""

    role: Literal["user", "assistant"]
    text: str
    tool_calls: list[ToolCallRecord] = field(default_factory=list)


class _Event(BaseModel):
    model_config = ConfigDict(frozen=True)
    run_id: str
    seq: int = Field(ge=1)
    ts: int = Field(default_factory=now_ms)


class RunStarted(_Event):
    type: Literal["run_started"] = "run_started"
    conversation_id: str | None = None
    model: str
    engine: str  # responses | agents
    offline: bool = False  # answered by the built-in offline analyst model


class TextDelta(_Event):
    type: Literal["text_delta"] = "text_delta"
    delta: str


class ToolStarted(_Event):
    type: Literal["tool_started"] = "tool_started"
    call_id: str
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)


class ToolFinished(_Event):
    type: Literal["tool_finished"] = "tool_finished"
    call_id: str
    name: str
    envelope: dict[str, Any]
    duration_ms: float
    truncated: bool = False
    ok: bool = True
    summary: str = ""

    def record(self) -> ToolCallRecord:
        """What a finished run remembers of this call, when the run's end did not list it
        (the output the model saw is not on the event)."""
        return ToolCallRecord(
            call_id=self.call_id,
            name=self.name,
            summary=self.summary,
            ok=self.ok,
            duration_ms=self.duration_ms,
            truncated=self.truncated,
        )


class Info(_Event):
    type: Literal["info"] = "info"
    kind: Literal["retry_scheduled", "model_switch"]
    attempt: int | None = None
    delay_ms: int | None = None
    reason: str | None = None
    from_model: str | None = None
    to_model: str | None = None


class RunFinished(_Event):
    type: Literal["run_finished"] = "run_finished"
    final_text: str
    usage: Usage = Field(default_factory=Usage)
    ttfb_ms: float | None = None
    duration_ms: float
    tool_calls: list[ToolCallRecord] = Field(default_factory=list)
    model: str | None = None
    response_id: str | None = None
    attempts: int = 1  # model calls made, tool iterations and retries included
    retries: int = 0
    fallback_used: bool = False


class RunFailed(_Event):
    type: Literal["run_failed"] = "run_failed"
    code: str
    message: str
    retryable: bool
    retry_after_ms: int | None = None
    partial_text: str = ""
    usage: Usage = Field(default_factory=Usage)
    ttfb_ms: float | None = None
    duration_ms: float | None = None
    tool_calls: list[ToolCallRecord] = Field(default_factory=list)
    model: str | None = None
    attempts: int = 1
    retries: int = 0
    fallback_used: bool = False
    # Why the answer was cut (code response_incomplete): max_output_tokens, content_filter, ...
    incomplete_reason: str | None = None
    # The upstream's own error code and message, for logs and the runs table. Telemetry only:
    # the protocol encoders never put these on the wire (they may name internals or hosts).
    upstream_code: str | None = None
    upstream_message: str | None = None


AgentEvent = Annotated[
    RunStarted | TextDelta | ToolStarted | ToolFinished | Info | RunFinished | RunFailed,
    Field(discriminator="type"),
]
# mypy flags this union argument on a warm cache but not on a cold one (as in chatkit_server.py),
# so the ignore must not itself be reported as unused.
AGENT_EVENT_ADAPTER: TypeAdapter[AgentEvent] = TypeAdapter(AgentEvent)  # type: ignore[arg-type, unused-ignore]
TerminalEvent = RunFinished | RunFailed  # the last event of every run
TERMINAL_TYPES = frozenset({"run_finished", "run_failed"})

EventT = TypeVar("EventT", bound=_Event)


def is_terminal(event: AgentEvent) -> TypeGuard[TerminalEvent]:
    # A string compare, not isinstance over the union: it runs once per event on the token path.
    return event.type in TERMINAL_TYPES


class EventFactory:
    """Stamps events of one run with its id and the next sequence number (gap-free)."""

    def __init__(self, run_id: str, *, start_after: int = 0) -> None:
        self.run_id = run_id
        self._seq = start_after

    @property
    def last_seq(self) -> int:
        return self._seq

    def make(self, cls: type[EventT], **fields: object) -> EventT:
        """The next event of this run: ``make(TextDelta, delta="…")`` is a ``TextDelta``."""
        self._seq += 1
        return cls(run_id=self.run_id, seq=self._seq, **fields)
