"""/api/v1/chat: conversations, history, and the streaming send (the Responses path's legacy SSE API)."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sse_starlette import ServerSentEvent

from sigmachat.agent.events import is_terminal
from sigmachat.agent.failures import KINDS
from sigmachat.agent.instructions import DEFAULT_MODE, Mode
from sigmachat.api.deps import IdentityDep, ServicesDep, SessionDep
from sigmachat.chat import conversations as convs
from sigmachat.chat.conversations import MAX_TEXT
from sigmachat.db.models import Conversation, as_utc
from sigmachat.errors import NotFound, error_body
from sigmachat.portfolio.service import owned_portfolio_id
from sigmachat.protocols import legacy_sse
from sigmachat.protocols.sse import stream_headers
from sigmachat.protocols.sse_response import NO_PING, SSEResponse
from sigmachat.runs.manager import RunManager

router = APIRouter(prefix="/api/v1/chat", tags=["chat"])

# Cancels started when a subscriber leaves (legacy "cancel" policy): kept so they are not
# garbage-collected mid-flight (asyncio holds only weak references to tasks).
_background: set[asyncio.Task[object]] = set()

NEXT_CURSOR_HEADER = "X-Next-Cursor"

MAX_SELECTION_CHARS = 2000


class CreateConversation(BaseModel):
    """The original API's body ({mode, portfolio_id, portfolio_ids, page_hint, route}) plus our
    ``title``. Unknown fields the original clients send are ignored, not refused."""

    model_config = ConfigDict(extra="ignore")
    mode: Mode = DEFAULT_MODE
    portfolio_id: str | None = Field(default=None, max_length=64)
    portfolio_ids: list[Annotated[str, Field(max_length=64)]] | None = Field(default=None, max_length=20)
    page_hint: str | None = Field(default=None, max_length=200)
    route: str | None = Field(default=None, max_length=500)
    title: str | None = Field(default=None, max_length=200)


class RenameConversation(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: str = Field(min_length=1, max_length=200)


class ChangeMode(BaseModel):
    model_config = ConfigDict(extra="ignore")
    mode: Mode


class ModeChanged(BaseModel):
    id: str
    previous_mode: str
    new_mode: str
    changed_at: str


class ConversationOut(BaseModel):
    """The original API's conversation ({id, mode, created_at, provider, provider_thread_id})
    and ours (title, portfolio, updated_at, the run in progress) in one object."""

    id: str
    mode: str
    created_at: str
    # Both engines speak the OpenAI Responses format (also to the offline model and the
    # simulator); no provider-side thread exists, the history is ours.
    provider: str = "openai"
    provider_thread_id: str | None = None
    title: str | None
    portfolio_id: str | None
    updated_at: str
    active_run_id: str | None = None
    meta_data: dict[str, Any] = Field(default_factory=dict)


class UiContext(BaseModel):
    """The original API's per-turn UI context; ``selection`` is what the page has selected."""

    model_config = ConfigDict(extra="ignore")
    portfolio_id: str | None = Field(default=None, max_length=64)
    portfolio_ids: list[Annotated[str, Field(max_length=64)]] | None = Field(default=None, max_length=20)
    page_hint: str | None = Field(default=None, max_length=200)
    route: str | None = Field(default=None, max_length=500)
    selection: dict[str, Any] | None = None

    @field_validator("selection")
    @classmethod
    def _small_selection(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None and len(json.dumps(value, default=str)) > MAX_SELECTION_CHARS:
            raise ValueError(f"at most {MAX_SELECTION_CHARS} characters of JSON")
        return value


class SendRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    conversation_id: str = Field(min_length=1, max_length=64)
    text: str = Field(min_length=1, max_length=MAX_TEXT)
    ui_context: UiContext | None = None
    client_message_id: str | None = Field(default=None, min_length=1, max_length=100)

    @field_validator("text")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("The message is empty: write a question.")
        return value


def _conv_out(conv: Conversation, active_run_id: str | None = None) -> ConversationOut:
    return ConversationOut(
        id=conv.id,
        mode=conv.mode,
        title=conv.title,
        portfolio_id=conv.portfolio_id,
        created_at=as_utc(conv.created_at).isoformat(),
        updated_at=as_utc(conv.updated_at).isoformat(),
        active_run_id=active_run_id,
        meta_data={**(conv.metadata_ or {}), "portfolio_id": conv.portfolio_id},
    )


@router.post("/conversations", status_code=201, response_model=ConversationOut)
async def create_conversation(body: CreateConversation, identity: IdentityDep, session: SessionDep) -> ConversationOut:
    context = body.model_dump(include={"portfolio_ids", "page_hint", "route"})
    conv = await convs.create_conversation(
        session, identity.id, body.portfolio_id, body.title, mode=body.mode, context=context
    )
    return _conv_out(conv)


@router.get("/conversations", response_model=list[ConversationOut])
async def list_conversations(
    response: Response,
    identity: IdentityDep,
    session: SessionDep,
    services: ServicesDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 10,
    offset: Annotated[int, Query(ge=0, le=100_000)] = 0,
    before: Annotated[str | None, Query(max_length=200)] = None,
) -> list[ConversationOut]:
    """The original API's bare list, newest first, paged by ``offset``. Our keyset paging
    rides along: pass ``before`` (a cursor) instead of ``offset``; when more conversations
    follow, the ``X-Next-Cursor`` header holds the cursor of the next page."""
    page, nxt = await convs.list_conversations(session, identity.id, limit=limit, before=before, offset=offset)
    if nxt:
        response.headers[NEXT_CURSOR_HEADER] = nxt
    # The active run may be on any instance: the run manager asks the shared run state.
    actives = await services.runs.active_runs_for([c.id for c in page])
    return [_conv_out(c, a) for c, a in zip(page, actives, strict=True)]


@router.get("/conversations/{conversation_id}", response_model=ConversationOut)
async def get_conversation(
    conversation_id: str, identity: IdentityDep, session: SessionDep, services: ServicesDep
) -> ConversationOut:
    conv = await convs.get_conversation(session, identity.id, conversation_id)
    return _conv_out(conv, await services.runs.active_run_for(conv.id))


# Two registrations so each method has its own OpenAPI operation id (one route with both
# methods gives both the same id, which OpenAPI forbids).
@router.put("/conversations/{conversation_id}/mode", response_model=ModeChanged, operation_id="put_conversation_mode")
@router.patch(
    "/conversations/{conversation_id}/mode", response_model=ModeChanged, operation_id="patch_conversation_mode"
)
async def change_mode(
    conversation_id: str, body: ChangeMode, identity: IdentityDep, session: SessionDep
) -> ModeChanged:
    """PUT as the original backend defines it; PATCH as the original chat service calls it."""
    previous, conv = await convs.change_mode(session, identity.id, conversation_id, body.mode)
    return ModeChanged(
        id=conv.id, previous_mode=previous, new_mode=conv.mode, changed_at=as_utc(conv.updated_at).isoformat()
    )


@router.patch("/conversations/{conversation_id}", response_model=ConversationOut)
async def rename_conversation(
    conversation_id: str, body: RenameConversation, identity: IdentityDep, session: SessionDep
) -> ConversationOut:
    return _conv_out(await convs.rename_conversation(session, identity.id, conversation_id, body.title))


@router.delete("/conversations/{conversation_id}", status_code=204)
async def delete_conversation(
    conversation_id: str, identity: IdentityDep, session: SessionDep, services: ServicesDep
) -> Response:
    await convs.get_conversation(session, identity.id, conversation_id)
    if run_id := await services.runs.active_run_for(conversation_id):
        await services.runs.cancel(identity.id, run_id)
    await convs.delete_conversation(session, identity.id, conversation_id)
    return Response(status_code=204)


@router.get("/conversations/{conversation_id}/messages")
async def list_messages(conversation_id: str, identity: IdentityDep, session: SessionDep) -> dict[str, Any]:
    messages = await convs.list_messages(session, identity.id, conversation_id)
    return {"conversation_id": conversation_id, "messages": [convs.message_to_dict(m) for m in messages if m.role]}


@dataclass
class _StreamState:
    """What a legacy stream has handed to its response so far; its heartbeats read it."""

    run_id: str
    seq: int = 0  # the last event's: a heartbeat carries it
    ended: bool = False  # the terminal frame (done or error) has been handed over

    def heartbeat(self) -> ServerSentEvent | bytes:
        # Nothing may follow the terminal frame, not even a heartbeat (see SSEResponse).
        return NO_PING if self.ended else legacy_sse.heartbeat(self.run_id, self.seq)


def _sse_response(services, state: _StreamState, events) -> SSEResponse:
    return SSEResponse(
        events,
        ping=services.settings.sse_heartbeat_s,
        sep=legacy_sse.SEP,
        ping_message_factory=state.heartbeat,
        headers=stream_headers(state.run_id),
    )


def _follow(services, state: _StreamState, portfolio_id: str | None, first: Any = None):
    manager: RunManager = services.runs
    policy = services.settings.legacy_disconnect
    run_id = state.run_id

    async def gen():
        try:
            if first is not None:
                yield first
            async for event in manager.subscribe(run_id, state.seq, coalesce=services.settings.stream_coalesce_deltas):
                state.seq = event.seq
                state.ended = is_terminal(event)
                yield legacy_sse.encode(event, portfolio_id=portfolio_id)
        finally:
            if not state.ended and policy == "cancel":
                # The subscriber left; by policy the run stops with it (default: it continues).
                info = await manager.events.info(run_id)
                if info is not None:
                    task = asyncio.get_running_loop().create_task(manager.cancel(info.owner_id, run_id))
                    _background.add(task)
                    task.add_done_callback(_background.discard)

    return gen()


@router.post("/send")
async def send(
    body: SendRequest,
    request: Request,
    identity: IdentityDep,
    services: ServicesDep,
    x_sim_scenario: Annotated[str | None, Header(max_length=100)] = None,
) -> SSEResponse:
    """Start a run and stream it. Unknown or foreign conversations are 404 before any stream starts."""
    ui = body.ui_context
    scenario = x_sim_scenario if services.settings.allow_fault_injection else None
    started = await services.runs.start(
        user_id=identity.id,
        conversation_id=body.conversation_id,
        text=body.text,
        engine="responses",
        protocol="legacy_sse",
        client_message_id=body.client_message_id,
        portfolio_id=await _ui_portfolio(services, identity.id, ui),
        ui_context=ui.model_dump() if ui else None,
        sim_scenario=scenario,
    )
    first = legacy_sse.message_created(
        run_id=started.run_id,
        conversation_id=started.conversation_id,
        user_message_id=started.user_message_id,
        assistant_message_id=started.assistant_message_id,
    )
    state = _StreamState(started.run_id)
    return _sse_response(services, state, _follow(services, state, started.portfolio_id, first))


async def _ui_portfolio(services, user_id: str, ui: UiContext | None) -> str | None:
    """A portfolio named in the UI context is used only if the caller owns it."""
    if not ui or not ui.portfolio_id:
        return None
    return await owned_portfolio_id(services.db, user_id, ui.portfolio_id)


@router.get("/runs/{run_id}/stream")
async def resume_stream(
    run_id: str,
    identity: IdentityDep,
    services: ServicesDep,
    session: SessionDep,
    after: Annotated[int | None, Query(ge=0)] = None,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID", max_length=200)] = None,
):
    """Replay a run's events after a sequence, then follow it live (Last-Event-ID or ?after=)."""
    meta = await services.runs.owned_run(identity.id, run_id)
    if meta is None:
        msg = await convs.answer_of_run(session, identity.id, run_id)
        if msg is None:
            raise NotFound("Run not found.")
        # The run's event log has expired: hand back the persisted answer to load instead.
        return JSONResponse(
            error_body(
                "run_expired",
                "This run is no longer streamable; load the saved message.",
                message=convs.message_to_dict(msg),
            ),
            status_code=410,
        )
    after_seq = legacy_sse.parse_last_event_id(last_event_id, run_id)
    if after_seq is None:
        after_seq = after or 0
    state = _StreamState(run_id, seq=after_seq)
    return _sse_response(services, state, _follow(services, state, meta.portfolio_id))


@router.post("/runs/{run_id}/cancel")
async def cancel_run(run_id: str, identity: IdentityDep, services: ServicesDep) -> dict[str, Any]:
    cancelled = await services.runs.cancel(identity.id, run_id)
    return {"run_id": run_id, "cancelled": cancelled, "status": "cancelled" if cancelled else "already_finished"}


@router.get("/failures")
async def failure_kinds(identity: IdentityDep) -> dict[str, Any]:
    """How each run failure code reads to a client: the answer's status, the legacy error type,
    whether a retry can help, the message (the one table both protocols and the web use)."""
    return {"failures": [k.public() for k in KINDS.values()]}


@router.get("/config")
async def chat_config(
    identity: IdentityDep,
    services: ServicesDep,
    session: SessionDep,
    portfolio_id: Annotated[str | None, Query(max_length=64)] = None,
) -> dict[str, Any]:
    """Which backend the UI should speak for this user's next turn: the ``chat_backend`` rollout
    flag, evaluated now ({backend, reason (the rule that matched), flag_version})."""
    assert services.rollout is not None  # Services.build() always sets it
    decision = await services.rollout.backend_for_user(session, identity.user, portfolio_id=portfolio_id)
    return {**decision.public(), "max_message_chars": MAX_TEXT}  # the composer shows this limit
