"""Store fixtures: a SqlChatKitStore over the seeded per-test database, and two users' contexts."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from sqlalchemy import select

from sigmachat.db.models import User
from tests.conftest import HNW, INDIVIDUAL


@dataclass
class Ctx:
    user_id: str
    portfolio_id: str | None = None
    run_owns_items: bool = False  # a request that starts a run (the run manager writes its items)


async def user_id(services, email: str) -> str:
    async with services.db.session() as session:
        return (await session.execute(select(User.id).where(User.email == email))).scalar_one()


@pytest.fixture
async def store(services):
    from sigmachat.store import SqlChatKitStore

    return SqlChatKitStore(services.db)


@pytest.fixture
async def alice(services) -> Ctx:
    return Ctx(await user_id(services, HNW))


@pytest.fixture
async def bob(services) -> Ctx:
    return Ctx(await user_id(services, INDIVIDUAL))
