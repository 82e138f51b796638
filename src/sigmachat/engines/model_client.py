"""The one model client: a single ``AsyncOpenAI`` built from settings, shared by every engine.

- With ``SIGMACHAT_OPENAI_API_KEY`` (and optionally ``SIGMACHAT_OPENAI_BASE_URL``): OpenAI or
  any OpenAI-compatible server (Ollama, vLLM, llama.cpp, the simulator).
- With a base URL but no key: a compatible server that needs none (a placeholder key is sent).
- With neither: the built-in offline analyst model through an in-process transport (no port).
Tests swap the transport through ``http_client``, never the code.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import aiohttp
import httpx2
import openai
from httpx_aiohttp.httpx2 import AiohttpTransport
from openai import AsyncOpenAI

from sigmachat.logging import get_logger
from sigmachat.settings import Settings

log = get_logger("sigmachat.engines.model_client")

OFFLINE_BASE_URL = "http://offline.sigmachat.local/v1"


@dataclass
class ModelClient:
    client: AsyncOpenAI
    offline: bool  # the built-in offline analyst answers
    is_openai: bool  # the upstream is api.openai.com (enables previous_response_id, tracing)
    default_model: str
    fallback_model: str | None
    upstream_api: str = "responses"  # responses | chat_completions | auto (settings.upstream_api)
    _resolved_api: str | None = field(default=None, repr=False)
    _probe_lock: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False)

    async def aclose(self) -> None:
        await self.client.close()

    async def api(self) -> str:
        """The API both engines speak to this upstream: ``responses`` or ``chat_completions``.

        ``auto`` probes once and remembers the answer for the client's life. A probe that
        could not reach the server decides nothing: this call uses Responses (and fails the
        way the run would have anyway), and the next call probes again.
        """
        if self.offline or self.upstream_api == "responses":
            return "responses"
        if self.upstream_api == "chat_completions":
            return "chat_completions"
        if self._resolved_api is None:
            async with self._probe_lock:
                if self._resolved_api is None:
                    self._resolved_api = await probe_api(self.client)
        return self._resolved_api or "responses"


# A server without the Responses API answers these for POST /responses.
NO_ENDPOINT_STATUSES = frozenset({404, 405, 501})


async def probe_api(client: AsyncOpenAI) -> str | None:
    """Which API the server serves, from one request that costs no tokens: ``POST /responses``
    with an empty body. A server with the Responses API rejects the body (400 or 422); one
    without it has no such route (404, 405 or 501). ``None`` when the server was unreachable.
    """
    try:
        await client.with_options(max_retries=0).post("/responses", body={}, cast_to=httpx2.Response)
    except openai.APIStatusError as exc:
        api = "chat_completions" if exc.status_code in NO_ENDPOINT_STATUSES else "responses"
        log.info("upstream_api_probed", api=api, status=exc.status_code)
        return api
    except openai.APIError as exc:
        log.warning("upstream_api_probe_failed", error=type(exc).__name__)
        return None
    log.info("upstream_api_probed", api="responses", status=200)
    return "responses"


def _timeout(settings: Settings) -> httpx2.Timeout:
    return httpx2.Timeout(settings.openai_timeout_s, connect=settings.openai_connect_timeout_s)


class _ConnectFailuresStayConnectErrors(httpx2.AsyncBaseTransport):
    """The aiohttp transport reports a refused or unreachable upstream as ``ConnectTimeout``
    (its exception map sends every ``ClientConnectionError`` there); the SDK would then say
    "timed out" where the server is simply not there. A real connect timeout stays a timeout."""

    def __init__(self, inner: httpx2.AsyncBaseTransport) -> None:
        self._inner = inner

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        try:
            return await self._inner.handle_async_request(request)
        except httpx2.ConnectTimeout as exc:
            cause = exc.__cause__
            if isinstance(cause, aiohttp.ClientConnectionError) and not isinstance(
                cause, aiohttp.ServerTimeoutError | asyncio.TimeoutError
            ):
                raise httpx2.ConnectError(str(exc), request=request) from cause
            raise

    async def aclose(self) -> None:
        await self._inner.aclose()


def upstream_http_client(settings: Settings) -> httpx2.AsyncClient:
    """The HTTP client of a real upstream: the ``openai`` SDK's aiohttp option
    (``DefaultAioHttpClient``, with the SDK's own defaults: connection limits, redirects).

    The streaming hot path: the default httpx2 transport spent a fifth of the app's CPU per
    streamed token reading the upstream (httpcore's per-read cancel scopes and its pure-Python
    HTTP parser); aiohttp reads with a C parser and a plain asyncio protocol. Timeouts keep
    their meaning (connect, and read per socket read). Tests inject their own ``http_client``.
    """
    transport = AiohttpTransport(limits=openai.DEFAULT_CONNECTION_LIMITS)
    return openai.DefaultAioHttpClient(
        timeout=_timeout(settings), transport=_ConnectFailuresStayConnectErrors(transport)
    )


def build_model_client(settings: Settings, *, http_client: httpx2.AsyncClient | None = None) -> ModelClient:
    key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else None
    base_url = settings.openai_base_url
    if not key and not base_url and http_client is None:
        from sigmachat.offline.transport import offline_http_client

        faults = None
        if settings.allow_fault_injection:  # the simulator's scenarios, for fault demos without a server
            from sigmachat.sim.scenarios import ScenarioInjector

            faults = ScenarioInjector(slow_tokens_per_s=5.0)
        client = AsyncOpenAI(
            api_key="offline",
            base_url=OFFLINE_BASE_URL,
            http_client=offline_http_client(settings, faults=faults),
            max_retries=0,  # the engine retries itself, visibly (info events)
            timeout=_timeout(settings),
        )
        name = settings.offline_model_name
        return ModelClient(client, offline=True, is_openai=False, default_model=name, fallback_model=None)
    client = AsyncOpenAI(
        api_key=key or "sk-no-key-required",
        base_url=base_url or None,
        http_client=http_client or upstream_http_client(settings),
        max_retries=0,
        timeout=_timeout(settings),
    )
    is_openai = base_url is None or "api.openai.com" in base_url
    return ModelClient(
        client,
        offline=False,
        is_openai=is_openai,
        default_model=settings.model,
        fallback_model=settings.fallback_model,
        upstream_api=settings.upstream_api,
    )
