"""``sigmachat rollout show|set|audit``: the rollout flag from a shell (audited as ``cli:<os user>``)."""

from __future__ import annotations

import asyncio
import getpass
import json
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from sigmachat.cli.common import cli_services

rollout_app = typer.Typer(help="Which chat path (responses | chatkit) serves whom.", no_args_is_help=True)
console = Console()
err = Console(stderr=True)


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except Exception:  # no login name (some containers): still say it came from the CLI
        return "cli:unknown"


async def _with_service(work):
    from sigmachat.rollout import RolloutService

    async with cli_services(migrate=True) as services:
        rollout = services.rollout or RolloutService(services.settings, services.db)
        return await work(rollout)


def _print_state(state: dict[str, Any]) -> None:
    table = Table(show_header=False, box=None)
    table.add_column(style="bold")
    table.add_column()
    kill = "[red bold]ON (everyone on responses)[/]" if state["kill_switch"] else "off"
    for label, value in (
        ("flag", f"{state['flag']} (version {state['version']})"),
        ("kill switch", kill),
        ("percent on chatkit", f"{state['percent']} %"),
        ("allow users", ", ".join(state["allow_users"]) or "-"),
        ("allow portfolios", ", ".join(state["allow_portfolios"]) or "-"),
        ("deny users", ", ".join(state["deny_users"]) or "-"),
        ("default", state["default"]),
        ("updated", f"{state['updated_at'] or '-'} by {state['updated_by'] or '-'}"),
    ):
        table.add_row(label, value)
    console.print(table)


@rollout_app.command("show")
def show(as_json: bool = typer.Option(False, "--json", help="Print the state as JSON.")) -> None:
    """Show the current state of the chat_backend flag."""

    async def work(rollout):
        return (await rollout.state()).public()

    state = asyncio.run(_with_service(work))
    if as_json:
        console.print_json(json.dumps(state))
    else:
        _print_state(state)


@rollout_app.command("set")
def set_(
    percent: int | None = typer.Option(
        None, "--percent", min=0, max=100, help="Share of users (by bucket) on chatkit."
    ),
    allow_user: list[str] = typer.Option([], "--allow-user", help="Put this email on chatkit (repeatable)."),
    allow_portfolio: list[str] = typer.Option([], "--allow-portfolio", help="Put this portfolio's users on chatkit."),
    deny_user: list[str] = typer.Option([], "--deny-user", help="Keep this email on responses."),
    remove_user: list[str] = typer.Option([], "--remove-user", help="Take this email off both user lists."),
    remove_portfolio: list[str] = typer.Option([], "--remove-portfolio", help="Take this portfolio off the allowlist."),
    kill: bool = typer.Option(False, "--kill", help="Kill switch ON: everyone on responses within seconds."),
    unkill: bool = typer.Option(False, "--unkill", help="Kill switch off: the other rules apply again."),
    default: str | None = typer.Option(None, "--default", help="Variant when no rule matches: chatkit | responses."),
) -> None:
    """Change the flag (only what you name). Takes effect on every instance within seconds."""
    from sigmachat.errors import AppError
    from sigmachat.rollout.rules import normalise_email

    if kill and unkill:
        err.print("[red]--kill and --unkill contradict each other.[/]")
        raise typer.Exit(2)
    if default is not None and default not in ("chatkit", "responses"):
        err.print("[red]--default must be chatkit or responses.[/]")
        raise typer.Exit(2)
    try:
        removed = {normalise_email(e) for e in remove_user}
        allow_add = [normalise_email(e) for e in allow_user]
        deny_add = [normalise_email(e) for e in deny_user]
    except ValueError as exc:
        err.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from exc
    portfolios_removed = {p.strip() for p in remove_portfolio}
    if not any(
        (percent is not None, allow_add, allow_portfolio, deny_add, removed, portfolios_removed, kill, unkill, default)
    ):
        err.print("Nothing to change; see --help.")
        raise typer.Exit(2)

    def build(state) -> dict[str, Any]:
        patch: dict[str, Any] = {}
        if percent is not None:
            patch["percent"] = percent
        if kill or unkill:
            patch["kill_switch"] = kill
        if default is not None:
            patch["default"] = default
        if allow_add or removed:
            patch["allow_users"] = [e for e in (*state.allow_users, *allow_add) if e not in removed]
        if deny_add or removed:
            patch["deny_users"] = [e for e in (*state.deny_users, *deny_add) if e not in removed]
        if allow_portfolio or portfolios_removed:
            patch["allow_portfolios"] = [
                p
                for p in (*state.allow_portfolios, *(p.strip() for p in allow_portfolio))
                if p not in portfolios_removed
            ]
        return patch

    async def work(rollout):
        before = (await rollout.state()).version
        after = await rollout.modify(build, actor=_actor())
        return before, after.public(), rollout.settings.flag_cache_ttl_s

    try:
        before, state, ttl = asyncio.run(_with_service(work))
    except AppError as exc:
        err.print(f"[red]Not changed:[/] {exc.message}")
        raise typer.Exit(1) from exc
    if state["version"] == before:
        console.print("Nothing changed (the flag already had these values).")
    else:
        console.print(
            f"Changed: version {before} → {state['version']}. Every instance applies it within {ttl:g} s (+ one query)."
        )
    _print_state(state)


@rollout_app.command("audit")
def audit(limit: int = typer.Option(20, "--limit", min=1, max=500)) -> None:
    """The most recent changes: who, when, old → new."""

    async def work(rollout):
        return await rollout.store.audit(limit=limit)

    entries = asyncio.run(_with_service(work))
    table = Table("version", "when", "who", "change")
    for e in entries:
        change = "; ".join(f"{k}: {json.dumps(e['old'].get(k))} → {json.dumps(v)}" for k, v in e["new"].items())
        table.add_row(str(e["version"]), e["changed_at"] or "", e["actor"], change)
    console.print(table)


def register(app: typer.Typer) -> None:
    app.add_typer(rollout_app, name="rollout")
