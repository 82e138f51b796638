"""The raw reader (the benchmark's CPU floor) against the simulator on a real loopback socket:
it reads the same answer the openai SDK reads, tool turns included."""

from __future__ import annotations

import asyncio

import openai
import uvicorn

from sigmachat.agent.instructions import instructions_for
from sigmachat.bench.clients import DirectRequest, direct_stream
from sigmachat.bench.procs import LOOPBACK, free_port
from sigmachat.bench.raw_reader import raw_stream
from sigmachat.sim.app import create_sim_app
from sigmachat.tools.registry import build_registry


async def test_raw_reader_reads_the_same_answers_as_the_sdk(settings):
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_sim_app(ttfb_ms=0, tokens_per_s=0), host=LOOPBACK, port=port, log_level="warning")
    )
    task = asyncio.create_task(server.serve())
    base = f"http://{LOOPBACK}:{port}/v1"
    oa = openai.AsyncOpenAI(api_key="sk-test", base_url=base, max_retries=0)
    try:
        while not server.started:
            await asyncio.sleep(0.02)
        request = DirectRequest(
            model=settings.model,
            instructions=instructions_for(as_of=settings.as_of_date, portfolio_id=None),
            tools=build_registry(settings).openai_tools(),
        )

        async def output(user: str, name: str, arguments: str) -> str:
            return '{"data": {}, "error": null}'

        for question in ("What can you do?", "What does NVDA do and what is its price?"):
            sdk = await direct_stream(oa, request, question, output)
            raw = await raw_stream(base, "sk-test", request, question, output)
            assert raw.ok and sdk.ok, (raw.error, sdk.error)
            assert raw.text == sdk.text and raw.final_text == raw.text and len(raw.deltas) == len(sdk.deltas)
            assert raw.tool_calls == sdk.tool_calls
        assert raw.tool_calls >= 1  # the second question goes through the tool loop
    finally:
        await oa.close()
        server.should_exit = True
        await task
