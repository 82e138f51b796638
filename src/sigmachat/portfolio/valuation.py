"""Valuation of a portfolio's lots at a date: market values, weights, P&L, cash and NAV.

Accounting used everywhere in the product:
- market value of a lot = signed quantity x close x multiplier (100 for listed options);
- cash = equity balance - cost of the lots at entry (short sales add their proceeds);
- NAV = cash + sum of market values; at entry NAV equals the equity balance.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from sigmachat.db.models import Portfolio, Position
from sigmachat.market.prices import Quote, describe_sources
from sigmachat.market.security_master import OPTION_MULTIPLIER, SecurityMaster

STALE_AFTER_DAYS = 5


@dataclass(slots=True)
class LotValue:
    position_id: str
    symbol: str
    asset_class: str
    quantity: float
    entry_price: float
    entry_date: dt.date
    multiplier: float
    price: float | None
    price_date: dt.date | None
    market_value: float | None
    cost_basis: float
    unrealized_pnl: float | None
    underlying: str | None = None
    strike: float | None = None
    expiry: dt.date | None = None
    option_type: str | None = None
    closed: bool = False
    price_source: str | None = None

    @property
    def side(self) -> str:
        return "short" if self.quantity < 0 else "long"


@dataclass(slots=True)
class HoldingValue:
    """All lots of one symbol, aggregated (what a user means by "a position")."""

    symbol: str
    name: str
    sector: str
    asset_class: str
    quantity: float
    price: float | None
    price_date: dt.date | None
    market_value: float
    cost_basis: float
    unrealized_pnl: float
    weight: float  # market value / NAV (signed)
    lots: int
    position_ids: list[str] = field(default_factory=list)
    underlying: str | None = None


@dataclass(slots=True)
class PortfolioValuation:
    portfolio_id: str
    name: str
    as_of: dt.date
    equity_balance: float
    cash: float
    nav: float
    long_value: float
    short_value: float
    lots: list[LotValue]
    holdings: list[HoldingValue]
    missing_prices: list[str]
    stale_prices: list[str]

    @property
    def gross_exposure(self) -> float:
        return self.long_value + abs(self.short_value)

    @property
    def net_exposure(self) -> float:
        return self.long_value + self.short_value

    @property
    def price_source(self) -> str:
        """demo | import | mixed: shown to users so demo prices are always labelled."""
        return describe_sources(lot.price_source for lot in self.lots if lot.price_source)

    @property
    def unrealized_pnl(self) -> float:
        return sum(lot.unrealized_pnl or 0.0 for lot in self.lots if not lot.closed)


def multiplier_for(position: Position) -> float:
    return OPTION_MULTIPLIER if position.asset_class == "OPTIONS" else 1.0


def value_portfolio(
    portfolio: Portfolio,
    positions: list[Position],
    closes: dict[str, Quote],
    master: SecurityMaster,
    as_of: dt.date,
    *,
    include_closed: bool = False,
) -> PortfolioValuation:
    lots: list[LotValue] = []
    missing: set[str] = set()
    stale: set[str] = set()
    cost_of_open = 0.0
    for pos in positions:
        closed = pos.exit_date is not None and pos.exit_date <= as_of
        if closed and not include_closed:
            continue
        mult = multiplier_for(pos)
        quote = closes.get(pos.symbol)
        price, price_date = (quote.close, quote.date) if quote else (None, None)
        cost = pos.quantity * pos.entry_price * mult
        if not closed:
            cost_of_open += cost
        if price is None:
            missing.add(pos.symbol)
            mv = pnl = None
        else:
            if price_date is not None and (as_of - price_date).days > STALE_AFTER_DAYS:
                stale.add(pos.symbol)
            mv = pos.quantity * price * mult
            pnl = mv - cost
        lots.append(
            LotValue(
                position_id=pos.id,
                symbol=pos.symbol,
                asset_class=pos.asset_class,
                quantity=pos.quantity,
                entry_price=pos.entry_price,
                entry_date=pos.entry_date,
                multiplier=mult,
                price=price,
                price_date=price_date,
                market_value=mv,
                cost_basis=cost,
                unrealized_pnl=pnl,
                underlying=pos.underlying,
                strike=pos.strike,
                expiry=pos.expiry,
                option_type=pos.option_type,
                closed=closed,
                price_source=quote.source if quote else None,
            )
        )
    open_lots = [lot for lot in lots if not lot.closed]
    long_value = sum(lot.market_value for lot in open_lots if lot.market_value and lot.market_value > 0)
    short_value = sum(lot.market_value for lot in open_lots if lot.market_value and lot.market_value < 0)
    cash = portfolio.equity_balance - cost_of_open
    nav = cash + long_value + short_value
    holdings = aggregate_holdings(open_lots, master, nav)
    return PortfolioValuation(
        portfolio_id=portfolio.id,
        name=portfolio.name,
        as_of=as_of,
        equity_balance=portfolio.equity_balance,
        cash=cash,
        nav=nav,
        long_value=long_value,
        short_value=short_value,
        lots=lots,
        holdings=holdings,
        missing_prices=sorted(missing),
        stale_prices=sorted(stale),
    )


def aggregate_holdings(lots: list[LotValue], master: SecurityMaster, nav: float) -> list[HoldingValue]:
    """Lots aggregated by symbol, largest absolute market value first."""
    by_symbol: dict[str, list[LotValue]] = {}
    for lot in lots:
        by_symbol.setdefault(lot.symbol, []).append(lot)
    holdings = []
    for symbol, group in by_symbol.items():
        sec = master.get(symbol)
        mv = sum(lot.market_value or 0.0 for lot in group)
        holdings.append(
            HoldingValue(
                symbol=symbol,
                name=sec.name if sec else symbol,
                sector=sec.sector if sec else "Unknown",
                asset_class=group[0].asset_class,
                quantity=sum(lot.quantity for lot in group),
                price=group[0].price,
                price_date=group[0].price_date,
                market_value=mv,
                cost_basis=sum(lot.cost_basis for lot in group),
                unrealized_pnl=sum(lot.unrealized_pnl or 0.0 for lot in group),
                weight=(mv / nav) if nav else 0.0,
                lots=len(group),
                position_ids=[lot.position_id for lot in group],
                underlying=group[0].underlying,
            )
        )
    holdings.sort(key=lambda h: (-abs(h.market_value), h.symbol))
    return holdings
