"""Greeks and implied volatility."""

from __future__ import annotations

import pytest

from sigmachat.analytics.options import greeks, implied_volatility, option_price
from tests.analytics.handcalc import bs_call, bs_call_delta


def test_call_price_and_delta_match_the_textbook_formula():
    assert float(option_price(100.0, 95.0, 0.5, 0.25, "C")) == pytest.approx(bs_call(100.0, 95.0, 0.5, 0.25))
    assert greeks(100.0, 95.0, 0.5, 0.25, "C").delta == pytest.approx(bs_call_delta(100.0, 95.0, 0.5, 0.25))


def test_put_call_delta_parity_and_gamma_sign():
    call, put = greeks(100.0, 110.0, 0.25, 0.3, "C"), greeks(100.0, 110.0, 0.25, 0.3, "P")
    assert call.delta - put.delta == pytest.approx(1.0)
    assert call.gamma == pytest.approx(put.gamma) and call.gamma > 0


def test_at_expiry_delta_is_the_payoffs():
    assert greeks(120.0, 100.0, 0.0, 0.3, "C").delta == 1.0
    assert greeks(80.0, 100.0, 0.0, 0.3, "C").delta == 0.0
    assert greeks(80.0, 100.0, 0.0, 0.3, "P").delta == -1.0


def test_implied_volatility_round_trips():
    price = float(option_price(50.0, 55.0, 0.4, 0.42, "P"))
    assert implied_volatility(price, 50.0, 55.0, 0.4, "P") == pytest.approx(0.42, abs=1e-6)


def test_no_implied_volatility_from_a_price_floor_or_below_intrinsic():
    assert implied_volatility(0.01, 100.0, 800.0, 0.3, "C") is None
    assert implied_volatility(5.0, 100.0, 80.0, 0.3, "C") is None  # intrinsic is 20
