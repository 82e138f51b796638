"""What every ``sigmachat`` sub-command shares: quiet logging and a service container."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sigmachat.services import Services


@asynccontextmanager
async def cli_services(*, migrate: bool = False) -> AsyncIterator[Services]:
    """Services for one command-line run: settings from the environment, warnings-only logs,
    the schema brought up to date when ``migrate``, and everything closed on the way out."""
    from sigmachat.db.migrate import upgrade
    from sigmachat.logging import configure_logging
    from sigmachat.settings import get_settings

    settings = get_settings()
    configure_logging("WARNING", json=settings.log_json)
    services = Services.build(settings)
    try:
        if migrate:
            await upgrade(services.db.engine)
        yield services
    finally:
        await services.aclose()
