"""Conversation and message records, always scoped to the owning user.

Another user's conversation id behaves exactly like an unknown id (NotFound).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import bindparam, delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from sigmachat.agent.events import HistoryTurn, ToolCallRecord
from sigmachat.agent.instructions import DEFAULT_MODE, MODES
from sigmachat.chat.feedback import feedback_to_dict
from sigmachat.db.models import Conversation, Message, Portfolio, as_utc, prefixed_id, table_of, utcnow
from sigmachat.db.paging import keyset_page
from sigmachat.errors import NotFound, ValidationFailed
from sigmachat.portfolio.service import check_owned_portfolio

TITLE_MAX = 80
MAX_TEXT = 4000  # the longest question either protocol accepts, in characters


# The statements every answer runs, built once: building one (and its cache key) on each
# call cost about as much CPU as running it (a select: ~1.0 ms built per call, ~0.6 prebuilt).
_DEFAULT_PORTFOLIO = (
    select(Portfolio.id)
    .where(Portfolio.owner_id == bindparam("user_id"))
    .order_by(Portfolio.created_at, Portfolio.name)
    .limit(1)
)
_CONVERSATION = select(Conversation).where(
    Conversation.id == bindparam("conversation_id"), Conversation.user_id == bindparam("user_id")
)
_STREAMING_RUN = (
    select(Message.run_id)
    .where(Message.conversation_id == Conversation.id, Message.status == "streaming")
    .limit(1)
    .scalar_subquery()
)
_CONVERSATION_AND_STREAMING_RUN = _CONVERSATION.add_columns(_STREAMING_RUN)
# A new conversation goes in as one Core insert: the ORM's unit of work cost more than the row.
_NEW_CONVERSATION = table_of(Conversation).insert()
_MESSAGES = (
    select(Message)
    .where(Message.conversation_id == bindparam("conversation_id"), Message.user_id == bindparam("user_id"))
    .order_by(Message.created_at, Message.id)
)


async def default_portfolio_id(session: AsyncSession, user_id: str) -> str | None:
    return (await session.execute(_DEFAULT_PORTFOLIO, {"user_id": user_id})).scalar_one_or_none()


async def create_conversation(
    session: AsyncSession,
    user_id: str,
    portfolio_id: str | None = None,
    title: str | None = None,
    *,
    mode: str = DEFAULT_MODE,
    context: dict[str, Any] | None = None,
) -> Conversation:
    """``context`` is the page the chat was opened from (the original API's portfolio_ids,
    page_hint, route), kept in the conversation's metadata."""
    if portfolio_id:
        await check_owned_portfolio(session, user_id, portfolio_id)  # NotFound for foreign ids
    else:
        portfolio_id = await default_portfolio_id(session, user_id)
    metadata = {k: v for k, v in (context or {}).items() if v not in (None, [], "")}
    now = utcnow()
    row = {
        "id": prefixed_id("thr"), "user_id": user_id, "portfolio_id": portfolio_id, "title": title, "mode": mode,
        "status": None, "metadata": metadata, "chatkit": None, "created_at": now, "updated_at": now,
    }  # fmt: skip
    await (await session.connection()).execute(_NEW_CONVERSATION, row)
    await session.commit()
    # The row as written, for the caller to read (not attached to the session).
    return Conversation(**{k: v for k, v in row.items() if k != "metadata"}, metadata_=metadata)


async def change_mode(session: AsyncSession, user_id: str, conversation_id: str, mode: str) -> tuple[str, Conversation]:
    """Switch the analyst style from the next turn on; returns the previous mode and the row."""
    if mode not in MODES:
        raise ValidationFailed(f"mode: must be one of {', '.join(MODES)}.")
    conv = await get_conversation(session, user_id, conversation_id)
    previous = conv.mode
    conv.mode = mode
    conv.updated_at = utcnow()
    await session.commit()
    return previous, conv


async def get_conversation(session: AsyncSession, user_id: str, conversation_id: str) -> Conversation:
    params = {"conversation_id": conversation_id, "user_id": user_id}
    conv = (await session.execute(_CONVERSATION, params)).scalar_one_or_none()
    if conv is None:
        raise NotFound("Conversation not found.")
    return conv


async def conversation_and_streaming_run(
    session: AsyncSession, user_id: str, conversation_id: str
) -> tuple[Conversation, str | None]:
    """The caller's conversation and the run still writing an answer in it according to the
    database (one of an older process or another instance), in one statement."""
    params = {"conversation_id": conversation_id, "user_id": user_id}
    row = (await session.execute(_CONVERSATION_AND_STREAMING_RUN, params)).first()
    if row is None:
        raise NotFound("Conversation not found.")
    return row[0], row[1]


