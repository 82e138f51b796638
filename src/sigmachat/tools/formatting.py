"""How numbers leave the tools: rounded, finite, JSON-native; and short texts for summaries.

Conventions every tool follows (the model and the UIs rely on them):
- dollars: 2 decimals (``usd``);
- ratios, weights, betas, volatilities, correlations, returns: fractions with 4 decimals
  (``ratio``; 0.1234 = 12.34%), in fields named ``weight``, ``*_of_nav``, ``volatility``...;
- percent points: 2 decimals in fields ending ``_pct`` (``change_pct`` 1.25 = +1.25%);
- NaN and infinities become null: the JSON is always standard.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd


def _finite(value: Any) -> float | None:
    if value is None:
        return None
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def usd(value: Any) -> float | None:
    f = _finite(value)
    return None if f is None else round(f, 2) + 0.0  # + 0.0 turns -0.0 into 0.0


def ratio(value: Any, digits: int = 4) -> float | None:
    f = _finite(value)
    return None if f is None else round(f, digits) + 0.0


def pct_points(value: Any) -> float | None:
    return ratio(value, 2)


def price(value: Any) -> float | None:
    """Prices keep 4 decimals: option premiums and sub-dollar closes need them."""
    return ratio(value, 4)


def iso(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return None
    if isinstance(value, pd.Timestamp):
        return value.date().isoformat()
    if isinstance(value, dt.datetime):
        return value.date().isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


def jsonable(value: Any) -> Any:
    """A deep copy made of JSON-native types only (numpy, pandas and dates converted,
    non-finite floats to None). Tools round first; this is the safety net."""
    if value is None or isinstance(value, bool | str | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return jsonable(float(value))
    if isinstance(value, dt.date | pd.Timestamp):
        return iso(value)
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset | np.ndarray | pd.Index):
        return [jsonable(v) for v in value]
    if value is pd.NA or value is pd.NaT:
        return None
    return str(value)


def short_usd(value: Any) -> str:
    """$2.86M, -$412.3k, $950: for one-line summaries."""
    f = _finite(value)
    if f is None:
        return "n/a"
    sign = "-" if f < 0 else ""
    a = abs(f)
    if a >= 1e9:
        body = f"{a / 1e9:.2f}B"
    elif a >= 1e6:
        body = f"{a / 1e6:.2f}M"
    elif a >= 1e4:
        body = f"{a / 1e3:.1f}k"
    else:
        body = f"{a:,.0f}"
    return f"{sign}${body}"


def short_pct(fraction: Any, *, signed: bool = False) -> str:
    f = _finite(fraction)
    if f is None:
        return "n/a"
    text = f"{f * 100:{'+' if signed else ''}.1f}%"
    return text.replace("-0.0%", "0.0%").replace("+0.0%", "0.0%")
