"""Portfolio access scoped to the authenticated user, and valuation at the configured as-of date."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from sigmachat.db.models import Portfolio, Position
from sigmachat.db.session import Database
from sigmachat.errors import NotFound
from sigmachat.market.prices import latest_closes
from sigmachat.market.security_master import load_security_master
from sigmachat.portfolio.valuation import PortfolioValuation, value_portfolio


async def list_owned_portfolios(session: AsyncSession, user_id: str) -> list[Portfolio]:
    stmt = (
        select(Portfolio)
        .where(Portfolio.owner_id == user_id)
        .options(selectinload(Portfolio.positions))
        .order_by(Portfolio.created_at, Portfolio.name)
    )
    return list((await session.execute(stmt)).scalars())


async def get_owned_portfolio(session: AsyncSession, user_id: str, portfolio_id: str) -> Portfolio:
    """The caller's portfolio; another user's id raises NotFound exactly like an unknown id."""
    stmt = (
        select(Portfolio)
        .where(Portfolio.id == portfolio_id, Portfolio.owner_id == user_id)
        .options(selectinload(Portfolio.positions))
    )
    portfolio = (await session.execute(stmt)).scalar_one_or_none()
    if portfolio is None:
        raise NotFound("Portfolio not found.")
    return portfolio


_OWNED_PORTFOLIO = select(Portfolio.id).where(
    Portfolio.id == bindparam("portfolio_id"), Portfolio.owner_id == bindparam("user_id")
)  # built once: creating a conversation runs it


async def check_owned_portfolio(session: AsyncSession, user_id: str, portfolio_id: str) -> None:
    """NotFound unless the caller owns the portfolio (exactly like an unknown id); reads its id only."""
    params = {"portfolio_id": portfolio_id, "user_id": user_id}
    if (await session.execute(_OWNED_PORTFOLIO, params)).scalar_one_or_none() is None:
        raise NotFound("Portfolio not found.")


async def owned_portfolio_id(db: Database, user_id: str, portfolio_id: str) -> str:
    """``portfolio_id`` if the caller owns it (the one ownership check of a portfolio named in a
    request: header, UI context or thread metadata); NotFound exactly like an unknown id."""
    async with db.session() as session:
        await check_owned_portfolio(session, user_id, portfolio_id)
    return portfolio_id


async def value_owned_portfolio(
    session: AsyncSession, portfolio: Portfolio, as_of: dt.date, *, include_closed: bool = False
) -> PortfolioValuation:
    positions: list[Position] = list(portfolio.positions)
    closes = await latest_closes(session, {p.symbol for p in positions}, until=as_of)
    return value_portfolio(portfolio, positions, closes, load_security_master(), as_of, include_closed=include_closed)
