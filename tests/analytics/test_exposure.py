"""Exposure of a small book with a short stock and an option, checked against hand sums."""

from __future__ import annotations

import pytest

from sigmachat.analytics.book import build_book
from sigmachat.analytics.exposure import by_asset_class, by_sector, exposure_of
from sigmachat.market.security_master import load_security_master
from sigmachat.portfolio.valuation import value_portfolio
from tests.analytics.handcalc import AS_OF, OPTION, OPTION_CLOSE, VOL, T, bs_call_delta, small_book_inputs


@pytest.fixture
def book():
    portfolio, lots, quotes = small_book_inputs()
    valuation = value_portfolio(portfolio, lots, quotes, load_security_master(), AS_OF)
    return valuation, build_book(valuation, load_security_master(), {"AAPL": 60.0}, {}, AS_OF)


def test_market_value_exposure_signs_the_short_and_counts_the_option_premium(book):
    valuation, _ = book
    option_mv = 2 * OPTION_CLOSE * 100
    assert valuation.cash == pytest.approx(20_000 - (5_000 - 5_000 + 600))
    assert valuation.nav == pytest.approx(19_400 + 6_000 - 4_000 + option_mv)
    e = exposure_of(h.market_value for h in valuation.holdings)
    assert e.long == pytest.approx(6_000 + option_mv)
    assert e.short == pytest.approx(-4_000)
    assert e.gross == pytest.approx(10_000 + option_mv)
    assert e.net == pytest.approx(2_000 + option_mv)


def test_delta_adjusted_exposure_uses_black_scholes_delta_on_the_underlying(book):
    _, b = book
    option = b.loc[OPTION]
    assert option["vol_source"] == "implied"
    assert option["vol"] == pytest.approx(VOL, abs=1e-4)  # implied back from a close priced at 30%
    delta = bs_call_delta(60.0, 55.0, T, VOL)
    assert option["delta"] == pytest.approx(delta, abs=1e-4)
    assert option["delta_exposure"] == pytest.approx(2 * 100 * delta * 60.0, rel=1e-4)
    assert option["notional"] == pytest.approx(2 * 100 * 60.0)
    assert option["risk_symbol"] == "AAPL"
    # Stocks count their market value; the short stays negative.
    assert b.loc["AAPL", "delta_exposure"] == pytest.approx(6_000)
    assert b.loc["XOM", "delta_exposure"] == pytest.approx(-4_000)
    e = exposure_of(b["delta_exposure"])
    assert e.long == pytest.approx(6_000 + 2 * 100 * delta * 60.0, rel=1e-5)
    assert e.short == pytest.approx(-4_000)


def test_short_put_is_long_delta_exposure():
    from sigmachat.market.prices import Quote
    from tests.analytics.handcalc import EXPIRY, FakeLot, FakePortfolio

    put = "AAPL251010P00055000"
    lots = [FakeLot("p", put, -3, 2.0, "OPTIONS", underlying="AAPL", strike=55.0, expiry=EXPIRY, option_type="P")]
    valuation = value_portfolio(
        FakePortfolio("x", "x", 10_000), lots, {put: Quote(AS_OF, 1.5, "demo")}, load_security_master(), AS_OF
    )
    b = build_book(valuation, load_security_master(), {"AAPL": 60.0}, {}, AS_OF)
    assert b.loc[put, "market_value"] == pytest.approx(-3 * 1.5 * 100)  # a liability by market value...
    assert b.loc[put, "delta"] < 0
    assert b.loc[put, "delta_exposure"] > 0  # ...but long the underlying by delta


def test_sector_and_asset_class_breakdowns(book):
    _, b = book
    sectors = by_sector(b)
    it = sectors.loc["Information Technology"]  # AAPL and its option
    assert it["market_value"] == pytest.approx(6_000 + 2 * OPTION_CLOSE * 100)
    assert it["holdings"] == 2
    energy = sectors.loc["Energy"]
    assert (energy["long"], energy["short"], energy["gross"]) == pytest.approx((0.0, -4_000, 4_000))
    classes = by_asset_class(b)
    assert classes.loc["OPTIONS", "holdings"] == 1
    assert classes.loc["PUBLIC", "market_value"] == pytest.approx(2_000)
