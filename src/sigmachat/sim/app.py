"""The simulator: an OpenAI-compatible API backed by the offline analyst, with faults.

Serves ``POST /v1/responses`` and ``POST /v1/chat/completions`` (streaming and not; the
same scenarios on both, see :mod:`sigmachat.offline.chat`) and ``GET /v1/models``. Every request may
pick a fault scenario (see :mod:`sigmachat.sim.scenarios`). Three ways to use it:

- over TCP: ``sigmachat sim --port 9100`` and ``SIGMACHAT_OPENAI_BASE_URL=http://127.0.0.1:9100/v1``;
- in-process, streaming and faithful: ``sim_http_client(...)`` (an httpx2 client over
  :class:`~sigmachat.offline.transport.OfflineTransport` with the scenarios on);
- in-process through ASGI: ``httpx2.ASGITransport(app=create_sim_app(...))``. Note that
  httpx2's ASGITransport collects the whole body before returning, so mid-stream faults show
  up when the request is sent rather than while iterating, and a cut connection surfaces as
  :class:`SimulatedDisconnect` (an ``httpx2.ReadError``; the openai SDK turns it into
  ``openai.APIConnectionError``).

What a cut looks like to the openai SDK (checked over TCP against ``sigmachat sim`` and in
tests/sim): before the response, ``responses.create`` raises ``openai.APIConnectionError``
caused by ``httpx2.ReadError`` (connection reset); mid-stream, iterating the stream yields
the events already received and then raises the same ``openai.APIConnectionError``. A
malformed ``data:`` line raises ``json.JSONDecodeError`` from the iteration (the SDK does
not wrap it).

The ASGI app is written against the raw ASGI interface rather than Starlette routing because
its faults depend on exact control of when bytes are sent and when the connection is cut,
which a framework's error middleware would otherwise turn into a 500 response.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

import httpx2

from sigmachat.offline.server import ConnectionDropped, OfflineModelServer, Pacing, ServerRequest, default_created_at
from sigmachat.offline.transport import OfflineTransport
from sigmachat.settings import Settings
from sigmachat.sim.scenarios import ScenarioInjector

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

MAX_BODY_BYTES = 8 * 1024 * 1024


class SimulatedDisconnect(httpx2.ReadError):
    """Raised by the ASGI app to cut the connection.

    Under ``sigmachat sim`` the server aborts the TCP connection when it sees this. It is an
    httpx2 transport error so that an in-process ``httpx2.ASGITransport`` reports it as the
    network failure it stands for.
    """


@dataclass(frozen=True, slots=True)
class SimParams:
    ttfb_ms: float = 300.0
    tokens_per_s: float = 80.0
    slow_tokens_per_s: float = 5.0
    retry_after_s: float = 1.0
    model_name: str = "sigmasight-offline-analyst"
    listed_models: tuple[str, ...] = ("gpt-4.1-mini", "gpt-4.1-nano")
    created_at: int | None = None
    # The APIs served: ("chat_completions",) stands for a server without /v1/responses.
    apis: tuple[str, ...] = ("responses", "chat_completions")

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> SimParams:
        values: dict[str, Any] = dict(
            ttfb_ms=settings.sim_ttfb_ms,
            tokens_per_s=settings.sim_tokens_per_s,
            model_name=settings.offline_model_name,
            listed_models=tuple(m for m in (settings.model, settings.fallback_model) if m),
            created_at=default_created_at(settings.as_of_date),
        )
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


def build_sim_server(
    params: SimParams, *, sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep
) -> OfflineModelServer:
    return OfflineModelServer(
        model_name=params.model_name,
        pacing=Pacing(params.ttfb_ms, params.tokens_per_s),
        created_at=params.created_at,
        faults=ScenarioInjector(slow_tokens_per_s=params.slow_tokens_per_s, retry_after_s=params.retry_after_s),
        listed_models=params.listed_models,
        sleep=sleep,
        apis=params.apis,
    )


class SimApp:
    """The ASGI app of the simulator."""

    def __init__(self, server: OfflineModelServer) -> None:
        self.server = server

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        body = b""
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > MAX_BODY_BYTES:
                await self._send_json(
                    send,
                    413,
                    {
                        "error": {
                            "message": "Request body too large.",
                            "type": "invalid_request_error",
                            "param": None,
                            "code": None,
                        }
                    },
                )
                return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers") or []}
        request = ServerRequest(scope["method"], scope["path"], headers, body)
        try:
            answer = await self.server.handle(request)
        except ConnectionDropped as exc:
            raise SimulatedDisconnect("simulated connection reset before the first byte") from exc
        raw_headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in answer.headers.items()]
        await send({"type": "http.response.start", "status": answer.status, "headers": raw_headers})
        if answer.stream is None:
            await send({"type": "http.response.body", "body": answer.body, "more_body": False})
            return
        # Stop producing (and pacing) events as soon as the client goes away.
        gone = asyncio.Event()
        watcher = asyncio.ensure_future(self._watch_disconnect(receive, gone))
        try:
            async for chunk in answer.stream:
                if gone.is_set():
                    return
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        except ConnectionDropped as exc:
            raise SimulatedDisconnect("simulated connection drop mid-stream") from exc
        finally:
            watcher.cancel()
            await answer.stream.aclose()
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    @staticmethod
    async def _watch_disconnect(receive: Receive, gone: asyncio.Event) -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                gone.set()
                return

    @staticmethod
    async def _send_json(send: Send, status: int, payload: Any) -> None:
        body = json.dumps(payload).encode()
        await send(
            {"type": "http.response.start", "status": status, "headers": [(b"content-type", b"application/json")]}
        )
        await send({"type": "http.response.body", "body": body, "more_body": False})

    @staticmethod
    async def _lifespan(receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return


def create_sim_app(settings_or_params: Settings | SimParams | None = None, **overrides: Any) -> SimApp:
    """The simulator's ASGI app, from settings (``sim_ttfb_ms``, ``sim_tokens_per_s``) or
    explicit :class:`SimParams`; keyword overrides (``ttfb_ms=0``, ...) win."""
    sleep = overrides.pop("sleep", asyncio.sleep)
    if isinstance(settings_or_params, SimParams):
        params = SimParams(**{**_asdict(settings_or_params), **{k: v for k, v in overrides.items() if v is not None}})
    elif isinstance(settings_or_params, Settings):
        params = SimParams.from_settings(settings_or_params, **overrides)
    else:
        params = SimParams(**{k: v for k, v in overrides.items() if v is not None})
    return SimApp(build_sim_server(params, sleep=sleep))


def _asdict(params: SimParams) -> dict[str, Any]:
    return {name: getattr(params, name) for name in params.__slots__}


def sim_transport(settings_or_params: Settings | SimParams | None = None, **overrides: Any) -> OfflineTransport:
    """An in-process, streaming transport to the simulator (scenarios on, no port)."""
    return OfflineTransport(create_sim_app(settings_or_params, **overrides).server)


def sim_http_client(settings_or_params: Settings | SimParams | None = None, **overrides: Any) -> httpx2.AsyncClient:
    """An httpx2 client for ``AsyncOpenAI(http_client=...)`` that talks to an in-process simulator."""
    return httpx2.AsyncClient(
        transport=sim_transport(settings_or_params, **overrides), base_url="http://sim.sigmachat.local/v1"
    )
