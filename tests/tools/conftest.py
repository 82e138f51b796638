"""Registry fixtures over the seeded test database."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from sqlalchemy import select

from sigmachat.db.models import Portfolio, User
from sigmachat.tools.registry import ToolContext, ToolRegistry, build_registry


@dataclass
class Caller:
    user_id: str
    portfolio_ids: list[str]

    @property
    def portfolio_id(self) -> str:
        return self.portfolio_ids[0]


async def caller(services, email: str) -> Caller:
    async with services.db.session() as session:
        user = (await session.execute(select(User).where(User.email == email))).scalar_one()
        ids = (
            await session.execute(select(Portfolio.id).where(Portfolio.owner_id == user.id).order_by(Portfolio.name))
        ).scalars()
        return Caller(user.id, list(ids))


def context(services, who: Caller, portfolio_id: str | None = "default", settings=None) -> ToolContext:
    pid = who.portfolio_id if portfolio_id == "default" else portfolio_id
    return ToolContext(
        user_id=who.user_id,
        portfolio_id=pid,
        session_factory=services.db.session,
        settings=settings or services.settings,
    )


@pytest.fixture
def registry(services) -> ToolRegistry:
    return build_registry(services.settings)
