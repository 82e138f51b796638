"""``sigmachat bench``: set up the processes, drive the load generator, write the report.

Layout (three processes besides this one, all on loopback):

    load generator (multiprocessing, spawn) ──► app (sigmachat serve) ──► simulator (sigmachat sim)
                      └────────────── direct (openai SDK) ──────────────────────┘

Then, with the servers stopped, the tool and store microbenchmarks run here against the same
database. Every child is stopped in ``finally`` blocks (and by ``atexit``), whatever happens.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import platform
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sigmachat.bench import procs
from sigmachat.bench.loadgen import PATHS, STAGGER_S, LoadPlan, Question, total_steps, worker_main
from sigmachat.bench.report import add_cpu, add_overheads, verdict, write_outputs

QUESTIONS = (
    # The offline analyst answers this one without tools (intents.py: the "help" kind).
    Question("text", "What can you do?", "Text only"),
    # Two intents (profile, quotes) → exactly two tool calls in one model turn.
    Question(
        "tools", "What does NVDA do and what is its price?", "Three tool calls (profile, quote, what the user holds)"
    ),
)
FULL_LEVELS = (1, 10, 50, 200)
QUICK_LEVELS = (1, 10)
# Streams per cell, tuned so a full run stays under 5 minutes and a quick one under 1 minute
# on a 2-core machine (issue 8): level 1 is sequential, so it gets one stream; higher levels
# one wave of their workers. (Level 1 had 3 streams and level 10 two waves, 20: the 200-stream
# cells, the app saturated and the direct floor bound by the load generator, take over two
# minutes of their own, and the full run had grown to 5 min 20 s; with 2 streams at level 1
# it still read 284-307 s.)
FULL_STREAMS = {1: 1, 10: 10, 50: 50, 200: 200}
QUICK_STREAMS = {1: 1, 10: 10}
# Rounds of each (question, level), the paths alternating. One cell's CPU per token moves by
# up to 40% from run to run on a shared 2-core box (200 to 284 µs, same code); `--rounds 3`
# pairs each app reading with a raw one taken a minute apart and quotes medians. One round by
# default: three would triple the run, past its 5 minutes.
FULL_ROUNDS, QUICK_ROUNDS = 1, 1
# Quick mode is a smoke run (every path and question end to end) that must stay under a
# minute: at the simulator's own pace its 16 cells alone took 52 s (a tool answer streams
# ~270 tokens), 97 s in all. It runs the simulator this many times faster unless told a pace;
# its figures are then not comparable with a full run's.
QUICK_PACE = 4.0
# The engines alone (bench/engines.py): answers per round and rounds (medians); ~8 s in full mode.
ENGINE_RUNS, ENGINE_ROUNDS = 20, 7
LOAD_TIMEOUT_S = {"quick": 180.0, "full": 900.0}  # a safety net for the load phase, not its budget


@dataclass
class BenchOptions:
    quick: bool = False
    upstream: str = "sim"  # sim | openai
    levels: tuple[int, ...] | None = None
    streams: int | None = None  # streams per cell at every level (default: the mode's table)
    rounds: int | None = None  # measurements of each (question, level) (default: the mode's)
    paths: tuple[str, ...] = PATHS
    ttfb_ms: float | None = None  # default: settings.sim_ttfb_ms
    tokens_per_s: float | None = None  # default: settings.sim_tokens_per_s
    out_dir: Path = Path("bench/results")
    docs_path: Path | None = Path("docs/benchmarks.md")
    tool_runs: int | None = None
    store_runs: int | None = None
    seed_cache: bool = True
    keep_workdir: bool = False
    stream_deadline_s: float = 120.0
    extra_env: dict[str, str] = field(default_factory=dict)
    note: str | None = None  # what else the machine was doing, printed with the results

    @property
    def mode(self) -> str:
        return "quick" if self.quick else "full"

    def resolved_levels(self) -> list[int]:
        return list(self.levels or (QUICK_LEVELS if self.quick else FULL_LEVELS))

    def resolved_rounds(self) -> int:
        return self.rounds or (QUICK_ROUNDS if self.quick else FULL_ROUNDS)

    def resolved_streams(self) -> dict[int, int]:
        table = QUICK_STREAMS if self.quick else FULL_STREAMS
        out = {}
        for level in self.resolved_levels():
            n = (
                self.streams
                if self.streams is not None
                else table.get(level, max(level, 2 * level if level < 20 else level))
            )
            out[level] = max(n, 1)
        return out


def machine_info() -> dict[str, Any]:
    import psutil

    model = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = list(os.getloadavg()) if hasattr(os, "getloadavg") else []
    return {
        "cpu_count": os.cpu_count(),
        "cpu_model": model,
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "load_avg_start": [round(x, 2) for x in load],
    }


def code_version() -> dict[str, Any]:
    """The commit measured (and whether the tree had uncommitted changes)."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        dirty = bool(
            subprocess.run(
                ["git", "status", "--porcelain", "--untracked-files=no"],
                capture_output=True,
                text=True,
                timeout=5,
                check=True,
            ).stdout.strip()
        )
        return {"commit": commit, "dirty": dirty}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def _upstream(opts: BenchOptions) -> dict[str, Any]:
    from sigmachat.settings import get_settings

    settings = get_settings()
    if opts.upstream == "sim":
        return {
            "kind": "sim",
            "ttfb_ms": float(opts.ttfb_ms if opts.ttfb_ms is not None else settings.sim_ttfb_ms),
            "tokens_per_s": float(
                opts.tokens_per_s
                if opts.tokens_per_s is not None
                else settings.sim_tokens_per_s * (QUICK_PACE if opts.quick else 1.0)
            ),
            "model": settings.model,
        }
    if opts.upstream == "openai":
        key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else ""
        if not key:
            raise BenchError("--upstream openai needs OPENAI_API_KEY (or SIGMACHAT_OPENAI_API_KEY).")
        return {"kind": "openai", "model": settings.model, "base_url": settings.openai_base_url, "_key": key}
    raise BenchError(f"unknown upstream {opts.upstream!r} (sim or openai)")


