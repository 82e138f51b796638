"""A fake engine: scripted agent events, optionally paused at a gate (fakes over mocks)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from sigmachat.agent.events import (
    EventFactory,
    RunFailed,
    RunFinished,
    RunStarted,
    TextDelta,
    ToolFinished,
    ToolStarted,
    Usage,
)
from sigmachat.engines.base import RunRequest


class ScriptedEngine:
    """Streams ``chunks`` as text deltas (with one tool call first), then finishes or fails.

    ``gate`` (an asyncio.Event) pauses the stream after the first delta until it is set, so a
    test can cancel, disconnect or send again while the run is in flight.
    """

    name = "responses"

    def __init__(
        self,
        chunks=("Your largest ", "position is ", "**HOME_EQUITY**."),
        *,
        fail_code: str | None = None,
        gate: asyncio.Event | None = None,
    ):
        self.chunks = list(chunks)
        self.fail_code = fail_code
        self.gate = gate
        self.requests: list[RunRequest] = []
        self.closed = asyncio.Event()

    async def stream(self, request: RunRequest) -> AsyncIterator:
        self.requests.append(request)
        ev = EventFactory(request.run_id)
        try:
            yield ev.make(RunStarted, conversation_id=request.conversation_id, model="fake-model", engine=self.name)
            yield ev.make(ToolStarted, call_id="call_1", name="get_portfolio_complete", arguments={})
            yield ev.make(
                ToolFinished,
                call_id="call_1",
                name="get_portfolio_complete",
                envelope={"meta": {}, "data": {"nav": 1}, "error": None},
                duration_ms=3.0,
                summary="NAV $1",
            )
            text = ""
            for i, chunk in enumerate(self.chunks):
                text += chunk
                yield ev.make(TextDelta, delta=chunk)
                if i == 0 and self.gate is not None:
                    await self.gate.wait()
            if self.fail_code:
                yield ev.make(
                    RunFailed, code=self.fail_code, message="upstream dropped", retryable=True, partial_text=text
                )
            else:
                yield ev.make(
                    RunFinished,
                    final_text=text,
                    usage=Usage(input_tokens=100, output_tokens=20),
                    ttfb_ms=5.0,
                    duration_ms=10.0,
                    model="fake-model",
                )
        finally:
            self.closed.set()
