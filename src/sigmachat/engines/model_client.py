"""The one model client: a single ``AsyncOpenAI`` built from settings, shared by every engine.

- With ``SIGMACHAT_OPENAI_API_KEY`` (and optionally ``SIGMACHAT_OPENAI_BASE_URL``): OpenAI or
  any OpenAI-compatible server (Ollama, vLLM, llama.cpp, the simulator).
- With a base URL but no key: a compatible server that needs none (a placeholder key is sent).
- With neither: the built-in offline analyst model through an in-process transport (no port).
Tests swap the transport through ``http_client``, never the code.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx2
from openai import AsyncOpenAI

from sigmachat.settings import Settings

OFFLINE_BASE_URL = "http://offline.sigmachat.local/v1"


@dataclass
class ModelClient:
    client: AsyncOpenAI
    offline: bool  # the built-in offline analyst answers
    is_openai: bool  # the upstream is api.openai.com (enables previous_response_id, tracing)
    default_model: str
    fallback_model: str | None

    async def aclose(self) -> None:
        await self.client.close()


def _timeout(settings: Settings) -> httpx2.Timeout:
    return httpx2.Timeout(settings.openai_timeout_s, connect=settings.openai_connect_timeout_s)


def build_model_client(settings: Settings, *, http_client: httpx2.AsyncClient | None = None) -> ModelClient:
    key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else None
    base_url = settings.openai_base_url
    if not key and not base_url and http_client is None:
        from sigmachat.offline.transport import offline_http_client

        client = AsyncOpenAI(
            api_key="offline",
            base_url=OFFLINE_BASE_URL,
            http_client=offline_http_client(settings),
            max_retries=0,  # the engine retries itself, visibly (info events)
            timeout=_timeout(settings),
        )
        name = settings.offline_model_name
        return ModelClient(client, offline=True, is_openai=False, default_model=name, fallback_model=None)
    client = AsyncOpenAI(
        api_key=key or "sk-no-key-required",
        base_url=base_url or None,
        http_client=http_client,
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
    )
