"""/api/v1/chat/messages/{id}/feedback: rate an answer (the original API). ChatKit's
``items.feedback`` writes the same record (chat/feedback.py)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field

from sigmachat.api.deps import IdentityDep, SessionDep
from sigmachat.chat import feedback

router = APIRouter(prefix="/api/v1/chat", tags=["feedback"])

MAX_EDITED_TEXT = 20_000
MAX_COMMENT = 2_000


class RateMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")
    rating: Literal["up", "down"]
    edited_text: str | None = Field(default=None, max_length=MAX_EDITED_TEXT)
    comment: str | None = Field(default=None, max_length=MAX_COMMENT)


class FeedbackOut(BaseModel):
    id: str
    message_id: str
    rating: Literal["up", "down"]
    edited_text: str | None = None
    comment: str | None = None
    created_at: str | None = None


@router.post("/messages/{message_id}/feedback", response_model=FeedbackOut)
async def rate_message(message_id: str, body: RateMessage, identity: IdentityDep, session: SessionDep) -> FeedbackOut:
    msg = await feedback.rate(
        session, identity.id, message_id, body.rating, edited_text=body.edited_text, comment=body.comment
    )
    return FeedbackOut(**feedback.feedback_to_dict(msg))  # type: ignore[arg-type]


@router.get("/messages/{message_id}/feedback", response_model=FeedbackOut | None)
async def get_feedback(message_id: str, identity: IdentityDep, session: SessionDep) -> FeedbackOut | None:
    """``null`` when the answer has not been rated (as the original API answers)."""
    msg = await feedback.rated_message(session, identity.id, message_id)
    body = feedback.feedback_to_dict(msg)
    return FeedbackOut(**body) if body else None


@router.delete("/messages/{message_id}/feedback", status_code=204)
async def delete_feedback(message_id: str, identity: IdentityDep, session: SessionDep) -> Response:
    await feedback.clear(session, identity.id, message_id)
    return Response(status_code=204)
