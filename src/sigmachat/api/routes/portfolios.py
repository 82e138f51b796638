"""/api/v1/portfolios: the caller's portfolios with market values (prices are demo data unless imported)."""

from __future__ import annotations

import datetime as dt

from fastapi import APIRouter
from pydantic import BaseModel

from sigmachat.api.deps import IdentityDep, ServicesDep, SessionDep
from sigmachat.market.security_master import load_security_master
from sigmachat.portfolio.service import get_owned_portfolio, list_owned_portfolios, value_owned_portfolio
from sigmachat.portfolio.valuation import PortfolioValuation

router = APIRouter(prefix="/api/v1/portfolios", tags=["portfolios"])


class PortfolioSummary(BaseModel):
    id: str
    name: str
    description: str
    as_of: dt.date
    price_source: str
    equity_balance: float
    nav: float
    cash: float
    long_value: float
    short_value: float
    gross_exposure: float
    net_exposure: float
    unrealized_pnl: float
    position_count: int
    holding_count: int


class PositionOut(BaseModel):
    id: str
    symbol: str
    name: str
    sector: str
    asset_class: str
    quantity: float
    side: str
    entry_price: float
    entry_date: dt.date
    price: float | None
    price_date: dt.date | None
    market_value: float | None
    cost_basis: float
    unrealized_pnl: float | None
    weight: float | None
    underlying: str | None = None
    strike: float | None = None
    expiry: dt.date | None = None
    option_type: str | None = None


class HoldingOut(BaseModel):
    symbol: str
    name: str
    sector: str
    asset_class: str
    quantity: float
    market_value: float
    weight: float
    unrealized_pnl: float
    lots: int


class PortfolioDetail(PortfolioSummary):
    positions: list[PositionOut]
    holdings: list[HoldingOut]
    missing_prices: list[str]
    stale_prices: list[str]


def _summary(v: PortfolioValuation, description: str) -> dict:
    return {
        "id": v.portfolio_id,
        "name": v.name,
        "description": description,
        "as_of": v.as_of,
        "price_source": v.price_source,
        "equity_balance": round(v.equity_balance, 2),
        "nav": round(v.nav, 2),
        "cash": round(v.cash, 2),
        "long_value": round(v.long_value, 2),
        "short_value": round(v.short_value, 2),
        "gross_exposure": round(v.gross_exposure, 2),
        "net_exposure": round(v.net_exposure, 2),
        "unrealized_pnl": round(v.unrealized_pnl, 2),
        "position_count": len([lot for lot in v.lots if not lot.closed]),
        "holding_count": len(v.holdings),
    }


@router.get("", response_model=list[PortfolioSummary])
async def list_portfolios(identity: IdentityDep, services: ServicesDep, session: SessionDep) -> list[dict]:
    as_of = services.settings.as_of_date
    out = []
    for p in await list_owned_portfolios(session, identity.id):
        v = await value_owned_portfolio(session, p, as_of)
        out.append(_summary(v, p.description))
    return out


@router.get("/{portfolio_id}", response_model=PortfolioDetail)
async def get_portfolio(portfolio_id: str, identity: IdentityDep, services: ServicesDep, session: SessionDep) -> dict:
    p = await get_owned_portfolio(session, identity.id, portfolio_id)
    v = await value_owned_portfolio(session, p, services.settings.as_of_date)
    holdings = {h.symbol: h for h in v.holdings}
    master = load_security_master()
    positions = []
    for lot in v.lots:
        sec = master.get(lot.symbol)
        positions.append(
            PositionOut(
                id=lot.position_id,
                symbol=lot.symbol,
                name=sec.name if sec else lot.symbol,
                sector=sec.sector if sec else "Unknown",
                asset_class=lot.asset_class,
                quantity=lot.quantity,
                side=lot.side,
                entry_price=round(lot.entry_price, 4),
                entry_date=lot.entry_date,
                price=lot.price,
                price_date=lot.price_date,
                market_value=None if lot.market_value is None else round(lot.market_value, 2),
                cost_basis=round(lot.cost_basis, 2),
                unrealized_pnl=None if lot.unrealized_pnl is None else round(lot.unrealized_pnl, 2),
                weight=None if lot.market_value is None or not v.nav else round(lot.market_value / v.nav, 6),
                underlying=lot.underlying,
                strike=lot.strike,
                expiry=lot.expiry,
                option_type=lot.option_type,
            )
        )
    detail = _summary(v, p.description)
    detail["positions"] = positions
    detail["holdings"] = [
        HoldingOut(
            symbol=h.symbol,
            name=h.name,
            sector=h.sector,
            asset_class=h.asset_class,
            quantity=h.quantity,
            market_value=round(h.market_value, 2),
            weight=round(h.weight, 6),
            unrealized_pnl=round(h.unrealized_pnl, 2),
            lots=h.lots,
        )
        for h in holdings.values()
    ]
    detail["missing_prices"] = v.missing_prices
    detail["stale_prices"] = v.stale_prices
    return detail
