"""Data quality of a portfolio's prices: missing, stale and too-short histories."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import pandas as pd

from sigmachat.portfolio.valuation import STALE_AFTER_DAYS

# The longest window any tool estimates over (one year of daily returns).
FULL_HISTORY_DAYS = 252
# Below this many returns betas and volatilities are not meaningful; tools exclude the series.
MIN_HISTORY_DAYS = 60


@dataclass(frozen=True, slots=True)
class SymbolQuality:
    symbol: str
    lots: int
    last_price_date: dt.date | None
    observations: int  # daily closes up to the as-of date
    issues: list[str] = field(
        default_factory=list
    )  # missing_price | stale_price | insufficient_history | short_history


def assess(symbols_lots: dict[str, int], closes: pd.DataFrame, as_of: dt.date) -> list[SymbolQuality]:
    """Quality of each held symbol's prices (``symbols_lots``: symbol -> open lots).

    A price is stale when its date is more than ``STALE_AFTER_DAYS`` before ``as_of``
    (the valuation's rule); a history is insufficient for risk models with at most
    ``MIN_HISTORY_DAYS`` closes, and short with less than a year of daily returns.
    """
    out = []
    for symbol, lots in symbols_lots.items():
        series = closes[symbol].dropna() if symbol in closes.columns else pd.Series(dtype=float)
        last = series.index[-1].date() if not series.empty else None
        issues = []
        if last is None:
            issues.append("missing_price")
        elif (as_of - last).days > STALE_AFTER_DAYS:
            issues.append("stale_price")
        n = int(len(series))
        if 0 < n <= MIN_HISTORY_DAYS:
            issues.append("insufficient_history")
        elif 0 < n <= FULL_HISTORY_DAYS:
            issues.append("short_history")
        out.append(SymbolQuality(symbol, lots, last, n, issues))
    return out
