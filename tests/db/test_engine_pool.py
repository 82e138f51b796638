"""The engine's connection pool is sized by settings; an in-memory SQLite database has none."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from sqlalchemy import text

from sigmachat.db.session import create_engine
from sigmachat.settings import Settings


async def test_a_file_database_keeps_the_configured_connections_open(tmp_path):
    engine = create_engine(
        Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'p.db'}", db_pool_size=7, db_max_overflow=3)
    )
    try:
        async with engine.connect() as conn:
            assert (await conn.execute(text("select 1"))).scalar() == 1
        assert engine.pool.size() == 7  # type: ignore[attr-defined]
        assert engine.pool._max_overflow == 3  # type: ignore[attr-defined]
        # returned, the connection stays open for the next checkout (no new one per request)
        assert engine.pool.checkedin() == 1  # type: ignore[attr-defined]
    finally:
        await engine.dispose()


@pytest.mark.parametrize("url", ["sqlite+aiosqlite:///:memory:", "sqlite+aiosqlite://"])
async def test_an_in_memory_database_works_without_pool_settings(url):
    engine = create_engine(Settings(database_url=url))
    try:
        async with engine.connect() as conn:
            assert (await conn.execute(text("select 1"))).scalar() == 1
    finally:
        await engine.dispose()


def test_a_pool_needs_at_least_one_connection():
    with pytest.raises(ValidationError, match="db_pool_size"):
        Settings(db_pool_size=0)
