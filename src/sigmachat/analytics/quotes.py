"""Quotes from daily closes: last close, day change, 52-week range, and the day's movers."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

from sigmachat.analytics.returns import TRADING_DAYS


@dataclass(frozen=True, slots=True)
class QuoteStats:
    symbol: str
    date: dt.date
    close: float
    previous_date: dt.date | None
    previous_close: float | None
    high_52w: float
    low_52w: float
    return_21d: float | None  # over the last 21 closes (about a month)

    @property
    def change(self) -> float | None:
        return None if self.previous_close is None else self.close - self.previous_close

    @property
    def change_pct(self) -> float | None:
        """Day change in percent points (1.5 = +1.5%)."""
        if not self.previous_close:
            return None
        return (self.close / self.previous_close - 1.0) * 100.0


def quote_stats(closes: pd.DataFrame, symbols: list[str] | None = None) -> dict[str, QuoteStats]:
    """Stats of each symbol's own last closes (a stale series is quoted at its last date).

    The 52-week range spans the last 252 closes of the symbol, the last one included.
    """
    out: dict[str, QuoteStats] = {}
    for symbol in symbols if symbols is not None else list(closes.columns):
        if symbol not in closes.columns:
            continue
        series = closes[symbol].dropna()
        if series.empty:
            continue
        year = series.iloc[-TRADING_DAYS:]
        prev = series.iloc[-2] if len(series) > 1 else None
        month = series.iloc[-22] if len(series) > 21 else None
        out[symbol] = QuoteStats(
            symbol=symbol,
            date=series.index[-1].date(),
            close=float(series.iloc[-1]),
            previous_date=series.index[-2].date() if prev is not None else None,
            previous_close=float(prev) if prev is not None else None,
            high_52w=float(year.max()),
            low_52w=float(year.min()),
            return_21d=float(series.iloc[-1] / month - 1.0) if month else None,
        )
    return out


def daily_moves(book: pd.DataFrame, closes: pd.DataFrame) -> pd.DataFrame:
    """Each priced holding's last day: change in percent points and its P&L impact.

    P&L impact = quantity x multiplier x (close - previous close), so a short that rises
    loses money. Index: symbol; ordered by change, largest gain first.
    """
    stats = quote_stats(closes, list(book.index))
    rows = []
    for symbol, h in book.iterrows():
        q = stats.get(symbol)
        if q is None or q.previous_close is None:
            continue
        units = float(h["quantity"]) * float(h["multiplier"])
        rows.append(
            {
                "symbol": symbol,
                "name": h["name"],
                "date": q.date,
                "previous_date": q.previous_date,
                "close": q.close,
                "previous_close": q.previous_close,
                "change": q.change,
                "change_pct": q.change_pct,
                "pnl_impact": units * (q.close - q.previous_close),
                "market_value": h["market_value"],
                "side": "short" if units < 0 else "long",
            }
        )
    if not rows:
        return pd.DataFrame(
            columns=[
                "name",
                "date",
                "previous_date",
                "close",
                "previous_close",
                "change",
                "change_pct",
                "pnl_impact",
                "market_value",
                "side",
            ]
        )
    frame = pd.DataFrame(rows).set_index("symbol")
    frame = frame[np.isfinite(frame["change_pct"].astype(float))]
    return frame.sort_values("change_pct", ascending=False, kind="stable")