class BenchError(RuntimeError):
    """A benchmark that cannot run (bad options, a server that does not start)."""


def run_bench(opts: BenchOptions, console: Any) -> dict[str, Any]:
    """Run everything and return the report (also written to ``opts.out_dir``)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    started_at = dt.datetime.now(dt.UTC)
    t0 = time.perf_counter()
    machine = machine_info()
    upstream = _upstream(opts)
    levels = opts.resolved_levels()
    streams = opts.resolved_streams()
    unknown = set(opts.paths) - set(PATHS)
    if unknown:
        raise BenchError(f"unknown path(s) {', '.join(sorted(unknown))}; choose from {', '.join(PATHS)}")
    paths = list(opts.paths)
    if upstream["kind"] != "sim" and "raw" in paths:
        paths.remove("raw")  # the raw reader speaks plain HTTP/1.1 to the simulator only
    workdir = Path(tempfile.mkdtemp(prefix="sigmachat-bench-"))
    phases: dict[str, Any] = {}
    demo = _demo_users()
    report: dict[str, Any] = {
        "kind": "sigmachat-bench",
        "schema": 1,
        "mode": opts.mode,
        "started_at": started_at.isoformat(timespec="seconds"),
        "machine": machine,
        "code": code_version(),
        "upstream": {k: v for k, v in upstream.items() if not k.startswith("_")},
        "plan": {
            "levels": levels,
            "streams": {str(k): v for k, v in streams.items()},
            "rounds": opts.resolved_rounds(),
            "paths": paths,
            "stagger_ms": STAGGER_S * 1000,
            "users": demo["users"],
        },
        "questions": [{"key": q.key, "text": q.text, "label": q.label} for q in QUESTIONS],
        "note": opts.note,
        "app_settings": procs.shown_settings(opts.extra_env),
    }
    try:
        with procs.process_group() as group:
            # ---- set-up: seed, start the simulator and the app side by side ----------------------
            console.print(f"[dim]work directory {workdir}[/]")
            stack = procs.start_stack(
                group,
                workdir,
                sim=(upstream["ttfb_ms"], upstream["tokens_per_s"]) if upstream["kind"] == "sim" else None,
                openai=(upstream["_key"], upstream.get("base_url")) if upstream["kind"] == "openai" else None,
                seed_cache_dir=(opts.out_dir / ".cache") if opts.seed_cache else None,
                extra_env=opts.extra_env,
            )
            app, database_url = stack.app, stack.database_url
            base_url, api_key = stack.upstream_base_url, stack.upstream_api_key
            phases["seed_s"], phases["seed_cached"] = round(stack.seed_s, 2), stack.seed_cached
            phases["startup_s"] = round(stack.startup_s, 2)
            console.print(
                f"Database seeded in {stack.seed_s:.1f} s{' (cached template)' if stack.seed_cached else ''}; "
                f"{'simulator and ' if stack.sim else ''}app up in {stack.startup_s:.1f} s (app pid {app.pid})."
            )

            # ---- the load ------------------------------------------------------------------
            plan = LoadPlan(
                app_url=app.url,
                app_pid=app.pid,
                upstream=upstream["kind"],
                upstream_base_url=base_url,
                upstream_api_key=api_key,
                model=upstream["model"],
                database_url=database_url,
                users=demo["users"],
                password=demo["password"],
                questions=list(QUESTIONS),
                paths=paths,
                levels=levels,
                streams=streams,
                stream_deadline_s=opts.stream_deadline_s,
                deterministic=upstream["kind"] == "sim",
                sim_pid=stack.sim.pid if stack.sim else None,
                rounds=opts.resolved_rounds(),
            )
            t = time.perf_counter()
            with Progress(
                TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
                TimeElapsedColumn(), console=console, transient=False,
            ) as progress:  # fmt: skip
                task = progress.add_task("starting the load generator", total=total_steps(plan))
                shown = [""]

                def advance(n: int, text: str) -> None:
                    progress.update(task, advance=n, description=text)
                    if not console.is_terminal and text != shown[0]:
                        # No live bar in a log file: a line per cell instead.
                        shown[0] = text
                        console.print(f"[dim]{time.perf_counter() - t:6.1f} s[/] {text}")

                result = _drive_worker(plan, advance, LOAD_TIMEOUT_S[opts.mode])
            phases["load_s"] = round(time.perf_counter() - t, 2)
            report["warmup"] = result["warmup"]
            report["cells"] = add_cpu(add_overheads(result["cells"]), upstream.get("tokens_per_s"))
            for q in report["questions"]:
                q.update({f"expected_{k}": v for k, v in (result["expected"].get(q["key"]) or {}).items()})
        # ---- microbenchmarks, servers stopped ---------------------------------------------------
        t = time.perf_counter()
        console.print("Tool, store and engine microbenchmarks…")
        report["tools"], report["store"], report["engines"] = asyncio.run(
            _microbench(workdir, stack.database_url, opts)
        )
        phases["microbench_s"] = round(time.perf_counter() - t, 2)
    finally:
        if not opts.keep_workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    report["bench_seconds"] = round(time.perf_counter() - t0, 1)
    if hasattr(os, "getloadavg"):
        report["machine"]["load_avg_end"] = [round(x, 2) for x in os.getloadavg()]
    phases["setup_s"] = round(phases.get("seed_s", 0) + phases.get("startup_s", 0), 2)
    report["phases"] = phases
    report["finished_at"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    report["verdict"] = verdict(report)
    report["outputs"] = {k: str(v) for k, v in write_outputs(report, opts.out_dir, opts.docs_path).items()}
    return report


def _demo_users() -> dict[str, Any]:
    from sigmachat.demo.seed import load_demo_data

    data = load_demo_data()
    return {"users": [u["email"] for u in data["users"]], "password": data["password_for_all_demo_users"]}


def _drive_worker(plan: LoadPlan, advance: Any, timeout_s: float) -> dict[str, Any]:
    """Run the load generator in its own process; relay progress; return its result."""

    def progress(message: tuple[Any, ...]) -> None:
        if message[0] == "advance":
            advance(message[1], message[2])

    result: dict[str, Any] = procs.run_reporting_process(
        worker_main, (plan,), name="the load generator", timeout_s=timeout_s, on_message=progress, error=BenchError
    )
    return result


async def _microbench(
    workdir: Path, database_url: str, opts: BenchOptions
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    from sigmachat.bench.engines import engine_microbench
    from sigmachat.bench.microbench import store_microbench, tool_microbench
    from sigmachat.logging import configure_logging
    from sigmachat.settings import Settings

    configure_logging("WARNING", json=True)
    settings = Settings(_env_file=None, database_url=database_url, var_dir=workdir, log_level="WARNING")
    tool_runs = opts.tool_runs or (5 if opts.quick else 20)
    store_runs = opts.store_runs or (5 if opts.quick else 20)
    try:
        tools = await tool_microbench(settings, runs=tool_runs)
    except Exception as exc:  # the report says what failed; the load figures still stand
        tools = {"error": f"{type(exc).__name__}: {exc}"}
    try:
        store = await store_microbench(settings, runs=store_runs)
    except Exception as exc:
        store = {"error": f"{type(exc).__name__}: {exc}"}
    try:
        engines = await engine_microbench(
            settings, [(q.key, q.text) for q in QUESTIONS], runs=ENGINE_RUNS, rounds=1 if opts.quick else ENGINE_ROUNDS
        )
    except Exception as exc:
        engines = {"error": f"{type(exc).__name__}: {exc}"}
    return tools, store, engines
