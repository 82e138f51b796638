"""Shared fixtures: a seeded SQLite database per test (copied from one template), the app, clients."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager

from sigmachat.settings import Settings

DEMO_PASSWORD = "demo12345"
HNW = "demo_hnw@sigmasight.com"
INDIVIDUAL = "demo_individual@sigmasight.com"
HEDGE = "demo_hedgefundstyle@sigmasight.com"
FAMILY = "demo_familyoffice@sigmasight.com"
ADMIN = "admin@sigmasight.com"
BASE_URL = "http://127.0.0.1:8000"


def make_settings(tmp: Path, **overrides) -> Settings:
    values = dict(
        database_url=f"sqlite+aiosqlite:///{tmp / 'sigmachat.db'}",
        var_dir=tmp,
        jwt_secret="test-secret-" + "x" * 40,
        log_json=True,
        log_level="WARNING",
        openai_api_key=None,
        openai_base_url=None,
        offline_ttfb_ms=0,  # no pacing: tests assert order, never timing
        offline_tokens_per_s=0,
        # Scripted upstreams answer requests in order: no probe request before them. Tests of
        # the other modes (chat_completions, auto) say so.
        upstream_api="responses",
    )
    values.update(overrides)
    return Settings(_env_file=None, **values)


@pytest.fixture(scope="session")
def template_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Migrated and seeded once per session; tests get a copy so they never see each other's writes."""
    from sigmachat.bootstrap import prepare_database
    from sigmachat.services import Services

    tmp = tmp_path_factory.mktemp("template")
    settings = make_settings(tmp)

    async def _build() -> None:
        services = Services.build(settings)
        try:
            await prepare_database(services)
        finally:
            await services.aclose()

    asyncio.run(_build())
    return tmp / "sigmachat.db"


@pytest.fixture
def settings(tmp_path: Path, template_db: Path) -> Settings:
    shutil.copy(template_db, tmp_path / "sigmachat.db")
    return make_settings(tmp_path)


@pytest.fixture
async def services(settings: Settings):
    from sigmachat.services import Services

    svc = Services.build(settings)
    yield svc
    await svc.aclose()


@pytest.fixture
async def app(settings: Settings):
    from sigmachat.api.app import create_app

    application = create_app(settings)
    async with LifespanManager(application):
        yield application


@pytest.fixture
async def client(app) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE_URL) as c:
        yield c


async def login(client: httpx.AsyncClient, email: str = HNW, password: str = DEMO_PASSWORD) -> dict[str, str]:
    """Log in and return Bearer headers."""
    resp = await client.post("/api/v1/auth/login", json={"email": email, "password": password})
    assert resp.status_code == 200, resp.text
    return {"Authorization": f"Bearer {resp.json()['access_token']}"}


@pytest.fixture
async def hnw_headers(client) -> dict[str, str]:
    return await login(client, HNW)


from tests.services import postgres_server, redis_server  # noqa: E402,F401  (session fixtures for every test)
