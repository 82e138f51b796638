"""Fake engines and synthetic runs for telemetry tests (fakes over mocks)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

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


@dataclass
class FakeRun:
    """Stands in for the run manager's run object (the attributes the recorder reads)."""

    run_id: str
    engine: str = "responses"
    protocol: str = "legacy_sse"
    user_id: str | None = "user-1"
    conversation_id: str | None = "thr_1"
    portfolio_id: str | None = None


def synthetic_events(
    run_id: str,
    *,
    t0: int = 1_700_000_000_000,
    chunks: tuple[str, ...] = ("Hello ", "world"),
    tools: tuple[str, ...] = ("get_portfolio_complete",),
    fail_code: str | None = None,
    ttfb_ms: float | None = 400.0,
    duration_ms: float = 2400.0,
    output_tokens: int = 100,
    model: str = "gpt-test",
    engine: str = "responses",
) -> list:
    """A plausible run with explicit timestamps: start, tool calls, text, terminal."""
    ev = EventFactory(run_id)
    out = [ev.make(RunStarted, conversation_id="thr_1", model=model, engine=engine, ts=t0)]
    t = t0
    for i, name in enumerate(tools):
        t += 50
        out.append(ev.make(ToolStarted, call_id=f"call_{i}", name=name, arguments={}, ts=t))
    for i, name in enumerate(tools):
        t += 100
        out.append(ev.make(ToolFinished, call_id=f"call_{i}", name=name, envelope={}, duration_ms=100.0, ok=True, ts=t))
    t = t0 + int(ttfb_ms or 0)
    for chunk in chunks:
        out.append(ev.make(TextDelta, delta=chunk, ts=t))
        t += 10
    end = t0 + int(duration_ms)
    usage = Usage(input_tokens=1000, output_tokens=output_tokens, cached_tokens=200, reasoning_tokens=10)
    if fail_code:
        out.append(ev.make(RunFailed, code=fail_code, message="x", retryable=True, partial_text="".join(chunks),
                           usage=usage, ttfb_ms=ttfb_ms, duration_ms=duration_ms, model=model, attempts=3, retries=2,
                           ts=end))  # fmt: skip
    else:
        out.append(ev.make(RunFinished, final_text="".join(chunks), usage=usage, ttfb_ms=ttfb_ms,
                           duration_ms=duration_ms, model=model, response_id="resp_123", attempts=2, retries=1,
                           fallback_used=True, ts=end))  # fmt: skip
    return out


class FakeEngine:
    """Streams a scripted answer (one tool call, then text); ``gate`` pauses after the tool."""

    def __init__(self, name: str, text: str = "Your largest position is AAPL.", *,
                 tools=("get_portfolio_complete",), fail_code: str | None = None, gate: asyncio.Event | None = None,
                 hang: bool = False) -> None:  # fmt: skip
        self.name = name
        self.text = text
        self.tools = tools
        self.fail_code = fail_code
        self.gate = gate
        self.hang = hang
        self.requests: list = []

    async def stream(self, request) -> AsyncIterator:
        self.requests.append(request)
        ev = EventFactory(request.run_id)
        yield ev.make(RunStarted, conversation_id=request.conversation_id, model=f"{self.name}-model", engine=self.name)
        for i, name in enumerate(self.tools):
            yield ev.make(ToolStarted, call_id=f"c{i}", name=name, arguments={})
            yield ev.make(
                ToolFinished, call_id=f"c{i}", name=name, envelope={"data": {}}, duration_ms=2.0, summary="ok"
            )
        if self.gate is not None:
            await self.gate.wait()
        if self.hang:
            await asyncio.sleep(3600)
        words = self.text.split(" ")
        for i, word in enumerate(words):
            yield ev.make(TextDelta, delta=word + (" " if i < len(words) - 1 else ""))
        usage = Usage(input_tokens=500, output_tokens=len(words))
        if self.fail_code:
            yield ev.make(
                RunFailed, code=self.fail_code, message="boom", retryable=True, partial_text=self.text, usage=usage
            )
        else:
            yield ev.make(
                RunFinished,
                final_text=self.text,
                usage=usage,
                ttfb_ms=20.0,
                duration_ms=50.0,
                model=f"{self.name}-model",
            )
