"""The FastAPI application factory."""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from sigmachat import __version__
from sigmachat.api.errors import install_error_handlers
from sigmachat.api.middleware import BodySizeLimitMiddleware, RequestIdMiddleware
from sigmachat.api.routes import auth, chat, chatkit, feedback, health, memories, portfolios
from sigmachat.api.routes import admin as admin_routes
from sigmachat.api.routes import tools as tool_routes
from sigmachat.bootstrap import prepare_database
from sigmachat.logging import configure_logging, get_logger
from sigmachat.services import Services
from sigmachat.settings import Settings, get_settings
from sigmachat.web.routes import router as web_router

log = get_logger("sigmachat.app")


def create_app(settings: Settings | None = None, *, model_http_client: Any = None) -> FastAPI:
    """Build the app. ``model_http_client`` swaps the model transport (tests, simulator)."""
    settings = settings or get_settings()
    configure_logging(settings.log_level, json=settings.log_json)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        services = Services.build(settings)
        app.state.services = services
        await prepare_database(services)
        services.start_chat_runtime(http_client=model_http_client)
        interrupted = await services.runs.recover_interrupted()
        services.runs.start_sweeper()
        if interrupted:
            log.warning("runs_interrupted_by_restart", count=interrupted)
        log.info("startup", database=settings.database_url.split("://", 1)[0], as_of=str(settings.as_of_date))
        try:
            yield
        finally:
            await services.aclose()

    app = FastAPI(
        title="SigmaSight Chat",
        version=__version__,
        description="The AI analyst chat of the SigmaSight portfolio-analytics product.",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(RequestIdMiddleware)  # added last = outermost: ids on every response
    for module in (health, auth, portfolios, chat, feedback, memories, chatkit):
        app.include_router(module.router)
    app.include_router(tool_routes.router)
    app.include_router(admin_routes.router)  # operator API (role admin) and /metrics
    app.include_router(web_router)  # the browser UI: /, /login, /static/*
    return app
