"""Percentile math of the benchmark: numpy's default definition, empty and single samples."""

from __future__ import annotations

import numpy as np
import pytest

from sigmachat.bench.stats import Summary, median, overhead, percentile


@pytest.mark.parametrize(
    "values",
    [[1.0], [3.0, 1.0], [5, 1, 4, 2, 3], list(range(1, 101)), [0.5, 7.25, 7.25, 100.0, 3.0, 42.0, 9.5]],
)
@pytest.mark.parametrize("q", [0, 25, 50, 95, 99, 100])
def test_percentile_agrees_with_numpy_linear(values, q):
    assert percentile(values, q) == pytest.approx(float(np.percentile(values, q)))


def test_percentile_of_nothing_is_none_and_bad_q_is_refused():
    assert percentile([], 50) is None
    assert median([]) is None
    with pytest.raises(ValueError):
        percentile([1.0], 101)


def test_summary_ignores_missing_samples():
    s = Summary.of([None, 10.0, 20.0, None, 30.0])
    assert (s.n, s.p50, s.min, s.max, s.mean) == (3, 20.0, 10.0, 30.0, 20.0)
    assert s.p99 == pytest.approx(29.8)
    assert Summary.of([]).as_dict() == {
        "n": 0,
        "p50": None,
        "p95": None,
        "p99": None,
        "mean": None,
        "min": None,
        "max": None,
    }


def test_overhead_is_difference_and_ratio_against_the_floor():
    assert overhead(450.0, 300.0) == (150.0, 1.5)
    assert overhead(None, 300.0) == (None, None)
    assert overhead(10.0, 0.0) == (10.0, None)
