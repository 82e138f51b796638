"""Covariance risk, contributions, realised volatility and correlations by hand."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from sigmachat.analytics.risk import (
    correlation_matrix,
    correlation_pairs,
    covariance_risk,
    portfolio_returns,
    realised_volatility,
    value_at_risk,
)


def _returns(n: int = 252) -> pd.DataFrame:
    rng = np.random.default_rng(7)
    idx = pd.bdate_range("2024-07-01", periods=n)
    a = rng.normal(0, 0.01, n)
    b = 0.5 * a + rng.normal(0, 0.01, n)
    return pd.DataFrame({"A": a, "B": b}, index=idx)


def test_two_asset_volatility_matches_the_formula():
    r = _returns()
    e = pd.Series({"A": 60_000.0, "B": -20_000.0})
    nav = 100_000.0
    risk = covariance_risk(r, e, nav)
    var_a, var_b = r["A"].var(), r["B"].var()
    cov_ab = r["A"].cov(r["B"])
    by_hand = 60_000**2 * var_a + 20_000**2 * var_b - 2 * 60_000 * 20_000 * cov_ab
    assert risk.dollar_volatility == pytest.approx(math.sqrt(by_hand) * math.sqrt(252))
    assert risk.volatility == pytest.approx(math.sqrt(by_hand) * math.sqrt(252) / nav)
    c = risk.contributions
    assert c["share_of_risk"].sum() == pytest.approx(1.0)
    assert c["vol_contribution"].sum() == pytest.approx(risk.volatility)
    # The short B hedges the long A (positively correlated): a negative contribution.
    assert c.loc["B", "share_of_risk"] < 0
    assert c.loc["A", "share_of_risk"] == pytest.approx(60_000 * (60_000 * var_a - 20_000 * cov_ab) / by_hand)


def test_realised_volatility_over_the_same_window_equals_the_covariance_volatility():
    r = _returns()
    e = pd.Series({"A": 60_000.0, "B": 30_000.0})
    series = portfolio_returns(r, e, 100_000.0)
    realised = realised_volatility(series, (21, 252))
    assert realised[252][0] == pytest.approx(covariance_risk(r, e, 100_000.0).volatility)
    assert realised[21][1] == 21
    assert realised[21][0] == pytest.approx(series.iloc[-21:].std() * math.sqrt(252))


def test_duplicate_series_for_an_option_and_its_underlying():
    r = _returns()
    both = pd.DataFrame({"STOCK": r["A"], "CALL": r["A"]})
    risk = covariance_risk(both, pd.Series({"STOCK": 10_000.0, "CALL": 5_000.0}), 100_000.0)
    alone = covariance_risk(r[["A"]], pd.Series({"A": 15_000.0}), 100_000.0)
    assert risk.volatility == pytest.approx(alone.volatility)
    assert risk.contributions.loc["CALL", "share_of_risk"] == pytest.approx(1 / 3)


def test_value_at_risk_parametric_and_historical():
    r = _returns()["A"]
    var = value_at_risk(r, 1_000_000.0)
    assert var["parametric"] == pytest.approx(1.6448536 * r.std() * 1_000_000.0, rel=1e-6)
    assert var["historical"] == pytest.approx(-np.quantile(r, 0.05) * 1_000_000.0)


def test_correlation_pairs_most_correlated_first():
    r = _returns()
    r["C"] = -r["A"]
    corr = correlation_matrix(r)
    pairs = correlation_pairs(corr)
    assert list(pairs.iloc[0][["a", "b"]]) == ["A", "B"]
    assert pairs.iloc[-1]["correlation"] == pytest.approx(-1.0)
    assert len(pairs) == 3
