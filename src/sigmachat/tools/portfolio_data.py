"""The data a portfolio tool works on, loaded once and cached in process.

Every call checks ownership against the database (a tool only ever sees the caller's
portfolios); the expensive part, prices and everything derived from them, is cached by
``(portfolio id, price data version, as-of date, positions fingerprint)``, so repeated
calls on the same portfolio reuse the book, return matrices, betas and greeks.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
import pandas as pd
from sqlalchemy.ext.asyncio import AsyncSession

from sigmachat.analytics.book import build_book
from sigmachat.analytics.returns import aligned_matrix, annualised_volatility, trailing
from sigmachat.analytics.risk import portfolio_returns
from sigmachat.db.models import Portfolio, Position
from sigmachat.errors import NotFound
from sigmachat.market.security_master import SecurityMaster
from sigmachat.portfolio.service import get_owned_portfolio, list_owned_portfolios
from sigmachat.portfolio.valuation import PortfolioValuation, value_portfolio
from sigmachat.tools.envelope import ToolNotFound
from sigmachat.tools.market_data import MarketDataCache, MarketView

T = TypeVar("T")
NOT_FOUND_MESSAGE = "Portfolio not found. Call list_user_portfolios for the ids of your portfolios."
TECH_FACTOR_SECTOR = "Information Technology"
VOL_FALLBACK_DAYS = 63


@dataclass(frozen=True, slots=True)
class PortfolioRecord:
    """The portfolio row, detached from the session (cached across calls)."""

    id: str
    name: str
    description: str
    equity_balance: float


@dataclass(frozen=True, slots=True)
class LotRecord:
    """One position row, detached; attribute names match ``Position`` for the valuation."""

    id: str
    symbol: str
    quantity: float
    entry_price: float
    entry_date: dt.date
    exit_date: dt.date | None
    asset_class: str
    underlying: str | None
    strike: float | None
    expiry: dt.date | None
    option_type: str | None

    @classmethod
    def of(cls, p: Position) -> LotRecord:
        return cls(
            p.id, p.symbol, float(p.quantity), float(p.entry_price), p.entry_date, p.exit_date,
            p.asset_class, p.underlying, p.strike, p.expiry, p.option_type,
        )  # fmt: skip


@dataclass(slots=True)
class PortfolioData:
    """One portfolio at the as-of date with its prices; derived results are memoised."""

    portfolio: PortfolioRecord
    lots: tuple[LotRecord, ...]
    as_of: dt.date
    market: MarketView
    master: SecurityMaster
    valuation: PortfolioValuation  # open lots
    _memo: dict[Any, Any] = field(default_factory=dict)
    _lock: threading.RLock = field(default_factory=threading.RLock)

    @property
    def id(self) -> str:
        return self.portfolio.id

    @property
    def price_source(self) -> str:
        """Where the closes this portfolio's analytics use came from (demo | import | mixed)."""
        return self.memo("price_source", lambda: self.market.price_source())

    def meta(self) -> dict[str, Any]:
        return {
            "as_of": self.as_of.isoformat(),
            "price_source": self.price_source,
            "portfolio_name": self.portfolio.name,
        }

    def memo(self, key: Any, compute: Callable[[], T]) -> T:
        """Compute once per snapshot. Tools run their maths in worker threads; the lock keeps
        two concurrent calls from computing the same thing twice (re-entrant: derived results
        memoise what they derive from)."""
        if key in self._memo:
            return self._memo[key]
        with self._lock:
            if key not in self._memo:
                self._memo[key] = compute()
            return self._memo[key]

    def valuation_with_closed(self) -> PortfolioValuation:
        return self.memo(
            "valuation_closed", lambda: _value(self.portfolio, self.lots, self.market, self.master, self.as_of, True)
        )

    def book(self) -> pd.DataFrame:
        """One row per open holding with greeks and delta-adjusted exposure (see analytics.book)."""
        return self.memo("book", self._build_book)

    def _build_book(self) -> pd.DataFrame:
        underlyings = {lot.underlying for lot in self.lots if lot.underlying}
        prices = {s: q.close for s, q in self.market.quotes(underlyings).items()}
        vols = {
            s: annualised_volatility(trailing(self.market.returns[s], VOL_FALLBACK_DAYS))
            for s in underlyings
            if s in self.market.returns
        }
        return build_book(self.valuation, self.master, prices, vols, self.as_of)

    def risk_matrix(self, days: int) -> tuple[pd.DataFrame, pd.Series, list[str]]:
        """Daily returns per holding over ``days`` (an option gets its underlying's series),
        the holdings' dollar exposures (delta-adjusted), and the holdings left out for lack
        of a price or of history."""
        return self.memo(("risk_matrix", days), lambda: self._risk_matrix(days))

    def _risk_matrix(self, days: int) -> tuple[pd.DataFrame, pd.Series, list[str]]:
        book = self.book()
        usable = book[book["priced"].astype(bool) & np.isfinite(book["delta_exposure"].astype(float))]
        matrix, _ = aligned_matrix(self.market.returns, list(dict.fromkeys(usable["risk_symbol"])), days)
        holdings = [h for h in usable.index if usable.at[h, "risk_symbol"] in matrix.columns]
        cols = matrix.columns.get_indexer([usable.at[h, "risk_symbol"] for h in holdings])
        per_holding = pd.DataFrame(matrix.to_numpy()[:, cols], index=matrix.index, columns=holdings)
        exposures = usable.loc[holdings, "delta_exposure"].astype(float)
        excluded = [h for h in book.index if h not in holdings]
        return per_holding, exposures, excluded

    def portfolio_returns(self, days: int) -> pd.Series:
        """Daily returns of today's holdings over the last ``days`` days (P&L / NAV)."""

        def compute() -> pd.Series:
            matrix, exposures, _ = self.risk_matrix(days)
            return portfolio_returns(matrix, exposures, self.valuation.nav)

        return self.memo(("portfolio_returns", days), compute)


