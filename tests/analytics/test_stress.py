"""Stress P&L of a small book by hand: linear holdings and a fully revalued option."""

from __future__ import annotations

import pandas as pd
import pytest

from sigmachat.analytics.book import build_book
from sigmachat.analytics.stress import (
    SCENARIOS,
    Scenario,
    rate_sensitivity,
    run_scenarios,
    sensitivities,
    underlying_shocks,
)
from sigmachat.market.security_master import load_security_master
from sigmachat.portfolio.valuation import value_portfolio
from tests.analytics.handcalc import AS_OF, OPTION, OPTION_CLOSE, VOL, T, bs_call, small_book_inputs

SENS = pd.DataFrame(
    {"market_beta": [1.2, 0.8], "tech_beta": [1.0, 0.0], "source": ["estimated"] * 2}, index=["AAPL", "XOM"]
)
PROFILES = pd.DataFrame(
    {
        "sector": ["Information Technology", "Energy"],
        "industry": ["Technology Hardware", "Oil & Gas"],
        "asset_type": ["stock", "stock"],
    },
    index=["AAPL", "XOM"],
)


@pytest.fixture
def book():
    portfolio, lots, quotes = small_book_inputs()
    valuation = value_portfolio(portfolio, lots, quotes, load_security_master(), AS_OF)
    return build_book(valuation, load_security_master(), {"AAPL": 60.0}, {}, AS_OF)


def _run(book, scenario):
    [result] = run_scenarios(book, SENS, PROFILES, [scenario])
    return result


def test_market_down_10_by_hand(book):
    result = _run(book, Scenario("m", "Market -10%", "", market=-0.10))
    p = result.positions["pnl"]
    assert p["AAPL"] == pytest.approx(6_000 * 1.2 * -0.10)  # -720
    assert p["XOM"] == pytest.approx(-4_000 * 0.8 * -0.10)  # +320: the short gains
    # The call is revalued at the moved underlying (60 x (1 - 12%) = 52.80), not by delta.
    option = 2 * 100 * (bs_call(52.8, 55.0, T, VOL) - bs_call(60.0, 55.0, T, VOL))
    assert p[OPTION] == pytest.approx(option, rel=1e-4)
    assert result.pnl == pytest.approx(-720 + 320 + option, rel=1e-5)
    assert result.positions["shock"][OPTION] == pytest.approx(-0.12)


def test_option_loss_is_convex_not_linear(book):
    down10 = _run(book, Scenario("a", "", "", market=-0.10)).positions["pnl"][OPTION]
    down20 = _run(book, Scenario("b", "", "", market=-0.20)).positions["pnl"][OPTION]
    # A long call loses less than twice as much when the fall doubles (gamma).
    assert down20 < down10 < 0
    assert abs(down20) < 2 * abs(down10)


def test_volatility_spike_reprices_options_at_higher_volatility(book):
    scenario = Scenario("v", "", "", market=-0.05, vol_multiplier=1.5)
    p = _run(book, scenario).positions["pnl"]
    s1 = 60.0 * (1 - 1.2 * 0.05)
    assert p[OPTION] == pytest.approx(
        2 * 100 * (bs_call(s1, 55.0, T, VOL * 1.5) - bs_call(60.0, 55.0, T, VOL)), rel=1e-4
    )


def test_tech_selloff_uses_the_tech_loading(book):
    p = _run(book, Scenario("t", "", "", market=-0.03, tech=-0.12)).positions["pnl"]
    assert p["AAPL"] == pytest.approx(6_000 * (1.2 * -0.03 + 1.0 * -0.12))
    assert p["XOM"] == pytest.approx(-4_000 * (0.8 * -0.03))


def test_rates_up_by_sector_and_duration(book):
    p = _run(book, Scenario("r", "", "", rates_bp=100)).positions["pnl"]
    assert p["AAPL"] == pytest.approx(6_000 * -0.04)
    assert p["XOM"] == pytest.approx(0.0)
    assert rate_sensitivity("Fixed Income", "Aggregate Bond ETF", "bond_fund") == pytest.approx(-0.06)
    assert rate_sensitivity("Cash", "Treasury Bill ETF", "bond_fund") == pytest.approx(-0.0025)


def test_overrides_replace_the_model_shock():
    sens = pd.DataFrame({"market_beta": [-4.0], "tech_beta": [0.0]}, index=["VIX"])
    profiles = pd.DataFrame({"sector": ["Volatility"], "industry": [""], "asset_type": ["index"]}, index=["VIX"])
    spike = next(s for s in SCENARIOS if s.id == "volatility_spike")
    assert underlying_shocks(spike, sens, profiles)["VIX"] == pytest.approx(0.60)


def test_losses_are_capped_at_the_holding():
    sens = pd.DataFrame({"market_beta": [8.0], "tech_beta": [0.0]}, index=["X"])
    profiles = pd.DataFrame({"sector": ["Unknown"], "industry": [""], "asset_type": ["stock"]}, index=["X"])
    assert underlying_shocks(Scenario("m", "", "", market=-0.2), sens, profiles)["X"] == pytest.approx(-0.99)


def test_sensitivities_fall_back_without_history():
    idx = pd.bdate_range("2025-01-01", periods=100)
    market = pd.Series(range(100), index=idx, dtype=float) / 1000
    returns = pd.DataFrame({"NEW": [float("nan")] * 90 + [0.01] * 10, "OLD": 1.5 * market}, index=idx)
    sens = sensitivities(
        returns, market, None, {"NEW": 0.7}, {"NEW": "Information Technology", "OLD": "Energy"}, min_obs=60
    )
    assert sens.loc["OLD", "market_beta"] == pytest.approx(1.5)
    assert sens.loc["OLD", "source"] == "estimated"
    assert sens.loc["NEW", "market_beta"] == pytest.approx(0.7)
    assert sens.loc["NEW", "source"] == "fallback"
    assert sens.loc["NEW", "tech_beta"] == 1.0
    assert sens.loc["OLD", "tech_beta"] == 0.0


def test_the_model_close_is_the_base_so_a_zero_shock_is_zero_pnl(book):
    assert OPTION_CLOSE > 0
    result = _run(book, Scenario("z", "", ""))
    assert result.pnl == pytest.approx(0.0, abs=1e-9)
