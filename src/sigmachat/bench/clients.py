"""The three clients the benchmark times, each reading one answer as a browser would.

- ``direct_stream``: the ``openai`` SDK streaming straight from the upstream (the floor);
  tool calls are answered from :class:`ToolOutputs`, so the floor is the model's time only.
- ``legacy_stream``: ``POST /api/v1/chat/send`` (the Responses path's SSE API).
- ``chatkit_stream``: ``POST /chatkit`` with ``threads.create`` (the ChatKit path).

Each returns a :class:`StreamResult`: the client-observed times (request sent, first text
token, end), the text as received delta by delta, the stream's own final text, and whether
the event sequence was gap-free. Nothing here asserts: judging is :mod:`sigmachat.bench.integrity`.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx2

TEXT_DELTA = "assistant_message.content_part.text_delta"


@dataclass(slots=True)
class StreamResult:
    path: str
    question: str
    user: str
    t_sent: float = 0.0  # perf_counter when the request went out
    t_first: float | None = None  # first text token
    t_last: float | None = None  # last text token
    t_end: float | None = None  # terminal event / end of stream
    deltas: list[str] = field(default_factory=list)
    final_text: str | None = None  # what the stream itself says the answer is
    events: int = 0  # SSE events received (heartbeats included)
    seq_ok: bool = True  # sequence numbers increased without gaps
    error: str | None = None  # None: the stream ended with a complete answer
    run_id: str | None = None
    tool_calls: int = 0

    @property
    def text(self) -> str:
        return "".join(self.deltas)

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def ttfb_ms(self) -> float | None:
        return None if self.t_first is None else (self.t_first - self.t_sent) * 1000

    @property
    def total_ms(self) -> float | None:
        return None if self.t_end is None else (self.t_end - self.t_sent) * 1000

    @property
    def tokens_per_s(self) -> float | None:
        """Text deltas per second from the first to the last (the streaming smoothness)."""
        if self.t_first is None or self.t_last is None or len(self.deltas) < 2 or self.t_last <= self.t_first:
            return None
        return (len(self.deltas) - 1) / (self.t_last - self.t_first)

    def add_delta(self, delta: str) -> None:
        now = time.perf_counter()
        if self.t_first is None:
            self.t_first = now
        self.t_last = now
        self.deltas.append(delta)


def make_http_client(*, max_connections: int = 1000, read_timeout_s: float = 120.0) -> httpx2.AsyncClient:
    """One client per worker process; the default pool (100) would queue a 200-stream level."""
    return httpx2.AsyncClient(
        limits=httpx2.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
        timeout=httpx2.Timeout(read_timeout_s, connect=10.0),
    )


async def _bounded(result: StreamResult, deadline_s: float, body: Callable[[], Awaitable[None]]) -> StreamResult:
    """Run one stream with a hard time bound; any failure becomes ``result.error``."""
    try:
        async with asyncio.timeout(deadline_s):
            await body()
    except TimeoutError:
        result.error = "client_timeout"
    except httpx2.HTTPStatusError as exc:
        result.error = f"http_{exc.response.status_code}"
    except httpx2.TransportError as exc:
        result.error = f"transport:{type(exc).__name__}"
    except Exception as exc:  # a benchmark reports failures, it does not crash on them
        result.error = f"{type(exc).__name__}: {exc}"[:200]
    if result.t_end is None:
        result.t_end = time.perf_counter()
    return result


async def _raise_for_status(resp: httpx2.Response) -> None:
    if resp.status_code >= 400:
        await resp.aread()
        resp.raise_for_status()


# ---- the Responses path's legacy SSE API ---------------------------------------------------


async def legacy_stream(
    client: httpx2.AsyncClient,
    base_url: str,
    token: str,
    conversation_id: str | None,
    question: str,
    *,
    portfolio_id: str | None = None,
    user: str = "",
    deadline_s: float = 120.0,
) -> StreamResult:
    """One answer on the legacy API. Without a ``conversation_id`` it is a new chat's first
    message as the original frontend sends it: ``sendAIMessage`` creates the conversation
    (``POST /chat/conversations``) in the same action, then sends, so the creation is on the
    clock, as ``threads.create`` is on the ChatKit path's."""
    result = StreamResult("responses", question, user)
    headers = {"Authorization": f"Bearer {token}", "Accept": "text/event-stream"}

    async def body() -> None:
        result.t_sent = time.perf_counter()
        conv_id = conversation_id
        if conv_id is None:
            created = await client.post(
                f"{base_url}/api/v1/chat/conversations",
                headers={"Authorization": f"Bearer {token}"},
                json={"portfolio_id": portfolio_id} if portfolio_id else {},
            )
            created.raise_for_status()
            conv_id = created.json()["id"]
        expected_seq = 1
        async with client.stream(
            "POST",
            f"{base_url}/api/v1/chat/send",
            headers=headers,
            json={"conversation_id": conv_id, "text": question},
        ) as resp:
            await _raise_for_status(resp)
            result.run_id = resp.headers.get("x-run-id")
            async for sse in httpx2.EventSource(resp):
                result.events += 1
                if sse.event in ("heartbeat", "message_created"):
                    continue
                env = json.loads(sse.data)
                if env.get("seq") != expected_seq:
                    result.seq_ok = False
                expected_seq = int(env.get("seq") or expected_seq) + 1
                data = env.get("data") or {}
                if sse.event == "token":
                    result.add_delta(data.get("delta", ""))
                elif sse.event == "tool_call":
                    result.tool_calls += 1
                elif sse.event == "done":
                    result.final_text = data.get("final_text")
                    result.t_end = time.perf_counter()
                    return
                elif sse.event == "error":
                    result.error = f"run_failed:{data.get('code')}"
                    result.t_end = time.perf_counter()
                    return
        result.error = "stream_ended_without_terminal_event"

    return await _bounded(result, deadline_s, body)


