"""Covariance risk of the current holdings: volatility, contributions to risk, correlations.

Holdings are fixed at today's dollar exposures and replayed over historical daily returns
(options through their delta-adjusted exposure on the underlying's returns). Portfolio
returns are those dollar P&Ls divided by today's NAV.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
import pandas as pd

from sigmachat.analytics.returns import ANNUALISE, annualised_volatility


@dataclass(frozen=True, slots=True)
class RiskDecomposition:
    """Portfolio volatility from the covariance matrix and each holding's share of it.

    ``contributions`` (index: holding) has ``exposure`` (dollars), ``weight`` (exposure /
    NAV), ``volatility`` (of the holding's return series, annualised), ``share_of_risk``
    (Euler contribution to variance; sums to 1, negative for hedges) and
    ``vol_contribution`` (share x portfolio volatility; sums to the volatility).
    """

    volatility: float  # annualised, as a fraction of NAV
    dollar_volatility: float  # annualised, dollars
    observations: int
    contributions: pd.DataFrame


def portfolio_returns(returns: pd.DataFrame, exposures: pd.Series, nav: float) -> pd.Series:
    """Daily return of the current holdings: sum of exposure x return, over NAV.

    ``exposures`` is indexed by holding, with the holding's return series in the column
    of the same name of ``returns`` (missing returns count as zero).
    """
    if returns.empty or not nav:
        return pd.Series(dtype=float)
    cols = [c for c in exposures.index if c in returns.columns]
    pnl = returns[cols].fillna(0.0).to_numpy() @ exposures[cols].to_numpy(dtype=float)
    return pd.Series(pnl / nav, index=returns.index)


def covariance_risk(returns: pd.DataFrame, exposures: pd.Series, nav: float) -> RiskDecomposition:
    """sigma^2 = e' S e over the returns' sample covariance S; contributions e_i (S e)_i / sigma^2.

    ``returns`` has one column per holding (duplicated series are fine: an option and its
    underlying's stock share one), aligned and gap-free (see ``returns.aligned_matrix``).
    """
    cols = [c for c in exposures.index if c in returns.columns]
    e = exposures[cols].to_numpy(dtype=float)
    r = returns[cols].to_numpy(dtype=float)
    n = r.shape[0]
    empty = pd.DataFrame(columns=["exposure", "weight", "volatility", "share_of_risk", "vol_contribution"])
    if n < 2 or not cols or not nav:
        return RiskDecomposition(float("nan"), float("nan"), n, empty)
    cov = np.atleast_2d(np.cov(r, rowvar=False, ddof=1))
    s_e = cov @ e
    variance = float(e @ s_e)
    dollar_vol = math.sqrt(max(variance, 0.0)) * ANNUALISE
    vol = dollar_vol / abs(nav)
    with np.errstate(divide="ignore", invalid="ignore"):
        share = e * s_e / variance if variance > 0 else np.full(len(cols), np.nan)
    contributions = pd.DataFrame(
        {
            "exposure": e,
            "weight": e / nav,
            "volatility": np.sqrt(np.clip(np.diag(cov), 0.0, None)) * ANNUALISE,
            "share_of_risk": share,
            "vol_contribution": share * vol,
        },
        index=pd.Index(cols, name="symbol"),
    )
    order = contributions["share_of_risk"].abs().sort_values(ascending=False, kind="stable").index
    return RiskDecomposition(vol, dollar_vol, n, contributions.loc[order])


def realised_volatility(series: pd.Series, windows: tuple[int, ...] = (21, 63, 252)) -> dict[int, tuple[float, int]]:
    """Annualised volatility of the last ``w`` returns for each window: {w: (vol, observations)}.

    A window longer than the history uses what there is (the observation count says so).
    """
    clean = series.dropna()
    return {w: (annualised_volatility(clean.iloc[-w:]), int(min(w, len(clean)))) for w in windows}


def value_at_risk(series: pd.Series, nav: float, *, confidence: float = 0.95) -> dict[str, float]:
    """One-day value at risk in dollars (positive = loss): parametric (normal) and historical."""
    clean = series.dropna().to_numpy(dtype=float)
    if clean.size < 20:
        return {"parametric": float("nan"), "historical": float("nan")}
    z = NormalDist().inv_cdf(confidence)
    parametric = z * float(np.std(clean, ddof=1)) * abs(nav)
    historical = -float(np.quantile(clean, 1.0 - confidence)) * abs(nav)
    return {"parametric": parametric, "historical": historical}


def correlation_matrix(returns: pd.DataFrame, *, min_periods: int = 20) -> pd.DataFrame:
    """Pairwise Pearson correlations of daily returns (each pair over the days both have)."""
    return returns.corr(min_periods=min_periods)


def correlation_pairs(corr: pd.DataFrame) -> pd.DataFrame:
    """Every distinct pair (a, b, correlation), most correlated first; NaN pairs dropped."""
    values = corr.to_numpy(dtype=float)
    i, j = np.triu_indices(len(corr), k=1)
    pairs = pd.DataFrame({"a": corr.index[i], "b": corr.columns[j], "correlation": values[i, j]})
    pairs = pairs[np.isfinite(pairs["correlation"])]
    return pairs.sort_values("correlation", ascending=False, kind="stable").reset_index(drop=True)
