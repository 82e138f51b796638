"""/healthz (process up) and /readyz (database reachable, migrations current, Redis reachable
when configured, not draining)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text

from sigmachat.api.deps import ServicesDep
from sigmachat.db.migrate import current_revision, head_revision
from sigmachat.logging import get_logger

router = APIRouter(tags=["health"])
log = get_logger("sigmachat.health")


@router.get("/healthz")
async def healthz() -> dict:
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(services: ServicesDep) -> JSONResponse:
    checks: dict[str, str] = {}
    ready = True
    try:
        async with services.db.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        checks["database"] = "ok"
        current, head = await current_revision(services.db.engine), head_revision()
        if current == head:
            checks["migrations"] = "ok"
        else:
            ready = False
            checks["migrations"] = f"pending (database at {current or 'empty'}, code at {head})"
    except Exception as exc:  # report, never raise: this endpoint is polled by orchestrators
        log.warning("readiness_failed", error=type(exc).__name__)
        ready = False
        checks.setdefault("database", "unreachable")
    if services.redis is not None:
        try:
            await services.redis.ping()
            checks["redis"] = "ok"
        except Exception as exc:
            log.warning("readiness_redis_failed", error=type(exc).__name__)
            ready, checks["redis"] = False, "unreachable"
    if services.runs is not None and services.runs.draining:
        # SIGTERM received: the balancer should send new work elsewhere while runs finish.
        ready, checks["runs"] = False, "draining"
    return JSONResponse(
        {"status": "ready" if ready else "not_ready", "checks": checks}, status_code=200 if ready else 503
    )
