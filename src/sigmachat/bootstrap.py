"""Start-up work shared by the app and the CLI: migrate, then seed the demo data on first run."""

from __future__ import annotations

from sqlalchemy import func, select

from sigmachat.db.migrate import upgrade
from sigmachat.db.models import User
from sigmachat.demo.seed import SeedReport, seed_demo
from sigmachat.logging import get_logger
from sigmachat.services import Services

log = get_logger("sigmachat.bootstrap")


async def prepare_database(services: Services) -> SeedReport | None:
    settings = services.settings
    if settings.auto_migrate:
        await upgrade(services.db.engine)
    if not settings.auto_seed:
        return None
    async with services.db.session() as session:
        users = (await session.execute(select(func.count()).select_from(User))).scalar_one()
        if users:  # not the first run: leave the data alone
            return None
        report = await seed_demo(session, settings)
    log.info(
        "seeded_demo_data",
        users=report.users_created,
        positions=report.positions_created,
        prices=report.price_rows_written,
    )
    return report
