"""Risk tools: factor exposures, volatility and risk contributions, correlations, stress tests."""

from __future__ import annotations

from typing import Any, Literal, get_args

import numpy as np
import pandas as pd
from pydantic import Field

from sigmachat.analytics.data_quality import MIN_HISTORY_DAYS
from sigmachat.analytics.factors import factor_exposures
from sigmachat.analytics.regression import residualise
from sigmachat.analytics.returns import TRADING_DAYS, trailing
from sigmachat.analytics.risk import (
    correlation_matrix,
    correlation_pairs,
    covariance_risk,
    realised_volatility,
    value_at_risk,
)
from sigmachat.analytics.stress import SCENARIO_IDS, SCENARIOS, custom_market_scenario, run_scenarios, sensitivities
from sigmachat.tools.caveats import caveats
from sigmachat.tools.formatting import iso, ratio, short_pct, short_usd, usd
from sigmachat.tools.portfolio_data import TECH_FACTOR_SECTOR, PortfolioData
from sigmachat.tools.runtime import ToolRuntime
from sigmachat.tools.schema import PortfolioArgs
from sigmachat.tools.tool import Tool, ToolOutput

VOL_WINDOWS = (21, 63, 252)
RISK_LOOKBACK = TRADING_DAYS
MAX_CONTRIBUTIONS = 30
MAX_STRESS_ROWS = 30  # per scenario: the holdings with the largest P&L


def _market_etf(p: PortfolioData) -> str:
    return p.master.factor_etfs.get("Market", "SPY")


# --------------------------------------------------------------------------- get_factor_exposures


class FactorArgs(PortfolioArgs):
    lookback_days: int = Field(
        252, ge=20, le=756, description="Trading days of daily returns in the regression (20 to 756)."
    )


def _factors(p: PortfolioData, args: FactorArgs) -> dict[str, Any]:
    y = p.portfolio_returns(args.lookback_days)
    etfs = list(p.master.factor_etfs.values())
    etf_returns = trailing(
        p.market.returns.reindex(columns=[e for e in etfs if e in p.market.returns.columns]), args.lookback_days
    )
    model = factor_exposures(y, etf_returns, p.master.factor_etfs)
    _, _, excluded = p.risk_matrix(args.lookback_days)
    nav = p.valuation.nav
    window = y.dropna()
    return {
        "lookback_days": args.lookback_days,
        "observations": model.observations,
        "start": iso(window.index[0]) if len(window) else None,
        "end": iso(window.index[-1]) if len(window) else None,
        "factors": [
            {
                "factor": b.factor,
                "etf": b.etf,
                "beta": ratio(b.beta),
                "t_stat": ratio(b.t_stat, 2),
                "dollar_exposure": usd(b.beta * nav),
            }
            for b in model.betas
        ],
        "r_squared": ratio(model.r_squared),
        "adj_r_squared": ratio(model.adj_r_squared),
        "market_r_squared": ratio(model.market_r_squared),
        "alpha_annualised": ratio(model.alpha_annualised),
        "residual_volatility": ratio(model.residual_volatility),
        "missing_factors": model.missing_factors,
        "excluded_holdings": excluded,
        "method": "OLS of the portfolio's daily returns (today's holdings, options by delta, over NAV) on the market "
        "ETF and each style ETF net of the market (residualised on SPY): the market beta equals the plain beta to SPY "
        "and each style beta is the tilt beyond the market. dollar_exposure = beta x NAV.",
    }


async def get_factor_exposures(args: FactorArgs, rt: ToolRuntime) -> ToolOutput:
    p = await rt.portfolio(args.portfolio_id)
    data = await rt.derive(p, _factors, args)
    return ToolOutput({**data, "caveats": await rt.derive(p, caveats)}, p.meta())


def _summarize_factors(data: dict) -> str:
    market = next((f for f in data["factors"] if f["factor"] == "Market"), None)
    beta = f"market beta {market['beta']:.2f}" if market and market["beta"] is not None else "no market beta"
    r2 = data["r_squared"]
    return (
        f"{beta}, R² {r2:.2f}, {data['observations']} days"
        if r2 is not None
        else f"{beta}, {data['observations']} days"
    )


