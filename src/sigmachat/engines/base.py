"""What every engine takes and produces: a RunRequest in, agent events out."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from sigmachat.agent.events import AgentEvent, ToolCallRecord


@dataclass(slots=True)
class HistoryTurn:
    """One earlier message of the conversation, replayed to the model in full-input mode."""

    role: Literal["user", "assistant"]
    text: str
    tool_calls: list[ToolCallRecord] = field(default_factory=list)


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


class Engine(Protocol):
    """Turns a RunRequest into agent events: run_started first, one terminal event last."""

    name: str

    def stream(self, request: RunRequest) -> AsyncIterator[AgentEvent]: ...
