"""Demo price generator: deterministic, anchored, plausible per asset class."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from sigmachat.market.generator import ANCHOR_DATE, DemoPriceGenerator, OptionSpec, black_scholes, trading_days
from sigmachat.market.security_master import load_security_master

AS_OF = dt.date(2025, 7, 11)


def _gen(seed=7, days=504):
    return DemoPriceGenerator(load_security_master(), seed=seed, as_of=AS_OF, days=days)


def _annual_vol(values: np.ndarray) -> float:
    return float(np.diff(np.log(values)).std() * np.sqrt(252))


def test_same_seed_same_series_and_different_seed_differs():
    symbols = ["AAPL", "SPY", "BND", "A16Z_VC_FUND", "VIX"]
    a = _gen(7).generate(symbols, {"AAPL": 204.9374}, [])
    b = _gen(7).generate(symbols, {"AAPL": 204.9374}, [])
    c = _gen(8).generate(symbols, {"AAPL": 204.9374}, [])
    for sym in symbols:
        assert np.array_equal(a[sym][1], b[sym][1])
    assert not np.array_equal(a["SPY"][1], c["SPY"][1])


def test_adding_a_symbol_does_not_change_others():
    a = _gen().generate(["AAPL"], {}, [])
    b = _gen().generate(["AAPL", "MSFT", "XOM"], {}, [])
    assert np.array_equal(a["AAPL"][1], b["AAPL"][1])


def test_history_length_and_calendar():
    dates = trading_days(AS_OF, 420)
    assert len(dates) == 420 and dates[-1] == AS_OF
    assert all(d.weekday() < 5 for d in dates)
    assert trading_days(dt.date(2025, 7, 13), 5)[-1] == AS_OF  # a Sunday rolls back to Friday


def test_anchored_to_entry_price_on_entry_date():
    gen = _gen()
    series = gen.generate(["AAPL"], {"AAPL": 204.9374}, [])["AAPL"]
    assert series[1][series[0].index(ANCHOR_DATE)] == pytest.approx(204.9374, abs=1e-4)


@pytest.mark.parametrize(
    ("symbols", "low", "high"),
    [
        (["AAPL", "MSFT", "JPM", "XOM", "TSLA", "NVDA", "JNJ"], 0.10, 0.90),  # single stocks
        (["SPY", "VTV", "VUG", "QUAL", "USMV"], 0.07, 0.35),  # broad/factor ETFs
        (["BND", "FXNAX"], 0.01, 0.12),  # bond funds
        (["A16Z_VC_FUND", "BX_PRIVATE_EQUITY", "RENTAL_SFH", "TWO_SIGMA_FUND"], 0.005, 0.15),  # private marks
    ],
)
def test_plausible_annualised_volatility_by_asset_class(symbols, low, high):
    series = _gen().generate(symbols, {}, [])
    for sym in symbols:
        vol = _annual_vol(series[sym][1])
        assert low <= vol <= high, (sym, vol)


def test_no_negative_or_zero_prices_and_structure():
    master = load_security_master()
    spec = OptionSpec("AAPL250815P00200000", "AAPL", 200.0, dt.date(2025, 8, 15), "P")
    series = _gen().generate(list(master.securities), {}, [spec])
    for sym, (_dates, values) in series.items():
        assert np.all(values > 0), sym
    spy = np.diff(np.log(series["SPY"][1]))
    # Sector co-movement: two tech names correlate more than tech vs. utilities.
    aapl, msft = (np.diff(np.log(series[s][1])) for s in ("AAPL", "MSFT"))
    assert np.corrcoef(aapl, msft)[0, 1] > 0.3
    assert np.corrcoef(spy, np.diff(np.log(series["VTI"][1])))[0, 1] > 0.8
    # The volatility index rises when the market falls.
    assert np.corrcoef(spy, np.diff(np.log(series["VIX"][1])))[0, 1] < -0.3


def test_option_series_is_black_scholes_of_underlying():
    gen = _gen()
    spec = OptionSpec("AAPL250815P00200000", "AAPL", 200.0, dt.date(2025, 8, 15), "P")
    out = gen.generate(["AAPL"], {"AAPL": 204.9374}, [spec])
    dates, values = out[spec.symbol]
    und = dict(zip(out["AAPL"][0], out["AAPL"][1], strict=True))
    t = (spec.expiry - dates[-1]).days / 365.0
    expected = black_scholes(und[dates[-1]], 200.0, t, load_security_master().get("AAPL").model_vol, 0.045, "P")
    assert values[-1] == pytest.approx(float(expected), abs=1e-3)


def test_black_scholes_put_call_parity_and_intrinsic_at_expiry():
    s, k, t, v, r = 100.0, 95.0, 0.5, 0.3, 0.045
    call = float(black_scholes(s, k, t, v, r, "C"))
    put = float(black_scholes(s, k, t, v, r, "P"))
    assert call - put == pytest.approx(s - k * np.exp(-r * t), abs=1e-6)
    assert float(black_scholes(120.0, 100.0, 0.0, v, r, "C")) == 20.0
    assert float(black_scholes(120.0, 100.0, 0.0, v, r, "P")) == 0.0
