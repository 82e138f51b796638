"""POST /chatkit: the ChatKit protocol endpoint (OpenAI's ChatKit web client talks to this).

Authenticated like every API route (cookie or Bearer; CSRF checked on cookie POSTs). The
request context is the user, the portfolio (``X-Portfolio-Id``, ownership checked, else the
thread's), and the locale. Failures found before streaming answer 4xx JSON in our error
taxonomy; a stream answers ``text/event-stream`` with ``id: <run_id>:<seq>`` lines and an
``X-Run-Id`` header, framed by sse-starlette like the legacy path.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request, Response

from sigmachat.api.deps import IdentityDep, ServicesDep
from sigmachat.portfolio.service import owned_portfolio_id
from sigmachat.protocols.chatkit_server import ChatContext, StreamHandle
from sigmachat.protocols.sse import parse_last_event_id, stream_headers
from sigmachat.protocols.sse_response import SSEResponse, sse_frame
from sigmachat.services import Services

router = APIRouter(tags=["chatkit"])


def _locale(accept_language: str | None) -> str | None:
    if not accept_language:
        return None
    first = accept_language.split(",", 1)[0].split(";", 1)[0].strip()
    return first[:35] or None


@router.post("/chatkit")
async def chatkit(
    request: Request,
    identity: IdentityDep,
    services: ServicesDep,
    x_portfolio_id: Annotated[str | None, Header(max_length=64)] = None,
    x_sim_scenario: Annotated[str | None, Header(max_length=100)] = None,
    accept_language: Annotated[str | None, Header(max_length=200)] = None,
    # Ours, not ChatKit's: a client that stops runs with POST /api/v1/chat/runs/{id}/cancel says
    # "continue", and a closed connection (a reload) then leaves its answer running.
    x_disconnect: Annotated[str | None, Header(pattern="^(continue|cancel)$")] = None,
) -> Response:
    server = services.chatkit  # 503 if the chat runtime is not running
    context = ChatContext(
        user_id=identity.id,
        portfolio_id=await owned_portfolio_id(services.db, identity.id, x_portfolio_id) if x_portfolio_id else None,
        locale=_locale(accept_language),
        sim_scenario=x_sim_scenario if services.settings.allow_fault_injection else None,
        disconnect=x_disconnect,
    )
    result = await server.handle(await request.body(), context)
    if not isinstance(result, StreamHandle):
        return Response(content=result, media_type="application/json")
    return _stream(services, result.run_id, result.frames)


def _stream(services: Services, run_id: str, frames: AsyncIterator[tuple[str | None, str]]) -> SSEResponse:
    async def events() -> AsyncIterator[bytes]:
        async for tag, data in frames:
            yield sse_frame(data, id=tag)

    return SSEResponse(
        events(),
        ping=services.settings.sse_heartbeat_s,  # comment lines: ignored by SSE parsers, keep proxies open
        headers=stream_headers(run_id),
    )


@router.get("/chatkit/runs/{run_id}/stream")
async def resume_chatkit_stream(
    run_id: str,
    identity: IdentityDep,
    services: ServicesDep,
    after: Annotated[int | None, Query(ge=0)] = None,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID", max_length=200)] = None,
) -> Response:
    """Our extension to ChatKit: replay a ChatKit run's frames after a sequence, then follow it.

    For our own UI after a reload or a dropped connection (OpenAI's ChatKit client reloads the
    thread instead). The legacy ``GET /api/v1/chat/runs/{run_id}/stream`` serves the same run
    in legacy frames. A run whose event log expired is a 404: load the thread.
    """
    server = services.chatkit  # 503 if the chat runtime is not running
    after_seq = parse_last_event_id(last_event_id, run_id)
    frames = await server.resume(identity.id, run_id, after_seq if after_seq is not None else after or 0)
    return _stream(services, run_id, frames)
