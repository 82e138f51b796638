"""HHI, effective number of positions and top-N weights by hand."""

from __future__ import annotations

import pandas as pd
import pytest

from sigmachat.analytics.concentration import concentration, hhi


def test_hhi_of_a_two_position_portfolio():
    c = concentration(pd.Series({"A": 60_000.0, "B": 40_000.0}))
    assert c.hhi == pytest.approx(0.6**2 + 0.4**2)  # 0.52
    assert c.effective_n == pytest.approx(1 / 0.52)
    assert c.top_weights[1] == pytest.approx(0.6)
    assert c.top_weights[5] == pytest.approx(1.0)
    assert c.largest == [("A", pytest.approx(0.6)), ("B", pytest.approx(0.4))]


def test_a_short_counts_by_its_size():
    assert hhi(pd.Series({"A": 60_000.0, "B": -40_000.0})) == pytest.approx(0.52)
    c = concentration(pd.Series({"A": 30.0, "B": -70.0}))
    assert c.largest[0] == ("B", pytest.approx(0.7))


def test_equal_positions_have_effective_n_equal_to_their_count():
    c = concentration(pd.Series({s: 10.0 for s in "ABCDEFGHIJKL"}))
    assert c.hhi == pytest.approx(1 / 12)
    assert c.effective_n == pytest.approx(12)
    assert c.top_weights[10] == pytest.approx(10 / 12)


def test_empty_and_zero_values():
    c = concentration(pd.Series({"A": 0.0}, dtype=float))
    assert c.count == 0
    assert c.largest == []
