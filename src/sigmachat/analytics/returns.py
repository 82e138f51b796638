"""Daily returns and the windows and volatilities computed from them."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

TRADING_DAYS = 252
ANNUALISE = math.sqrt(TRADING_DAYS)


def daily_returns(closes: pd.DataFrame) -> pd.DataFrame:
    """Simple daily returns of every column (index: dates, first date dropped).

    Gaps *inside* a series (a holiday in one source's calendar but not another's) are
    forward-filled first, so the move is booked on the next close rather than lost; leading
    and trailing gaps stay NaN: a series that has not started, or has stopped, has no return.
    """
    if closes.empty:
        return closes.iloc[1:].astype(float)
    filled = closes.astype(float).ffill(limit_area="inside")
    return (filled / filled.shift(1) - 1.0).iloc[1:]


def trailing(frame: pd.DataFrame | pd.Series, days: int) -> pd.DataFrame | pd.Series:
    """The last ``days`` rows (all of them when fewer exist)."""
    return frame.iloc[-days:] if days > 0 else frame.iloc[0:0]


def annualised_volatility(returns: pd.Series | np.ndarray) -> float:
    """Sample standard deviation of daily returns x sqrt(252); NaN with fewer than 2 points."""
    values = np.asarray(returns, dtype=float)
    values = values[np.isfinite(values)]
    if values.size < 2:
        return float("nan")
    return float(np.std(values, ddof=1) * ANNUALISE)


def aligned_matrix(
    returns: pd.DataFrame, columns: list[str], days: int, *, min_coverage: float = 0.8
) -> tuple[pd.DataFrame, list[str]]:
    """Returns of ``columns`` over the last ``days`` rows, ready for covariance maths.

    Columns present on fewer than ``min_coverage`` of the window's days are excluded (and
    named in the second value); remaining isolated gaps count as a zero return, which keeps
    every day in the sample instead of shrinking it to the days all series share.
    """
    window = trailing(returns, days)
    present = [c for c in dict.fromkeys(columns) if c in window.columns]
    missing = [c for c in dict.fromkeys(columns) if c not in window.columns]
    if window.empty or not present:
        return pd.DataFrame(index=window.index), missing + present
    coverage = window[present].notna().mean()
    keep = [c for c in present if coverage[c] >= min_coverage]
    excluded = missing + [c for c in present if coverage[c] < min_coverage]
    return window[keep].fillna(0.0), excluded
