"""Stress scenarios: instantaneous shocks to the market, applied to today's holdings.

A scenario moves a few drivers: the market (SPY), a technology factor (XLK net of the
market), interest rates and implied volatility. Each underlying's return is

    market_beta x market + tech_beta x tech + rate move + override (when given),

with betas estimated from daily returns (see :func:`sensitivities`). Linear holdings lose
market value x return; options are fully revalued with Black-Scholes at the shocked
underlying price and volatility (no delta-gamma approximation), so a short put's
losses accelerate as the market falls.

Rate moves use stylised sensitivities, stated here so every number can be traced: bonds
lose duration x yield change; equities and private assets a sector-specific percentage per
+100 bp (long-duration growth and real estate most, banks gain slightly).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from sigmachat.analytics.options import option_price
from sigmachat.analytics.regression import betas_to

MAX_LOSS = -0.99  # a linear holding cannot lose more than it is worth

# Return per +100 bp of yields by sector (stylised equity / asset "duration").
RATE_SENSITIVITY_PER_100BP: dict[str, float] = {
    "Information Technology": -0.04,
    "Communication Services": -0.03,
    "Consumer Discretionary": -0.03,
    "Real Estate": -0.06,
    "Utilities": -0.05,
    "Consumer Staples": -0.02,
    "Health Care": -0.02,
    "Industrials": -0.02,
    "Materials": -0.02,
    "Energy": 0.0,
    "Financials": 0.01,
    "Diversified": -0.03,
    "Private Equity": -0.04,
    "Venture Capital": -0.06,
    "Private Credit": -0.005,
    "Infrastructure": -0.03,
    "Hedge Funds": -0.01,
    "Collectibles": -0.02,
    "Digital Assets": -0.05,
    "Commodities": -0.01,
    "Volatility": 0.0,
    "Cash": -0.0025,  # bills and money market: a quarter-year duration
}
DEFAULT_RATE_SENSITIVITY = -0.03
# Modified duration of bond funds by the words of their industry.
DURATION_BY_KEYWORD: tuple[tuple[str, float], ...] = (
    ("bill", 0.25),
    ("money market", 0.1),
    ("short", 2.5),
    ("long", 16.0),
)
DEFAULT_BOND_DURATION = 6.0


@dataclass(frozen=True, slots=True)
class Scenario:
    id: str
    name: str
    description: str
    market: float = 0.0  # SPY return
    tech: float = 0.0  # technology factor return, beyond the market
    rates_bp: float = 0.0  # parallel yield shift in basis points
    vol_multiplier: float = 1.0  # implied volatilities scale by this
    overrides: Mapping[str, float] = field(default_factory=dict)  # symbol -> return, replacing the model

    def assumptions(self) -> dict[str, float | dict[str, float]]:
        out: dict[str, float | dict[str, float]] = {}
        if self.market:
            out["market_move"] = self.market
        if self.tech:
            out["tech_factor_move"] = self.tech
        if self.rates_bp:
            out["rates_bp"] = self.rates_bp
        if self.vol_multiplier != 1.0:
            out["implied_vol_multiplier"] = self.vol_multiplier
        if self.overrides:
            out["overrides"] = dict(self.overrides)
        return out


SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        "market_down_10", "Market -10%", "The S&P 500 falls 10%; each holding moves by its beta to SPY.", market=-0.10
    ),
    Scenario(
        "market_down_20", "Market -20%", "The S&P 500 falls 20%; each holding moves by its beta to SPY.", market=-0.20
    ),
    Scenario(
        "tech_selloff",
        "Technology selloff",
        "Technology falls 12% beyond a 3% market decline (XLK about -15%); holdings move by their market beta and "
        "their technology loading.",
        market=-0.03,
        tech=-0.12,
    ),
    Scenario(
        "rates_up_100bp",
        "Rates +100 bp",
        "Yields rise 1 percentage point in parallel: bonds lose duration x 1%, equities and private assets a "
        "sector-specific amount.",
        rates_bp=100.0,
    ),
    Scenario(
        "volatility_spike",
        "Volatility spike",
        "The market falls 5%, the VIX rises 60% and implied volatilities rise by half; options are revalued.",
        market=-0.05,
        vol_multiplier=1.5,
        overrides={"VIX": 0.60},
    ),
)
SCENARIO_IDS = tuple(s.id for s in SCENARIOS)


def custom_market_scenario(move: float) -> Scenario:
    """A market move of ``move`` (e.g. -0.15), through each holding's beta."""
    return Scenario(
        "custom_market",
        f"Market {move * 100:+.1f}%",
        f"The S&P 500 moves {move * 100:+.1f}%; each holding moves by its beta to SPY.",
        market=move,
    )


