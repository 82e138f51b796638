"""A conversation belongs to one portfolio: the rule both chat protocols apply before a send.

A conversation is created with a portfolio (the caller's choice or their first one). A send
that names a different portfolio is refused with ``409 portfolio_mismatch`` before anything
is written, so one conversation never mixes two portfolios' answers; the client starts (or
switches to) a conversation of the other portfolio instead. A conversation created without
a portfolio (the user had none then) takes the first one a send names.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from sigmachat.chat.conversations import get_conversation
from sigmachat.db.models import Conversation
from sigmachat.errors import Conflict


class PortfolioMismatch(Conflict):
    code = "portfolio_mismatch"


def bind_portfolio(conv: Conversation, requested: str | None) -> str | None:
    """The portfolio a send in ``conv`` runs on; raises :class:`PortfolioMismatch` when the
    send names another portfolio than the conversation's. Binds an unbound conversation."""
    if not requested:
        return conv.portfolio_id
    if conv.portfolio_id is None:
        conv.portfolio_id = requested
        return requested
    if requested != conv.portfolio_id:
        raise PortfolioMismatch(
            "This conversation belongs to another portfolio. Start a new conversation to ask about this one.",
            details={
                "conversation_portfolio_id": conv.portfolio_id,
                "requested_portfolio_id": requested,
            },
        )
    return requested


async def check_portfolio(session: AsyncSession, user_id: str, conversation_id: str, requested: str | None) -> None:
    """Refuse a send naming another portfolio than the conversation's (nothing is written)."""
    conv = await get_conversation(session, user_id, conversation_id)
    if requested and conv.portfolio_id and requested != conv.portfolio_id:
        bind_portfolio(conv, requested)  # raises with the same message and details
