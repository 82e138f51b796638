"""``sigmachat sim``: the OpenAI-compatible simulator with fault scenarios, on a port."""

from __future__ import annotations

import typer
from rich.console import Console

from sigmachat.settings import get_settings

console = Console()


def sim(
    port: int = typer.Option(None, help="Port (default from SIGMACHAT_SIM_PORT, 9100)."),
    host: str = typer.Option("127.0.0.1", help="Bind address."),
    ttfb_ms: float = typer.Option(None, "--ttfb-ms", help="Time to first byte in ms (default SIGMACHAT_SIM_TTFB_MS)."),
    tokens_per_s: float = typer.Option(
        None, "--tokens-per-s", help="Streaming rate; 0 = as fast as possible (default SIGMACHAT_SIM_TOKENS_PER_S)."
    ),
    slow_tokens_per_s: float = typer.Option(5.0, "--slow-tokens-per-s", help="Token rate of the slow_tokens scenario."),
    retry_after_s: float = typer.Option(
        1.0, "--retry-after-s", help="Retry-After of the rate_limit scenario, in seconds."
    ),
    log_level: str = typer.Option("warning", help="uvicorn log level."),
    chat_only: bool = typer.Option(
        False, "--chat-only", help="Serve Chat Completions only (no /v1/responses), like many self-hosted servers."
    ),
) -> None:
    """Serve an OpenAI-compatible Responses and Chat Completions API backed by the offline
    analyst, with fault scenarios.

    Pick a scenario per request with the header `X-Sim-Scenario: NAME[;times=N]` or the model
    name `MODEL@NAME`. Scenarios: rate_limit, server_error, overloaded, reset_before_first_byte,
    drop_mid_stream, no_terminal_event, malformed_event, response_failed, response_incomplete,
    slow_tokens, tool_error, unknown_tool, invalid_json_arguments, unknown_tool_loop, ramble.
    """
    from sigmachat.sim.app import create_sim_app
    from sigmachat.sim.scenarios import SCENARIOS
    from sigmachat.sim.serve import serve

    settings = get_settings()
    port = port or settings.sim_port
    app = create_sim_app(
        settings,
        ttfb_ms=ttfb_ms,
        tokens_per_s=tokens_per_s,
        slow_tokens_per_s=slow_tokens_per_s,
        retry_after_s=retry_after_s,
        apis=("chat_completions",) if chat_only else None,
    )
    params = app.server
    console.print(
        f"[bold]SigmaSight simulator[/] on http://{host}:{port}/v1  "
        f"(ttfb {params.pacing.ttfb_ms:g} ms, {params.pacing.tokens_per_s:g} tokens/s)\n"
        f"Point the app at it: SIGMACHAT_OPENAI_BASE_URL=http://{host}:{port}/v1\n"
        f"Scenarios (X-Sim-Scenario header or model@scenario): {', '.join(SCENARIOS)}"
    )
    serve(app, host=host, port=port, log_level=log_level, keep_alive_s=settings.http_keep_alive_s)


def register(app: typer.Typer) -> None:
    app.command("sim")(sim)
