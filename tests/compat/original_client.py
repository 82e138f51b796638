"""The calls the original SigmaSight frontend's chat, feedback and memory services make, and
the way its chat service reads a stream, written in Python from the contract (the URLs,
bodies and fields those services use), not from their code.

The stream reader keeps the original's rules, because they are what our framing must satisfy:
frames are split on ``"\\n\\n"`` with an incomplete tail carried to the next chunk, each frame
is split on ``"\\n"``, a line starting ``event:`` names the event and one starting ``data:``
holds JSON (text after the colon, trimmed). Events are then read from the fields the original
reads: ``data.data.delta`` for tokens, top-level ``assistant_message_id`` for
``message_created``, ``data.data.final_text`` for ``done``, ``data.error`` or
``data.data.error`` for errors. Anything else is an "unknown event" the original would warn about.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import httpx

API = "/api/v1/chat"
KNOWN_EVENTS = {
    "start", "message_created", "response_id", "message", "token", "tool_call", "tool_result",
    "done", "error", "heartbeat", "info",
}  # fmt: skip


@dataclass
class StreamResult:
    """What the original chat service ends up knowing after one streamed answer."""

    tokens: list[str] = field(default_factory=list)
    tool_calls: list[str] = field(default_factory=list)  # tool names, from tool_call events
    tool_results: list[str] = field(default_factory=list)
    assistant_message_id: str | None = None
    run_id: str | None = None
    final_text: str | None = None
    done: dict[str, Any] | None = None
    error: str | None = None
    unknown: list[str] = field(default_factory=list)
    unparsed: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "".join(self.tokens)


def read_frames(buffer: str) -> tuple[list[tuple[str, Any]], str, list[str]]:
    """Complete frames of ``buffer`` as (event, data), the incomplete rest, and unparsable data."""
    messages = buffer.split("\n\n")
    rest = messages.pop()
    frames: list[tuple[str, Any]] = []
    bad: list[str] = []
    for msg in messages:
        if not msg.strip():
            continue
        event, data = "message", None
        for line in msg.split("\n"):
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:"):
                raw = line[5:].strip()
                try:
                    data = json.loads(raw)
                except ValueError:
                    bad.append(raw)
        if data is not None:
            frames.append((event, data))
    return frames, rest, bad


def handle(result: StreamResult, event: str, data: Any) -> None:
    inner = data.get("data") if isinstance(data.get("data"), dict) else {}
    if event == "start":
        result.run_id = data.get("run_id")
    elif event == "message_created":
        result.assistant_message_id = data.get("assistant_message_id")
    elif event == "token":
        if inner.get("delta"):
            result.tokens.append(inner["delta"])
    elif event == "tool_call":
        result.tool_calls.append(inner.get("tool_name"))
    elif event == "tool_result":
        result.tool_results.append(inner.get("tool_name"))
    elif event == "done":
        result.done = data
        result.final_text = inner.get("final_text")
    elif event == "error":
        result.error = data.get("error") or inner.get("error") or "Unknown error"
    elif event not in KNOWN_EVENTS:
        result.unknown.append(event)


class OriginalFrontend:
    """One signed-in user of the original frontend, talking to our server."""

    def __init__(self, client: httpx.AsyncClient, headers: dict[str, str]) -> None:
        self.client = client
        self.headers = headers

    # -- aiChatService / chatService: conversations --------------------------------------------

    async def create_conversation(self, **body: Any) -> httpx.Response:
        """aiChatService sends {mode: "green", portfolio_id?, portfolio_ids?, page_hint?, route?};
        chatService sends {mode, portfolio_id?}."""
        return await self.client.post(f"{API}/conversations", json=body, headers=self.headers)

    async def list_conversations(self, limit: int = 10) -> httpx.Response:
        return await self.client.get(f"{API}/conversations", params={"limit": limit}, headers=self.headers)

    async def get_conversation(self, conversation_id: str) -> httpx.Response:
        return await self.client.get(f"{API}/conversations/{conversation_id}", headers=self.headers)

    async def update_mode(self, conversation_id: str, mode: str, method: str = "PATCH") -> httpx.Response:
        """chatService calls PATCH; the original backend declares PUT. Both must work."""
        return await self.client.request(
            method, f"{API}/conversations/{conversation_id}/mode", json={"mode": mode}, headers=self.headers
        )

    async def delete_conversation(self, conversation_id: str) -> httpx.Response:
        return await self.client.delete(f"{API}/conversations/{conversation_id}", headers=self.headers)

    async def send(self, conversation_id: str, text: str, ui_context: dict[str, Any] | None = None) -> StreamResult:
        """aiChatService.sendAIMessage: POST /chat/send, then read the body chunk by chunk."""
        body: dict[str, Any] = {"conversation_id": conversation_id, "text": text}
        if ui_context:
            body["ui_context"] = ui_context
        headers = {**self.headers, "Accept": "text/event-stream"}
        result = StreamResult()
        async with self.client.stream("POST", f"{API}/send", json=body, headers=headers) as resp:
            if resp.status_code != 200:
                await resp.aread()
                raise AssertionError(f"HTTP {resp.status_code}: {resp.text}")
            buffer = ""
            async for chunk in resp.aiter_text():
                buffer += chunk
                frames, buffer, bad = read_frames(buffer)
                result.unparsed += bad
                for event, data in frames:
                    handle(result, event, data)
        return result

    # -- feedbackService ------------------------------------------------------------------------

    async def submit_feedback(self, message_id: str, **feedback: Any) -> httpx.Response:
        return await self.client.post(f"{API}/messages/{message_id}/feedback", json=feedback, headers=self.headers)

    async def get_feedback(self, message_id: str) -> httpx.Response:
        return await self.client.get(f"{API}/messages/{message_id}/feedback", headers=self.headers)

    async def delete_feedback(self, message_id: str) -> httpx.Response:
        return await self.client.delete(f"{API}/messages/{message_id}/feedback", headers=self.headers)

    # -- memoryApi -------------------------------------------------------------------------------

    async def list_memories(
        self, scope: str | None = None, portfolio_id: str | None = None, limit: int = 50
    ) -> httpx.Response:
        params: dict[str, Any] = {}
        if scope:
            params["scope"] = scope
        if portfolio_id:
            params["portfolio_id"] = portfolio_id
        params["limit"] = str(limit)
        return await self.client.get(f"{API}/memories", params=params, headers=self.headers)

    async def create_memory(self, **params: Any) -> httpx.Response:
        return await self.client.post(f"{API}/memories", json=params, headers=self.headers)

    async def delete_memory(self, memory_id: str) -> httpx.Response:
        return await self.client.delete(f"{API}/memories/{memory_id}", headers=self.headers)

    async def delete_all_memories(self) -> httpx.Response:
        return await self.client.delete(f"{API}/memories", headers=self.headers)

    async def memory_count(self) -> httpx.Response:
        return await self.client.get(f"{API}/memories/count", headers=self.headers)
