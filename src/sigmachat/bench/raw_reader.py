"""The CPU floor for reading a streamed answer: asyncio sockets and ``json.loads`` per ``data:`` line.

The benchmark compares the app's CPU per streamed token with this reader's, measured in the
same run against the same upstream: the ratio says how much the app adds on top of the bare
minimum any reader of that stream must spend (socket reads, HTTP chunk framing, JSON).

Deliberately no HTTP library: a hand-written HTTP/1.1 request and chunked-body reader, so the
figure is the floor and not another client's overhead. It speaks only to the simulator (or any
plain-HTTP OpenAI-compatible server); tool calls are answered from the load generator's cached
outputs, like the direct path.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

from sigmachat.bench.clients import DirectRequest, StreamResult

ToolOutputFn = Callable[[str, str, str], Awaitable[str]]


async def _post_stream(host: str, port: int, path: str, api_key: str, body: dict[str, Any]) -> Any:
    """POST ``body`` and yield the response body's chunks (chunked or until EOF)."""
    payload = json.dumps(body).encode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {api_key}\r\n"
        f"Content-Type: application/json\r\nAccept: text/event-stream\r\nContent-Length: {len(payload)}\r\n"
        "Connection: close\r\n\r\n"
    ).encode()
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(head + payload)
        status = await reader.readline()
        if b" 200 " not in status:
            raise RuntimeError(f"upstream answered {status.decode(errors='replace').strip()}")
        chunked = False
        while (line := await reader.readline()) not in (b"\r\n", b""):
            if line.lower().startswith(b"transfer-encoding:") and b"chunked" in line.lower():
                chunked = True
        if not chunked:
            while chunk := await reader.read(65536):
                yield chunk
            return
        while True:
            size = int((await reader.readline()).split(b";", 1)[0], 16)
            if size == 0:
                return
            chunk = await reader.readexactly(size + 2)
            yield chunk[:-2]
    finally:
        writer.close()


async def raw_stream(
    base_url: str,
    api_key: str,
    request: DirectRequest,
    question: str,
    tool_output: ToolOutputFn,
    *,
    user: str = "",
    deadline_s: float = 120.0,
    max_turns: int = 6,
) -> StreamResult:
    """One answer read the cheapest way: text deltas collected, tool turns answered from cache."""
    result = StreamResult("raw", question, user)
    url = urlsplit(base_url)
    host, port, prefix = url.hostname or "127.0.0.1", url.port or 80, url.path.rstrip("/")
    items: list[dict[str, Any]] = [{"role": "user", "content": question}]

    async def turn() -> list[dict[str, Any]] | None:
        body = {
            "model": request.model,
            "instructions": request.instructions,
            "input": items,
            "tools": request.tools,
            "stream": True,
            "parallel_tool_calls": True,
            **request.extra,
        }
        calls: list[dict[str, Any]] = []
        buffer = b""
        async for chunk in _post_stream(host, port, f"{prefix}/responses", api_key, body):
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                if not line.startswith(b"data:"):
                    continue
                event = json.loads(line[5:])
                result.events += 1
                etype = event.get("type")
                if etype == "response.output_text.delta":
                    result.add_delta(event.get("delta", ""))
                elif etype == "response.output_item.done" and (event.get("item") or {}).get("type") == "function_call":
                    item = event["item"]
                    calls.append(
                        {
                            "type": "function_call",
                            "call_id": item["call_id"],
                            "name": item["name"],
                            "arguments": item["arguments"],
                        }
                    )
                elif etype == "response.completed":
                    if not calls:
                        result.final_text = "".join(
                            part.get("text", "")
                            for out in event["response"].get("output") or []
                            if out.get("type") == "message"
                            for part in out.get("content") or []
                        )
                    return calls
                elif etype in ("response.failed", "response.incomplete", "error"):
                    result.error = etype
                    return None
        result.error = "stream_ended_without_terminal_event"
        return None

    async def body() -> None:
        result.t_sent = time.perf_counter()
        for _ in range(max_turns):
            calls = await turn()
            if calls is None:
                return
            if not calls:
                result.t_end = time.perf_counter()
                return
            result.tool_calls += len(calls)
            outputs = await asyncio.gather(*(tool_output(user, c["name"], c["arguments"]) for c in calls))
            for call, output in zip(calls, outputs, strict=True):
                items.append(call)
                items.append({"type": "function_call_output", "call_id": call["call_id"], "output": output})
        result.error = "max_tool_iterations"

    try:
        async with asyncio.timeout(deadline_s):
            await body()
    except TimeoutError:
        result.error = "client_timeout"
    except Exception as exc:  # a benchmark reports failures, it does not crash on them
        result.error = f"{type(exc).__name__}: {exc}"[:200]
    if result.t_end is None:
        result.t_end = time.perf_counter()
    return result
