"""The simulator over a real loopback socket: uvicorn really cuts the connection for drop scenarios."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import httpx2
import openai
import pytest
import uvicorn

from sigmachat.sim import SimParams, create_sim_app
from sigmachat.sim.serve import uvicorn_config


@pytest.fixture
async def sim_url() -> AsyncIterator[str]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))  # an ephemeral loopback port: nothing leaves the machine
    port = sock.getsockname()[1]
    config = uvicorn_config(
        create_sim_app(SimParams(ttfb_ms=0, tokens_per_s=0)), host="127.0.0.1", port=port, log_level="critical"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.01)
        if task.done():
            task.result()
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        server.should_exit = True
        await task
        sock.close()


def client(url: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(api_key="sk-sim", base_url=url, max_retries=0, http_client=httpx2.AsyncClient())


async def test_over_tcp_normal_reset_and_drop(sim_url: str) -> None:
    c = client(sim_url)
    stream = await c.responses.create(model="m", input="hello", stream=True)
    types = [e.type async for e in stream]
    assert types[-1] == "response.completed"

    with pytest.raises(openai.APIConnectionError):
        await c.responses.create(
            model="m", input="hello", stream=True, extra_headers={"X-Sim-Scenario": "reset_before_first_byte"}
        )

    stream = await c.responses.create(model="m@drop_mid_stream", input="hello", stream=True)
    seen = []
    with pytest.raises(openai.APIConnectionError):
        async for event in stream:
            seen.append(event.type)
    assert "response.output_text.delta" in seen and "response.completed" not in seen

    with pytest.raises(openai.RateLimitError) as info:
        await c.responses.create(model="m@rate_limit", input="hello", stream=True)
    assert info.value.response.headers["retry-after"] == "1"

    # The server is still healthy after the cuts.
    models = await c.models.list()
    assert models.data


def test_the_simulator_keeps_idle_connections_as_long_as_asked() -> None:
    """The app's upstream client drops idle connections after 5 s, uvicorn's own default: the
    simulator CLI passes HTTP_KEEP_ALIVE_S so it never closes first (as the app does)."""
    app = create_sim_app(SimParams(ttfb_ms=0, tokens_per_s=0))
    assert uvicorn_config(app, host="127.0.0.1", port=1, keep_alive_s=75).timeout_keep_alive == 75
    assert uvicorn_config(app, host="127.0.0.1", port=1).timeout_keep_alive == uvicorn.Config(app).timeout_keep_alive


def test_the_sim_command_passes_http_keep_alive_s(monkeypatch) -> None:
    """The wiring the test above assumes: ``sigmachat sim`` serves with the setting's value."""
    from typer.testing import CliRunner

    import sigmachat.sim.serve as sim_serve
    from sigmachat.cli.main import app
    from sigmachat.settings import get_settings

    served: dict = {}
    monkeypatch.setattr(sim_serve, "serve", lambda sim_app, **kwargs: served.update(kwargs))
    monkeypatch.setenv("SIGMACHAT_HTTP_KEEP_ALIVE_S", "33")
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, ["sim", "--port", "1"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert served["keep_alive_s"] == 33
