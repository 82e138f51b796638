"""The in-process transport: the offline model reached through the ordinary ``AsyncOpenAI`` client.

    client = openai.AsyncOpenAI(
        api_key="offline",
        base_url="http://offline.sigmachat.local/v1",
        http_client=offline_http_client(settings),
    )

No port, no socket: each request goes straight to :class:`OfflineModelServer`, and a
streaming answer is an async generator that produces each SSE frame when it is due, so the
client reads the first events while the rest are still being paced out.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx2

from sigmachat.offline.server import (
    ConnectionDropped,
    FaultInjector,
    OfflineModelServer,
    Pacing,
    ServerRequest,
    default_created_at,
)
from sigmachat.settings import Settings

OFFLINE_BASE_URL = "http://offline.sigmachat.local/v1"
CONNECTION_RESET = "[Errno 104] Connection reset by peer"


class _GeneratorStream(httpx2.AsyncByteStream):
    """A response body pulled from an async generator; drops become httpx2 read errors."""

    def __init__(self, source: AsyncIterator[bytes], request: httpx2.Request) -> None:
        self._source = source
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._source:
                yield chunk
        except ConnectionDropped as exc:
            # What httpx2 raises when the server resets the connection mid-body (seen over TCP
            # against `sigmachat sim`); the openai SDK reports it as APIConnectionError.
            raise httpx2.ReadError(CONNECTION_RESET, request=self._request) from exc

    async def aclose(self) -> None:
        aclose = getattr(self._source, "aclose", None)
        if aclose is not None:
            await aclose()


class OfflineTransport(httpx2.AsyncBaseTransport):
    """An httpx2 transport that answers OpenAI Responses API requests with the offline model."""

    def __init__(self, server: OfflineModelServer | None = None, **server_kwargs: Any) -> None:
        """Pass a ready :class:`OfflineModelServer`, or its keyword arguments
        (``model_name``, ``pacing``, ``faults``, ...)."""
        if server is None:
            server_kwargs.setdefault("model_name", "sigmasight-offline-analyst")
            server = OfflineModelServer(**server_kwargs)
        self.server = server

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        body = await request.aread()
        headers = {k.lower(): v for k, v in request.headers.items()}
        try:
            answer = await self.server.handle(ServerRequest(request.method, request.url.path, headers, body))
        except ConnectionDropped as exc:
            # Likewise for a reset before the first byte of the response.
            raise httpx2.ReadError(CONNECTION_RESET, request=request) from exc
        if answer.stream is not None:
            return httpx2.Response(
                answer.status, headers=answer.headers, stream=_GeneratorStream(answer.stream, request), request=request
            )
        return httpx2.Response(answer.status, headers=answer.headers, content=answer.body, request=request)


def offline_server(settings: Settings, *, faults: Any = None, pacing: Pacing | None = None) -> OfflineModelServer:
    """The offline model as configured in settings (pacing, reported name, as-of date)."""
    return OfflineModelServer(
        model_name=settings.offline_model_name,
        pacing=pacing or Pacing(settings.offline_ttfb_ms, settings.offline_tokens_per_s),
        created_at=default_created_at(settings.as_of_date),
        faults=faults,
        listed_models=[settings.model, settings.fallback_model or ""],
    )


def offline_http_client(
    settings: Settings, *, faults: FaultInjector | None = None, **client_kwargs: Any
) -> httpx2.AsyncClient:
    """An ``httpx2.AsyncClient`` whose requests the offline model answers in-process.

    ``faults`` (the simulator's scenarios, chosen by the caller) lets requests pick a fault
    scenario (``X-Sim-Scenario`` header or ``model@scenario``), so fault demos work without a
    server. The offline model knows nothing of the simulator itself.
    """
    transport = OfflineTransport(offline_server(settings, faults=faults))
    client_kwargs.setdefault("base_url", OFFLINE_BASE_URL)
    return httpx2.AsyncClient(transport=transport, **client_kwargs)
