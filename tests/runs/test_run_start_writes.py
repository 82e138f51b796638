"""A run's start sets the conversation's title and portfolio only where they are still unset."""

from __future__ import annotations

from sqlalchemy import select, update

from sigmachat.chat.conversations import create_conversation
from sigmachat.db.models import Conversation, User, utcnow
from sigmachat.runs.manager import _CONVERSATION_AT_START
from tests.conftest import HNW


async def _row(services, conversation_id):
    async with services.db.session() as s:
        return (await s.execute(select(Conversation).where(Conversation.id == conversation_id))).scalar_one()


async def test_a_title_or_portfolio_set_since_the_read_is_kept(services):
    async with services.db.session() as s:
        user = (await s.execute(select(User).where(User.email == HNW))).scalar_one()
        untitled = await create_conversation(s, user.id)
        renamed = await create_conversation(s, user.id)
        blank = await create_conversation(s, user.id, title="")
        # A rename lands after the run read its conversation (title still unset then).
        await s.execute(update(Conversation).where(Conversation.id == renamed.id).values(title="Renamed"))
        await s.commit()
    for conv in (untitled, renamed, blank):
        async with services.db.engine.begin() as conn:
            await conn.execute(
                _CONVERSATION_AT_START,
                {
                    "conversation_id": conv.id,
                    "new_title": "Auto",
                    "new_portfolio_id": "pf_other",
                    "new_updated_at": utcnow(),
                },
            )
    assert (await _row(services, untitled.id)).title == "Auto"
    assert (await _row(services, renamed.id)).title == "Renamed"
    assert (await _row(services, blank.id)).title == "Auto"
    # every conversation already had its (default) portfolio: none is rebound
    assert (await _row(services, untitled.id)).portfolio_id == untitled.portfolio_id is not None
