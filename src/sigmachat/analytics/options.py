"""Listed options: Black-Scholes greeks and implied volatility.

Pricing is :func:`sigmachat.market.generator.black_scholes`, the same model that marks the
demo option closes, so a volatility implied from a demo close reproduces it exactly.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

import numpy as np

from sigmachat.market.generator import RISK_FREE_RATE, black_scholes, norm_cdf

MIN_VOL, MAX_VOL = 0.01, 5.0
# Closes at or below this are a price floor (the demo marks never go under 0.01), not a
# market price: a volatility implied from them would be meaningless.
MIN_PRICE_FOR_IMPLIED = 0.05


def years_to_expiry(expiry: dt.date | None, as_of: dt.date) -> float:
    """ACT/365 year fraction, the convention of the demo option marks; 0 at or past expiry."""
    if expiry is None:
        return 0.0
    return max((expiry - as_of).days, 0) / 365.0


def option_price(
    spot: float | np.ndarray, strike: float, t_years: float, vol: float, kind: str, rate: float = RISK_FREE_RATE
) -> np.ndarray:
    """Black-Scholes price per share (intrinsic value at expiry)."""
    return black_scholes(spot, strike, t_years, vol, rate, kind)


@dataclass(frozen=True, slots=True)
class Greeks:
    delta: float  # per share: dV/dS
    gamma: float  # per share: d2V/dS2


def greeks(spot: float, strike: float, t_years: float, vol: float, kind: str, rate: float = RISK_FREE_RATE) -> Greeks:
    """Delta and gamma per share; at expiry the delta of the payoff (1/-1 in the money, else 0)."""
    if not (spot > 0 and strike > 0):
        return Greeks(float("nan"), float("nan"))
    if t_years <= 1e-9 or vol <= 0:
        itm = spot > strike if kind == "C" else spot < strike
        return Greeks((1.0 if kind == "C" else -1.0) if itm else 0.0, 0.0)
    sig = vol * math.sqrt(t_years)
    d1 = (math.log(spot / strike) + (rate + 0.5 * vol * vol) * t_years) / sig
    cdf = float(norm_cdf(d1))
    delta = cdf if kind == "C" else cdf - 1.0
    gamma = math.exp(-0.5 * d1 * d1) / math.sqrt(2.0 * math.pi) / (spot * sig)
    return Greeks(delta, gamma)


def implied_volatility(
    price: float, spot: float, strike: float, t_years: float, kind: str, rate: float = RISK_FREE_RATE
) -> float | None:
    """The volatility at which Black-Scholes gives ``price``; None when no volatility does.

    Bisection on [1%, 500%]: the price is increasing in volatility, so it always converges
    when a solution exists, and 60 halvings reach far below a basis point.
    """
    if not (price > MIN_PRICE_FOR_IMPLIED and spot > 0 and strike > 0 and t_years > 1e-9):
        return None

    def value(vol: float) -> float:
        return float(option_price(spot, strike, t_years, vol, kind, rate))

    lo, hi = MIN_VOL, MAX_VOL
    if not value(lo) <= price <= value(hi):
        return None
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        if value(mid) < price:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)
