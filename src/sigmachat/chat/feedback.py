"""Feedback on answers, from either path, stored once on the assistant message.

The original chat API rates with ``up``/``down`` (plus an optional corrected answer and a
comment); ChatKit's ``items.feedback`` with ``positive``/``negative``. Both land in the same
columns, so history and the comparison report see one fact whichever path set it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from sigmachat.db.models import Message, as_utc, utcnow
from sigmachat.errors import AppError, NotFound

RATING_TO_KIND = {"up": "positive", "down": "negative"}
KIND_TO_RATING = {kind: rating for rating, kind in RATING_TO_KIND.items()}


async def rated_message(session: AsyncSession, user_id: str, message_id: str) -> Message:
    """The caller's assistant message. Another user's id is NotFound, exactly like an unknown id."""
    msg = (
        await session.execute(select(Message).where(Message.id == message_id, Message.user_id == user_id))
    ).scalar_one_or_none()
    if msg is None:
        raise NotFound("Message not found.")
    if msg.role != "assistant":
        raise AppError("Feedback can only be given on the analyst's answers, not on your own messages.")
    return msg


def apply_kind(msg: Message, kind: str | None, *, edited_text: str | None = None, comment: str | None = None) -> None:
    """Set (or, with ``kind=None``, clear) one message's feedback."""
    msg.feedback = kind
    msg.feedback_edited_text = edited_text if kind else None
    msg.feedback_comment = comment if kind else None
    msg.feedback_at = utcnow() if kind else None


async def rate(
    session: AsyncSession, user_id: str, message_id: str, rating: str, *, edited_text: str | None, comment: str | None
) -> Message:
    """Create or replace the feedback on an answer (the original API's POST is an upsert)."""
    msg = await rated_message(session, user_id, message_id)
    apply_kind(msg, RATING_TO_KIND[rating], edited_text=edited_text or None, comment=comment or None)
    await session.commit()
    return msg


async def clear(session: AsyncSession, user_id: str, message_id: str) -> None:
    msg = await rated_message(session, user_id, message_id)
    if msg.feedback is None:
        raise NotFound("This message has no feedback.")
    apply_kind(msg, None)
    await session.commit()


async def set_kind_on_items(
    session: AsyncSession, user_id: str, conversation_id: str, item_ids: Iterable[str], kind: str | None
) -> int:
    """ChatKit's ``items.feedback``: the caller's items of one thread; returns rows changed."""
    rows = (
        await session.execute(
            select(Message).where(
                Message.conversation_id == conversation_id, Message.user_id == user_id, Message.id.in_(list(item_ids))
            )
        )
    ).scalars()
    changed = 0
    for row in rows:
        apply_kind(row, kind)
        changed += 1
    await session.commit()
    return changed


def feedback_to_dict(msg: Message) -> dict[str, Any] | None:
    """The original API's feedback shape; one feedback per message, so its id is the message's."""
    if msg.feedback not in KIND_TO_RATING:
        return None
    return {
        "id": msg.id,
        "message_id": msg.id,
        "rating": KIND_TO_RATING[msg.feedback],
        "edited_text": msg.feedback_edited_text,
        "comment": msg.feedback_comment,
        "created_at": as_utc(msg.feedback_at).isoformat() if msg.feedback_at else None,
    }
