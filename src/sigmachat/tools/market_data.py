"""Daily closes for analytics, cached in process and keyed by the price data version.

Symbols are loaded lazily (only those a tool asks for, each once) into one wide frame;
any price import bumps the version (:func:`sigmachat.market.prices.bump_price_version`)
and the next call starts afresh. Import-over-demo precedence is the price module's.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field

import pandas as pd
from sqlalchemy.ext.asyncio import AsyncSession

from sigmachat.analytics.returns import daily_returns
from sigmachat.market.prices import Quote, describe_sources, load_close_and_source_frames, price_version


@dataclass(frozen=True, slots=True)
class MarketView:
    """Closes, their sources and daily returns of some symbols, up to the as-of date.

    Frames are shared with the cache: treat them as read-only.
    """

    version: int
    as_of: dt.date
    closes: pd.DataFrame  # index: dates; columns: symbols that have at least one close
    sources: pd.DataFrame  # same shape: demo | import
    returns: pd.DataFrame  # daily returns (closes minus the first date)
    symbol_sources: dict[str, frozenset[str]] = field(default_factory=dict)

    def has(self, symbol: str) -> bool:
        return symbol in self.closes.columns

    def quotes(self, symbols: Iterable[str] | None = None) -> dict[str, Quote]:
        """The last close of each symbol with its date and source (what valuation prices at)."""
        wanted = [s for s in (symbols if symbols is not None else self.closes.columns) if s in self.closes.columns]
        if not wanted:
            return {}
        frame = self.closes[wanted]
        present = frame.notna().to_numpy()
        # Position of each column's last close: argmax over the reversed rows finds it.
        last = len(frame) - 1 - present[::-1].argmax(axis=0)
        values = frame.to_numpy()
        srcs = self.sources[wanted].to_numpy()
        out = {}
        for j, symbol in enumerate(wanted):
            if present[:, j].any():
                i = last[j]
                out[symbol] = Quote(frame.index[i].date(), float(values[i, j]), str(srcs[i, j]))
        return out

    def price_source(self, symbols: Iterable[str] | None = None) -> str:
        """demo | import | mixed | none: where every close of these symbols came from."""
        names = symbols if symbols is not None else self.closes.columns
        found: set[str] = set()
        for s in names:
            found |= self.symbol_sources.get(s, frozenset())
        return describe_sources(found)


class MarketDataCache:
    """One per registry (so one per process). Safe to share across concurrent calls: state is
    replaced, never mutated in place, and a duplicated load only costs time."""

    def __init__(self) -> None:
        self._key: tuple[int, dt.date] | None = None
        self._closes = pd.DataFrame()
        self._sources = pd.DataFrame()
        self._returns = pd.DataFrame()
        self._symbol_sources: dict[str, frozenset[str]] = {}
        self._absent: frozenset[str] = frozenset()
        # The views handed out, by their symbols: a view is a handful of frame slices (a
        # millisecond of pandas), asked again for the same symbols by every answer that quotes
        # them. Dropped whenever the frames change (a load, a new price version).
        self._views: dict[tuple[str, ...], MarketView] = {}
        # Loads take turns, and each looks again at what is missing once it is its turn:
        # calls arriving together (the first answers after a start) loaded the same symbols
        # side by side, each a query and a pivot of thousands of rows.
        self._loading = asyncio.Lock()

    def clear(self) -> None:
        self._key = None
        self._closes = self._sources = self._returns = pd.DataFrame()
        self._symbol_sources = {}
        self._absent = frozenset()
        self._views = {}

    async def version(self, session: AsyncSession) -> int:
        return await price_version(session)

    async def view(
        self, session: AsyncSession, symbols: Iterable[str], as_of: dt.date, *, version: int | None = None
    ) -> MarketView:
        """The data of ``symbols`` (those without any close are simply absent)."""
        version = await price_version(session) if version is None else version
        if self._key != (version, as_of):
            self.clear()
            self._key = (version, as_of)
        wanted = sorted({s.upper() for s in symbols})
        if self._missing(wanted):
            async with self._loading:
                if missing := self._missing(wanted):
                    closes, sources = await load_close_and_source_frames(session, missing, until=as_of)
                    if self._key == (version, as_of):
                        self._merge(missing, closes, sources)
        cols = tuple(s for s in wanted if s in self._closes.columns)
        if (view := self._views.get(cols)) is not None and view.version == version and view.as_of == as_of:
            return view
        columns = list(cols)  # pandas selects columns by a list, not a tuple
        closes = self._closes[columns]
        keep = closes.notna().any(axis=1).to_numpy()
        returns = self._returns[columns]
        view = MarketView(
            version=version,
            as_of=as_of,
            closes=closes[keep],
            sources=self._sources[columns][keep],
            returns=returns[keep[1:]] if len(keep) > 1 else returns,
            symbol_sources={s: self._symbol_sources[s] for s in cols},
        )
        if self._key == (version, as_of):
            self._views[cols] = view
        return view

    def _missing(self, wanted: list[str]) -> list[str]:
        return [s for s in wanted if s not in self._closes.columns and s not in self._absent]

    def _merge(self, requested: list[str], closes: pd.DataFrame, sources: pd.DataFrame) -> None:
        new = [s for s in closes.columns if s not in self._closes.columns]
        if new:
            if self._closes.columns.empty:
                merged, merged_sources = closes[new].sort_index(), sources[new]
            else:
                merged = pd.concat([self._closes, closes[new]], axis=1).sort_index()
                merged_sources = pd.concat([self._sources, sources[new]], axis=1)
            merged_sources = merged_sources.reindex(merged.index)
            symbol_sources = dict(self._symbol_sources)
            for s in new:
                symbol_sources[s] = frozenset(sources[s].dropna().unique().tolist())
            self._returns = daily_returns(merged)
            self._sources = merged_sources
            self._symbol_sources = symbol_sources
            self._closes = merged
            self._views = {}  # the frames changed under them (new dates, returns recomputed)
        self._absent = self._absent | frozenset(s for s in requested if s not in closes.columns)
