"""/api/v1/admin: the operator's controls (role admin only). Thin: the logic is in rollout/ and telemetry/."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from sigmachat.api.deps import AdminDep, ServicesDep
from sigmachat.rollout import FlagUpdate

router = APIRouter(prefix="/api/v1/admin", tags=["admin"])


def _rollout_out(services, state) -> dict[str, Any]:
    return {**state.public(), "provider": services.rollout.provider_name, "managed_here": services.rollout.managed_here}


@router.get("/rollout")
async def get_rollout(admin: AdminDep, services: ServicesDep) -> dict[str, Any]:
    """The ``chat_backend`` flag as stored (version 0: never changed)."""
    return _rollout_out(services, await services.rollout.state())


@router.put("/rollout")
async def put_rollout(body: FlagUpdate, admin: AdminDep, services: ServicesDep) -> dict[str, Any]:
    """Partial update of {percent, kill_switch, allow_users, allow_portfolios, deny_users, default}
    (lists replace the stored list; optional expected_version → 409 when stale). Answers the
    new state; every instance applies it within the flag cache TTL (+ one query)."""
    state = await services.rollout.update(body, actor=f"user:{admin.user.email}")
    return _rollout_out(services, state)


@router.get("/rollout/audit")
async def rollout_audit(
    admin: AdminDep,
    services: ServicesDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    before_id: Annotated[int | None, Query(ge=1)] = None,
) -> dict[str, Any]:
    """Changes of the flag, newest first: who, when, old → new of each changed field."""
    entries = await services.rollout.store.audit(limit=limit, before_id=before_id)
    return {"entries": entries, "next_before_id": entries[-1]["id"] if len(entries) == limit else None}