def sensitivities(
    returns: pd.DataFrame,
    market: pd.Series | None,
    tech_factor: pd.Series | None,
    fallback_beta: Mapping[str, float],
    sectors: Mapping[str, str],
    *,
    min_obs: int = 60,
) -> pd.DataFrame:
    """Market beta and technology loading of each column of ``returns``.

    The technology factor is XLK's return net of the market (residualised on SPY), so it is
    uncorrelated with the market in-sample and the two loadings are simple covariance
    ratios. Too little history falls back to ``fallback_beta`` (else 1.0) and a loading of
    1 for Information Technology names (else 0); ``source`` says which was used.
    """
    symbols = list(returns.columns)
    beta = betas_to(returns, market, min_obs=min_obs) if market is not None else pd.Series(np.nan, index=symbols)
    tech = (
        betas_to(returns, tech_factor, min_obs=min_obs) if tech_factor is not None else pd.Series(np.nan, index=symbols)
    )
    out = pd.DataFrame(
        {"market_beta": beta.reindex(symbols), "tech_beta": tech.reindex(symbols)},
        index=pd.Index(symbols, name="symbol"),
    )
    estimated = out["market_beta"].notna()
    out["source"] = np.where(estimated, "estimated", "fallback")
    fb = pd.Series({s: fallback_beta.get(s, 1.0) for s in symbols}, dtype=float)
    out["market_beta"] = out["market_beta"].fillna(fb)
    it = pd.Series({s: 1.0 if sectors.get(s) == "Information Technology" else 0.0 for s in symbols}, dtype=float)
    out["tech_beta"] = out["tech_beta"].fillna(it)
    return out


def rate_sensitivity(sector: str, industry: str, asset_type: str) -> float:
    """Return of an asset per +100 bp of yields (see the module docstring)."""
    if asset_type == "bond_fund" or sector == "Fixed Income":
        words = industry.lower()
        duration = next((d for key, d in DURATION_BY_KEYWORD if key in words), DEFAULT_BOND_DURATION)
        return -duration / 100.0
    return RATE_SENSITIVITY_PER_100BP.get(sector, DEFAULT_RATE_SENSITIVITY)


def underlying_shocks(scenario: Scenario, sens: pd.DataFrame, profiles: pd.DataFrame) -> pd.Series:
    """Return of each underlying (index of ``sens``) in ``scenario``.

    ``profiles`` (same index) has ``sector``, ``industry`` and ``asset_type`` for the
    rate leg.
    """
    shock = scenario.market * sens["market_beta"] + scenario.tech * sens["tech_beta"]
    if scenario.rates_bp:
        per_100 = pd.Series(
            [rate_sensitivity(p.sector, p.industry, p.asset_type) for p in profiles.reindex(sens.index).itertuples()],
            index=sens.index,
        )
        shock = shock + per_100 * (scenario.rates_bp / 100.0)
    for symbol, value in scenario.overrides.items():
        if symbol in shock.index:
            shock[symbol] = value
    return shock.clip(lower=MAX_LOSS)


def revalue(book: pd.DataFrame, shocks: pd.Series, vol_multiplier: float = 1.0) -> pd.DataFrame:
    """P&L of each holding of ``book`` when its risk series moves by ``shocks``.

    Linear holdings: market value x shock. Options: units x (BS(S(1+shock), K, T, vol x m)
    - BS(S, K, T, vol)), measured from the model value so the P&L is the scenario's alone,
    not the model's disagreement with the last close.
    """
    shock = book["risk_symbol"].map(shocks).astype(float).fillna(0.0)
    pnl = book["market_value"].astype(float).fillna(0.0) * shock
    opts = book[book["is_option"] & book["underlying_price"].notna() & book["vol"].notna()]
    for symbol, o in opts.iterrows():
        s0 = float(o["underlying_price"])
        s1 = s0 * (1.0 + shock[symbol])
        base = float(option_price(s0, float(o["strike"]), float(o["t_years"]), float(o["vol"]), o["option_type"]))
        moved = float(
            option_price(
                s1, float(o["strike"]), float(o["t_years"]), float(o["vol"]) * vol_multiplier, o["option_type"]
            )
        )
        pnl[symbol] = float(o["quantity"]) * float(o["multiplier"]) * (moved - base)
    unpriced = ~book["priced"].astype(bool)
    pnl[unpriced] = 0.0
    return pd.DataFrame({"shock": shock.where(~unpriced), "pnl": pnl, "market_value": book["market_value"]})


@dataclass(frozen=True, slots=True)
class ScenarioResult:
    scenario: Scenario
    pnl: float
    positions: pd.DataFrame  # index: holding; shock, pnl, market_value; largest |pnl| first


def run_scenarios(
    book: pd.DataFrame, sens: pd.DataFrame, profiles: pd.DataFrame, scenarios: Iterable[Scenario]
) -> list[ScenarioResult]:
    """Every scenario's total and per-holding P&L."""
    results = []
    for scenario in scenarios:
        shocks = underlying_shocks(scenario, sens, profiles)
        positions = revalue(book, shocks, scenario.vol_multiplier)
        order = positions["pnl"].abs().sort_values(ascending=False, kind="stable").index
        results.append(ScenarioResult(scenario, float(positions["pnl"].sum()), positions.loc[order]))
    return results
