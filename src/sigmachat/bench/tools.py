"""The tool benchmark: every tool's latency on a demo portfolio, cold and warm.

Timings belong here, not in tests. ``sigmachat tools bench`` prints the table; a later
``sigmachat bench`` reuses :func:`run_tool_benchmark`. The target is every tool under
100 ms warm on the largest demo portfolio.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, or_, select

from sigmachat.db.models import Portfolio, Position, User

if TYPE_CHECKING:
    from sigmachat.services import Services
    from sigmachat.tools.registry import ToolRegistry

WARM_TARGET_MS = 100.0


@dataclass(frozen=True, slots=True)
class ToolTiming:
    tool: str
    cold_ms: float  # first call after clearing every cache (prices loaded from the database)
    median_ms: float  # warm
    p95_ms: float
    min_ms: float
    max_ms: float
    runs: int
    ok: bool
    truncated: bool
    chars: int  # length of the text the model receives
    summary: str

    @property
    def within_target(self) -> bool:
        return self.median_ms < WARM_TARGET_MS


@dataclass(frozen=True, slots=True)
class ToolBenchmark:
    portfolio_id: str
    portfolio_name: str
    user_email: str
    lots: int
    runs: int
    timings: list[ToolTiming] = field(default_factory=list)

    @property
    def all_within_target(self) -> bool:
        return all(t.within_target and t.ok for t in self.timings)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["target_ms"] = WARM_TARGET_MS
        out["all_within_target"] = self.all_within_target
        return out


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    idx = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[idx]


async def _largest_portfolio(
    services: Services, user_email: str | None, portfolio_id: str | None
) -> tuple[str, str, str, str, int]:
    """(portfolio id, name, owner id, owner email, open lots): the given one, else the one with most lots."""
    async with services.db.session() as session:
        stmt = (
            select(Portfolio.id, Portfolio.name, User.id, User.email, func.count(Position.id))
            .join(User, User.id == Portfolio.owner_id)
            .join(Position, Position.portfolio_id == Portfolio.id, isouter=True)
            .where(or_(Position.exit_date.is_(None), Position.exit_date > services.settings.as_of_date))
            .group_by(Portfolio.id, Portfolio.name, User.id, User.email)
        )
        if user_email:
            stmt = stmt.where(User.email == user_email.lower())
        if portfolio_id:
            stmt = stmt.where(Portfolio.id == portfolio_id)
        rows = (await session.execute(stmt)).all()
    if not rows:
        raise LookupError("no matching portfolio with open positions (is the database seeded?)")
    pid, name, owner_id, email, lots = max(rows, key=lambda r: (r[4], r[1]))
    return pid, name, owner_id, email, int(lots)


def _sample_arguments(tool: str, symbols: list[str]) -> dict[str, Any]:
    if tool == "get_current_quotes":
        return {"symbols": symbols[:5] or ["SPY"]}
    if tool == "get_company_profile":
        return {"symbol": symbols[0] if symbols else "SPY"}
    return {}


async def run_tool_benchmark(
    services: Services,
    *,
    runs: int = 20,
    user_email: str | None = None,
    portfolio_id: str | None = None,
    tools: Sequence[str] | None = None,
    registry: ToolRegistry | None = None,
) -> ToolBenchmark:
    """Time every tool (or ``tools``) on the largest portfolio (or the one given).

    Per tool: one cold call after clearing the registry's caches, one warm-up call, then
    ``runs`` timed warm calls. Arguments: the defaults, with the conversation's portfolio
    injected, and the largest holdings' symbols for the symbol tools.
    """
    from sigmachat.tools.registry import ToolContext, build_registry

    registry = registry or build_registry(services.settings)
    pid, name, owner_id, email, lots = await _largest_portfolio(services, user_email, portfolio_id)
    ctx = ToolContext(
        user_id=owner_id, portfolio_id=pid, session_factory=services.db.session, settings=services.settings
    )
    holdings = await registry.call("get_portfolio_complete", {}, ctx)
    symbols = [
        h["symbol"]
        for h in (holdings.envelope.get("data") or {}).get("holdings", [])
        if h.get("asset_class") == "PUBLIC"
    ]
    timings = []
    for tool in tools or registry.read_only_names:
        args = _sample_arguments(tool, symbols)
        registry.clear_caches()
        started = time.perf_counter()
        result = await registry.call(tool, args, ctx)
        cold = (time.perf_counter() - started) * 1000
        await registry.call(tool, args, ctx)
        samples = []
        for _ in range(max(runs, 1)):
            started = time.perf_counter()
            result = await registry.call(tool, args, ctx)
            samples.append((time.perf_counter() - started) * 1000)
        timings.append(
            ToolTiming(
                tool=tool,
                cold_ms=round(cold, 2),
                median_ms=round(statistics.median(samples), 2),
                p95_ms=round(_percentile(samples, 0.95), 2),
                min_ms=round(min(samples), 2),
                max_ms=round(max(samples), 2),
                runs=len(samples),
                ok=result.ok,
                truncated=result.truncated,
                chars=len(result.model_text),
                summary=result.summary,
            )
        )
    return ToolBenchmark(pid, name, email, lots, runs, timings)
