"""Migrations apply to an empty database, match the ORM models, and downgrade cleanly."""

from __future__ import annotations

from sqlalchemy import inspect

from sigmachat.db.migrate import current_revision, downgrade, head_revision, upgrade
from sigmachat.db.models import Base
from sigmachat.services import Services
from tests.conftest import make_settings


async def test_upgrade_from_empty_creates_every_model_table_and_downgrade_removes_them(tmp_path):
    services = Services.build(make_settings(tmp_path))
    try:
        await upgrade(services.db.engine)
        assert await current_revision(services.db.engine) == head_revision()
        async with services.db.engine.connect() as conn:
            tables = set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
            assert set(Base.metadata.tables) <= tables
            for name, table in Base.metadata.tables.items():
                cols = {c["name"] for c in await conn.run_sync(lambda c, n=name: inspect(c).get_columns(n))}
                assert {c.name for c in table.columns} == cols, name
        await downgrade(services.db.engine, "base")
        async with services.db.engine.connect() as conn:
            tables = set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
        assert not (set(Base.metadata.tables) & tables)
    finally:
        await services.aclose()


async def test_migrations_match_models_no_autogenerate_diff(tmp_path):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    services = Services.build(make_settings(tmp_path))
    try:
        await upgrade(services.db.engine)
        async with services.db.engine.connect() as conn:
            diff = await conn.run_sync(lambda c: compare_metadata(MigrationContext.configure(c), Base.metadata))
        assert diff == []
    finally:
        await services.aclose()
