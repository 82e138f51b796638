"""Summary statistics for the benchmark: percentiles, medians and ratios of samples.

Written by hand (a dozen lines) rather than pulling numpy into the load generator's hot
process: the definition is numpy's default ("linear" interpolation between closest ranks),
so figures agree with ``numpy.percentile`` and with a spreadsheet's PERCENTILE.INC.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (0..100) with linear interpolation; None for no samples."""
    if not 0 <= q <= 100:
        raise ValueError(f"percentile must be within 0..100, got {q}")
    data = sorted(v for v in values if v is not None and not math.isnan(v))
    if not data:
        return None
    if len(data) == 1:
        return float(data[0])
    rank = (len(data) - 1) * q / 100
    lo = math.floor(rank)
    hi = min(lo + 1, len(data) - 1)
    return float(data[lo] + (data[hi] - data[lo]) * (rank - lo))


def median(values: Sequence[float]) -> float | None:
    return percentile(values, 50)


@dataclass(frozen=True, slots=True)
class Summary:
    """n, p50, p95, p99, mean, min and max of one metric (None when there are no samples)."""

    n: int
    p50: float | None
    p95: float | None
    p99: float | None
    mean: float | None
    min: float | None
    max: float | None

    @classmethod
    def of(cls, values: Iterable[float | None]) -> Summary:
        data = [float(v) for v in values if v is not None and not math.isnan(v)]
        if not data:
            return cls(0, None, None, None, None, None, None)
        return cls(
            n=len(data),
            p50=percentile(data, 50),
            p95=percentile(data, 95),
            p99=percentile(data, 99),
            mean=sum(data) / len(data),
            min=min(data),
            max=max(data),
        )

    def as_dict(self, digits: int = 2) -> dict[str, Any]:
        return {k: (round(v, digits) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def overhead(value: float | None, floor: float | None) -> tuple[float | None, float | None]:
    """(value - floor, value / floor): what a path adds on top of the floor, in ms and as a ratio."""
    if value is None or floor is None:
        return None, None
    ratio = value / floor if floor > 0 else None
    return value - floor, ratio