# --------------------------------------------------------------------------- get_volatility_analysis


class VolatilityArgs(PortfolioArgs):
    pass


def _volatility(p: PortfolioData) -> dict[str, Any]:
    nav = p.valuation.nav
    matrix, exposures, excluded = p.risk_matrix(RISK_LOOKBACK)
    risk = covariance_risk(matrix, exposures, nav)
    longest = max(VOL_WINDOWS)
    series = p.portfolio_returns(longest)
    realised = realised_volatility(series, VOL_WINDOWS)
    var = value_at_risk(series, nav)
    rows = [
        {
            "symbol": s,
            "exposure": usd(r["exposure"]),
            "weight": ratio(r["weight"]),
            "volatility": ratio(r["volatility"]),
            "share_of_risk": ratio(r["share_of_risk"]),
            "vol_contribution": ratio(r["vol_contribution"]),
        }
        for s, r in risk.contributions.head(MAX_CONTRIBUTIONS).iterrows()
    ]
    return {
        "portfolio_volatility": ratio(risk.volatility),
        "dollar_volatility": usd(risk.dollar_volatility),
        "realized": {f"{w}d": ratio(v) for w, (v, _) in realised.items()},
        "realized_observations": {f"{w}d": n for w, (_, n) in realised.items()},
        "covariance_observations": risk.observations,
        "value_at_risk_95_1d": {"parametric": usd(var["parametric"]), "historical": usd(var["historical"])},
        "contributions": rows,
        "contributions_count": int(len(risk.contributions)),
        "excluded_holdings": excluded,
        "method": "Today's holdings (options by delta on their underlying) replayed over daily returns. "
        f"portfolio_volatility = sqrt(e' S e) x sqrt(252) / NAV with S the {RISK_LOOKBACK}-day sample covariance; "
        "realized = annualised standard deviation of the daily portfolio returns over each window; share_of_risk = e_i "
        "(S e)_i / e' S e (negative = a hedge); vol_contribution = share x volatility. All volatilities are annualised "
        "fractions (0.18 = 18%).",
    }


async def get_volatility_analysis(args: VolatilityArgs, rt: ToolRuntime) -> ToolOutput:
    p = await rt.portfolio(args.portfolio_id)
    data = await rt.derive(p, _volatility)
    return ToolOutput({**data, "caveats": await rt.derive(p, caveats)}, p.meta())


def _summarize_volatility(data: dict) -> str:
    top = data["contributions"][0] if data["contributions"] else None
    text = f"volatility {short_pct(data['portfolio_volatility'])} annualised"
    if top:
        text += f", top risk {top['symbol']} {short_pct(top['share_of_risk'])}"
    return text


# --------------------------------------------------------------------------- get_correlation_matrix


class CorrelationArgs(PortfolioArgs):
    top_n: int = Field(
        10,
        ge=2,
        le=25,
        description="How many of the largest holdings (by absolute market value) to correlate, 2 to 25.",
    )


