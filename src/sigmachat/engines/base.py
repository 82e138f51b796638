"""What every engine takes and produces: a RunRequest in, agent events out."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from sigmachat.agent.events import AgentEvent, HistoryTurn, ToolCallRecord
from sigmachat.engines.model_client import ModelClient
from sigmachat.engines.upstream_policy import UpstreamPolicy
from sigmachat.logging import get_logger
from sigmachat.settings import Settings
from sigmachat.tools.registry import ToolResult
from sigmachat.tools.runtime import SessionFactory, ToolContext

log = get_logger("sigmachat.engines")


@dataclass(slots=True)
class RunRequest:
    run_id: str
    user_id: str
    user_text: str
    conversation_id: str | None = None
    portfolio_id: str | None = None
    history: list[HistoryTurn] = field(default_factory=list)
    model: str | None = None  # an allowed override; else the settings default
    ui_context: dict[str, Any] | None = None
    # Fault scenario for the simulator upstream (tests, benchmarks, UI fault demos).
    sim_scenario: str | None = None
    mode: str | None = None  # the conversation's analyst style (agent/instructions.py MODES)
    memories: list[str] = field(default_factory=list)  # the user's saved memories, newest first


class ToolCaller(Protocol):
    """What an engine needs of the tool registry (``tools.registry.ToolRegistry``)."""

    def openai_tools(self) -> list[dict[str, Any]]: ...

    async def call(self, name: str, arguments: dict[str, Any] | str | None, ctx: ToolContext) -> ToolResult: ...


Sleep = Callable[[float], Awaitable[None]]


class ModelEngine:
    """What both model engines share: the model client, the registry, and the upstream policy."""

    name = "engine"

    def __init__(
        self,
        model_client: ModelClient,
        registry: ToolCaller,
        settings: Settings,
        session_factory: SessionFactory,
        *,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.mc = model_client
        self.registry = registry
        self.settings = settings
        self.session_factory = session_factory
        self.sleep = sleep  # injectable so tests need not wait for real backoff
        self.policy = UpstreamPolicy(settings, model_client.fallback_model)

    def tool_context(self, request: RunRequest) -> ToolContext:
        """What this run's tool calls run with: the conversation's user and portfolio."""
        return ToolContext(
            user_id=request.user_id,
            portfolio_id=request.portfolio_id,
            session_factory=self.session_factory,
            settings=self.settings,
        )


def parse_tool_arguments(arguments: str) -> dict[str, Any]:
    """A model's tool-call arguments as a dict for events and records; bad JSON is kept raw."""
    try:
        value = json.loads(arguments or "{}")
    except ValueError:
        return {"_raw": arguments}
    return value if isinstance(value, dict) else {"_value": value}


def tool_outcome(call_id: str, name: str, arguments: str, result: ToolResult) -> tuple[ToolCallRecord, dict[str, Any]]:
    """What one finished tool call becomes: the run's record, and the tool_finished event fields."""
    record = ToolCallRecord(
        call_id=call_id,
        name=name,
        arguments=parse_tool_arguments(arguments),
        summary=result.summary,
        ok=result.ok,
        duration_ms=result.duration_ms,
        truncated=result.truncated,
        output=result.model_text,
    )
    finished = {
        "call_id": call_id,
        "name": name,
        "envelope": result.envelope,
        "duration_ms": result.duration_ms,
        "truncated": result.truncated,
        "ok": result.ok,
        "summary": result.summary,
    }
    return record, finished


class OutputBudget:
    """The server-side bound of one model call's output, for upstreams that ignore
    ``max_output_tokens``.

    Streams carry no token counts until their end, so output is estimated as it arrives: each
    text delta counts one token per four characters and at least one (servers stream about a
    token per delta, and OpenAI's rule of thumb is four characters a token); tool-call
    arguments count the same way. A delta that would go over the bound is not shown: the
    answer stops at the bound, never past it. An upstream that honours the bound itself ends
    the turn with ``incomplete`` (max_output_tokens) before this estimate gets there, usually.
    """

    __slots__ = ("limit", "used")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    @staticmethod
    def cost(text: str) -> int:
        return max(1, len(text) // 4) if text else 0

    def admit(self, text: str) -> bool:
        """Count ``text`` if it fits the bound; False (and nothing counted) if it would not."""
        cost = self.cost(text)
        if self.used + cost > self.limit:
            return False
        self.used += cost
        return True

    def admit_below_limit(self, text: str) -> bool:
        """Count ``text`` if the bound is still not reached after it; False (nothing counted)
        if it would reach or pass the bound (then ``admit`` and ``exhausted`` decide)."""
        return self.used + self.cost(text) < self.limit and self.admit(text)

    @property
    def exhausted(self) -> bool:
        return self.used >= self.limit


async def aclose_quietly(stream: object) -> None:
    """Close an async stream (async generator or SDK stream); a failure to close a broken
    stream must never mask the outcome the caller is already reporting."""
    close = getattr(stream, "aclose", None) or getattr(stream, "close", None)
    if close is None:
        return
    try:
        await close()
    except Exception:
        log.debug("stream_close_failed", stream=type(stream).__name__)


class Engine(Protocol):
    """Turns a RunRequest into agent events: run_started first, one terminal event last."""

    name: str

    def stream(self, request: RunRequest) -> AsyncIterator[AgentEvent]: ...
