"""Exposure tools: the analytics overview, sector exposure and concentration."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from sigmachat.analytics.concentration import concentration
from sigmachat.analytics.exposure import Exposure, by_asset_class, by_sector, exposure_of
from sigmachat.analytics.quotes import daily_moves
from sigmachat.tools.caveats import caveats
from sigmachat.tools.formatting import ratio, short_pct, short_usd, usd
from sigmachat.tools.portfolio_data import PortfolioData
from sigmachat.tools.runtime import ToolRuntime
from sigmachat.tools.schema import PortfolioArgs
from sigmachat.tools.tool import Tool, ToolOutput

MARKET_VALUE_BASIS = "market value (quantity x close x multiplier; an option counts its premium)"
DELTA_BASIS = (
    "delta-adjusted (an option counts quantity x 100 x Black-Scholes delta x underlying price; a short put "
    "is long exposure)"
)


def _sides(e: Exposure, nav: float) -> dict[str, dict[str, float | None]]:
    def side(value: float) -> dict[str, float | None]:
        return {"value": usd(value), "pct_of_nav": ratio(value / nav) if nav else None}

    return {"long": side(e.long), "short": side(e.short), "gross": side(e.gross), "net": side(e.net)}


# --------------------------------------------------------------------------- get_analytics_overview


class OverviewArgs(PortfolioArgs):
    pass


def _overview(p: PortfolioData) -> dict[str, Any]:
    v = p.valuation
    book = p.book()
    nav = v.nav
    market_value = Exposure(long=v.long_value, short=v.short_value)
    delta = exposure_of(book["delta_exposure"])
    options = book[book["is_option"]]
    classes = by_asset_class(book)
    moves = daily_moves(book, p.market.closes)
    day_pnl = float(moves["pnl_impact"].sum()) if not moves.empty else None
    cost = float(np.abs(book["cost_basis"].astype(float)).sum())
    return {
        "portfolio": {"id": p.id, "name": p.portfolio.name},
        "nav": usd(nav),
        "cash": usd(v.cash),
        "cash_of_nav": ratio(v.cash / nav) if nav else None,
        "exposure": _sides(market_value, nav),
        "delta_adjusted_exposure": _sides(delta, nav),
        "leverage": ratio(market_value.gross / nav) if nav else None,
        "options": {
            "count": int(len(options)),
            "market_value": usd(options["market_value"].sum()),
            "underlying_notional": usd(options["notional"].sum(min_count=1)),
            "delta_adjusted_exposure": usd(options["delta_exposure"].sum(min_count=1)),
        },
        "unrealized_pnl": usd(v.unrealized_pnl),
        "unrealized_return_on_cost": ratio(v.unrealized_pnl / cost) if cost else None,
        "day_pnl": usd(day_pnl),
        "day_pnl_of_nav": ratio(day_pnl / nav) if nav and day_pnl is not None else None,
        "holding_count": int(len(book)),
        "position_count": int(book["lots"].sum()) if len(book) else 0,
        "long_count": int((book["market_value"] > 0).sum()),
        "short_count": int((book["market_value"] < 0).sum()),
        "counts_by_asset_class": {
            cls: {
                "holdings": int(r["holdings"]),
                "lots": int(r["lots"]),
                "market_value": usd(r["market_value"]),
                "delta_adjusted_exposure": usd(r["delta_exposure"]),
            }
            for cls, r in classes.iterrows()
        },  # fmt: skip
        "bases": {"exposure": MARKET_VALUE_BASIS, "delta_adjusted_exposure": DELTA_BASIS},
    }


async def get_analytics_overview(args: OverviewArgs, rt: ToolRuntime) -> ToolOutput:
    p = await rt.portfolio(args.portfolio_id)
    data = await rt.derive(p, _overview)
    return ToolOutput({**data, "caveats": await rt.derive(p, caveats)}, p.meta())


def _summarize_overview(data: dict) -> str:
    e = data["exposure"]
    return (
        f"NAV {short_usd(data['nav'])}, gross {short_pct(e['gross']['pct_of_nav'])}, net "
        f"{short_pct(e['net']['pct_of_nav'])} of NAV"
    )


# --------------------------------------------------------------------------- get_sector_exposure


class SectorArgs(PortfolioArgs):
    pass


def _sectors(p: PortfolioData) -> dict[str, Any]:
    nav = p.valuation.nav
    sectors = by_sector(p.book())
    rows = [
        {
            "sector": sector,
            "market_value": usd(r["market_value"]),
            "weight": ratio(r["market_value"] / nav) if nav else None,
            "long": usd(r["long"]),
            "short": usd(r["short"]),
            "gross": usd(r["gross"]),
            "delta_adjusted_net": usd(r["delta_exposure"]),
            "delta_adjusted_weight": ratio(r["delta_exposure"] / nav) if nav else None,
            "holdings": int(r["holdings"]),
            "top_symbols": list(r["symbols"][:5]),
        }
        for sector, r in sectors.iterrows()
    ]
    return {
        "nav": usd(nav),
        "cash": usd(p.valuation.cash),
        "cash_of_nav": ratio(p.valuation.cash / nav) if nav else None,
        "sectors": rows,
        "basis": "sectors from the SecurityMaster; options sit in their underlying's sector; weight = net market value "
        "/ NAV; delta_adjusted_net counts options by delta.",
    }


async def get_sector_exposure(args: SectorArgs, rt: ToolRuntime) -> ToolOutput:
    p = await rt.portfolio(args.portfolio_id)
    return ToolOutput(await rt.derive(p, _sectors), p.meta())


def _summarize_sectors(data: dict) -> str:
    if not data["sectors"]:
        return "no holdings"
    top = data["sectors"][0]
    return f"{len(data['sectors'])} sectors, largest {top['sector']} {short_pct(top['weight'])} of NAV"


# --------------------------------------------------------------------------- get_concentration_metrics


class ConcentrationArgs(PortfolioArgs):
    pass


def _concentration_block(values: pd.Series, nav: float, label: str) -> dict[str, Any]:
    c = concentration(values)
    return {
        "hhi": ratio(c.hhi),
        "effective_n": ratio(c.effective_n, 2),
        "count": c.count,
        **{f"top{n}_weight": ratio(w) for n, w in c.top_weights.items()},
        "largest": [
            {
                label: name,
                "share_of_gross": ratio(share),
                "market_value": usd(values[name]),
                "weight": ratio(values[name] / nav) if nav else None,
            }
            for name, share in c.largest
        ],
    }


def _concentration(p: PortfolioData) -> dict[str, Any]:
    book = p.book()
    nav = p.valuation.nav
    by_symbol = book["market_value"].astype(float)
    # By sector: the gross (long + |short|) market value in each sector.
    sector_gross = book.assign(gross=by_symbol.abs()).groupby("sector")["gross"].sum()
    sector = _concentration_block(sector_gross, nav, "sector")
    sector["top_sector"] = sector["largest"][0] if sector["largest"] else None
    return {
        "basis": "weights are shares of gross exposure, |market value| / sum of |market value| (shorts count by size); "
        "lots are aggregated by symbol; HHI = sum of squared weights; effective_n = 1 / HHI.",
        "by_symbol": _concentration_block(by_symbol, nav, "symbol"),
        "by_sector": sector,
    }


async def get_concentration_metrics(args: ConcentrationArgs, rt: ToolRuntime) -> ToolOutput:
    p = await rt.portfolio(args.portfolio_id)
    return ToolOutput(await rt.derive(p, _concentration), p.meta())


def _summarize_concentration(data: dict) -> str:
    s = data["by_symbol"]
    return f"HHI {s['hhi']}, effective N {s['effective_n']}, top 5 {short_pct(s['top5_weight'])} of gross"


TOOLS = (
    Tool(
        "get_analytics_overview",
        "Exposure overview: NAV, cash, long / short / gross / net exposure in dollars and as a share of NAV (by market "
        "value and delta-adjusted for options), leverage, unrealised and day P&L, and counts by asset class.",
        OverviewArgs,
        get_analytics_overview,
        _summarize_overview,
        title="Computing portfolio analytics",
    ),
    Tool(
        "get_sector_exposure",
        "Exposure by sector (options in their underlying's sector): net market value, weight of NAV, long, short, "
        "gross and delta-adjusted net exposure, with each sector's largest holdings.",
        SectorArgs,
        get_sector_exposure,
        _summarize_sectors,
        title="Breaking down sectors",
    ),
    Tool(
        "get_concentration_metrics",
        "Concentration: Herfindahl index (HHI), effective number of positions and the weight of the top 1 / 5 / 10, by "
        "symbol (lots aggregated) and by sector.",
        ConcentrationArgs,
        get_concentration_metrics,
        _summarize_concentration,
        title="Checking concentration",
    ),
)