def _correlation(p: PortfolioData, args: CorrelationArgs) -> tuple[dict[str, Any], dict[str, Any]]:
    book = p.book()
    returns = trailing(p.market.returns, RISK_LOOKBACK)
    chosen: list[str] = []
    series: dict[str, pd.Series] = {}
    skipped = []
    for symbol, h in book.iterrows():
        if len(chosen) >= args.top_n:
            break
        # A holding's own price returns; an option without its own history uses its underlying's.
        for candidate in dict.fromkeys([symbol, h["risk_symbol"]]):
            if candidate in returns.columns and returns[candidate].count() > MIN_HISTORY_DAYS:
                series[symbol] = returns[candidate]
                chosen.append(symbol)
                break
        else:
            skipped.append(symbol)
    corr = correlation_matrix(pd.DataFrame(series))
    pairs = correlation_pairs(corr) if len(chosen) > 1 else pd.DataFrame(columns=["a", "b", "correlation"])
    extremes = pd.concat([pairs.head(5), pairs.tail(5)]).drop_duplicates() if len(pairs) else pairs
    values = corr.to_numpy(dtype=float)
    upper = values[np.triu_indices(len(corr), k=1)] if len(corr) > 1 else np.array([])
    upper = upper[np.isfinite(upper)]
    sides = {s: ("short" if book.at[s, "market_value"] < 0 else "long") for s in chosen}
    data = {
        "lookback_days": RISK_LOOKBACK,
        "observations": int(pd.DataFrame(series).dropna(how="all").shape[0]) if series else 0,
        "symbols": chosen,
        "sides": [sides[s] for s in chosen],
        "matrix": [[ratio(x) for x in row] for row in values],
        "pairs": [{"a": r.a, "b": r.b, "correlation": ratio(r.correlation)} for r in extremes.itertuples()],
        "average_correlation": ratio(upper.mean()) if upper.size else None,
        "skipped_without_history": skipped,
        "method": "Pearson correlation of daily price returns (each pair over the days both have), of the largest "
        "holdings by absolute market value. A short position's P&L moves opposite to its price: see sides.",
    }
    return data, {"top_n": len(chosen)}


async def get_correlation_matrix(args: CorrelationArgs, rt: ToolRuntime) -> ToolOutput:
    p = await rt.portfolio(args.portfolio_id)
    data, applied = await rt.derive(p, _correlation, args)
    return ToolOutput(data, p.meta(), {"top_n_available": applied["top_n"]})


def _summarize_correlation(data: dict) -> str:
    avg = data["average_correlation"]
    return (
        f"{len(data['symbols'])} holdings, average correlation {avg:.2f}"
        if avg is not None
        else f"{len(data['symbols'])} holdings"
    )


# --------------------------------------------------------------------------- get_stress_test_results

ScenarioId = Literal["market_down_10", "market_down_20", "tech_selloff", "rates_up_100bp", "volatility_spike"]
if set(get_args(ScenarioId)) != set(SCENARIO_IDS):  # the schema's enum must list exactly the scenarios
    raise RuntimeError("ScenarioId is out of date with analytics.stress.SCENARIOS")


class StressArgs(PortfolioArgs):
    scenarios: list[ScenarioId] | None = Field(
        None, min_length=1, max_length=len(SCENARIO_IDS), description="Scenarios to run; null for all of them."
    )
    custom_market_move_pct: float | None = Field(
        None,
        ge=-50,
        le=50,
        description="Also run a market move of this many percent (e.g. -15), through each holding's beta.",
    )


def _stress(p: PortfolioData, args: StressArgs) -> dict[str, Any]:
    book = p.book()
    nav = p.valuation.nav
    sens = p.memo("stress_sensitivities", lambda: _sensitivities(p))
    profiles = pd.DataFrame(
        {
            s: {
                "sector": (sec.sector if (sec := p.master.get(s)) else "Unknown"),
                "industry": sec.industry if sec else "",
                "asset_type": sec.asset_type if sec else "stock",
            }
            for s in sens.index
        }  # fmt: skip
    ).T
    chosen = [s for s in SCENARIOS if args.scenarios is None or s.id in args.scenarios]
    if args.custom_market_move_pct is not None:
        chosen.append(custom_market_scenario(args.custom_market_move_pct / 100.0))
    results = run_scenarios(book, sens, profiles, chosen)
    scenarios: list[dict[str, Any]] = []
    for res in results:
        moved = res.positions[res.positions["pnl"].abs() > 0.005]
        scenarios.append(
            {
                "id": res.scenario.id,
                "name": res.scenario.name,
                "description": res.scenario.description,
                "assumptions": res.scenario.assumptions(),
                "pnl": usd(res.pnl),
                "pct_of_nav": ratio(res.pnl / nav) if nav else None,
                "positions": [
                    {"symbol": s, "shock": ratio(r["shock"]), "pnl": usd(r["pnl"])}
                    for s, r in moved.head(MAX_STRESS_ROWS).iterrows()
                ],
                "positions_count": int(len(moved)),
            }
        )
    worst = min(scenarios, key=lambda s: s["pnl"]) if scenarios else None
    used = sens.reindex(book["risk_symbol"].unique())
    return {
        "nav": usd(nav),
        "scenarios": scenarios,
        "worst": {"id": worst["id"], "name": worst["name"], "pnl": worst["pnl"], "pct_of_nav": worst["pct_of_nav"]}
        if worst
        else None,
        "betas": {
            s: {"market": ratio(r["market_beta"]), "tech": ratio(r["tech_beta"]), "source": r["source"]}
            for s, r in used.iterrows()
        },
        "method": "Instantaneous shocks to today's holdings. Each underlying moves by market_beta x market + tech_beta "
        "x tech factor (XLK net of the market) + its rate sensitivity, betas from 252 days of daily returns "
        "(security-master beta when history is short). Linear holdings: P&L = market value x move. Options: full "
        "Black-Scholes revaluation at the moved underlying and scaled implied volatility. shock is the holding's "
        "underlying move (a fraction).",
    }


