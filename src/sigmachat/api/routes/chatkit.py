"""POST /chatkit: the ChatKit protocol endpoint (OpenAI's ChatKit web client talks to this).

Authenticated like every API route (cookie or Bearer; CSRF checked on cookie POSTs). The
request context is the user, the portfolio (``X-Portfolio-Id``, ownership checked, else the
thread's), and the locale. Failures found before streaming answer 4xx JSON in our error
taxonomy; a stream answers ``text/event-stream`` with ``id: <run_id>:<seq>`` lines and an
``X-Run-Id`` header, framed by sse-starlette like the legacy path.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query, Request, Response
from sigmachat.api.deps import IdentityDep, ServicesDep
from sigmachat.errors import ServiceUnavailable
from sigmachat.protocols.chatkit_server import ChatContext, StreamHandle
from sigmachat.protocols.legacy_sse import parse_last_event_id
from sigmachat.protocols.sse_response import SSEResponse, sse_frame

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
    server = services.chatkit
    if server is None:
        raise ServiceUnavailable("The chat service is not running.")
    portfolio_id = None
    if x_portfolio_id:
        from sigmachat.portfolio.service import get_owned_portfolio

        async with services.db.session() as session:
            await get_owned_portfolio(session, identity.id, x_portfolio_id)  # NotFound for foreign ids
        portfolio_id = x_portfolio_id
    context = ChatContext(
        user_id=identity.id,
        portfolio_id=portfolio_id,
        locale=_locale(accept_language),
        sim_scenario=x_sim_scenario if services.settings.allow_fault_injection else None,
        disconnect=x_disconnect,
    )
    result = await server.handle(await request.body(), context)
    if not isinstance(result, StreamHandle):
        return Response(content=result, media_type="application/json")

    async def events():
        async for tag, data in result.frames:
            yield sse_frame(data, id=tag)

    return SSEResponse(
        events(),
        ping=services.settings.sse_heartbeat_s,  # comment lines: ignored by SSE parsers, keep proxies open
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no", "X-Run-Id": result.run_id},
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
    server = services.chatkit
    if server is None:
        raise ServiceUnavailable("The chat service is not running.")
    after_seq = parse_last_event_id(last_event_id, run_id)
    frames = await server.resume(identity.id, run_id, after_seq if after_seq is not None else after or 0)

    async def events():
        async for tag, data in frames:
            yield sse_frame(data, id=tag)

    return SSEResponse(
        events(),
        ping=services.settings.sse_heartbeat_s,
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no", "X-Run-Id": run_id},
    )
