"""Price histories: per-symbol summaries, down-sampling for display, and the NAV back-cast."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from sigmachat.analytics.returns import annualised_volatility, daily_returns


@dataclass(frozen=True, slots=True)
class SeriesSummary:
    symbol: str
    first_date: dt.date
    last_date: dt.date
    first_close: float
    last_close: float
    total_return: float  # fraction over the window
    high: float
    low: float
    volatility: float  # annualised, from the window's daily returns
    points: int


def window_closes(closes: pd.DataFrame, days: int) -> pd.DataFrame:
    """The last ``days`` trading days plus the close before them, so the window's first
    day has a return (a 30-day lookback spans 30 daily moves)."""
    return closes.iloc[-(days + 1) :]


def summarise(closes: pd.DataFrame) -> list[SeriesSummary]:
    """One summary per column with at least one close in ``closes``."""
    returns = daily_returns(closes)
    out = []
    for symbol in closes.columns:
        s = closes[symbol].dropna()
        if s.empty:
            continue
        out.append(
            SeriesSummary(
                symbol=str(symbol),
                first_date=s.index[0].date(),
                last_date=s.index[-1].date(),
                first_close=float(s.iloc[0]),
                last_close=float(s.iloc[-1]),
                total_return=float(s.iloc[-1] / s.iloc[0] - 1.0),
                high=float(s.max()),
                low=float(s.min()),
                volatility=annualised_volatility(returns[symbol]) if symbol in returns else float("nan"),
                points=int(len(s)),
            )
        )
    return out


def downsample(closes: pd.DataFrame, max_points: int) -> tuple[pd.DataFrame, int]:
    """Every ``step``-th row counted back from the last, so the latest close always stays.

    Returns the rows and the step (1 = every trading day).
    """
    n = len(closes)
    step = max(1, math.ceil(n / max(max_points, 1)))
    if step == 1:
        return closes, 1
    rows = np.arange(n - 1, -1, -step)[::-1]
    return closes.iloc[rows], step


def nav_history(units: pd.Series, closes: pd.DataFrame, cash: float, days: int) -> pd.Series:
    """NAV over the last ``days`` closes holding today's positions constant (a back-cast).

    ``units`` is quantity x multiplier by symbol. A symbol without a close on a day uses
    its nearest earlier close, or before its first close its first one, so the series
    measures price moves of today's holdings rather than data gaps.
    """
    cols = [s for s in units.index if s in closes.columns]
    window = closes[cols].ffill().bfill().iloc[-days:]
    values = window.to_numpy(dtype=float) @ units[cols].to_numpy(dtype=float)
    return pd.Series(values + cash, index=window.index)
