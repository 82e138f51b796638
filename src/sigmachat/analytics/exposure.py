"""Long, short, gross and net exposure, in dollars and as a share of NAV, and by sector.

Two bases, both reported because they answer different questions:
- market value: what the positions are worth (an option counts its premium);
- delta-adjusted: the equivalent position in the underlying (an option counts
  quantity x multiplier x delta x underlying price), which is what moves with the market.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True, slots=True)
class Exposure:
    long: float  # sum of positive exposures
    short: float  # sum of negative exposures (a negative number)

    @property
    def gross(self) -> float:
        return self.long - self.short

    @property
    def net(self) -> float:
        return self.long + self.short


def exposure_of(values: Iterable[float]) -> Exposure:
    """Long and short sides of signed dollar exposures (non-finite values are ignored)."""
    arr = np.asarray(list(values), dtype=float)
    arr = arr[np.isfinite(arr)]
    return Exposure(long=float(arr[arr > 0].sum()), short=float(arr[arr < 0].sum()))


def by_asset_class(book: pd.DataFrame) -> pd.DataFrame:
    """Holdings, lots and market value per asset class (PUBLIC | OPTIONS | PRIVATE)."""
    if book.empty:
        return pd.DataFrame(columns=["holdings", "lots", "market_value", "delta_exposure"])
    grouped = book.groupby("asset_class", sort=True)
    return pd.DataFrame(
        {
            "holdings": grouped.size(),
            "lots": grouped["lots"].sum(),
            "market_value": grouped["market_value"].sum(),
            "delta_exposure": grouped["delta_exposure"].sum(min_count=1),
        }
    )


def by_sector(book: pd.DataFrame) -> pd.DataFrame:
    """Per sector: net market value, long / short / gross sides, delta-adjusted net exposure.

    Options sit in their underlying's sector. Rows are ordered by absolute net market
    value, largest first.
    """
    cols = ["market_value", "long", "short", "gross", "delta_exposure", "holdings", "symbols"]
    if book.empty:
        return pd.DataFrame(columns=cols)
    mv = book["market_value"].astype(float)
    frame = pd.DataFrame(
        {
            "sector": book["sector"],
            "market_value": mv,
            "long": mv.clip(lower=0),
            "short": mv.clip(upper=0),
            "gross": mv.abs(),
            "delta_exposure": book["delta_exposure"].astype(float),
        }
    )
    grouped = frame.groupby("sector", sort=False)
    out = grouped[["market_value", "long", "short", "gross"]].sum()
    out["delta_exposure"] = grouped["delta_exposure"].sum(min_count=1)
    out["holdings"] = grouped.size()
    # Symbols of each sector, largest first (the book is already ordered that way).
    out["symbols"] = grouped.apply(lambda g: list(g.index), include_groups=False)
    return out.reindex(out["market_value"].abs().sort_values(ascending=False, kind="stable").index)[cols]
