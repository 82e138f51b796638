"""The tool registry both chat engines call: one set of tools, one envelope, never raises.

API (what the engines use)::

    registry = build_registry(settings)
    registry.specs() -> list[ToolSpec]            # name, description, strict parameters, portfolio_scoped
    registry.openai_tools() -> list[dict]         # Responses API function tools, strict=True
    await registry.call(name, arguments, ctx) -> ToolResult

``arguments`` is the model's JSON text or a dict. ``ctx`` is a :class:`ToolContext`. The
result's ``envelope`` is the full ``{"meta", "data", "error"}`` (for UIs and logs);
``model_text`` is what goes back to the model: the envelope as JSON, fitted to the
character budget by dropping tail list items (``meta.truncated`` and
``meta.truncation`` say what was dropped), always valid JSON.

Errors never raise: an unknown tool, arguments that are not a JSON object or break the
schema are ``validation_error``; a portfolio that is not the caller's is ``not_found``
(identical to an unknown id); a tool over ``settings.tool_timeout_s`` or a database
failure is a retryable ``execution_error``; a bug is a non-retryable ``execution_error``
(logged, no internals in the message). Cancellation (the run was cancelled) propagates.

Units of every result: see :mod:`sigmachat.tools.formatting`.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from sigmachat.logging import get_logger
from sigmachat.market.security_master import SecurityMaster, load_security_master
from sigmachat.settings import Settings
from sigmachat.tools.envelope import ToolError, ToolValidationError, fit_to_budget, make_envelope
from sigmachat.tools.formatting import jsonable
from sigmachat.tools.market_data import MarketDataCache
from sigmachat.tools.portfolio_data import PortfolioDataLoader
from sigmachat.tools.runtime import ToolContext, ToolRuntime
from sigmachat.tools.schema import parse_arguments, validate_arguments
from sigmachat.tools.tool import Tool, ToolSpec

log = get_logger("sigmachat.tools")

__all__ = ["ToolContext", "ToolRegistry", "ToolResult", "ToolSpec", "build_registry", "tool_title"]


@dataclass(frozen=True, slots=True)
class ToolResult:
    """One call's outcome. ``envelope`` is complete; ``model_text`` is what the model reads."""

    name: str
    envelope: dict[str, Any]
    model_text: str
    truncated: bool
    duration_ms: float
    ok: bool
    summary: str  # one line for UIs: "NAV $2.86M, 30 holdings"

    @property
    def error(self) -> dict[str, Any] | None:
        return self.envelope.get("error")


