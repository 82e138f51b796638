"""``sigmachat ask``: stream an answer in the terminal, a line per tool call."""

from __future__ import annotations

import asyncio

import typer
from rich.console import Console

from sigmachat.settings import get_settings

console = Console()
err = Console(stderr=True)


def ask(
    question: str = typer.Argument(..., help="What to ask the analyst."),
    user: str = typer.Option(..., "--user", help="Email of the user whose portfolios to use."),
    portfolio: str = typer.Option(None, "--portfolio", help="Portfolio id (default: the user's first)."),
    engine: str = typer.Option("responses", "--engine", help="responses | agents"),
) -> None:
    """Ask the analyst a question and stream the answer."""
    raise typer.Exit(asyncio.run(_ask(question, user, portfolio, engine)))


async def _ask(question: str, email: str, portfolio_id: str | None, engine: str) -> int:
    from sqlalchemy import select

    from sigmachat.auth.service import normalise_email
    from sigmachat.bootstrap import prepare_database
    from sigmachat.chat.conversations import create_conversation
    from sigmachat.db.models import User
    from sigmachat.errors import AppError
    from sigmachat.logging import configure_logging
    from sigmachat.services import Services

    settings = get_settings()
    configure_logging("WARNING", json=settings.log_json)
    services = Services.build(settings)
    try:
        await prepare_database(services)
        services.start_chat_runtime()
        async with services.db.session() as session:
            user = (
                await session.execute(select(User).where(User.email == normalise_email(email)))
            ).scalar_one_or_none()
            if user is None:
                err.print(f"[red]No user with email {email}.[/]")
                return 2
            try:
                conv = await create_conversation(session, user.id, portfolio_id)
            except AppError as exc:
                err.print(f"[red]{exc.message}[/]")
                return 2
        try:
            run = await services.runs.start(
                user_id=user.id, conversation_id=conv.id, text=question, engine=engine, protocol="cli"
            )
        except AppError as exc:
            err.print(f"[red]{exc.message}[/]")
            return 2
        status = 0
        async for event in services.runs.subscribe(run.run_id):
            if event.type == "run_started":
                label = " (offline analyst model)" if event.offline else ""
                err.print(f"[dim]model {event.model}{label}[/]")
            elif event.type == "text_delta":
                console.print(event.delta, end="", soft_wrap=True, highlight=False, markup=False)
            elif event.type == "tool_started":
                err.print(f"[cyan]→ {event.name}[/] [dim]{event.arguments}[/]")
            elif event.type == "tool_finished":
                mark = "✓" if event.ok else "✗"
                err.print(f"[cyan]{mark} {event.name}[/] [dim]{event.summary} ({event.duration_ms:.0f} ms)[/]")
            elif event.type == "info":
                err.print(f"[yellow]… {event.kind} {event.reason or ''}[/]")
            elif event.type == "run_finished":
                console.print()
                err.print(
                    f"[dim]{event.usage.input_tokens} in / {event.usage.output_tokens} out tokens, "
                    f"{event.duration_ms:.0f} ms[/]"
                )
            elif event.type == "run_failed":
                console.print()
                err.print(f"[red]{event.message} ({event.code})[/]")
                status = 1
        return status
    finally:
        await services.aclose()
