"""``sigmachat soak``: concurrent streams with disconnects, resumes and cancels; every run accounted for."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

console = Console()
err = Console(stderr=True)


def soak(
    streams: int = typer.Option(100, "--streams", min=1, max=1000, help="Concurrent client loops."),
    seconds: float = typer.Option(60.0, "--seconds", min=1, max=3600, help="How long the loops start new answers."),
    paths: str = typer.Option("responses,chatkit", "--paths", help="responses, chatkit or both (comma-separated)."),
    disconnect_share: float = typer.Option(
        0.2, "--disconnect-share", min=0, max=1, help="Share of answers cut mid-stream (responses: then resumed)."
    ),
    cancel_share: float = typer.Option(
        0.1, "--cancel-share", min=0, max=1, help="Share of responses-path answers cancelled mid-stream."
    ),
    chatkit_share: float = typer.Option(
        0.3, "--chatkit-share", min=0, max=1, help="Share of answers on the ChatKit path when both are on."
    ),
    seed: int = typer.Option(20250711, "--seed", help="Random seed of the clients' choices."),
    out_dir: Path = typer.Option(Path("bench/results"), "--out", help="Where the JSON goes."),
    keep_workdir: bool = typer.Option(False, "--keep-workdir", help="Keep the temporary database and server logs."),
    cluster: bool = typer.Option(
        False,
        "--cluster",
        help=(
            "PostgreSQL + Redis + two instances behind nginx; one drained with SIGTERM, the other SIGKILLed, mid-soak."
        ),
    ),
) -> None:
    """Soak the app against the simulator: every run must end complete, cancelled or failed.

    Exits 1 if any message was lost (a user message without an answer), any run is stuck
    'streaming' once the app is idle, a client and the database disagree (including a resumed
    stream whose text before + after the resume is not the final text), or any request failed
    on the server side (5xx, dropped connection, timeout).
    """
    from sigmachat.bench.soak import SoakOptions, run_soak, summary_tables

    if cluster:
        _soak_cluster(streams, seconds, chatkit_share, disconnect_share, seed, out_dir, keep_workdir)
        return
    chosen = tuple(p.strip() for p in paths.split(",") if p.strip())
    if not chosen or set(chosen) - {"responses", "chatkit"}:
        err.print("[red]--paths takes responses, chatkit or both.[/]")
        raise typer.Exit(2)
    opts = SoakOptions(
        streams=streams,
        seconds=seconds,
        paths=chosen,
        chatkit_share=chatkit_share,
        disconnect_share=disconnect_share,
        cancel_share=cancel_share,
        seed=seed,
        out_dir=out_dir,
        keep_workdir=keep_workdir,
    )
    result = run_soak(opts, console)
    for table in summary_tables(result):
        console.print(table)
    db = result["db"]
    verdict = "[green]every run accounted for[/]" if result["accounted"] else "[red]NOT every run accounted for[/]"
    console.print(
        f"{verdict}: {db['lost']} lost, {db['stuck']} stuck, {db['problem_count']} disagreements; "
        f"{'[red]' if result['server_failures'] else ''}{result['server_failures']} requests failed on the server side "
        f"(5xx, dropped connection, timeout){'[/]' if result['server_failures'] else ''} · "
        f"soak took {result['soak_seconds']:.0f} s · written: {', '.join(result['outputs'])}"
    )
    for problem in db["problems"][:10]:
        err.print(f"  {problem}")
    if not result["ok"]:
        raise typer.Exit(1)


def _soak_cluster(streams, seconds, chatkit_share, disconnect_share, seed, out_dir, keep_workdir) -> None:
    from sigmachat.bench.cluster_soak import (
        ClusterSoakOptions,
        run_cluster_soak,
        summary_table,
    )

    opts = ClusterSoakOptions(
        streams=streams, seconds=seconds, chatkit_share=chatkit_share, disconnect_share=disconnect_share / 2,
        seed=seed, out_dir=out_dir, keep_workdir=keep_workdir,
    )  # fmt: skip
    result = run_cluster_soak(opts, console)
    console.print(summary_table(result))
    for problem in result["problems"][:10]:
        err.print(f"  {problem}")
    verdict = (
        "[green]every answer intact or interrupted with its partial text saved[/]" if result["ok"] else "[red]NOT OK[/]"
    )
    console.print(f"{verdict} · took {result['soak_seconds']:.0f} s · written: {', '.join(result['outputs'])}")
    if not result["ok"]:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("soak")(soak)
