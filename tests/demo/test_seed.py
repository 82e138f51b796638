"""Seeding is idempotent and faithful to the shipped demo data."""

from __future__ import annotations

from sqlalchemy import func, select

from sigmachat.db.models import AppState, DailyPrice, Portfolio, Position, User
from sigmachat.demo.seed import ADMIN_EMAIL, load_demo_data, seed_demo


async def _snapshot(session):
    counts = {}
    for model in (User, Portfolio, Position, DailyPrice, AppState):
        counts[model.__tablename__] = (await session.execute(select(func.count()).select_from(model))).scalar_one()
    hashes = dict((await session.execute(select(User.email, User.password_hash))).all())
    states = dict((await session.execute(select(AppState.key, AppState.value))).all())
    close_sum = (await session.execute(select(func.sum(DailyPrice.close)))).scalar_one()
    return counts, hashes, states, close_sum


async def test_seed_twice_changes_nothing(services):
    async with services.db.session() as session:
        before = await _snapshot(session)
        report = await seed_demo(session, services.settings)
    assert not report.changed
    async with services.db.session() as session:
        assert await _snapshot(session) == before


async def test_seed_matches_demo_file_and_adds_admin(services):
    data = load_demo_data()
    async with services.db.session() as session:
        users = {u.email: u for u in (await session.execute(select(User))).scalars()}
        assert set(users) == {u["email"] for u in data["users"]} | {ADMIN_EMAIL}
        assert users[ADMIN_EMAIL].role == "admin"
        assert all(u.role == "user" for e, u in users.items() if e != ADMIN_EMAIL)
        n_positions = (await session.execute(select(func.count()).select_from(Position))).scalar_one()
        assert n_positions == sum(len(p["positions"]) for p in data["portfolios"])
        options = (await session.execute(select(Position).where(Position.asset_class == "OPTIONS"))).scalars().all()
        assert len(options) == 8 and all(o.entry_price > 0 and o.expiry and o.strike for o in options)
        private = (await session.execute(select(Position.symbol).where(Position.asset_class == "PRIVATE"))).scalars()
        assert "A16Z_VC_FUND" in set(private)


async def test_seed_into_empty_database_from_scratch(tmp_path):
    from sigmachat.db.migrate import current_revision, head_revision, upgrade
    from sigmachat.services import Services
    from tests.conftest import make_settings

    services = Services.build(make_settings(tmp_path))
    try:
        assert await current_revision(services.db.engine) is None
        await upgrade(services.db.engine)
        assert await current_revision(services.db.engine) == head_revision()
        async with services.db.session() as session:
            first = await seed_demo(session, services.settings)
        async with services.db.session() as session:
            second = await seed_demo(session, services.settings)
        assert first.users_created == 5 and first.price_rows_written > 40_000
        assert not second.changed
    finally:
        await services.aclose()
