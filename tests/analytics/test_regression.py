"""Regression and factor betas against known answers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sigmachat.analytics.factors import factor_exposures
from sigmachat.analytics.regression import betas_to, ols, residualise

FACTORS = {"Market": "SPY", "Value": "VTV", "Growth": "VUG"}


def _series(seed: int, n: int = 252, vol: float = 0.01) -> pd.Series:
    idx = pd.bdate_range("2024-07-01", periods=n)
    return pd.Series(np.random.default_rng(seed).normal(0.0003, vol, n), index=idx)


def test_beta_of_a_series_against_itself_is_one():
    x = _series(1)
    fit = ols(x.to_numpy(), x.to_numpy())
    assert fit.betas[0] == pytest.approx(1.0)
    assert fit.r_squared == pytest.approx(1.0)
    assert fit.observations == 252
    assert betas_to(pd.DataFrame({"x": x}), x)["x"] == pytest.approx(1.0)


def test_beta_against_an_independent_series_is_about_zero():
    x, y = _series(1), _series(2)
    fit = ols(y.to_numpy(), x.to_numpy())
    # Standard error of the beta is about 1/sqrt(n) = 0.063 here.
    assert abs(fit.betas[0]) < 0.2
    assert abs(fit.t_stats[0]) < 3
    assert fit.r_squared < 0.05


def test_ols_recovers_hand_picked_coefficients():
    x1, x2 = _series(3), _series(4)
    y = 0.001 + 1.5 * x1 - 0.5 * x2
    fit = ols(y.to_numpy(), np.column_stack([x1, x2]))
    assert fit.alpha == pytest.approx(0.001)
    assert fit.betas == pytest.approx([1.5, -0.5])
    assert fit.r_squared == pytest.approx(1.0)


def test_betas_to_uses_the_days_each_column_has():
    x = _series(5)
    frame = pd.DataFrame({"a": 2 * x, "b": (3 * x).where(x.index > x.index[100])})
    betas = betas_to(frame, x)
    assert betas["a"] == pytest.approx(2.0)
    assert betas["b"] == pytest.approx(3.0)


def test_residuals_are_orthogonal_to_the_regressor():
    x, y = _series(6), _series(7)
    res = residualise(pd.DataFrame({"y": y + 0.7 * x}), x)["y"]
    assert float(np.dot(res - res.mean(), x - x.mean())) == pytest.approx(0.0, abs=1e-12)


def test_factor_model_of_the_market_itself():
    spy = _series(10)
    etfs = pd.DataFrame(
        {"SPY": spy, "VTV": 0.9 * spy + _series(11, vol=0.004), "VUG": 1.1 * spy + _series(12, vol=0.004)}
    )
    model = factor_exposures(spy, etfs, FACTORS)
    betas = {b.factor: b.beta for b in model.betas}
    assert betas["Market"] == pytest.approx(1.0)
    assert betas["Value"] == pytest.approx(0.0, abs=1e-9)
    assert betas["Growth"] == pytest.approx(0.0, abs=1e-9)
    assert model.r_squared == pytest.approx(1.0)
    assert model.observations == 252


def test_style_betas_are_the_tilt_beyond_the_market():
    spy = _series(20)
    value_style = _series(21, vol=0.004)
    etfs = pd.DataFrame({"SPY": spy, "VTV": 0.9 * spy + value_style, "VUG": 1.1 * spy + _series(22, vol=0.004)})
    # A portfolio: 0.8 of the market plus 0.5 of the value ETF.
    y = 0.8 * spy + 0.5 * etfs["VTV"]
    model = factor_exposures(y, etfs, FACTORS)
    betas = {b.factor: b.beta for b in model.betas}
    market_only = ols(y.to_numpy(), spy.to_numpy()).betas[0]
    assert betas["Market"] == pytest.approx(market_only)  # the plain beta to SPY
    assert betas["Value"] == pytest.approx(0.5, abs=1e-9)
    assert betas["Growth"] == pytest.approx(0.0, abs=1e-9)
    assert model.r_squared == pytest.approx(1.0)


def test_missing_factor_etf_is_reported_not_fatal():
    spy = _series(30)
    model = factor_exposures(spy, pd.DataFrame({"SPY": spy}), FACTORS)
    assert [b.factor for b in model.betas] == ["Market"]
    assert model.missing_factors == ["Value", "Growth"]
