"""``sigmachat bench``: TTFB, completion time, tokens/s and concurrency, all paths side by side."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

console = Console()
err = Console(stderr=True)


def _csv(value: str | None) -> tuple[str, ...] | None:
    return tuple(v.strip() for v in value.split(",") if v.strip()) if value else None


def bench(
    quick: bool = typer.Option(
        False, "--quick", help="Levels 1 and 10 only, the simulator at 4x its pace (under a minute)."
    ),
    upstream: str = typer.Option(
        "sim", "--upstream", help="sim (the simulator, default) or openai (needs OPENAI_API_KEY)."
    ),
    levels: str = typer.Option(
        None, "--levels", help="Concurrency levels, comma-separated (default 1,10,50,200; quick 1,10)."
    ),
    streams: int = typer.Option(
        None, "--streams", min=1, help="Streams per cell at every level (default: tuned per level)."
    ),
    paths: str = typer.Option(
        "direct,raw,responses,chatkit", "--paths", help="Paths to measure, comma-separated (raw: the CPU floor reader)."
    ),
    ttfb_ms: float = typer.Option(
        None, "--ttfb-ms", help="Simulator time to first byte (default SIGMACHAT_SIM_TTFB_MS, 300)."
    ),
    tokens_per_s: float = typer.Option(
        None, "--tokens-per-s", help="Simulator tokens/s (default SIGMACHAT_SIM_TOKENS_PER_S, 80)."
    ),
    out_dir: Path = typer.Option(Path("bench/results"), "--out", help="Where the JSON and HTML go."),
    docs: bool = typer.Option(
        None, "--docs/--no-docs", help="Regenerate docs/benchmarks.md (default: on for full runs, off for quick)."
    ),
    docs_path: Path = typer.Option(Path("docs/benchmarks.md"), "--docs-path", help="The docs page to regenerate."),
    keep_workdir: bool = typer.Option(False, "--keep-workdir", help="Keep the temporary database and server logs."),
    no_seed_cache: bool = typer.Option(
        False, "--no-seed-cache", help="Seed a fresh database instead of copying the cached template."
    ),
    from_json: Path = typer.Option(
        None,
        "--from-json",
        exists=True,
        dir_okay=False,
        help="Measure nothing: render the tables, HTML and docs of a saved report.",
    ),
    note: str = typer.Option(None, "--note", help="What else the machine was doing (printed with the results)."),
    workers_compare: bool = typer.Option(
        False,
        "--workers-compare",
        help="Instead: CPU per token of `serve --workers 2` against 1 worker (PostgreSQL + Redis), same load.",
    ),
    app_setting: list[str] = typer.Option(
        None,
        "--app-setting",
        help="A setting of the measured app, NAME=VALUE (repeatable), e.g. CHATKIT_ENGINE=responses: the ChatKit "
        "path on the Responses engine. Shown in the report; the docs page is then written only with --docs.",
    ),
    rounds: int | None = typer.Option(
        None,
        "--rounds",
        min=1,
        help="Measurements of each question and level, the paths alternating (default 1; --workers-compare: 4).",
    ),
) -> None:
    """Benchmark the chat paths against the simulator (or OpenAI): direct, responses, chatkit.

    Starts the simulator and the app as separate uvicorn processes and the load generator in
    its own process, then prints a table and writes JSON + an HTML chart under bench/results/
    and (full runs) docs/benchmarks.md.
    """
    from sigmachat.bench import procs
    from sigmachat.bench.report import settings_line, terminal_tables, write_outputs
    from sigmachat.bench.runner import BenchError, BenchOptions, run_bench

    if from_json is not None:
        import json

        report = json.loads(from_json.read_text(encoding="utf-8"))
        if note:
            report["note"] = note
        for table in terminal_tables(report):
            console.print(table)
        wrote = write_outputs(report, out_dir, docs_path if docs is not False else None)
        console.print(
            "written: " + ", ".join(str(p) for k, p in wrote.items() if k.startswith("latest") or k == "docs")
        )
        return

    try:
        level_values = tuple(int(v) for v in _csv(levels) or ()) or None
    except ValueError as exc:
        err.print("[red]--levels takes integers, e.g. 1,10,50[/]")
        raise typer.Exit(2) from exc
    if level_values and any(v < 1 for v in level_values):
        err.print("[red]--levels must be positive.[/]")
        raise typer.Exit(2)
    try:
        app_env = procs.app_settings(app_setting or ())
    except ValueError as exc:
        err.print(f"[red]--app-setting {exc}[/]")
        raise typer.Exit(2) from exc
    # docs/benchmarks.md describes the app as configured by default unless asked otherwise.
    write_docs = (not quick and not app_env) if docs is None else docs
    if workers_compare:
        if app_env:
            err.print("[red]--app-setting applies to the paths' benchmark, not to --workers-compare.[/]")
            raise typer.Exit(2)
        _workers_compare(level_values, streams, _csv(paths), rounds, ttfb_ms, tokens_per_s, out_dir,
                         docs_path if docs is not False else None, keep_workdir, note)  # fmt: skip
        return
    opts = BenchOptions(
        quick=quick,
        upstream=upstream,
        levels=level_values,
        streams=streams,
        rounds=rounds,
        paths=_csv(paths) or (),
        ttfb_ms=ttfb_ms,
        tokens_per_s=tokens_per_s,
        out_dir=out_dir,
        docs_path=docs_path if write_docs else None,
        seed_cache=not no_seed_cache,
        keep_workdir=keep_workdir,
        note=note,
        extra_env=app_env,
    )
    try:
        report = run_bench(opts, console)
    except BenchError as exc:
        err.print(f"[red]Benchmark failed:[/] {exc}")
        raise typer.Exit(2) from exc
    for table in terminal_tables(report):
        console.print(table)
    if changed := settings_line(report):
        console.print(f"App settings changed for this run: {changed}")
    v = report["verdict"]
    console.print(
        f"{v['streams']} streams, {v['errors']} errors, {v['not_intact']} not intact · "
        f"benchmark took {report['bench_seconds']:.0f} s · written: "
        + ", ".join(str(p) for k, p in report["outputs"].items() if k.startswith("latest") or k == "docs")
    )
    # Errors under overload are a measurement; a stream that lost or garbled text is a bug.
    if v["not_intact"]:
        raise typer.Exit(1)


def _workers_compare(
    levels: tuple[int, ...] | None,
    streams: int | None,
    paths: tuple[str, ...] | None,
    rounds: int | None,
    ttfb_ms: float | None,
    tokens_per_s: float | None,
    out_dir: Path,
    docs_path: Path | None,
    keep_workdir: bool,
    note: str | None,
) -> None:
    from sigmachat.bench.loadgen import APP_PATHS
    from sigmachat.bench.runner import BenchError
    from sigmachat.bench.workers import WorkersOptions, run_workers_compare, terminal_table, verdict_text

    app_paths = tuple(p for p in (paths or APP_PATHS) if p in APP_PATHS) or APP_PATHS
    opts = WorkersOptions(
        # Unset options take WorkersOptions' own defaults (the one place that says them).
        level=(levels or (WorkersOptions.level,))[0], streams=streams or WorkersOptions.streams,
        rounds=rounds or WorkersOptions.rounds, paths=app_paths, ttfb_ms=ttfb_ms,
        tokens_per_s=tokens_per_s, out_dir=out_dir, docs_path=docs_path, keep_workdir=keep_workdir, note=note,
    )  # fmt: skip
    try:
        report = run_workers_compare(opts, console)
    except BenchError as exc:
        err.print(f"[red]Benchmark failed:[/] {exc}")
        raise typer.Exit(2) from exc
    console.print(terminal_table(report))
    s = report["summary"]
    console.print(verdict_text(report))
    console.print(
        f"{s['streams']} streams, {s['errors']} errors, {s['not_intact']} not intact · took "
        f"{report['bench_seconds']:.0f} s · written: " + ", ".join(report["outputs"].values())
    )
    if s["not_intact"]:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("bench")(bench)
