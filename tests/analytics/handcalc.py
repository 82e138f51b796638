"""Independent hand computations and a tiny in-memory portfolio for the analytics tests.

Black-Scholes is written out here from the textbook formula (math.erf), separately from
the product's implementation, so a test compares two computations, not one with itself.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

from sigmachat.market.generator import RISK_FREE_RATE
from sigmachat.market.prices import Quote

AS_OF = dt.date(2025, 7, 11)
EXPIRY = AS_OF + dt.timedelta(days=91)
T = 91 / 365
VOL = 0.30
OPTION = "AAPL251010C00055000"


def phi(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def bs_call(s: float, k: float, t: float, vol: float, r: float = RISK_FREE_RATE) -> float:
    d1 = (math.log(s / k) + (r + vol * vol / 2) * t) / (vol * math.sqrt(t))
    d2 = d1 - vol * math.sqrt(t)
    return s * phi(d1) - k * math.exp(-r * t) * phi(d2)


def bs_call_delta(s: float, k: float, t: float, vol: float, r: float = RISK_FREE_RATE) -> float:
    return phi((math.log(s / k) + (r + vol * vol / 2) * t) / (vol * math.sqrt(t)))


@dataclass
class FakePortfolio:
    id: str
    name: str
    equity_balance: float


@dataclass
class FakeLot:
    """The attributes valuation reads from a Position row."""

    id: str
    symbol: str
    quantity: float
    entry_price: float
    asset_class: str
    entry_date: dt.date = dt.date(2025, 6, 30)
    exit_date: dt.date | None = None
    underlying: str | None = None
    strike: float | None = None
    expiry: dt.date | None = None
    option_type: str | None = None


OPTION_CLOSE = round(bs_call(60.0, 55.0, T, VOL), 4)


def small_book_inputs():
    """Long 100 AAPL at 60 (cost 50), short 50 XOM at 80 (sold at 100), long 2 AAPL calls
    (strike 55, 91 days) at a close priced with 30% volatility (cost 3.00).

    By hand: AAPL 6,000; XOM -4,000; calls 2 x 100 x close; cash = 20,000 - (5,000 - 5,000
    + 600) = 19,400; NAV = cash + the three market values.
    """
    portfolio = FakePortfolio("p1", "Small", 20_000.0)
    lots = [
        FakeLot("l1", "AAPL", 100, 50.0, "PUBLIC"),
        FakeLot("l2", "XOM", -50, 100.0, "PUBLIC"),
        FakeLot("l3", OPTION, 2, 3.0, "OPTIONS", underlying="AAPL", strike=55.0, expiry=EXPIRY, option_type="C"),
    ]
    quotes = {
        "AAPL": Quote(AS_OF, 60.0, "demo"),
        "XOM": Quote(AS_OF, 80.0, "demo"),
        OPTION: Quote(AS_OF, OPTION_CLOSE, "demo"),
    }
    return portfolio, lots, quotes
