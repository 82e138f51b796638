"""/api/v1/tools: the agent's tools with their descriptions and strict parameter schemas."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel

from sigmachat.api.deps import IdentityDep, ServicesDep
from sigmachat.services import Services
from sigmachat.tools.registry import ToolRegistry, build_registry

router = APIRouter(prefix="/api/v1/tools", tags=["tools"])
_REGISTRY_KEY = "tool_registry"


class ToolOut(BaseModel):
    name: str
    description: str
    parameters: dict[str, Any]
    portfolio_scoped: bool


class ToolList(BaseModel):
    tools: list[ToolOut]


def _registry(services: Services) -> ToolRegistry:
    # The chat runtime's registry when it is running; otherwise one built once for listing.
    if services.registry is not None:
        return services.registry
    if _REGISTRY_KEY not in services.extras:
        services.extras[_REGISTRY_KEY] = build_registry(services.settings)
    return services.extras[_REGISTRY_KEY]


@router.get("", response_model=ToolList)
async def list_tools(identity: IdentityDep, services: ServicesDep) -> dict[str, Any]:
    return {"tools": [spec.as_dict() for spec in _registry(services).specs()]}
