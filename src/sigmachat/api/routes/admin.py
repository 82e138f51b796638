"""/api/v1/admin (the operator's controls, role admin only) and /metrics.

Thin: the logic is in rollout/ and telemetry/."""

from __future__ import annotations

import secrets
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import HTMLResponse

from sigmachat.api.deps import AdminDep, ServicesDep
from sigmachat.errors import NotAuthenticated, NotFound, ValidationFailed
from sigmachat.rollout import FlagUpdate, RolloutService
from sigmachat.services import Services
from sigmachat.telemetry import Telemetry
from sigmachat.telemetry.metrics import CONTENT_TYPE

# No router prefix: /metrics lives here too, at the root where Prometheus expects it.
router = APIRouter()
ADMIN = "/api/v1/admin"


def _rollout(services: Services) -> RolloutService:
    assert services.rollout is not None  # Services.build() always sets it
    return services.rollout


def _telemetry(services: Services) -> Telemetry:
    assert services.telemetry is not None  # Services.build() always sets it
    return services.telemetry


def _rollout_out(services, state) -> dict[str, Any]:
    return {**state.public(), "provider": services.rollout.provider_name, "managed_here": services.rollout.managed_here}


@router.get(f"{ADMIN}/rollout", tags=["admin"])
async def get_rollout(admin: AdminDep, services: ServicesDep) -> dict[str, Any]:
    """The ``chat_backend`` flag as stored (version 0: never changed)."""
    return _rollout_out(services, await _rollout(services).state())


@router.put(f"{ADMIN}/rollout", tags=["admin"])
async def put_rollout(body: FlagUpdate, admin: AdminDep, services: ServicesDep) -> dict[str, Any]:
    """Partial update of {percent, kill_switch, allow_users, allow_portfolios, deny_users, default}
    (lists replace the stored list; optional expected_version → 409 when stale). Answers the
    new state; every instance applies it within the flag cache TTL (+ one query)."""
    state = await _rollout(services).update(body, actor=f"user:{admin.user.email}")
    return _rollout_out(services, state)


@router.get(f"{ADMIN}/rollout/audit", tags=["admin"])
async def rollout_audit(
    admin: AdminDep,
    services: ServicesDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    before_id: Annotated[int | None, Query(ge=1)] = None,
) -> dict[str, Any]:
    """Changes of the flag, newest first: who, when, old → new of each changed field."""
    entries = await _rollout(services).store.audit(limit=limit, before_id=before_id)
    return {"entries": entries, "next_before_id": entries[-1]["id"] if len(entries) == limit else None}


async def _report(services, since: str) -> dict[str, Any]:
    from sigmachat.telemetry.report import build_report, parse_window

    try:
        window = parse_window(since)
    except ValueError as exc:
        raise ValidationFailed(str(exc), details=[{"field": "since", "message": str(exc)}]) from exc
    return await build_report(services.db, services.settings, window)


@router.get(f"{ADMIN}/report", tags=["admin"])
async def report(
    admin: AdminDep, services: ServicesDep, since: Annotated[str, Query(max_length=16)] = "24h"
) -> dict[str, Any]:
    """Responses vs ChatKit over the window: percentiles, error rates, tool calls, feedback,
    shadow pairs and the go / no-go verdict with the reason of each failed check."""
    return await _report(services, since)


@router.get(f"{ADMIN}/report.html", tags=["admin"], response_class=HTMLResponse)
async def report_html(
    admin: AdminDep, services: ServicesDep, since: Annotated[str, Query(max_length=16)] = "24h"
) -> HTMLResponse:
    """The same report as a self-contained page with charts (inline SVG, no external assets)."""
    from sigmachat.telemetry.html import render_html

    return HTMLResponse(render_html(await _report(services, since)))


@router.get(f"{ADMIN}/live", tags=["admin"])
async def live(
    admin: AdminDep, services: ServicesDep, window: Annotated[str, Query(max_length=16)] = "5m"
) -> dict[str, Any]:
    """Live counters for the operator page: streams now (this process), shadow runs in flight,
    the flag, and per path over the last ``window`` (all instances): runs, errors, p95 TTFB."""
    data = await _report(services, window)
    state = await _rollout(services).state()
    return {
        "active_streams": _telemetry(services).recorder.active_by_path(),
        "shadow_in_flight": _telemetry(services).shadow.in_flight,
        "flag": {
            "version": state.version,
            "kill_switch": state.kill_switch,
            "percent": state.percent,
            "default": state.default,
        },
        "window": data["window"],
        "paths": {
            path: {
                "runs": stats["runs"],
                "errors": stats["errors"],
                "error_rate_pct": stats["error_rate_pct"],
                "ttfb_p95_ms": stats["ttfb_ms"]["p95"],
                "tokens_per_s_p50": stats["tokens_per_s"]["p50"],
            }
            for path, stats in data["paths"].items()
        },
    }


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request, services: ServicesDep) -> Response:
    """Prometheus text format. Open unless ``metrics_token`` is set (labels carry no user data)."""
    settings = services.settings
    if not settings.metrics_enabled:
        raise NotFound("Not found.")
    if settings.metrics_token is not None:
        auth = request.headers.get("authorization", "")
        token = auth[7:].strip() if auth.lower().startswith("bearer ") else ""
        if not secrets.compare_digest(token.encode(), settings.metrics_token.get_secret_value().encode()):
            raise NotAuthenticated("A metrics token is required.", headers={"WWW-Authenticate": "Bearer"})
    return Response(_telemetry(services).metrics.exposition(), media_type=CONTENT_TYPE)
