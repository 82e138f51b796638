"""The FastAPI application factory."""

from __future__ import annotations

import asyncio
import gc
import signal
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from sigmachat import __version__
from sigmachat.api.errors import ERROR_RESPONSES, install_error_handlers
from sigmachat.api.middleware import BodySizeLimitMiddleware, ClosingMiddleware, RequestIdMiddleware
from sigmachat.api.routes import admin as admin_routes
from sigmachat.api.routes import auth, chat, chatkit, feedback, health, memories, portfolios
from sigmachat.api.routes import tools as tool_routes
from sigmachat.bootstrap import prepare_database
from sigmachat.logging import configure_logging, get_logger
from sigmachat.services import Services
from sigmachat.settings import Settings, get_settings
from sigmachat.web.routes import router as web_router

log = get_logger("sigmachat.app")

GC_THRESHOLDS = (20_000, 10, 10)  # a served process's cyclic collector: young, middle, old (see lifespan)


def drain_on_sigterm(services: Services) -> None:
    """Make SIGTERM a graceful drain, then hand over to the server's own shutdown.

    uvicorn's handler stops listening at once and then waits for open streams. We first stop
    admitting runs (sends answer 503, ``/readyz`` 503 so the balancer moves on) while still
    serving, let running answers finish within ``SHUTDOWN_GRACE_S`` and close the rest as
    ``interrupted`` (their followers elsewhere end cleanly), and only then pass the signal on.
    Installed from the lifespan, i.e. inside uvicorn's own signal capture, in every worker.
    """
    loop = asyncio.get_running_loop()
    previous = signal.getsignal(signal.SIGTERM)
    state: dict[str, Any] = {}

    def pass_on(frame: Any = None) -> None:
        if callable(previous):
            previous(signal.SIGTERM, frame)

    async def drain() -> None:
        services.runs.begin_drain()
        log.info("drain_started", active_runs=services.runs.active_count(), grace_s=services.settings.shutdown_grace_s)
        try:
            await services.runs.shutdown(services.settings.shutdown_grace_s)
        finally:
            log.info("drain_finished")
            services.closing = True  # from here on: 503 to everything but health checks
            pass_on()

    def on_sigterm(signum: int, frame: Any) -> None:
        if "task" in state:  # a second SIGTERM: stop waiting
            pass_on(frame)
            return
        state["task"] = loop.create_task(drain(), name="drain")

    signal.signal(signal.SIGTERM, on_sigterm)


def create_served_app() -> FastAPI:
    """The app as ``sigmachat serve`` runs it (uvicorn factory, also in each worker process)."""
    return create_app(get_settings(), handle_sigterm=True)


def create_app(
    settings: Settings | None = None, *, model_http_client: Any = None, handle_sigterm: bool = False
) -> FastAPI:
    """Build the app. ``model_http_client`` swaps the model transport (tests, simulator);
    ``handle_sigterm`` turns SIGTERM into a graceful drain (``sigmachat serve``)."""
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
        if handle_sigterm:  # a served process (`sigmachat serve`), not one of the tests' many apps
            drain_on_sigterm(services)
            # What exists now (modules, the app, services, engines, caches) lives as long as the
            # process: take it out of the cyclic collector's sight. Every full collection walked
            # it all, ~300 ms each under load (the benchmark: 2 s of a 20-stream cell's 27 s of
            # CPU), a stall every stream in flight felt; frozen, about a third of that. (Not in
            # tests: their apps come and go in one process, and frozen objects are never freed.)
            gc.freeze()
            # And collect the young generation every 20,000 net allocations, not every 700: a
            # streamed token allocates a few dozen objects, so at 200 streams the default ran a
            # young collection every few milliseconds (1,700 in a 200-stream cell) and promoted
            # short-lived objects into the old generation whose full collections are the costly
            # ones. Measured by gc callbacks over a 200-stream Responses cell pair: 2.0 s of
            # collection in 26 s of CPU before, 0.6 s after. Cyclic garbage waits a little longer
            # to be freed (a few MB at most).
            gc.set_threshold(*GC_THRESHOLDS)
        if interrupted:
            log.warning("runs_interrupted_by_restart", count=interrupted)
        log.info(
            "startup",
            database=settings.database_url.split("://", 1)[0],
            as_of=str(settings.as_of_date),
            run_state="redis" if settings.redis_url else "in-process",
            instance=services.runs.coordinator.instance_id,
        )
        try:
            yield
        finally:
            await services.aclose()

    app = FastAPI(
        title="SigmaSight Chat",
        version=__version__,
        description="The AI analyst chat of the SigmaSight portfolio-analytics product.",
        lifespan=lifespan,
        responses=ERROR_RESPONSES,
    )
    install_error_handlers(app)
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(
        ClosingMiddleware, is_closing=lambda: getattr(getattr(app.state, "services", None), "closing", False)
    )
    app.add_middleware(RequestIdMiddleware)  # added last = outermost: ids on every response
    for module in (health, auth, portfolios, chat, feedback, memories, chatkit):
        app.include_router(module.router)
    app.include_router(tool_routes.router)
    app.include_router(admin_routes.router)  # operator API (role admin) and /metrics
    app.include_router(web_router)  # the browser UI: /, /login, /static/*
    return app
