"""``sigmachat eval``: the analyst evaluation set on both engines, with a pass rate per engine."""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
from pathlib import Path

import typer
from rich.console import Console

console = Console(width=200) if not sys.stdout.isatty() else Console()
err = Console(stderr=True)


def eval_command(
    engines: str = typer.Option("responses,agents", "--engines", help="Comma-separated: responses, agents."),
    only: str = typer.Option("", "--only", help="Comma-separated case ids (default: every case)."),
    tag: str = typer.Option(
        "",
        "--tag",
        help="Only cases with this tag (follow-up, benchmark, out-of-scope, ...).",
    ),
    html: Path = typer.Option(None, "--html", help="Write an HTML report here."),
    json_out: Path = typer.Option(None, "--json", help="Write the results as JSON here."),
    fail_under: float = typer.Option(
        0.0,
        "--fail-under",
        help="Exit 1 if an engine passes less than this percentage.",
    ),
    database_url: str = typer.Option(
        "",
        "--database-url",
        help="Use this database (it must hold the demo users); default: a fresh seeded SQLite.",
    ),
    keep_pacing: bool = typer.Option(False, "--keep-pacing", help="Keep the offline model's simulated latency."),
) -> None:
    """Ask the evaluation set on each engine and score the answers against facts computed from the tools.

    The model is the configured one: the offline analyst by default, the simulator or any
    OpenAI-compatible server with SIGMACHAT_OPENAI_BASE_URL, OpenAI with OPENAI_API_KEY.
    """
    raise typer.Exit(
        asyncio.run(
            _run(
                engines,
                only,
                tag,
                html,
                json_out,
                fail_under,
                database_url,
                keep_pacing,
            )
        )
    )


async def _run(engines: str, only: str, tag: str, html: Path | None, json_out: Path | None, fail_under: float,
               database_url: str, keep_pacing: bool) -> int:  # fmt: skip
    from sigmachat.bootstrap import prepare_database
    from sigmachat.eval.questions import load_cases
    from sigmachat.eval.report import html_report, print_report
    from sigmachat.eval.runner import ENGINES, run_eval
    from sigmachat.logging import configure_logging
    from sigmachat.services import Services
    from sigmachat.settings import get_settings

    chosen = tuple(e.strip() for e in engines.split(",") if e.strip())
    if not chosen or any(e not in ENGINES for e in chosen):
        err.print(f"[red]--engines takes {', '.join(ENGINES)}[/]")
        return 2
    cases = load_cases()
    if only:
        wanted = {c.strip() for c in only.split(",")}
        cases = [c for c in cases if c.id in wanted]
    if tag:
        cases = [c for c in cases if tag in c.tags]
    if not cases:
        err.print("[red]No case matches.[/]")
        return 2
    with tempfile.TemporaryDirectory(prefix="sigmachat-eval-") as tmp:
        # The eval is many sends by four users in a row: no per-user rate limits or budgets.
        overrides: dict[str, object] = {
            "send_rate_limit": "",
            "daily_token_budget": 0,
            "max_concurrent_runs_per_user": 0,
            "shadow_sample_rate": 0.0,
        }
        if not database_url:
            overrides |= {
                "database_url": f"sqlite+aiosqlite:///{Path(tmp) / 'eval.db'}",
                "var_dir": Path(tmp),
                "auto_migrate": True,
                "auto_seed": True,
            }
        else:
            overrides["database_url"] = database_url
        if not keep_pacing:
            overrides |= {"offline_ttfb_ms": 0, "offline_tokens_per_s": 0}
        settings = get_settings().model_copy(update=overrides)
        configure_logging("WARNING", json=settings.log_json)
        services = Services.build(settings)
        try:
            await prepare_database(services)
            err.print(
                f"[dim]{len(cases)} conversations, {sum(len(c.turns) for c in cases)} questions, "
                f"engines {', '.join(chosen)}[/]"
            )
            report = await run_eval(
                services,
                cases,
                engines=chosen,
                progress=lambda r: err.print(f"[dim]· {r.key}[/]"),
            )
        finally:
            await services.aclose()
    print_report(report, console)
    if html:
        html.write_text(html_report(report), "utf-8")
        err.print(f"HTML report: {html}")
    if json_out:
        json_out.write_text(json.dumps(report.as_dict(), indent=2), "utf-8")
    below = [e for e in chosen if report.pass_rate(e) < fail_under]
    if below:
        err.print(f"[red]Below --fail-under {fail_under:g}%: {', '.join(below)}[/]")
        return 1
    return 0
