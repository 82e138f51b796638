"""The same tests on PostgreSQL: a real server (tests/services.py), a seeded template database,
and a fresh copy of it per test (``CREATE DATABASE … TEMPLATE``, a file copy on the server).

The modules in this folder import test modules of other folders, so those tests run a second
time here with ``settings`` pointing at PostgreSQL instead of SQLite.
"""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from pathlib import Path

import pytest

from sigmachat.bench.cluster import Postgres, pg_bin
from sigmachat.settings import Settings
from tests.conftest import make_settings
from tests.store.conftest import alice, bob, store  # noqa: F401  (store fixtures for the store tests)


@pytest.fixture(scope="session")
def pg_template(postgres_server: Postgres, tmp_path_factory: pytest.TempPathFactory) -> str:
    """Migrated and seeded once; tests get copies of it."""
    from sigmachat.bootstrap import prepare_database
    from sigmachat.services import Services

    url = postgres_server.create_database("sigmachat_template")
    settings = make_settings(tmp_path_factory.mktemp("pg-template"), database_url=url)

    async def _build() -> None:
        services = Services.build(settings)
        try:
            await prepare_database(services)
        finally:
            await services.aclose()

    asyncio.run(_build())
    return "sigmachat_template"


@pytest.fixture
def settings(tmp_path: Path, postgres_server: Postgres, pg_template: str) -> Settings:
    name = f"t_{uuid.uuid4().hex[:12]}"
    subprocess.run(
        [pg_bin("createdb"), "-h", "127.0.0.1", "-p", str(postgres_server.port), "-U", "sigmachat",
         "-T", pg_template, name],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return make_settings(
        tmp_path, database_url=f"postgresql+asyncpg://sigmachat@127.0.0.1:{postgres_server.port}/{name}"
    )
