"""``sigmachat report [--since 24h] [--html report.html] [--json] [--fail-on-no-go]``."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from sigmachat.settings import get_settings

console = Console()
err = Console(stderr=True)


def report(
    since: str = typer.Option("24h", "--since", help="Window back from now: 30m, 24h, 7d, 2w."),
    html: Path | None = typer.Option(None, "--html", dir_okay=False, help="Also write the HTML report (charts) here."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON instead of tables."),
    fail_on_no_go: bool = typer.Option(
        False, "--fail-on-no-go", help="Exit 1 when the verdict is no-go (for scripts)."
    ),
) -> None:
    """Compare the Responses and ChatKit paths over a window, with a go / no-go verdict."""
    from sigmachat.db.migrate import upgrade
    from sigmachat.db.session import Database
    from sigmachat.logging import configure_logging
    from sigmachat.telemetry.html import render_html
    from sigmachat.telemetry.report import build_report, parse_window

    try:
        window = parse_window(since)
    except ValueError as exc:
        err.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from exc
    settings = get_settings()
    configure_logging("WARNING", json=settings.log_json)

    async def _run():
        db = Database(settings)
        try:
            await upgrade(db.engine)
            return await build_report(db, settings, window)
        finally:
            await db.dispose()

    data = asyncio.run(_run())
    if html is not None:
        html.write_text(render_html(data), encoding="utf-8")
    if as_json:
        print(json.dumps(data, indent=2))
    else:
        _print(data)
        if html is not None:
            console.print(f"HTML report written to {html}")
    if fail_on_no_go and data["verdict"]["decision"] != "go":
        raise typer.Exit(1)


def _print(data: dict) -> None:
    paths = data["paths"]
    t = Table(
        title=f"Responses vs ChatKit, {data['window']['since'][:16]} → {data['window']['until'][:16]} (live runs)"
    )
    t.add_column("")
    t.add_column("Responses", justify="right")
    t.add_column("ChatKit", justify="right")

    def fmt(v, unit="", digits=0):
        return "–" if v is None else f"{v:,.{digits}f}{unit}"

    def add(label, get, unit="", digits=0):
        t.add_row(label, *(fmt(get(paths[p]), unit, digits) for p in ("responses", "chatkit")))

    add("runs", lambda s: s["runs"])
    add("error rate", lambda s: s["error_rate_pct"], " %", 2)
    for q in ("p50", "p95", "p99"):
        add(f"TTFB {q}", lambda s, q=q: s["ttfb_ms"][q], " ms")
    for q in ("p50", "p95", "p99"):
        add(f"completion {q}", lambda s, q=q: s["duration_ms"][q], " ms")
    for q in ("p50", "p95", "p99"):
        add(f"tokens/s {q}", lambda s, q=q: s["tokens_per_s"][q], "", 1)
    add("tool calls / turn", lambda s: s["tool_calls_per_turn"]["mean"], "", 2)
    add(
        "feedback positive share",
        lambda s: None if s["feedback"]["ratio"] is None else 100 * s["feedback"]["ratio"],
        " %",
        1,
    )
    add("answers edited by the user", lambda s: s["feedback"].get("edited", 0), "", 0)
    console.print(t)
    for path in ("responses", "chatkit"):
        codes = paths[path]["errors_by_code"]
        if codes:
            console.print(
                f"{path} errors: " + ", ".join(f"{c} {v['count']} ({v['rate_pct']}%)" for c, v in codes.items())
            )
    for s in data["shadow"]:
        console.print(
            f"shadow {s['shadow_path']} of {s['live_path']}: {s['pairs']} pairs, {s['both_completed']} both completed, "
            f"tool sequence agreement {s['tool_sequence_agreement']}, answer length ratio {s['answer_length_ratio']}, "
            f"TTFB ratio {s['ttfb_ratio']}"
        )
    v = data["verdict"]
    colour = "green" if v["decision"] == "go" else "red"
    console.print(f"[bold {colour}]Verdict: {v['decision'].upper().replace('_', '-')}[/]")
    for reason in v["reasons"]:
        console.print(f"  ✘ {reason}")


def register(app: typer.Typer) -> None:
    app.command("report")(report)
