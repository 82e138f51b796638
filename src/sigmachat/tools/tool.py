"""A tool: its contract (name, description, argument model) and the handler behind it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sigmachat.tools.runtime import ToolRuntime
from sigmachat.tools.schema import PortfolioArgs, ToolArgs, strict_parameters


@dataclass(frozen=True, slots=True)
class ToolOutput:
    """What a handler returns: ``data`` (rounded, JSON-ready), extra ``meta`` (as_of,
    price_source, row caps...) and ``applied`` argument values decided while running
    (caps, resolved lists) that the registry merges into ``meta.applied``."""

    data: Any
    meta: Mapping[str, Any] = field(default_factory=dict)
    applied: Mapping[str, Any] = field(default_factory=dict)


Handler = Callable[[Any, ToolRuntime], Awaitable[ToolOutput]]
Summarizer = Callable[[Any], str]


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """The contract the model sees. ``parameters`` is strict-mode JSON Schema."""

    name: str
    description: str
    parameters: dict[str, Any]
    portfolio_scoped: bool

    def openai_tool(self) -> dict[str, Any]:
        """The Responses API function-tool format."""
        return {"type": "function", "name": self.name, "description": self.description, "parameters": self.parameters, "strict": True}

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "parameters": self.parameters, "portfolio_scoped": self.portfolio_scoped}


@dataclass(frozen=True, slots=True)
class Tool:
    name: str
    description: str
    args: type[ToolArgs]
    handler: Handler
    summarize: Summarizer
    limits: Mapping[str, Any] = field(default_factory=dict)  # reported in meta.limits
    read_only: bool = True  # False for tools that write (remember): benchmarks and shadows skip them

    @property
    def portfolio_scoped(self) -> bool:
        return issubclass(self.args, PortfolioArgs)

    def spec(self) -> ToolSpec:
        return ToolSpec(self.name, self.description, strict_parameters(self.args), self.portfolio_scoped)