class ToolRegistry:
    """Holds the tools and the process's data caches (one registry per process)."""

    def __init__(self, settings: Settings, tools: Iterable[Tool], *, master: SecurityMaster | None = None) -> None:
        self.settings = settings
        self.master = master or load_security_master()
        self._tools: dict[str, Tool] = {}
        for tool in tools:
            if tool.name in self._tools:
                raise ValueError(f"duplicate tool {tool.name}")
            self._tools[tool.name] = tool
        self._specs = [t.spec() for t in self._tools.values()]
        self.market = MarketDataCache()
        self.portfolios = PortfolioDataLoader(self.market, self.master)

    @property
    def names(self) -> list[str]:
        return list(self._tools)

    @property
    def read_only_names(self) -> list[str]:
        """Tools without side effects (the analytics); safe to call for measurements."""
        return [name for name, tool in self._tools.items() if tool.read_only]

    def specs(self) -> list[ToolSpec]:
        return list(self._specs)

    def openai_tools(self) -> list[dict[str, Any]]:
        return [s.openai_tool() for s in self._specs]

    def clear_caches(self) -> None:
        """Forget cached prices and portfolios (the benchmark measures cold calls with it)."""
        self.portfolios.clear()

    def _max_chars(self, tool: Tool | None, settings: Settings) -> int:
        if tool is not None and tool.portfolio_scoped:
            return settings.tool_max_chars_portfolio
        return settings.tool_max_chars_default

    async def call(self, name: str, arguments: dict[str, Any] | str | None, ctx: ToolContext) -> ToolResult:
        started = time.perf_counter()
        settings = ctx.settings or self.settings
        tool = self._tools.get(name)
        max_chars = self._max_chars(tool, settings)
        meta: dict[str, Any] = {
            "tool": name,
            "requested": None,
            "applied": None,
            "as_of": settings.as_of_date.isoformat(),
            "truncated": False,
            "limits": {
                "max_chars": max_chars,
                "timeout_s": settings.tool_timeout_s,
                **(dict(tool.limits) if tool else {}),
            },
        }
        data: Any = None
        error: dict[str, Any] | None = None
        try:
            if tool is None:
                raise ToolValidationError(f"Unknown tool {name!r}. Available tools: {', '.join(self._tools)}.")
            requested = parse_arguments(arguments)
            meta["requested"] = jsonable(requested)
            effective = dict(requested)
            if tool.portfolio_scoped and not effective.get("portfolio_id") and ctx.portfolio_id:
                effective["portfolio_id"] = ctx.portfolio_id
            params = validate_arguments(tool.args, effective)
            if tool.portfolio_scoped and not getattr(params, "portfolio_id", None):
                raise ToolValidationError(
                    "portfolio_id: required, and this conversation has no portfolio selected. "
                    "Call list_user_portfolios and pass one of its ids."
                )
            meta["applied"] = params.model_dump(mode="json")
            runtime = ToolRuntime(ctx, self.portfolios, self.market, self.master)
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for returns a result that lands in
            # the same loop turn as a cancel and drops the cancel (gh-86296): a user's stop lost.
            # Inline, the handler also runs without a task of its own.
            async with asyncio.timeout(settings.tool_timeout_s):
                output = await tool.handler(params, runtime)
            data = jsonable(output.data)
            meta["applied"].update(jsonable(dict(output.applied)))
            meta.update(jsonable(dict(output.meta)))
        except ToolError as exc:
            error = exc.as_dict()
        except TimeoutError:
            error = {
                "type": "execution_error",
                "message": f"{name} took longer than {settings.tool_timeout_s:g}s and was stopped; try again.",
                "retryable": True,
            }
        except SQLAlchemyError:
            log.warning("tool_database_error", tool=name, exc_info=True)
            error = {
                "type": "execution_error",
                "message": "The database was unavailable; try again.",
                "retryable": True,
            }
        except Exception:  # a tool bug must not take the run down: report it, keep going
            log.exception("tool_failed", tool=name)
            error = {"type": "execution_error", "message": f"{name} failed unexpectedly.", "retryable": False}
        meta["duration_ms"] = round((time.perf_counter() - started) * 1000, 2)
        envelope = make_envelope(meta, None if error else data, error)
        fitted = fit_to_budget(envelope, max_chars)
        duration = (time.perf_counter() - started) * 1000
        summary = _error_summary(error) if error else _summary(tool, data)
        truncated = bool(meta.get("truncated")) or fitted.truncated
        log.info(
            "tool_call", tool=name, ok=error is None, ms=round(duration, 1), truncated=truncated, chars=len(fitted.text)
        )
        return ToolResult(name, envelope, fitted.text, truncated, duration, error is None, summary)


def _summary(tool: Tool | None, data: Any) -> str:
    if tool is None:
        return "ok"
    try:
        return tool.summarize(data)
    except Exception:  # a summary is decoration; never let it fail the call
        log.warning("tool_summary_failed", tool=tool.name, exc_info=True)
        return "ok"


def _error_summary(error: dict[str, Any]) -> str:
    message = str(error.get("message", ""))
    return f"{error.get('type', 'error')}: {message if len(message) <= 100 else message[:97] + '...'}"


# The contract's order (the list), which is the order the model sees.
TOOL_ORDER = (
    "list_user_portfolios", "get_portfolio_complete", "get_positions_details", "get_portfolio_data_quality",
    "get_prices_historical", "get_current_quotes", "get_factor_etf_prices", "get_analytics_overview",
    "get_factor_exposures", "get_sector_exposure", "get_correlation_matrix", "get_stress_test_results",
    "get_concentration_metrics", "get_volatility_analysis", "get_company_profile", "get_daily_movers",
    "get_market_overview", "get_benchmark_comparison", "remember",
)  # fmt: skip


def all_tools() -> list[Tool]:
    """Every tool, in contract order (one module per family)."""
    from sigmachat.tools import benchmark, exposure, market, memory, portfolio, risk

    tools = [*portfolio.TOOLS, *exposure.TOOLS, *risk.TOOLS, *market.TOOLS, *benchmark.TOOLS, *memory.TOOLS]
    rank = {name: i for i, name in enumerate(TOOL_ORDER)}
    return sorted(tools, key=lambda t: rank.get(t.name, len(rank)))


@functools.cache
def _titles() -> dict[str, str]:
    return {tool.name: tool.title for tool in all_tools() if tool.title}


def tool_title(name: str | None) -> str:
    """The title people see for a tool step (the tool's own ``title``; a readable guess otherwise)."""
    if name and name in _titles():
        return _titles()[name]
    words = (name or "").removeprefix("get_").replace("_", " ").strip()
    return f"Looking up {words}" if words else "Running an analysis step"


def build_registry(settings: Settings) -> ToolRegistry:
    """The registry of every tool, with fresh caches (one per process)."""
    return ToolRegistry(settings, all_tools())
