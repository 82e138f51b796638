"""Concentration: Herfindahl-Hirschman index, effective number of positions, top-N weights.

Weights are shares of gross exposure, |value| / sum |value|, so they are positive and sum
to one even in a long/short book: a large short concentrates risk as much as a large long.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

TOP_NS = (1, 5, 10)


@dataclass(frozen=True, slots=True)
class Concentration:
    hhi: float  # sum of squared weights: 1/n for n equal positions, 1 for a single one
    effective_n: float  # 1 / HHI: the number of equal positions with the same HHI
    count: int
    top_weights: dict[int, float] = field(default_factory=dict)  # N -> share of gross in the N largest
    largest: list[tuple[str, float]] = field(default_factory=list)  # (name, share of gross), largest first


def gross_weights(values: pd.Series) -> pd.Series:
    """|value| / sum |value|, largest first (non-finite and zero values dropped)."""
    v = values.astype(float)
    v = v[np.isfinite(v)].abs()
    v = v[v > 0]
    total = v.sum()
    if total <= 0:
        return pd.Series(dtype=float)
    return (v / total).sort_values(ascending=False, kind="stable")


def hhi(values: pd.Series) -> float:
    w = gross_weights(values)
    return float((w * w).sum()) if len(w) else float("nan")


def concentration(values: pd.Series, *, top_ns: tuple[int, ...] = TOP_NS, largest: int = 10) -> Concentration:
    """Concentration of signed dollar values keyed by name (symbol or sector)."""
    w = gross_weights(values)
    if w.empty:
        return Concentration(float("nan"), float("nan"), 0, {n: float("nan") for n in top_ns}, [])
    h = float((w * w).sum())
    return Concentration(
        hhi=h,
        effective_n=1.0 / h,
        count=int(len(w)),
        top_weights={n: float(w.iloc[:n].sum()) for n in top_ns},
        largest=[(str(k), float(v)) for k, v in w.iloc[:largest].items()],
    )
