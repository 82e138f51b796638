"""The two engines alone, in this process: CPU per answer of the Responses engine and of the
Agents SDK engine (the ChatKit path's) on the same upstream answers.

The load test's CPU per token moves by a third from run to run on a shared 2-core box, and it
mixes the engines with the HTTP server, the database and the event log. Here nothing else
runs: each benchmark question is answered once by the offline analyst through the real tool
registry (the seeded database), its upstream bodies are recorded, and then both engines read
those bodies again and again, one event per read with a loop turn in between (as from a
socket), with the tools' outputs served from that first answer. The difference between the
two engines is what the Agents SDK's run costs on top of the same stream.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx2

from sigmachat.engines.agents import AgentsEngine
from sigmachat.engines.base import RunRequest, ToolCaller
from sigmachat.engines.model_client import OFFLINE_BASE_URL, build_model_client
from sigmachat.engines.responses import ResponsesEngine
from sigmachat.settings import Settings
from sigmachat.tools.registry import ToolResult
from sigmachat.tools.runtime import ToolContext

ENGINES = ("responses", "agents")
_EVENT_END = b"\n\n"


class _Recorder(httpx2.AsyncBaseTransport):
    """Passes requests to ``inner`` and keeps each response body, read whole."""

    def __init__(self, inner: httpx2.AsyncBaseTransport) -> None:
        self.inner = inner
        self.bodies: list[bytes] = []

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        response = await self.inner.handle_async_request(request)
        body = b"".join([chunk async for chunk in response.stream])  # type: ignore[union-attr]
        await response.aclose()
        self.bodies.append(body)
        return httpx2.Response(response.status_code, headers=response.headers, content=body, request=request)


class _EventByEvent(httpx2.AsyncByteStream):
    """A recorded SSE body, one event per read and a loop turn between reads (as from a socket:
    a whole body in one read would let an engine's tasks batch every token)."""

    def __init__(self, body: bytes) -> None:
        self.events = [event + _EVENT_END for event in body.split(_EVENT_END) if event.strip()]

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for event in self.events:
            await asyncio.sleep(0)
            yield event


class _Replay(httpx2.AsyncBaseTransport):
    """Answers the n-th model call of an answer with the n-th recorded body."""

    def __init__(self, bodies: list[bytes]) -> None:
        self.bodies = bodies
        self.calls = 0

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        await request.aread()
        body = self.bodies[min(self.calls, len(self.bodies) - 1)]
        self.calls += 1
        return httpx2.Response(
            200, headers={"content-type": "text/event-stream"}, stream=_EventByEvent(body), request=request
        )


@dataclass
class _RecordedTools:
    """The registry's tool list; each call's output as the first (real) call returned it."""

    registry: ToolCaller
    outputs: dict[tuple[str, str], ToolResult] = field(default_factory=dict)

    def openai_tools(self) -> list[dict[str, Any]]:
        return self.registry.openai_tools()

    async def call(self, name: str, arguments: dict[str, Any] | str | None, ctx: ToolContext) -> ToolResult:
        key = (name, arguments if isinstance(arguments, str) else repr(arguments))
        if key not in self.outputs:
            self.outputs[key] = await self.registry.call(name, arguments, ctx)
        return self.outputs[key]


def _engine(
    name: str, transport: httpx2.AsyncBaseTransport, tools: ToolCaller, settings: Settings, db: Any
) -> ResponsesEngine | AgentsEngine:
    # The app's own model client, its upstream the given transport: the Responses API, no fallback model.
    upstream = {"openai_base_url": OFFLINE_BASE_URL, "fallback_model": None, "upstream_api": "responses"}
    mc = build_model_client(settings.model_copy(update=upstream), http_client=httpx2.AsyncClient(transport=transport))
    if name == "agents":
        return AgentsEngine(mc, tools, settings, db.session)
    return ResponsesEngine(mc, tools, settings, db.session)


async def _answer(engine: ResponsesEngine | AgentsEngine, request: RunRequest) -> tuple[str, int]:
    """The answer's terminal event type and its text deltas."""
    deltas = 0
    last = "none"
    async for event in engine.stream(request):
        last = event.type
        deltas += event.type == "text_delta"
    return last, deltas


async def engine_microbench(
    settings: Settings, questions: list[tuple[str, str]], *, runs: int, rounds: int
) -> dict[str, Any]:
    """Per question and engine: median CPU ms per answer over ``rounds`` rounds of ``runs``
    answers (the engines alternate round by round), tokens per answer, µs per token, and the
    extra ms and the ratio against the Responses engine (medians of the rounds' pairs)."""
    from sqlalchemy import select

    from sigmachat.db.models import Portfolio
    from sigmachat.db.session import Database
    from sigmachat.offline.server import Pacing
    from sigmachat.offline.transport import OfflineTransport, offline_server
    from sigmachat.tools.registry import build_registry

    db = Database(settings)
    tools = _RecordedTools(build_registry(settings))
    made: list[ResponsesEngine | AgentsEngine] = []  # their model clients are closed at the end

    def engine(name: str, transport: httpx2.AsyncBaseTransport) -> ResponsesEngine | AgentsEngine:
        made.append(_engine(name, transport, tools, settings, db))
        return made[-1]

    try:
        async with db.session() as session:
            owner_id, portfolio_id = (
                await session.execute(select(Portfolio.owner_id, Portfolio.id).order_by(Portfolio.created_at).limit(1))
            ).one()
        rows: list[dict[str, Any]] = []
        for key, text in questions:
            request = RunRequest(
                run_id="run_bench",
                user_id=owner_id,
                user_text=text,
                conversation_id="conv_bench",
                portfolio_id=portfolio_id,
            )
            recorder = _Recorder(OfflineTransport(offline_server(settings, pacing=Pacing())))
            terminal, _ = await _answer(engine("responses", recorder), request)
            if terminal != "run_finished":
                raise RuntimeError(f"the recorded answer to {key!r} ended with {terminal}")
            replay = _Replay(recorder.bodies)
            engines = {name: engine(name, replay) for name in ENGINES}
            samples: dict[str, list[float]] = {name: [] for name in ENGINES}
            tokens: dict[str, int] = {}
            for round_no in range(rounds + 1):  # round 0 warms both engines up
                for name in ENGINES:
                    started = time.process_time()
                    for _ in range(runs):
                        replay.calls = 0
                        terminal, tokens[name] = await _answer(engines[name], request)
                        if terminal != "run_finished":
                            raise RuntimeError(f"{name} ended the replayed {key!r} answer with {terminal}")
                    if round_no:
                        samples[name].append((time.process_time() - started) * 1000 / runs)
            for name in ENGINES:
                ms_per_answer = statistics.median(samples[name])
                rows.append(
                    {
                        "question": key,
                        "engine": name,
                        "model_calls": len(recorder.bodies),
                        "tokens": tokens[name],
                        "ms_per_answer": round(ms_per_answer, 3),
                        "rounds_ms": [round(s, 3) for s in samples[name]],
                        "us_per_token": round(ms_per_answer * 1000 / max(tokens[name], 1), 1),
                    }
                )
    finally:
        for made_engine in made:
            await made_engine.mc.aclose()
        await db.dispose()
    # Against the Responses engine round by round (the two ran a second apart), then the median:
    # the box's speed drifts between rounds more than between two engines of one round.
    by = {(r["question"], r["engine"]): r for r in rows}
    for row in rows:
        base = by[(row["question"], "responses")]["rounds_ms"]
        pairs = list(zip(row["rounds_ms"], base, strict=True))
        row["extra_ms"] = round(statistics.median(ms - ref for ms, ref in pairs), 3)
        row["vs_responses"] = round(statistics.median(ms / ref for ms, ref in pairs if ref), 2)
    return {"runs": runs, "rounds": rounds, "tools": len(tools.openai_tools()), "rows": rows}
