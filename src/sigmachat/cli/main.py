"""``sigmachat``: serve, seed, db upgrade, data import-prices, users create, ..."""

from __future__ import annotations

import asyncio
from pathlib import Path

import typer
from rich.console import Console

from sigmachat.cli.common import cli_services
from sigmachat.settings import get_settings

app = typer.Typer(help="SigmaSight Chat: the AI analyst chat of SigmaSight.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
data_app = typer.Typer(help="Market data.", no_args_is_help=True)
users_app = typer.Typer(help="User accounts.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(data_app, name="data")
app.add_typer(users_app, name="users")
console = Console()
err = Console(stderr=True)


@app.command()
def serve(
    host: str = typer.Option(None, help="Bind address (default from SIGMACHAT_HOST)."),
    port: int = typer.Option(None, help="Port (default from SIGMACHAT_PORT)."),
    workers: int = typer.Option(
        1, min=1, max=64, help="Worker processes sharing the port (more than 1 needs SIGMACHAT_REDIS_URL)."
    ),
) -> None:
    """Serve the app (applies migrations and seeds demo data on first run).

    SIGTERM drains: no new runs, /readyz 503, running answers finish within SHUTDOWN_GRACE_S."""
    import os

    import uvicorn

    settings = get_settings()
    host = host or settings.host
    port = port or settings.port
    if workers > 1 and not settings.redis_url:
        # Workers are separate processes: without shared run state a resume or cancel landing
        # on another worker than the run's would fail, and the one-run-per-conversation rule
        # would not hold. Refuse instead of serving something subtly wrong.
        err.print(
            f"[red]--workers {workers} needs SIGMACHAT_REDIS_URL[/]: worker processes share runs, leases and "
            "limits through Redis. Set it (e.g. redis://127.0.0.1:6379/0) or run one worker."
        )
        raise typer.Exit(2)
    console.print(
        f"[bold]SigmaSight Chat[/] on http://{host}:{port}  (database: {settings.database_url.split('://', 1)[0]}, "
        f"workers: {workers}, run state: {'redis' if settings.redis_url else 'in-process'})"
    )
    if workers > 1:
        # Migrate and seed once here, not racing in every worker.
        from sigmachat.bootstrap import prepare_database
        from sigmachat.services import Services

        async def _prepare() -> None:
            services = Services.build(settings)
            try:
                await prepare_database(services)
            finally:
                await services.aclose()

        asyncio.run(_prepare())
        os.environ["SIGMACHAT_AUTO_MIGRATE"] = "false"
        os.environ["SIGMACHAT_AUTO_SEED"] = "false"
    uvicorn.run(
        "sigmachat.api.app:create_served_app",
        workers=workers,
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        factory=True,
        timeout_graceful_shutdown=5,  # after the drain: streams of other instances' runs reconnect elsewhere
        timeout_keep_alive=settings.http_keep_alive_s,
    )


@app.command()
def seed() -> None:
    """Seed the demo users, portfolios and prices (idempotent)."""
    from sigmachat.demo.seed import seed_demo

    async def _run():
        async with cli_services(migrate=True) as services:
            async with services.db.session() as session:
                return await seed_demo(session, services.settings)

    report = asyncio.run(_run())
    if report.changed:
        console.print(
            f"Seeded: {report.users_created} users, {report.portfolios_created} portfolios, "
            f"{report.positions_created} positions, {report.price_rows_written} demo price rows."
        )
    else:
        console.print("Demo data already present: nothing changed.")


@db_app.command("upgrade")
def db_upgrade(revision: str = typer.Argument("head")) -> None:
    """Apply Alembic migrations."""
    from sigmachat.db.migrate import current_revision, upgrade

    async def _run():
        async with cli_services() as services:
            await upgrade(services.db.engine, revision)
            return await current_revision(services.db.engine)

    console.print(f"Database at revision {asyncio.run(_run())}.")


@data_app.command("import-prices")
def import_prices(file: Path = typer.Argument(..., exists=True, dir_okay=False, readable=True)) -> None:
    """Load real daily closes from a CSV (symbol,date,close); they take precedence over demo prices."""
    from sigmachat.market.prices import PriceImportError, import_csv

    async def _run():
        async with cli_services(migrate=True) as services:
            async with services.db.session() as session:
                result = await import_csv(session, file)
                await session.commit()
                return result

    try:
        result = asyncio.run(_run())
    except PriceImportError as exc:
        err.print(f"[red]Import failed:[/] {exc}. Nothing was imported.")
        raise typer.Exit(2) from exc
    console.print(
        f"Imported {result.rows} closes for {result.symbols} symbols ({result.first_date} to {result.last_date})."
    )


@users_app.command("create")
def users_create(
    email: str = typer.Option(..., help="Login email."),
    name: str = typer.Option("", help="Full name."),
    password: str = typer.Option(..., prompt=True, hide_input=True, confirmation_prompt=True),
    admin: bool = typer.Option(False, "--admin", help="Give the operator (admin) role."),
) -> None:
    """Create a user account."""
    from sigmachat.auth.service import create_user
    from sigmachat.errors import AppError

    async def _run():
        async with cli_services(migrate=True) as services:
            async with services.db.session() as session:
                return await create_user(session, email, name, password, "admin" if admin else "user")

    try:
        user = asyncio.run(_run())
    except AppError as exc:
        err.print(f"[red]Could not create user:[/] {exc.message}")
        raise typer.Exit(2) from exc
    console.print(f"Created {user.role} {user.email} (id {user.id}).")


from sigmachat.cli.ask import ask  # noqa: E402  (kept beside its siblings' registration)
from sigmachat.cli.tools import tools_app  # noqa: E402

app.command("ask")(ask)

from sigmachat.cli.eval import eval_command  # noqa: E402

app.command("eval")(eval_command)
app.add_typer(tools_app, name="tools")

from sigmachat.cli.sim import register as register_sim  # noqa: E402

register_sim(app)

from sigmachat.cli.bench import register as register_bench  # noqa: E402
from sigmachat.cli.soak import register as register_soak  # noqa: E402

register_bench(app)
register_soak(app)

from sigmachat.cli.rollout import register as register_rollout  # noqa: E402

register_rollout(app)

from sigmachat.cli.report import register as register_report  # noqa: E402

register_report(app)


if __name__ == "__main__":  # pragma: no cover
    app()
