"""get_benchmark_comparison: the portfolio's sector weights against the S&P 500 (SPY), funds looked through."""

from __future__ import annotations

from typing import Any

from sigmachat.analytics.benchmark import (
    compare_to_benchmark,
    load_fund_weights,
    look_through,
)
from sigmachat.tools.formatting import ratio, short_pct, usd
from sigmachat.tools.portfolio_data import PortfolioData
from sigmachat.tools.runtime import ToolRuntime
from sigmachat.tools.schema import PortfolioArgs
from sigmachat.tools.tool import Tool, ToolOutput


class BenchmarkArgs(PortfolioArgs):
    pass


def _comparison(p: PortfolioData) -> dict[str, Any]:
    weights = load_fund_weights()
    nav = p.valuation.nav
    lt = look_through(p.book(), p.master, nav, weights)
    rows = compare_to_benchmark(lt, weights)
    return {
        "portfolio": {"id": p.id, "name": p.portfolio.name},
        "benchmark": {
            "symbol": weights.benchmark,
            "name": "S&P 500",
            "weights_as_of": weights.as_of,
            "weights_source": weights.source,
            "approximate": True,
        },
        "nav": usd(nav),
        "equity_value": usd(lt.equity_value),
        "equity_of_nav": ratio(lt.equity_value / nav) if nav else None,
        "sectors": [
            {
                "sector": r["sector"],
                "portfolio_weight": ratio(r["portfolio_weight"]),
                "portfolio_weight_of_nav": ratio(r["portfolio_weight_of_nav"]),
                "benchmark_weight": ratio(r["benchmark_weight"]),
                "active_weight": ratio(r["active_weight"]),
                "portfolio_value": usd(r["portfolio_value"]),
                "through_funds_value": usd(r["through_funds_value"]),
            }
            for r in rows
        ],
        "looked_through": [{**f, "market_value": usd(f["market_value"])} for f in lt.looked_through],
        "not_compared": [{**f, "market_value": usd(f["market_value"])} for f in lt.not_compared],
        "basis": "portfolio_weight = sector's net market value / the portfolio's equity holdings (stocks, options at "
        "market value, and equity funds looked through by their approximate sector weights); portfolio_weight_of_nav "
        "divides by NAV instead; active_weight = portfolio_weight - benchmark_weight. Bonds, cash, commodities and "
        "private holdings are listed in not_compared.",
    }


async def get_benchmark_comparison(args: BenchmarkArgs, rt: ToolRuntime) -> ToolOutput:
    p = await rt.portfolio(args.portfolio_id)
    return ToolOutput(await rt.derive(p, _comparison), p.meta())


def _summarize(data: dict) -> str:
    top = max(data["sectors"], key=lambda r: abs(r["active_weight"] or 0.0), default=None)
    if top is None or top["active_weight"] is None:
        return "no equity holdings to compare"
    return f"largest active weight {top['sector']} {short_pct(top['active_weight'], signed=True)} vs S&P 500"


TOOLS = (
    Tool(
        "get_benchmark_comparison",
        "The portfolio's sector weights against the S&P 500 (SPY): each GICS sector's share of the portfolio's equity "
        "holdings (and of NAV), the benchmark's weight and the difference (active weight). Equity funds and ETFs the "
        "user holds are looked through using approximate, dated constituent sector weights; bonds, cash, commodities "
        "and private holdings are listed as not compared.",
        BenchmarkArgs,
        get_benchmark_comparison,
        _summarize,
        title="Comparing with the S&P 500",
    ),
)
