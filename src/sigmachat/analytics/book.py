"""The portfolio as analytics see it: one row per symbol, lots aggregated, options with greeks.

Starts from the product's valuation (:mod:`sigmachat.portfolio.valuation`), so market
values, weights and P&L are exactly those of ``GET /api/v1/portfolios``, and adds what risk
needs: the series a holding's risk moves with (an option moves with its underlying) and its
delta-adjusted dollar exposure (for a stock, its market value; for an option, quantity x
multiplier x delta x underlying price, so a short put is long exposure).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping

import numpy as np
import pandas as pd

from sigmachat.analytics.options import greeks, implied_volatility, years_to_expiry
from sigmachat.market.security_master import SecurityMaster
from sigmachat.portfolio.valuation import LotValue, PortfolioValuation

DEFAULT_OPTION_VOL = 0.30

BOOK_COLUMNS = [
    "name", "sector", "industry", "asset_class", "asset_type", "quantity", "multiplier", "price", "price_date",
    "market_value", "cost_basis", "unrealized_pnl", "weight", "lots", "priced", "is_option", "risk_symbol",
    "underlying", "option_type", "strike", "expiry", "t_years", "underlying_price", "vol", "vol_source", "delta",
    "gamma", "delta_exposure", "notional",
]  # fmt: skip


def build_book(
    valuation: PortfolioValuation,
    master: SecurityMaster,
    underlying_prices: Mapping[str, float],
    realised_vols: Mapping[str, float],
    as_of: dt.date,
) -> pd.DataFrame:
    """One row per open holding (index: symbol), largest absolute market value first.

    ``underlying_prices``: last close of each option's underlying; ``realised_vols``:
    annualised realised volatility by symbol, the option volatility of last resort.
    """
    first_lot: dict[str, LotValue] = {}
    for lot in valuation.lots:
        if not lot.closed:
            first_lot.setdefault(lot.symbol, lot)
    rows = []
    for h in valuation.holdings:
        lot = first_lot[h.symbol]
        is_option = h.asset_class == "OPTIONS" and lot.underlying is not None
        sec = master.get(h.symbol)
        und_sec = master.get(lot.underlying) if is_option and lot.underlying else None
        sector = h.sector if h.sector != "Unknown" or und_sec is None else und_sec.sector
        row = {
            "symbol": h.symbol,
            "name": h.name,
            "sector": sector,
            "industry": sec.industry if sec else "Unknown",
            "asset_class": h.asset_class,
            "asset_type": "option" if is_option else (sec.asset_type if sec else "stock"),
            "quantity": h.quantity,
            "multiplier": lot.multiplier,
            "price": h.price,
            "price_date": h.price_date,
            "market_value": h.market_value,
            "cost_basis": h.cost_basis,
            "unrealized_pnl": h.unrealized_pnl,
            "weight": h.weight,
            "lots": h.lots,
            "priced": h.price is not None,
            "is_option": is_option,
            "risk_symbol": lot.underlying if is_option else h.symbol,
            "underlying": lot.underlying if is_option else None,
            "option_type": lot.option_type if is_option else None,
            "strike": lot.strike if is_option else None,
            "expiry": lot.expiry if is_option else None,
            "t_years": years_to_expiry(lot.expiry, as_of) if is_option else None,
            "underlying_price": None,
            "vol": None,
            "vol_source": None,
            "delta": 1.0,
            "gamma": 0.0,
            "delta_exposure": h.market_value if h.price is not None else float("nan"),
            "notional": h.market_value if h.price is not None else float("nan"),
        }
        if is_option and lot.underlying is not None:  # is_option already requires an underlying
            _add_option_risk(row, lot.underlying, underlying_prices, realised_vols, und_sec)
        rows.append(row)
    if not rows:
        return pd.DataFrame(columns=BOOK_COLUMNS, index=pd.Index([], name="symbol"))
    return pd.DataFrame(rows).set_index("symbol")[BOOK_COLUMNS]


def _add_option_risk(
    row: dict, underlying: str, prices: Mapping[str, float], realised_vols: Mapping[str, float], und_sec
) -> None:
    spot = prices.get(underlying)
    row["underlying_price"] = spot
    if spot is None or not math.isfinite(spot) or not row["strike"]:
        row.update(delta=float("nan"), gamma=float("nan"), delta_exposure=float("nan"), notional=float("nan"))
        return
    t, kind, strike = row["t_years"], row["option_type"], float(row["strike"])
    # Volatility: implied from the option's own close when it is a real price; else the
    # security master's volatility for the underlying; else the underlying's realised one.
    vol, source = None, None
    if row["price"] is not None:
        vol = implied_volatility(float(row["price"]), spot, strike, t, kind)
        source = "implied" if vol is not None else None
    if vol is None and und_sec is not None and und_sec.model_vol > 0:
        vol, source = und_sec.model_vol, "security_master"
    if vol is None and np.isfinite(realised_vols.get(underlying, np.nan)) and realised_vols[underlying] > 0:
        vol, source = float(realised_vols[underlying]), "realised"
    if vol is None:
        vol, source = DEFAULT_OPTION_VOL, "default"
    g = greeks(spot, strike, t, vol, kind)
    units = row["quantity"] * row["multiplier"]
    row.update(
        vol=vol,
        vol_source=source,
        delta=g.delta,
        gamma=g.gamma,
        delta_exposure=units * g.delta * spot,
        notional=units * spot,
    )