# ---- the ChatKit path ----------------------------------------------------------------------


def chatkit_create_body(question: str) -> dict[str, Any]:
    return {
        "type": "threads.create",
        "params": {
            "input": {"content": [{"type": "input_text", "text": question}], "attachments": [], "inference_options": {}}
        },
    }


async def chatkit_stream(
    client: httpx2.AsyncClient,
    base_url: str,
    token: str,
    portfolio_id: str | None,
    question: str,
    *,
    user: str = "",
    deadline_s: float = 120.0,
) -> StreamResult:
    """``threads.create``: a new thread per stream (one active run per conversation)."""
    result = StreamResult("chatkit", question, user)
    headers = {"Authorization": f"Bearer {token}", "Accept": "text/event-stream"}
    if portfolio_id:
        headers["X-Portfolio-Id"] = portfolio_id

    async def body() -> None:
        result.t_sent = time.perf_counter()
        last_seq = 0
        async with client.stream(
            "POST", f"{base_url}/chatkit", headers=headers, json=chatkit_create_body(question)
        ) as resp:
            await _raise_for_status(resp)
            result.run_id = resp.headers.get("x-run-id")
            async for sse in httpx2.EventSource(resp):
                result.events += 1
                if sse.id:
                    # Only the last frame of an agent event carries "<run_id>:<seq>".
                    seq = int(sse.id.rpartition(":")[2] or 0)
                    if seq < last_seq:
                        result.seq_ok = False
                    last_seq = seq
                if not sse.data:
                    continue
                event = json.loads(sse.data)
                etype = event.get("type")
                if etype == "thread.item.updated":
                    update = event.get("update") or {}
                    if update.get("type") == TEXT_DELTA:
                        result.add_delta(update.get("delta", ""))
                    elif update.get("type") == "workflow.task.added":
                        result.tool_calls += 1
                elif etype == "thread.item.added":
                    item = event.get("item") or {}
                    if item.get("type") == "workflow":
                        result.tool_calls += len((item.get("workflow") or {}).get("tasks") or [])
                elif etype == "thread.item.done":
                    item = event.get("item") or {}
                    if item.get("type") == "assistant_message":
                        result.final_text = "".join(part.get("text", "") for part in item.get("content") or [])
                        result.t_end = time.perf_counter()
                elif etype == "error":
                    result.error = f"chatkit_error:{event.get('code')}:{event.get('message', '')[:60]}"
        # The stream ends after the answer's item.done (and the title's thread.updated).
        if result.error is None and result.final_text is None:
            result.error = "stream_ended_without_answer"

    return await _bounded(result, deadline_s, body)


# ---- direct: the openai SDK straight to the upstream ---------------------------------------


ToolOutputFn = Callable[[str, str, str], Awaitable[str]]  # (user, tool name, arguments JSON) -> output


@dataclass(slots=True)
class DirectRequest:
    """What the app's Responses engine would send for a first question in a new conversation."""

    model: str
    instructions: str
    tools: list[dict[str, Any]]
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. store=False against OpenAI


async def direct_stream(
    openai_client: Any,
    request: DirectRequest,
    question: str,
    tool_output: ToolOutputFn,
    *,
    user: str = "",
    deadline_s: float = 120.0,
    max_turns: int = 6,
) -> StreamResult:
    """Stream an answer straight from the upstream, running the tool loop client-side."""
    result = StreamResult("direct", question, user)

    async def body() -> None:
        items: list[dict[str, Any]] = [{"role": "user", "content": question}]
        result.t_sent = time.perf_counter()
        for _turn in range(max_turns):
            stream = await openai_client.responses.create(
                model=request.model,
                instructions=request.instructions,
                input=items,
                tools=request.tools,
                stream=True,
                parallel_tool_calls=True,
                **request.extra,
            )
            calls: list[dict[str, Any]] = []
            completed = None
            expected_seq = 0
            try:
                async for event in stream:
                    result.events += 1
                    seq = getattr(event, "sequence_number", None)
                    if seq is not None:
                        if seq != expected_seq:
                            result.seq_ok = False
                        expected_seq = seq + 1
                    etype = event.type
                    if etype == "response.output_text.delta":
                        result.add_delta(event.delta)
                    elif etype == "response.output_item.done" and getattr(event.item, "type", None) == "function_call":
                        item = event.item
                        calls.append(
                            {
                                "type": "function_call",
                                "call_id": item.call_id,
                                "name": item.name,
                                "arguments": item.arguments,
                            }
                        )
                    elif etype in ("response.completed", "response.incomplete", "response.failed"):
                        completed = event
                        break
                    elif etype == "error":
                        result.error = f"upstream_error:{getattr(event, 'code', None)}"
                        return
            finally:
                await stream.close()
            if completed is None:
                result.error = "stream_ended_without_terminal_event"
                return
            if completed.type != "response.completed":
                result.error = completed.type
                return
            if not calls:
                result.final_text = completed.response.output_text
                result.t_end = time.perf_counter()
                return
            result.tool_calls += len(calls)
            outputs = await asyncio.gather(*(tool_output(user, c["name"], c["arguments"]) for c in calls))
            for call, output in zip(calls, outputs, strict=True):
                items.append(call)
                items.append({"type": "function_call_output", "call_id": call["call_id"], "output": output})
        result.error = "max_tool_iterations"

    return await _bounded(result, deadline_s, body)
