"""Memories: short facts a user asked the analyst to remember, always scoped to that user.

Saved through the memories API or the ``remember`` tool; read into the agent's context on
both chat paths (agent/instructions.py quotes them as data). Bounded: at most
:data:`MAX_MEMORIES` per user of at most :data:`MAX_MEMORY_CHARS` characters each. Unlike the
original service, a full list is refused (409) instead of silently dropping the oldest fact.
"""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import CursorResult, bindparam, delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from sigmachat.db.models import Memory, as_utc
from sigmachat.errors import Conflict, NotFound, ValidationFailed
from sigmachat.portfolio.service import get_owned_portfolio

MAX_MEMORIES = 50
MAX_MEMORY_CHARS = 500
SCOPES = ("user", "portfolio")


def normalise(content: str) -> str:
    """One line of text, trimmed; a memory is a fact, not a document."""
    return " ".join(content.split())


async def count_memories(session: AsyncSession, user_id: str) -> int:
    return int((await session.execute(select(func.count()).where(Memory.user_id == user_id))).scalar_one())


# A user's memories, newest first, built once: every answer reads them (list_memories).
_MEMORIES_OF_USER = (
    select(Memory)
    .where(Memory.user_id == bindparam("user_id"))
    .order_by(Memory.created_at.desc(), Memory.id.desc())
    .limit(MAX_MEMORIES)
)


async def list_memories(
    session: AsyncSession,
    user_id: str,
    *,
    scope: str | None = None,
    portfolio_id: str | None = None,
    limit: int = MAX_MEMORIES,
) -> list[Memory]:
    """Newest first."""
    stmt = _MEMORIES_OF_USER  # as built once, unless narrowed (every answer reads the whole list)
    if scope:
        stmt = stmt.where(Memory.scope == scope)
    if portfolio_id:
        stmt = stmt.where(Memory.portfolio_id == portfolio_id)
    if limit != MAX_MEMORIES:
        stmt = stmt.limit(limit)
    return list((await session.execute(stmt, {"user_id": user_id})).scalars())


async def save_memory(
    session: AsyncSession,
    user_id: str,
    content: str,
    *,
    scope: str = "user",
    portfolio_id: str | None = None,
    tags: dict[str, Any] | None = None,
    source: str = "api",
) -> Memory:
    """Save one fact. 422 for empty, too long or a bad scope; 409 when the user's list is full.

    Saving a fact the user already has returns the existing memory instead of a duplicate.
    """
    text = normalise(content)
    if not text:
        raise ValidationFailed("content: a memory needs some text.")
    if len(text) > MAX_MEMORY_CHARS:
        raise ValidationFailed(f"content: a memory is at most {MAX_MEMORY_CHARS} characters (got {len(text)}).")
    if scope not in SCOPES:
        raise ValidationFailed("scope: must be 'user' or 'portfolio'.")
    if scope == "portfolio":
        if not portfolio_id:
            raise ValidationFailed("portfolio_id: required for a portfolio-scoped memory.")
        await get_owned_portfolio(session, user_id, portfolio_id)  # NotFound for foreign ids
    existing = (
        await session.execute(select(Memory).where(Memory.user_id == user_id, Memory.content == text).limit(1))
    ).scalar_one_or_none()
    if existing is not None:
        return existing
    count = await count_memories(session, user_id)
    if count >= MAX_MEMORIES:
        raise Conflict(
            f"You have {count} saved memories, the most allowed ({MAX_MEMORIES}). Delete some before adding more.",
            details={"count": count, "max_allowed": MAX_MEMORIES},
        )
    memory = Memory(
        user_id=user_id,
        content=text,
        scope=scope,
        portfolio_id=portfolio_id if scope == "portfolio" else None,
        tags=tags or {},
        source=source,
    )
    session.add(memory)
    await session.commit()
    return memory


async def delete_memory(session: AsyncSession, user_id: str, memory_id: str) -> None:
    """Another user's memory id behaves exactly like an unknown id."""
    # A DELETE returns a CursorResult (which has rowcount); session.execute is typed as Result.
    result = cast(
        CursorResult[Any],
        await session.execute(delete(Memory).where(Memory.id == memory_id, Memory.user_id == user_id)),
    )
    await session.commit()
    if not result.rowcount:
        raise NotFound("Memory not found.")


async def clear_memories(session: AsyncSession, user_id: str) -> int:
    result = cast(CursorResult[Any], await session.execute(delete(Memory).where(Memory.user_id == user_id)))
    await session.commit()
    return int(result.rowcount or 0)


async def memories_for_context(session: AsyncSession, user_id: str, portfolio_id: str | None) -> list[str]:
    """The texts the agent sees: the user's general memories and those of this conversation's
    portfolio, newest first (agent/instructions.py bounds them)."""
    rows = await list_memories(session, user_id)
    return [m.content for m in rows if m.scope == "user" or (portfolio_id and m.portfolio_id == portfolio_id)]


def memory_to_dict(m: Memory) -> dict[str, Any]:
    """The shape the original frontend's memory service reads (plus our own ``source``)."""
    return {
        "id": m.id,
        "scope": m.scope,
        "content": m.content,
        "tags": m.tags or {},
        "portfolio_id": m.portfolio_id,
        "source": m.source,
        "created_at": as_utc(m.created_at).isoformat() if m.created_at else None,
    }
