"""Factor exposures: betas of the portfolio's daily returns to the factor ETFs.

The style ETFs (value, growth, momentum, ...) all carry the market, so regressing on them
raw gives unstable, offsetting betas. Each style ETF is first residualised on the market
ETF: the regression is on the market plus *style net of market*. The market beta is then
exactly the plain univariate beta to SPY, and each style beta reads as the tilt beyond it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from sigmachat.analytics.regression import ols, residualise
from sigmachat.analytics.returns import ANNUALISE, TRADING_DAYS

MARKET_FACTOR = "Market"


@dataclass(frozen=True, slots=True)
class FactorBeta:
    factor: str
    etf: str
    beta: float
    t_stat: float


@dataclass(frozen=True, slots=True)
class FactorModel:
    betas: list[FactorBeta]
    r_squared: float
    adj_r_squared: float
    market_r_squared: float  # R² of the market alone
    observations: int
    alpha_annualised: float
    residual_volatility: float  # annualised
    missing_factors: list[str] = field(default_factory=list)


def factor_exposures(
    portfolio: pd.Series,
    etf_returns: pd.DataFrame,
    factor_etfs: Mapping[str, str],
    *,
    market_factor: str = MARKET_FACTOR,
) -> FactorModel:
    """Regress ``portfolio`` daily returns on the factor ETFs' (``factor name -> ETF``).

    Only days where the portfolio and every available ETF have a return are used; an ETF
    with no data at all is left out and named in ``missing_factors``.
    """
    available = {
        f: etf for f, etf in factor_etfs.items() if etf in etf_returns.columns and etf_returns[etf].notna().any()
    }
    missing = [f for f in factor_etfs if f not in available]
    frame = pd.concat([portfolio.rename("__y__"), etf_returns[list(available.values())]], axis=1).dropna()
    factors = list(available)
    market_etf = available.get(market_factor)
    x = frame[[available[f] for f in factors]].copy()
    if market_etf is not None:
        styles = [available[f] for f in factors if f != market_factor]
        if styles:
            x[styles] = residualise(frame[styles], frame[market_etf])
    y = frame["__y__"].to_numpy(dtype=float)
    fit = ols(y, x.to_numpy(dtype=float)) if factors else None
    market_fit = ols(y, frame[market_etf].to_numpy(dtype=float)) if market_etf is not None else None
    if fit is None:
        return FactorModel(
            [], float("nan"), float("nan"), float("nan"), int(len(frame)), float("nan"), float("nan"), missing
        )
    betas = [FactorBeta(f, available[f], float(fit.betas[i]), float(fit.t_stats[i])) for i, f in enumerate(factors)]
    return FactorModel(
        betas=betas,
        r_squared=fit.r_squared,
        adj_r_squared=fit.adj_r_squared,
        market_r_squared=market_fit.r_squared if market_fit else float("nan"),
        observations=fit.observations,
        alpha_annualised=fit.alpha * TRADING_DAYS if np.isfinite(fit.alpha) else float("nan"),
        residual_volatility=fit.residual_std * ANNUALISE if np.isfinite(fit.residual_std) else float("nan"),
        missing_factors=missing,
    )
