"""Quotes, day moves and their P&L impact (shorts included), returns with calendar gaps."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sigmachat.analytics.quotes import daily_moves, quote_stats
from sigmachat.analytics.returns import daily_returns


def _closes() -> pd.DataFrame:
    idx = pd.bdate_range("2024-06-03", periods=300)
    up = np.linspace(100, 130, 300)
    return pd.DataFrame({"UP": up, "DOWN": up[::-1] / 2}, index=idx)


def test_quote_stats_day_change_and_52_week_range():
    closes = _closes()
    q = quote_stats(closes)["UP"]
    assert q.close == pytest.approx(130.0)
    assert q.previous_close == pytest.approx(closes["UP"].iloc[-2])
    assert q.change_pct == pytest.approx((130.0 / closes["UP"].iloc[-2] - 1) * 100)
    assert q.high_52w == pytest.approx(130.0)
    assert q.low_52w == pytest.approx(closes["UP"].iloc[-252])  # the last 252 closes


def test_a_short_loses_when_its_price_rises():
    closes = _closes()
    book = pd.DataFrame(
        {
            "name": ["Up", "Down"],
            "quantity": [-10.0, 20.0],
            "multiplier": [1.0, 1.0],
            "market_value": [-1300.0, 1000.0],
        },
        index=["UP", "DOWN"],
    )
    moves = daily_moves(book, closes)
    up_move = closes["UP"].iloc[-1] - closes["UP"].iloc[-2]
    assert moves.loc["UP", "pnl_impact"] == pytest.approx(-10 * up_move)
    assert moves.loc["UP", "pnl_impact"] < 0 and moves.loc["UP", "change_pct"] > 0
    assert moves.loc["UP", "side"] == "short"
    assert list(moves.index) == ["UP", "DOWN"]  # largest gain first


def test_returns_bridge_a_gap_inside_a_series_but_not_before_it_starts():
    idx = pd.bdate_range("2025-01-06", periods=5)
    closes = pd.DataFrame(
        {"A": [100, np.nan, 110, 121, 121], "B": [np.nan, np.nan, 50, 55, 55]}, index=idx, dtype=float
    )
    r = daily_returns(closes)
    assert r["A"].tolist() == pytest.approx([0.0, 0.10, 0.10, 0.0])  # the gap day books nothing, the next the move
    assert np.isnan(r["B"].iloc[0]) and np.isnan(r["B"].iloc[1])
    assert r["B"].iloc[2] == pytest.approx(0.10)
