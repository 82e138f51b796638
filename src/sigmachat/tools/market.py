"""Market tools: price history, quotes, factor ETFs, company profiles and the market overview."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pandas as pd
from pydantic import Field, field_validator

from sigmachat.analytics.history import downsample, summarise, window_closes
from sigmachat.analytics.quotes import QuoteStats, quote_stats
from sigmachat.analytics.regression import betas_to
from sigmachat.analytics.returns import TRADING_DAYS, annualised_volatility, trailing
from sigmachat.market.security_master import OPTION_SYMBOL, SecurityMaster
from sigmachat.tools.envelope import ToolNotFound, ToolValidationError
from sigmachat.tools.formatting import iso, pct_points, price, ratio
from sigmachat.tools.market_data import MarketView
from sigmachat.tools.portfolio_data import PortfolioData
from sigmachat.tools.runtime import ToolRuntime
from sigmachat.tools.schema import PortfolioArgs, ToolArgs
from sigmachat.tools.tool import Tool, ToolOutput

MAX_LOOKBACK = 180
MAX_QUOTES = 5
SYMBOL_PATTERN = r"^[A-Za-z0-9.\-_^]{1,40}$"
# Roughly how many numbers a price-history answer carries before it is down-sampled, so
# it fits the model's budget without truncation (about 9 characters per close).
HISTORY_NUMBERS = 800
INDEX_ETFS = ("SPY", "QQQ", "DIA")
VOLATILITY_PROXY = "VIX"


def _history(view: MarketView, symbols: list[str], days: int, master: SecurityMaster) -> dict[str, Any]:
    """Summaries per symbol and the (possibly down-sampled) closes, oldest first."""
    cols = [s for s in symbols if view.has(s)]
    closes = window_closes(view.closes[cols], days).dropna(how="all")
    summaries = summarise(closes)
    points_budget = max(10, HISTORY_NUMBERS // max(len(cols), 1))
    sampled, step = downsample(closes, points_budget)
    return {
        "lookback_days": days,
        "start": iso(closes.index[0]) if len(closes) else None,
        "end": iso(closes.index[-1]) if len(closes) else None,
        "step_days": step,
        "symbols": [
            {
                "symbol": s.symbol,
                "first_close": price(s.first_close),
                "last_close": price(s.last_close),
                "return": ratio(s.total_return),
                "high": price(s.high),
                "low": price(s.low),
                "volatility": ratio(s.volatility),
                "source": view.price_source([s.symbol]),
            }
            for s in summaries
        ],
        "missing_symbols": [s for s in symbols if not view.has(s)],
        "dates": [iso(d) for d in sampled.index],
        "series": {s: [price(x) for x in sampled[s]] for s in cols},
        "notes": [
            "return and volatility (annualised) use every daily close in the window; series holds every "
            f"{step}th trading day's close counted back from the last (step_days)." if step > 1 else
            "return and volatility (annualised) are over the window's daily closes."
        ],
    }  # fmt: skip


# --------------------------------------------------------------------------- get_prices_historical


class HistoricalArgs(PortfolioArgs):
    lookback_days: int = Field(30, ge=1, le=MAX_LOOKBACK, description=f"Trading days of history, 1 to {MAX_LOOKBACK}.")
    include_factor_etfs: bool = Field(
        False, description="Also include the factor ETFs (SPY, VTV, VUG, MTUM, QUAL, SLY, USMV)."
    )


def _holdings_history(p: PortfolioData, args: HistoricalArgs) -> dict[str, Any]:
    symbols = list(p.book().index)
    if args.include_factor_etfs:
        symbols += [e for e in p.master.factor_etfs.values() if e not in symbols]
    return _history(p.market, symbols, args.lookback_days, p.master)


async def get_prices_historical(args: HistoricalArgs, rt: ToolRuntime) -> ToolOutput:
    p = await rt.portfolio(args.portfolio_id)
    return ToolOutput(await rt.derive(p, _holdings_history, args), p.meta())


def _summarize_history(data: dict) -> str:
    return f"{len(data['symbols'])} series, {data['lookback_days']} days ({data['start']} to {data['end']})"


# --------------------------------------------------------------------------- get_factor_etf_prices


class FactorEtfArgs(ToolArgs):
    lookback_days: int = Field(30, ge=1, le=MAX_LOOKBACK, description=f"Trading days of history, 1 to {MAX_LOOKBACK}.")
    factors: list[str] | None = Field(
        None,
        min_length=1,
        max_length=7,
        description="Factor names (Market, Value, Growth, Momentum, Quality, Size, Low Volatility) or their ETF "
        "symbols; null for all.",
    )


def _resolve_factors(master: SecurityMaster, wanted: list[str] | None) -> dict[str, str]:
    table = master.factor_etfs
    if wanted is None:
        return dict(table)
    lookup = {k.lower(): k for k in table} | {v.lower(): k for k, v in table.items()}
    lookup |= {k.lower().replace(" ", "_"): k for k in table}
    out, unknown = {}, []
    for w in wanted:
        key = lookup.get(w.strip().lower())
        if key is None:
            unknown.append(w)
        else:
            out[key] = table[key]
    if unknown:
        allowed = ", ".join(f"{k} ({v})" for k, v in table.items())
        raise ToolValidationError(f"factors: unknown {', '.join(map(repr, unknown))}; allowed: {allowed}.")
    return out


async def get_factor_etf_prices(args: FactorEtfArgs, rt: ToolRuntime) -> ToolOutput:
    factors = _resolve_factors(rt.master, args.factors)
    view = await rt.market(set(factors.values()))
    data = await rt.compute(_history, view, list(factors.values()), args.lookback_days, rt.master)
    by_etf = {v: k for k, v in factors.items()}
    for row in data["symbols"]:
        row["factor"] = by_etf.get(row["symbol"])
    meta = {"price_source": view.price_source()}
    return ToolOutput(data, meta, {"factors": list(factors)})


# --------------------------------------------------------------------------- get_current_quotes


def _normalise_symbol(value: str) -> str:
    symbol = value.strip().upper()
    if not re.match(SYMBOL_PATTERN, symbol):
        raise ValueError(f"not a ticker symbol: {value!r}")
    return symbol


class QuotesArgs(ToolArgs):
    symbols: list[str] = Field(
        ..., min_length=1, max_length=MAX_QUOTES, description=f"Ticker symbols, 1 to {MAX_QUOTES}."
    )

    @field_validator("symbols")
    @classmethod
    def _symbols(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(_normalise_symbol(v) for v in value))


def _quote_row(q: QuoteStats, master: SecurityMaster, view: MarketView) -> dict[str, Any]:
    sec = master.get(q.symbol)
    return {
        "symbol": q.symbol,
        "name": sec.name if sec else q.symbol,
        "date": iso(q.date),
        "close": price(q.close),
        "previous_close": price(q.previous_close),
        "change": price(q.change),
        "change_pct": pct_points(q.change_pct),
        "low_52w": price(q.low_52w),
        "high_52w": price(q.high_52w),
        "source": view.price_source([q.symbol]),
    }


async def get_current_quotes(args: QuotesArgs, rt: ToolRuntime) -> ToolOutput:
    view = await rt.market(set(args.symbols))
    stats = await rt.compute(quote_stats, view.closes, args.symbols)
    if not stats:
        raise ToolNotFound(f"No prices for {', '.join(args.symbols)}.")
    rows = [
        _quote_row(stats[s], rt.master, view) if s in stats else {"symbol": s, "error": "no price data for this symbol"}
        for s in args.symbols
    ]
    return ToolOutput({"quotes": rows}, {"price_source": view.price_source()})


def _summarize_quotes(data: dict) -> str:
    parts = []
    for q in data["quotes"]:
        if q.get("close") is None:
            parts.append(f"{q['symbol']} n/a")
        else:
            chg = q.get("change_pct")
            parts.append(f"{q['symbol']} ${q['close']:,.2f}" + (f" ({chg:+.1f}%)" if chg is not None else ""))
    return ", ".join(parts)


# --------------------------------------------------------------------------- get_company_profile


class ProfileArgs(ToolArgs):
    symbol: str = Field(..., description="Ticker symbol, e.g. AAPL.")

    @field_validator("symbol")
    @classmethod
    def _symbol(cls, value: str) -> str:
        return _normalise_symbol(value)


def _profile(view: MarketView, symbol: str, master: SecurityMaster, market_etf: str) -> dict[str, Any]:
    sec = master.get(symbol)
    data: dict[str, Any] = {
        "symbol": symbol,
        "name": sec.name if sec else symbol,
        "sector": sec.sector if sec else "Unknown",
        "industry": sec.industry if sec else "Unknown",
        "asset_type": sec.asset_type if sec else "unknown",
        "asset_class": master.asset_class_for(symbol),
        "sector_etf": master.sector_etfs.get(sec.sector) if sec else None,
    }
    if m := OPTION_SYMBOL.match(symbol):
        data["option"] = {
            "underlying": m["und"],
            "option_type": m["cp"],
            "strike": int(m["strike"]) / 1000,
            "expiry": dt.datetime.strptime(m["yymmdd"], "%y%m%d").date().isoformat(),
            "multiplier": 100,
        }
    stats = quote_stats(view.closes, [symbol]).get(symbol)
    if stats is not None:
        returns = trailing(view.returns, TRADING_DAYS)
        year = view.closes[symbol].dropna().iloc[-(TRADING_DAYS + 1) :]
        beta = None
        if symbol == market_etf:
            beta = 1.0
        elif market_etf in returns.columns:
            beta = betas_to(returns[[symbol]], returns[market_etf], min_obs=20)[symbol]
        data.update(
            last_close=price(stats.close),
            date=iso(stats.date),
            change_pct=pct_points(stats.change_pct),
            low_52w=price(stats.low_52w),
            high_52w=price(stats.high_52w),
            return_1y=ratio(year.iloc[-1] / year.iloc[0] - 1.0) if len(year) > 1 else None,
            volatility_1y=ratio(annualised_volatility(returns[symbol])),
            beta_to_spy=ratio(beta),
            observations=int(returns[symbol].count()),
            price_source=view.price_source([symbol]),
        )
    data["note"] = (
        "Reference data from the SigmaSight security master and statistics from daily closes; no business description "
        "is stored."
    )
    return data


async def get_company_profile(args: ProfileArgs, rt: ToolRuntime) -> ToolOutput:
    market_etf = rt.master.factor_etfs.get("Market", "SPY")
    view = await rt.market({args.symbol, market_etf})
    if rt.master.get(args.symbol) is None and not view.has(args.symbol):
        raise ToolNotFound(f"Unknown symbol {args.symbol}: it is not in the security master and has no prices.")
    data = await rt.compute(_profile, view, args.symbol, rt.master, market_etf)
    return ToolOutput(data, {"price_source": view.price_source([args.symbol])})


def _summarize_profile(data: dict) -> str:
    return f"{data['symbol']}: {data['name']} ({data['sector']})"


# --------------------------------------------------------------------------- get_market_overview


class MarketOverviewArgs(ToolArgs):
    pass


def _etf_row(
    symbol: str, stats: dict[str, QuoteStats], master: SecurityMaster, label: str | None = None
) -> dict[str, Any]:
    q = stats.get(symbol)
    sec = master.get(symbol)
    row: dict[str, Any] = {"symbol": symbol, "name": sec.name if sec else symbol}
    if label:
        row["sector"] = label
    if q is None:
        return {**row, "error": "no price data"}
    return {
        **row,
        "close": price(q.close),
        "change_pct": pct_points(q.change_pct),
        "change_21d_pct": pct_points(q.return_21d * 100 if q.return_21d is not None else None),
        "date": iso(q.date),
    }


def _by_change_desc(row: dict[str, Any]) -> float:
    change = row.get("change_pct")
    return -(change if change is not None else float("-inf"))


def _market_overview(view: MarketView, master: SecurityMaster, market_etf: str) -> dict[str, Any]:
    stats = quote_stats(view.closes)
    sectors = [_etf_row(etf, stats, master, sector) for sector, etf in master.sector_etfs.items()]
    sectors.sort(key=_by_change_desc)
    vix = stats.get(VOLATILITY_PROXY)
    spy_returns = trailing(view.returns[market_etf], 21) if market_etf in view.returns else pd.Series(dtype=float)
    volatility: dict[str, Any] = {
        "symbol": VOLATILITY_PROXY,
        "name": "Cboe Volatility Index",
        "level": price(vix.close) if vix else None,
        "change_pct": pct_points(vix.change_pct) if vix else None,
        "spy_realized_vol_21d": ratio(annualised_volatility(spy_returns)),
    }
    dates = [q.date for q in stats.values()]
    return {
        "date": iso(max(dates)) if dates else None,
        "indices": [_etf_row(s, stats, master) for s in INDEX_ETFS],
        "sectors": sectors,
        "volatility": volatility,
        "notes": ["change_pct is the last day's move and change_21d_pct the last 21 trading days', in percent points; "
                  "sectors are ordered by the day's move."],
    }  # fmt: skip


async def get_market_overview(args: MarketOverviewArgs, rt: ToolRuntime) -> ToolOutput:
    market_etf = rt.master.factor_etfs.get("Market", "SPY")
    symbols = {*INDEX_ETFS, VOLATILITY_PROXY, market_etf, *rt.master.sector_etfs.values()}
    view = await rt.market(symbols)
    data = await rt.compute(_market_overview, view, rt.master, market_etf)
    return ToolOutput(data, {"price_source": view.price_source()})


def _summarize_market(data: dict) -> str:
    spy = next((r for r in data["indices"] if r["symbol"] == "SPY"), None)
    if not spy or spy.get("close") is None:
        return "market overview"
    text = f"SPY ${spy['close']:,.2f} ({spy['change_pct']:+.1f}%)"
    if data["volatility"].get("level") is not None:
        text += f", VIX {data['volatility']['level']:.1f}"
    return text


TOOLS = (
    Tool(
        "get_prices_historical",
        f"Daily closes of the portfolio's holdings (optionally with the factor ETFs) over up to {MAX_LOOKBACK} trading "
        "days, with each series' return, high, low and annualised volatility.",
        HistoricalArgs,
        get_prices_historical,
        _summarize_history,
        {"lookback_days_max": MAX_LOOKBACK},
        title="Fetching price history",
    ),
    Tool(
        "get_current_quotes",
        f"Quotes for up to {MAX_QUOTES} symbols: last close, day change and 52-week range.",
        QuotesArgs,
        get_current_quotes,
        _summarize_quotes,
        {"max_symbols": MAX_QUOTES},
        title="Fetching quotes",
    ),
    Tool(
        "get_factor_etf_prices",
        f"Daily closes of the factor ETFs (SPY, VTV, VUG, MTUM, QUAL, SLY, USMV) over up to {MAX_LOOKBACK} trading "
        "days, with each one's return and volatility.",
        FactorEtfArgs,
        get_factor_etf_prices,
        _summarize_history,
        {"lookback_days_max": MAX_LOOKBACK},
        title="Fetching factor ETF prices",
    ),
    Tool(
        "get_company_profile",
        "Company profile of a symbol: name, sector, industry, asset type, last close, 52-week range, one-year return, "
        "volatility and beta to the S&P 500.",
        ProfileArgs,
        get_company_profile,
        _summarize_profile,
        title="Reading the company profile",
    ),
    Tool(
        "get_market_overview",
        "Market overview: SPY, QQQ and DIA, the eleven sector ETFs (day and one-month moves) and the VIX as the "
        "volatility proxy.",
        MarketOverviewArgs,
        get_market_overview,
        _summarize_market,
        title="Checking the market",
    ),
)
