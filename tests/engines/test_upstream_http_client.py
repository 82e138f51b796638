"""The real upstream's HTTP client (aiohttp under the openai SDK) over loopback sockets.

What a run reports must not depend on the transport: a server that is not there is a
``network_error``, a stalled body a ``timeout``, a body cut mid-stream a ``network_error``,
and a whole stream arrives event by event however the bytes are split.
"""

from __future__ import annotations

import asyncio
import gc
import socket
import warnings
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from sigmachat.engines.model_client import build_model_client
from sigmachat.engines.upstream_events import stream_response_events
from sigmachat.engines.upstream_policy import classify_exception
from tests.conftest import make_settings

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def _event(payload: bytes) -> bytes:
    return b"data: " + payload + b"\n\n"


async def _serve(handler: Handler) -> tuple[asyncio.Server, int]:
    async def wrapped(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        await handler(reader, writer)

    server = await asyncio.start_server(wrapped, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def _read_all(port: int, tmp_path: Path, **settings: float) -> list[dict]:
    model = build_model_client(
        make_settings(tmp_path, openai_base_url=f"http://127.0.0.1:{port}/v1", openai_api_key="sk-test", **settings)
    )
    try:
        return [e async for e in stream_response_events(model.client, model="m", input="hi")]
    finally:
        await model.aclose()


async def test_a_stream_split_anywhere_arrives_event_by_event_and_the_client_closes_cleanly(tmp_path):
    body = b"".join(
        _event(p)
        for p in (
            b'{"type":"response.created","response":{"id":"resp_1"}}',
            b'{"type":"response.output_text.delta","item_id":"m","delta":"Hel"}',
            b'{"type":"response.output_text.delta","item_id":"m","delta":"lo \\u00e9"}',
            b'{"type":"response.completed","response":{"id":"resp_1","output":[]}}',
        )
    )

    async def handler(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(HEAD)
        for i in range(0, len(body), 7):  # 7-byte pieces: lines and UTF-8 split across reads
            writer.write(_chunk(body[i : i + 7]))
            await writer.drain()
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        writer.close()

    server, port = await _serve(handler)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        async with server:
            events = await _read_all(port, tmp_path)
        gc.collect()
    assert [e["type"] for e in events] == [
        "response.created",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.completed",
    ]
    assert events[2]["delta"] == "lo é"
    assert not [w for w in caught if "Unclosed" in str(w.message)]


async def test_an_upstream_that_is_not_there_is_a_network_error_not_a_timeout(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    with pytest.raises(Exception) as raised:
        await _read_all(port, tmp_path)
    assert classify_exception(raised.value).code == "network_error"


async def test_a_body_cut_mid_stream_is_a_network_error(tmp_path):
    async def handler(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(HEAD + _chunk(_event(b'{"type":"response.created","response":{"id":"r"}}')))
        await writer.drain()
        writer.transport.abort()

    server, port = await _serve(handler)
    async with server:
        with pytest.raises(Exception) as raised:
            await _read_all(port, tmp_path)
    assert classify_exception(raised.value).code == "network_error"


async def test_a_stalled_body_is_a_timeout(tmp_path):
    release = asyncio.Event()

    async def handler(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(HEAD + _chunk(_event(b'{"type":"response.created","response":{"id":"r"}}')))
        await writer.drain()
        await release.wait()  # then nothing more: the read timeout must fire
        writer.close()

    server, port = await _serve(handler)
    async with server:
        try:
            with pytest.raises(Exception) as raised:
                await _read_all(port, tmp_path, openai_timeout_s=0.3)
        finally:
            release.set()
    assert classify_exception(raised.value).code == "timeout"
