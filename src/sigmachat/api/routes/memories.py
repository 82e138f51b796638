"""/api/v1/chat/memories: the facts a user asked the analyst to remember (the original API's
shapes), read by the agent on both chat paths."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from sigmachat.api.deps import IdentityDep, SessionDep
from sigmachat.chat import memories

router = APIRouter(prefix="/api/v1/chat", tags=["memories"])


class CreateMemory(BaseModel):
    model_config = ConfigDict(extra="ignore")
    content: str = Field(min_length=1, max_length=memories.MAX_MEMORY_CHARS)
    scope: str = Field(default="user", max_length=16)
    portfolio_id: str | None = Field(default=None, max_length=64)
    tags: dict[str, Any] | None = Field(default=None, max_length=20)


class MemoryOut(BaseModel):
    id: str
    scope: str
    content: str
    tags: dict[str, Any]
    portfolio_id: str | None
    source: str
    created_at: str | None


class MemoryList(BaseModel):
    memories: list[MemoryOut]
    total: int
    limit: int


class MemoryCount(BaseModel):
    count: int
    max_allowed: int


@router.get("/memories", response_model=MemoryList)
async def list_memories(
    identity: IdentityDep,
    session: SessionDep,
    scope: Annotated[str | None, Query(pattern="^(user|portfolio)$")] = None,
    portfolio_id: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
) -> MemoryList:
    rows = await memories.list_memories(session, identity.id, scope=scope, portfolio_id=portfolio_id, limit=limit)
    total = await memories.count_memories(session, identity.id)
    return MemoryList(memories=[MemoryOut(**memories.memory_to_dict(m)) for m in rows], total=total, limit=limit)


@router.post("/memories", status_code=201, response_model=MemoryOut)
async def create_memory(body: CreateMemory, identity: IdentityDep, session: SessionDep) -> MemoryOut:
    memory = await memories.save_memory(
        session, identity.id, body.content, scope=body.scope, portfolio_id=body.portfolio_id, tags=body.tags
    )
    return MemoryOut(**memories.memory_to_dict(memory))


@router.get("/memories/count", response_model=MemoryCount)
async def count_memories(identity: IdentityDep, session: SessionDep) -> MemoryCount:
    return MemoryCount(count=await memories.count_memories(session, identity.id), max_allowed=memories.MAX_MEMORIES)


@router.delete("/memories/{memory_id}", status_code=204)
async def delete_memory(memory_id: str, identity: IdentityDep, session: SessionDep) -> Response:
    await memories.delete_memory(session, identity.id, memory_id)
    return Response(status_code=204)


@router.delete("/memories")
async def clear_memories(identity: IdentityDep, session: SessionDep) -> dict[str, int]:
    return {"deleted": await memories.clear_memories(session, identity.id)}