def encode_cursor(created_at: dt.datetime, item_id: str) -> str:
    return f"{created_at.isoformat()}|{item_id}"


def decode_cursor(cursor: str) -> tuple[dt.datetime, str]:
    try:
        ts, item_id = cursor.split("|", 1)
        value = dt.datetime.fromisoformat(ts)
    except ValueError as exc:
        raise ValidationFailed("Invalid pagination cursor.") from exc
    return as_utc(value), item_id


async def list_conversations(
    session: AsyncSession, user_id: str, *, limit: int = 20, before: str | None = None, offset: int = 0
) -> tuple[list[Conversation], str | None]:
    """Newest first, keyset-paged on (created_at, id) with ``before``, or by ``offset`` as the
    original API pages. Returns the page and the next keyset cursor."""
    stmt = select(Conversation).where(Conversation.user_id == user_id)
    if before and offset:
        raise ValidationFailed("Page with either before (a cursor) or offset, not both.")
    cursor = decode_cursor(before) if before else None
    stmt = (
        keyset_page(stmt, Conversation.created_at, Conversation.id, cursor, desc=True).offset(offset).limit(limit + 1)
    )
    rows = list((await session.execute(stmt)).scalars())
    page = rows[:limit]
    nxt = encode_cursor(as_utc(page[-1].created_at), page[-1].id) if len(rows) > limit and page else None
    return page, nxt


async def delete_conversation(session: AsyncSession, user_id: str, conversation_id: str) -> None:
    conv = await get_conversation(session, user_id, conversation_id)
    await session.execute(delete(Message).where(Message.conversation_id == conv.id))
    await session.delete(conv)
    await session.commit()


async def rename_conversation(session: AsyncSession, user_id: str, conversation_id: str, title: str) -> Conversation:
    conv = await get_conversation(session, user_id, conversation_id)
    conv.title = title.strip()[:TITLE_MAX] or None
    conv.updated_at = utcnow()
    await session.commit()
    return conv


async def list_messages(session: AsyncSession, user_id: str, conversation_id: str) -> list[Message]:
    """The caller's conversation's messages; ``NotFound`` for unknown or foreign ids."""
    return await messages_of(session, await get_conversation(session, user_id, conversation_id))


async def messages_of(session: AsyncSession, conv: Conversation) -> list[Message]:
    """The messages of a conversation the caller already loaded as its own (no second look-up)."""
    params = {"conversation_id": conv.id, "user_id": conv.user_id}
    return list((await session.execute(_MESSAGES, params)).scalars())


async def answer_of_run(session: AsyncSession, user_id: str, run_id: str) -> Message | None:
    """The caller's saved answer of a run (None for unknown or foreign runs)."""
    stmt = select(Message).where(Message.run_id == run_id, Message.user_id == user_id, Message.role == "assistant")
    return (await session.execute(stmt)).scalar_one_or_none()


def history_from_messages(messages: list[Message]) -> list[HistoryTurn]:
    """The conversation as the model should see it next turn, tool calls included.

    Assistant messages that failed before saying anything are skipped; partial answers of
    cancelled or failed runs are kept (the user saw them).
    """
    turns: list[HistoryTurn] = []
    for m in messages:
        if m.role == "user" and m.content:
            turns.append(HistoryTurn("user", m.content))
        elif m.role == "assistant" and m.status != "streaming":
            calls = [ToolCallRecord.model_validate(tc) for tc in (m.tool_calls or [])]
            if m.content or calls:
                turns.append(HistoryTurn("assistant", m.content, calls))
    return turns


def title_from_text(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= TITLE_MAX else line[: TITLE_MAX - 1].rstrip() + "…"


def message_to_dict(m: Message) -> dict[str, Any]:
    return {
        "id": m.id,
        "conversation_id": m.conversation_id,
        "role": m.role,
        "item_type": m.item_type,
        "content": m.content,
        "status": m.status,
        "tool_calls": [{k: v for k, v in tc.items() if k != "output"} for tc in (m.tool_calls or [])],
        "model": m.model,
        "engine": m.engine,
        "offline": m.offline,
        "run_id": m.run_id,
        "usage": m.usage,
        "first_token_ms": m.first_token_ms,
        "latency_ms": m.latency_ms,
        "error": m.error,
        "feedback": m.feedback,  # ChatKit's words: positive | negative
        "feedback_detail": feedback_to_dict(m),  # the original API's shape: rating up | down, edited_text, comment
        "created_at": as_utc(m.created_at).isoformat(),
    }
