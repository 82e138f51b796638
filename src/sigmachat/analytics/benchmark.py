"""Sector weights against a benchmark, looking through the funds a portfolio holds.

A stock counts in its own GICS sector; an equity fund or ETF counts in the sectors it holds,
by the approximate constituent sector weights shipped in ``data/fund_sector_weights.json``
(dated, with their source); a sector ETF of the security master counts in its sector. Bond
funds, cash, commodities, private holdings and funds without weights are left out of the
comparison and listed as such, so the equity sleeve is compared like for like with the
S&P 500 (whose weights are shares of an all-equity index).
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any

import pandas as pd

from sigmachat.market.security_master import SecurityMaster

GICS_SECTORS = (
    "Information Technology", "Financials", "Consumer Discretionary", "Communication Services", "Health Care",
    "Industrials", "Consumer Staples", "Energy", "Utilities", "Real Estate", "Materials",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class FundWeights:
    """The shipped look-through data: sector weights (fractions) per fund, dated and sourced."""

    as_of: str
    source: str
    benchmark: str
    funds: dict[str, dict[str, float]]
    names: dict[str, str]


@lru_cache(maxsize=1)
def load_fund_weights() -> FundWeights:
    raw = json.loads(resources.files("sigmachat.data").joinpath("fund_sector_weights.json").read_text("utf-8"))
    funds = {sym: {k: float(v) / 100.0 for k, v in f["weights"].items()} for sym, f in raw["funds"].items()}
    names = {sym: str(f.get("name", sym)) for sym, f in raw["funds"].items()}
    return FundWeights(str(raw["as_of"]), str(raw["source"]), str(raw["benchmark"]), funds, names)


@dataclass(slots=True)
class LookThrough:
    nav: float
    sector_value: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    direct_value: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    looked_through: list[dict[str, Any]] = field(default_factory=list)
    not_compared: list[dict[str, Any]] = field(default_factory=list)

    @property
    def equity_value(self) -> float:
        return sum(self.sector_value.values())


def look_through(
    book: pd.DataFrame,
    master: SecurityMaster,
    nav: float,
    weights: FundWeights | None = None,
) -> LookThrough:
    """Each holding's net market value spread over GICS sectors (funds through their weights)."""
    weights = weights or load_fund_weights()
    sector_etfs = {etf: sector for sector, etf in master.sector_etfs.items()}
    out = LookThrough(nav=nav)
    for symbol, row in book.iterrows():
        value = float(row["market_value"])
        sym = str(symbol)
        sec = master.get(sym)
        asset_type = sec.asset_type if sec else ("option" if bool(row.get("is_option")) else "unknown")
        sector = str(row.get("sector") or "Unknown")
        fund = weights.funds.get(sym)
        if fund is None and sym in sector_etfs:
            fund = {sector_etfs[sym]: 1.0}
        if fund is not None:
            for s, w in fund.items():
                out.sector_value[s] += value * w
            out.looked_through.append(
                {
                    "symbol": sym,
                    "name": weights.names.get(sym, sec.name if sec else sym),
                    "market_value": value,
                }
            )
        elif sector in GICS_SECTORS and asset_type in (
            "stock",
            "option",
            "etf",
            "unknown",
        ):
            out.sector_value[sector] += value
            out.direct_value[sector] += value
        else:
            reason = {
                "bond_fund": "fixed income",
                "private": "private holding",
                "mutual_fund": "fund without sector weights",
                "etf": "fund without sector weights",
            }.get(asset_type, "not an equity")
            if sector in ("Commodities", "Cash"):
                reason = sector.lower()
            out.not_compared.append({"symbol": sym, "reason": reason, "market_value": value})
    return out


def compare_to_benchmark(lt: LookThrough, weights: FundWeights | None = None) -> list[dict[str, Any]]:
    """Per GICS sector: the portfolio's share of its equities and of NAV against the benchmark's weight."""
    weights = weights or load_fund_weights()
    bench = weights.funds[weights.benchmark]
    equity = lt.equity_value
    rows: list[dict[str, Any]] = []
    for sector in GICS_SECTORS:
        value = lt.sector_value.get(sector, 0.0)
        share = value / equity if equity else None
        b = bench.get(sector, 0.0)
        rows.append({
            "sector": sector,
            "portfolio_value": value,
            "portfolio_weight": share,
            "portfolio_weight_of_nav": value / lt.nav if lt.nav else None,
            "benchmark_weight": b,
            "active_weight": share - b if share is not None else None,
            "direct_value": lt.direct_value.get(sector, 0.0),
            "through_funds_value": value - lt.direct_value.get(sector, 0.0),
        })  # fmt: skip
    rows.sort(key=lambda r: -(r["portfolio_weight"] or 0.0))
    return rows
