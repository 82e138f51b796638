"""The upstream's Responses event stream as plain dicts, decoded cheaply.

The ``openai`` SDK turns every server-sent event into a pydantic model by validating it
against the whole Responses stream-event union: about a third of the app's CPU per streamed
token went there. The engines only dispatch on ``type`` (and a few fields), so here the
request still goes through the SAME ``AsyncOpenAI`` client (its transport, headers, base URL,
timeouts and status-error mapping: OpenAI, compatible servers, the offline model and the
simulator all keep working), but the body is read with ``with_streaming_response`` and each
``data:`` line is parsed with orjson into a dict.

Failures keep the SDK's meaning, so ``classify_exception`` maps them to the same codes:
HTTP errors are the SDK's ``APIStatusError`` subclasses (raised before the first event), a
timeout or a dropped connection while reading becomes ``APITimeoutError`` /
``APIConnectionError``, an event carrying an ``error`` object becomes ``APIError`` (as in
``openai.AsyncStream``), and bytes that are not a JSON object raise ``ValueError``.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx2
import openai
import orjson
import pydantic

# What openai.AsyncStream maps to APITimeoutError / APIConnectionError while reading a body.
_TIMEOUTS = (httpx2.TimeoutException,)
_CONNECTION_ERRORS = (httpx2.RequestError, ssl.SSLError, anyio.EndOfStream)


class SSEDecoder:
    """Incremental server-sent-events decoder keeping only ``data`` (all the Responses API
    needs: its ``event:`` line repeats the data's ``type``). Any line ending (LF, CRLF, CR).

    Written by hand rather than taken from a library because it is the per-token hot path:
    one ``bytes.split`` per network chunk and no per-line objects.
    """

    __slots__ = ("_buffer", "_data")

    def __init__(self) -> None:
        self._buffer = b""
        self._data: list[bytes] = []

    def feed(self, chunk: bytes) -> list[bytes]:
        """The data payloads of the events completed by ``chunk`` (multi-line data joined)."""
        buffer = self._buffer + chunk if self._buffer else chunk
        if b"\r" in buffer:
            if buffer.endswith(b"\r"):
                # A CR may be the first half of a CRLF split across chunks: decide next time.
                self._buffer = buffer
                return []
            buffer = buffer.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        *lines, self._buffer = buffer.split(b"\n")
        out: list[bytes] = []
        data = self._data
        for line in lines:
            if not line:
                if data:
                    out.append(data[0] if len(data) == 1 else b"\n".join(data))
                    data.clear()
            elif line.startswith(b"data:"):
                value = line[5:]
                data.append(value[1:] if value.startswith(b" ") else value)
            # event:, id:, retry: and comments carry nothing the engines read.
        return out

    def flush(self) -> list[bytes]:
        """At end of body: an event not terminated by a blank line still counts (as in the SDK)."""
        out = self.feed(b"\n\n") if (self._buffer or self._data) else []
        self._buffer = b""
        return out


def event_of(data: bytes, request: httpx2.Request | None = None) -> dict[str, Any] | None:
    """One ``data:`` payload as an event dict; ``None`` for the ``[DONE]`` sentinel."""
    if data.startswith(b"[DONE]"):
        return None
    event = orjson.loads(data)
    if not isinstance(event, dict):
        raise ValueError("upstream event is not a JSON object")
    error = event.get("error")
    if error:  # the SDK's rule: an event with an error object is a stream error
        message = error.get("message") if isinstance(error, dict) else None
        raise openai.APIError(
            message=message if isinstance(message, str) and message else "An error occurred during streaming",
            request=request or httpx2.Request("POST", "http://upstream.invalid/"),
            body=error,
        )
    return event


async def decode_events(response: httpx2.Response) -> AsyncIterator[dict[str, Any]]:
    """The events of a streaming HTTP response, as dicts, until ``[DONE]`` or the body ends."""
    decoder = SSEDecoder()
    request = response.request
    # The raw body when nothing is to be decoded (an event stream is sent uncompressed): the
    # decoding iterator wraps it in one more generator and two pass-through decoders per chunk.
    plain = response.headers.get("content-encoding", "identity").strip().lower() == "identity"
    chunks = response.aiter_raw() if plain and not response.is_stream_consumed else response.aiter_bytes()
    try:
        async for chunk in chunks:
            for data in decoder.feed(chunk):
                event = event_of(data, request)
                if event is None:
                    return
                yield event
        for data in decoder.flush():
            event = event_of(data, request)
            if event is None:
                return
            yield event
    except _TIMEOUTS as err:
        raise openai.APITimeoutError(request=request) from err
    except _CONNECTION_ERRORS as err:
        raise openai.APIConnectionError(request=request) from err


# Arguments of ``responses.create`` that are request options, not body fields.
_OPTIONS = frozenset({"extra_headers", "extra_query", "extra_body", "timeout"})


def _as_extra_body(kwargs: dict[str, Any]) -> dict[str, Any]:
    """The create() arguments with the body fields moved into ``extra_body``.

    The SDK walks every body field (instructions, the whole history, every tool's JSON
    schema) through its type-directed ``transform`` before sending, once per model call; our
    bodies are plain JSON already (top-level pydantic values are dumped here the way the
    transform would), so ``extra_body``, which the SDK sends as is, skips that walk. Omitted
    arguments (``omit`` / ``NOT_GIVEN``) are dropped, as the transform drops them.
    """
    out: dict[str, Any] = {k: v for k, v in kwargs.items() if k in _OPTIONS}
    body: dict[str, Any] = {}
    for key, value in kwargs.items():
        if key in _OPTIONS or isinstance(value, openai.Omit | openai.NotGiven):
            continue
        if isinstance(value, pydantic.BaseModel):
            value = value.model_dump(mode="json", exclude_unset=True, by_alias=True)
        body[key] = value
    extra = out.get("extra_body")
    out["extra_body"] = {**body, **extra} if isinstance(extra, dict) else body
    return out


async def stream_response_events(client: openai.AsyncOpenAI, **kwargs: Any) -> AsyncIterator[dict[str, Any]]:
    """``client.responses.create(stream=True, **kwargs)``, yielding plain event dicts.

    Closing this generator (``aclose``) closes the HTTP response.
    """
    kwargs["stream"] = True
    async with client.responses.with_streaming_response.create(**_as_extra_body(kwargs)) as response:
        async for event in decode_events(response.http_response):
            yield event


async def stream_chat_events(client: openai.AsyncOpenAI, **kwargs: Any) -> AsyncIterator[dict[str, Any]]:
    """``client.chat.completions.create(stream=True, **kwargs)``, yielding plain chunk dicts.

    The same cheap decoding for Chat Completions upstreams (``data:`` lines only, ``[DONE]``
    ends it, an ``{"error": ...}`` payload raises ``APIError``). The arguments go through the
    SDK as given: ``model`` and ``messages`` are required parameters of this create().
    """
    kwargs["stream"] = True
    async with client.chat.completions.with_streaming_response.create(**kwargs) as response:
        async for event in decode_events(response.http_response):
            yield event
