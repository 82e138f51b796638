"""/api/v1/tools: the agent's tools with their descriptions and strict parameter schemas."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel

from sigmachat.api.deps import IdentityDep, ServicesDep

router = APIRouter(prefix="/api/v1/tools", tags=["tools"])


class ToolOut(BaseModel):
    name: str
    title: str  # what people see while the tool runs: the web UI and ChatKit tasks use this
    description: str
    parameters: dict[str, Any]
    portfolio_scoped: bool


class ToolList(BaseModel):
    tools: list[ToolOut]


@router.get("", response_model=ToolList)
async def list_tools(identity: IdentityDep, services: ServicesDep) -> dict[str, Any]:
    # The chat runtime's own registry (started with the app): one registry per process.
    return {"tools": [spec.as_dict() for spec in services.registry.specs()]}