def _sensitivities(p: PortfolioData) -> pd.DataFrame:
    book = p.book()
    symbols = list(dict.fromkeys(book["risk_symbol"]))
    returns = trailing(p.market.returns, RISK_LOOKBACK)
    market_etf = _market_etf(p)
    market = returns[market_etf] if market_etf in returns.columns else None
    tech_etf = p.master.sector_etfs.get(TECH_FACTOR_SECTOR)
    tech = None
    if market is not None and tech_etf in returns.columns:
        tech = residualise(returns[[tech_etf]], market)[tech_etf]
    fallback = {s: sec.model_beta for s in symbols if (sec := p.master.get(s)) is not None}
    sectors = {s: p.master.sector_of(s) for s in symbols}
    return sensitivities(returns.reindex(columns=symbols), market, tech, fallback, sectors, min_obs=MIN_HISTORY_DAYS)


async def get_stress_test_results(args: StressArgs, rt: ToolRuntime) -> ToolOutput:
    p = await rt.portfolio(args.portfolio_id)
    data = await rt.derive(p, _stress, args)
    notes = await rt.derive(p, caveats)
    return ToolOutput({**data, "caveats": notes}, p.meta(), {"scenarios": [s["id"] for s in data["scenarios"]]})


def _summarize_stress(data: dict) -> str:
    w = data["worst"]
    if not w:
        return "no scenarios"
    return (
        f"{len(data['scenarios'])} scenarios, worst {w['name']} {short_usd(w['pnl'])} "
        f"({short_pct(w['pct_of_nav'], signed=True)})"
    )


TOOLS = (
    Tool(
        "get_factor_exposures",
        "Portfolio betas to the factor ETFs (Market SPY, Value VTV, Growth VUG, Momentum MTUM, Quality QUAL, Size SLY, "
        "Low Volatility USMV) from a regression on daily returns, with t-statistics, R² and the observation count.",
        FactorArgs,
        get_factor_exposures,
        _summarize_factors,
        title="Estimating factor exposures",
    ),
    Tool(
        "get_correlation_matrix",
        "Correlation matrix of daily returns of the largest holdings (by absolute market value), with the most and "
        "least correlated pairs and the average correlation.",
        CorrelationArgs,
        get_correlation_matrix,
        _summarize_correlation,
        title="Computing correlations",
    ),
    Tool(
        "get_stress_test_results",
        "Stress tests: P&L of the portfolio and of each holding under market -10% and -20%, a technology selloff, "
        "rates +100 bp and a volatility spike (options fully revalued), plus an optional custom market move.",
        StressArgs,
        get_stress_test_results,
        _summarize_stress,
        {"max_rows_per_scenario": MAX_STRESS_ROWS},
        title="Running stress scenarios",
    ),
    Tool(
        "get_volatility_analysis",
        "Risk: realised volatility over 21, 63 and 252 days (annualised), portfolio volatility from the covariance "
        "matrix, one-day 95% value at risk, and each holding's contribution to risk.",
        VolatilityArgs,
        get_volatility_analysis,
        _summarize_volatility,
        {"max_contribution_rows": MAX_CONTRIBUTIONS},
        title="Measuring volatility",
    ),
)
