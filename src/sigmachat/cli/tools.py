"""``sigmachat tools``: list the tool contract, call a tool as a user, benchmark every tool."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from sigmachat.cli.common import cli_services

tools_app = typer.Typer(help="The agent's portfolio tools.", no_args_is_help=True)
console = Console()
err = Console(stderr=True)


@tools_app.command("list")
def list_tools(
    as_json: bool = typer.Option(False, "--json", help="Print the specs (name, description, parameters) as JSON."),
) -> None:
    """The tools the model can call, with their parameter schemas."""
    from sigmachat.settings import get_settings
    from sigmachat.tools.registry import build_registry

    specs = build_registry(get_settings()).specs()
    if as_json:
        console.print_json(json.dumps([s.as_dict() for s in specs]))
        return
    table = Table(show_lines=False)
    table.add_column("Tool", no_wrap=True)
    table.add_column("Parameters (? = nullable)")
    table.add_column("Portfolio")
    table.add_column("Description", ratio=1)
    for s in specs:
        params = ", ".join(
            f"{k}{'' if 'null' not in (v.get('type') or []) else '?'}" for k, v in s.parameters["properties"].items()
        )
        table.add_row(s.name, params or "-", "yes" if s.portfolio_scoped else "", s.description)
    console.print(table)


@tools_app.command("call")
def call_tool(
    name: str = typer.Argument(..., help="Tool name, e.g. get_analytics_overview."),
    user: str = typer.Option(..., "--user", help="Email of the user the tool runs as."),
    args: str = typer.Option("{}", "--args", help="Arguments as a JSON object."),
    portfolio: str = typer.Option(
        None, "--portfolio", help="The conversation's portfolio id (injected when args omit it)."
    ),
    model_text: bool = typer.Option(
        False, "--model-text", help="Print what the model receives (after truncation) instead."
    ),
) -> None:
    """Call one tool as a user and print its envelope."""
    from sqlalchemy import select

    from sigmachat.db.models import User
    from sigmachat.tools.registry import ToolContext, build_registry

    async def _run():
        async with cli_services() as services:
            async with services.db.session() as session:
                found = (
                    await session.execute(select(User).where(User.email == user.strip().lower()))
                ).scalar_one_or_none()
            if found is None:
                return None
            ctx = ToolContext(
                user_id=found.id,
                portfolio_id=portfolio,
                session_factory=services.db.session,
                settings=services.settings,
            )
            return await build_registry(services.settings).call(name, args, ctx)

    result = asyncio.run(_run())
    if result is None:
        err.print(f"[red]No user with email {user}.[/]")
        raise typer.Exit(2)
    if model_text:
        console.print(result.model_text, markup=False, highlight=False, soft_wrap=True)
    else:
        console.print_json(json.dumps(result.envelope))
    err.print(f"{'ok' if result.ok else 'error'} · {result.duration_ms:.1f} ms · {result.summary}")
    if not result.ok:
        raise typer.Exit(1)


@tools_app.command("bench")
def bench(
    runs: int = typer.Option(20, "--runs", min=1, help="Warm calls per tool."),
    user: str = typer.Option(None, "--user", help="Only this user's portfolios (default: the largest demo portfolio)."),
    portfolio: str = typer.Option(None, "--portfolio", help="Benchmark this portfolio id."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Time every tool cold and warm on the largest portfolio (target: under 100 ms warm)."""
    from sigmachat.bench.tools import WARM_TARGET_MS, run_tool_benchmark

    async def _run():
        async with cli_services() as services:
            return await run_tool_benchmark(services, runs=runs, user_email=user, portfolio_id=portfolio)

    try:
        report = asyncio.run(_run())
    except LookupError as exc:
        err.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from exc
    if as_json:
        console.print_json(json.dumps(report.as_dict()))
        return
    table = Table(
        "Tool", "Cold ms", "Median ms", "p95 ms", "Max ms", "Chars", "OK", "Summary",
        title=f"{report.portfolio_name} ({report.user_email}, {report.lots} lots), {report.runs} warm runs per tool",
    )  # fmt: skip
    for t in report.timings:
        style: dict[str, Any] = {} if t.within_target and t.ok else {"style": "red"}
        table.add_row(
            t.tool, f"{t.cold_ms:.1f}", f"{t.median_ms:.1f}", f"{t.p95_ms:.1f}", f"{t.max_ms:.1f}",
            f"{t.chars:,}" + (" (truncated)" if t.truncated else ""), "yes" if t.ok else "no", t.summary, **style,
        )  # fmt: skip
    console.print(table)
    verdict = "all tools" if report.all_within_target else "NOT all tools"
    console.print(f"Target: {verdict} under {WARM_TARGET_MS:.0f} ms warm (median).")
    if not report.all_within_target:
        raise typer.Exit(1)
