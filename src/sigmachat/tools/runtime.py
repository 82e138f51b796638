"""What a tool call runs with: the conversation's context and the process's data caches."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from sigmachat.market.security_master import SecurityMaster
from sigmachat.settings import Settings
from sigmachat.tools.envelope import ToolNotFound
from sigmachat.tools.market_data import MarketDataCache, MarketView
from sigmachat.tools.portfolio_data import NOT_FOUND_MESSAGE, PortfolioData, PortfolioDataLoader
from sigmachat.tools.schema import ToolArgs

T = TypeVar("T")
SessionFactory = Callable[[], AbstractAsyncContextManager[AsyncSession]]


@dataclass(frozen=True, slots=True)
class ToolContext:
    """Who is asking and about what; built by an engine for each run.

    ``portfolio_id`` is the conversation's portfolio: the registry injects it when the model
    leaves ``portfolio_id`` null. ``session_factory`` is ``services.db.session``.
    """

    user_id: str
    portfolio_id: str | None
    session_factory: SessionFactory
    settings: Settings


class ToolRuntime:
    """Handed to a tool's handler: data access scoped to ``ctx.user_id``, and a worker thread."""

    def __init__(
        self, ctx: ToolContext, portfolios: PortfolioDataLoader, market: MarketDataCache, master: SecurityMaster
    ) -> None:
        self.ctx = ctx
        self.settings = ctx.settings
        self.master = master
        self._portfolios = portfolios
        self._market = market

    @property
    def as_of(self) -> dt.date:
        return self.settings.as_of_date

    async def portfolio(self, portfolio_id: str | None) -> PortfolioData:
        """The caller's portfolio (ToolNotFound for an unknown or another user's id).

        ``portfolio_id`` is a ``PortfolioArgs`` field: the registry fills or rejects a null one
        before the handler runs; a None reaching here is not found, like an unknown id.
        """
        if portfolio_id is None:
            raise ToolNotFound(NOT_FOUND_MESSAGE)
        async with self.ctx.session_factory() as session:
            return await self._portfolios.load(session, self.ctx.user_id, portfolio_id, self.as_of)

    async def portfolios(self) -> list[PortfolioData]:
        async with self.ctx.session_factory() as session:
            return await self._portfolios.load_all(session, self.ctx.user_id, self.as_of)

    async def market(self, symbols: set[str] | list[str]) -> MarketView:
        async with self.ctx.session_factory() as session:
            return await self._market.view(session, symbols, self.as_of)

    async def compute(self, fn: Callable[..., T], *args: Any) -> T:
        """Run pandas/numpy work in a worker thread so the event loop keeps streaming."""
        return await asyncio.to_thread(fn, *args)

    async def derive(self, p: PortfolioData, fn: Callable[..., T], args: ToolArgs | None = None) -> T:
        """``fn(p[, args])`` in a worker thread, memoised on the snapshot: the same question
        about the same portfolio, positions and prices is answered from memory."""
        key = (fn.__module__, fn.__qualname__, args.model_dump_json() if args is not None else None)
        return await self.compute(p.memo, key, (lambda: fn(p, args)) if args is not None else (lambda: fn(p)))