def _value(
    portfolio: PortfolioRecord,
    lots: tuple[LotRecord, ...],
    market: MarketView,
    master: SecurityMaster,
    as_of: dt.date,
    include_closed: bool,
) -> PortfolioValuation:
    quotes = market.quotes({lot.symbol for lot in lots})
    # The records carry every attribute value_portfolio reads from the ORM rows.
    return value_portfolio(portfolio, list(lots), quotes, master, as_of, include_closed=include_closed)  # type: ignore[arg-type]


def _fingerprint(portfolio: Portfolio, lots: tuple[LotRecord, ...]) -> int:
    return hash((portfolio.name, portfolio.description, float(portfolio.equity_balance), lots))


class PortfolioDataLoader:
    """Loads :class:`PortfolioData` for the caller's portfolios, with an LRU cache."""

    def __init__(self, market: MarketDataCache, master: SecurityMaster, *, max_entries: int = 64) -> None:
        self.market = market
        self.master = master
        self.max_entries = max_entries
        self._cache: OrderedDict[tuple, PortfolioData] = OrderedDict()
        # One build per key at a time: the first answers after a start (or a price import)
        # each built the same snapshot side by side, and twenty runs asking at once spent
        # twenty times the work (the benchmark's tool cells: a seventh of their CPU).
        self._building: dict[tuple, asyncio.Lock] = {}

    def clear(self) -> None:
        self._cache.clear()
        self.market.clear()

    async def load(self, session: AsyncSession, user_id: str, portfolio_id: str, as_of: dt.date) -> PortfolioData:
        """The caller's portfolio; another user's id is not_found exactly like an unknown one."""
        try:
            portfolio = await get_owned_portfolio(session, user_id, portfolio_id)
        except NotFound as exc:
            raise ToolNotFound(NOT_FOUND_MESSAGE) from exc
        return await self._snapshot(session, portfolio, as_of)

    async def load_all(self, session: AsyncSession, user_id: str, as_of: dt.date) -> list[PortfolioData]:
        return [await self._snapshot(session, p, as_of) for p in await list_owned_portfolios(session, user_id)]

    async def _snapshot(self, session: AsyncSession, portfolio: Portfolio, as_of: dt.date) -> PortfolioData:
        version = await self.market.version(session)
        lots = tuple(LotRecord.of(p) for p in portfolio.positions)
        key = (portfolio.id, version, as_of, _fingerprint(portfolio, lots))
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
            return cached
        async with self._building.setdefault(key, asyncio.Lock()):
            cached = self._cache.get(key)  # built while this call waited its turn
            if cached is not None:
                return cached
            try:
                data = await self._build(session, portfolio, lots, as_of, version)
            finally:
                self._building.pop(key, None)  # callers already waiting hold the lock; later ones hit the cache
            # A new price version makes every older entry unreachable: drop them now.
            for stale in [k for k in self._cache if k[1] != version]:
                del self._cache[stale]
            self._cache[key] = data
            while len(self._cache) > self.max_entries:
                self._cache.popitem(last=False)
            return data

    async def _build(
        self, session: AsyncSession, portfolio: Portfolio, lots: tuple[LotRecord, ...], as_of: dt.date, version: int
    ) -> PortfolioData:
        symbols = {lot.symbol for lot in lots} | {lot.underlying for lot in lots if lot.underlying}
        symbols |= set(self.master.factor_etfs.values())
        if tech := self.master.sector_etfs.get(TECH_FACTOR_SECTOR):
            symbols.add(tech)
        view = await self.market.view(session, symbols, as_of, version=version)
        record = PortfolioRecord(
            portfolio.id, portfolio.name, portfolio.description or "", float(portfolio.equity_balance)
        )
        return PortfolioData(
            portfolio=record,
            lots=lots,
            as_of=as_of,
            market=view,
            master=self.master,
            valuation=_value(record, lots, view, self.master, as_of, False),
        )
