"""``sigmachat bench --workers-compare``: is there a coordination tax in ``serve --workers 2``?

Two apps run side by side on the same PostgreSQL database and the same Redis, configured alike:
one ``sigmachat serve`` with one worker and one with ``--workers 2`` (a uvicorn master and two
worker processes sharing the port). One load generator drives both with the same load, cell by
cell, alternating which app goes first in each round, so a busy moment of this shared machine
falls on both. Per cell it reads the CPU of every process of the app measured (master included)
and divides by the text deltas streamed.

The figure is the ratio of the two apps' CPU per streamed token (medians over the rounds): with
no coordination tax it is 1. Per-process CPU shows both workers carrying streams. Throughput
scaling itself cannot be shown on a 2-core machine that also runs the simulator and the load
generator; it follows from the ratio (each worker is a whole event loop on its own core).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import shutil
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sigmachat.bench import procs
from sigmachat.bench.loadgen import APP_PATHS, LoadGenerator, LoadPlan
from sigmachat.bench.stats import median

DOCS_START = "<!-- workers-comparison:start (sigmachat bench --workers-compare) -->"
DOCS_END = "<!-- workers-comparison:end -->"
TAX_LIMIT = 1.10  # issue 13: two workers' CPU per token within 10% of one worker's


@dataclass
class WorkersOptions:
    workers: tuple[int, ...] = (1, 2)
    # Enough load to measure, not enough to saturate one worker on this shared box: a
    # saturated event loop batches more work per wake-up (less CPU per token), which would
    # flatter the one-worker app and show a "tax" that is only the idle headroom of two.
    level: int = 20  # concurrent streams per cell
    streams: int = 60  # streams per cell
    rounds: int = 4
    paths: tuple[str, ...] = APP_PATHS
    ttfb_ms: float | None = None
    tokens_per_s: float | None = None
    out_dir: Path = Path("bench/results")
    docs_path: Path | None = Path("docs/benchmarks.md")
    keep_workdir: bool = False
    note: str | None = None


@dataclass(slots=True)
class Target:
    """One app under test (picklable: it crosses to the load generator's process)."""

    workers: int
    url: str
    pid: int
    worker_pids: list[int] = field(default_factory=list)  # uvicorn's worker processes (none for 1 worker)
    database_url: str = ""  # its own copy of the seeded database


@dataclass(slots=True)
class WorkersPlan:
    load: LoadPlan
    targets: list[Target]
    rounds: int
    warm_streams: int = 40  # per target and path, before measuring
    cells: list[dict[str, Any]] = field(default_factory=list)


def _wait_workers(app: procs.ManagedProcess, n: int, timeout_s: float = 120.0) -> list[int]:
    """Wait until a ``--workers n`` master has its n worker processes (after /readyz answered)."""
    import psutil

    deadline = time.monotonic() + timeout_s
    master = psutil.Process(app.pid)
    while time.monotonic() < deadline:
        # uvicorn's multiprocess supervisor spawns its workers as direct children; a
        # multiprocessing resource tracker, if any, is a child too but not an app worker.
        kids = [c for c in master.children() if "resource_tracker" not in " ".join(c.cmdline())]
        if len(kids) >= n:
            return [c.pid for c in kids]
        time.sleep(0.2)
    raise RuntimeError(f"{app.name}: {n} workers not up within {timeout_s:.0f} s:\n{app.log_tail()}")


@contextlib.contextmanager
def _stack(workdir: Path, opts: WorkersOptions, upstream: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Simulator, PostgreSQL, Redis and one app per worker count; all stopped on exit."""
    from sigmachat.bench import cluster

    stops: list[Callable[[], object]] = []
    try:
        port = procs.free_port()
        sim = procs.spawn(
            "sim",
            ["sim", "--host", procs.LOOPBACK, "--port", str(port),
             "--ttfb-ms", f"{upstream['ttfb_ms']:g}", "--tokens-per-s", f"{upstream['tokens_per_s']:g}"],
            env={**procs.base_env(), "SIGMACHAT_LOG_LEVEL": "WARNING"}, cwd=workdir,
            url=f"http://{procs.LOOPBACK}:{port}",
        )  # fmt: skip
        stops.append(sim.stop)
        pg = cluster.start_postgres(workdir)
        stops.append(pg.stop)
        redis = cluster.start_redis(workdir)
        stops.append(redis.stop)
        database_url = pg.create_database()
        base_url = f"{sim.url}/v1"
        env = procs.app_env(
            workdir, database_url=database_url, openai_base_url=base_url, openai_api_key="sk-bench",
            extra={"SIGMACHAT_REDIS_URL": redis.url, "SIGMACHAT_AUTO_MIGRATE": "false",
                   "SIGMACHAT_AUTO_SEED": "false"},
        )  # fmt: skip
        t = time.perf_counter()
        cluster.migrate_and_seed(workdir, {**env, "SIGMACHAT_AUTO_MIGRATE": "true", "SIGMACHAT_AUTO_SEED": "true"})
        seed_s = time.perf_counter() - t
        procs.wait_ready(sim, "/v1/models", timeout_s=60)
        apps = []
        for i, n in enumerate(opts.workers):
            # Each app its own database (a copy of the seeded one) and its own Redis database:
            # two separate deployments on shared servers, so neither ever sees the other's runs
            # (an overloaded app must not look like a dead instance of the other).
            db_url = database_url if i == 0 else _copy_database(pg, database_url, i)
            app_env = {**env, "SIGMACHAT_DATABASE_URL": db_url, "SIGMACHAT_REDIS_URL": _redis_db(redis.url, i)}
            port = procs.free_port()
            app = procs.spawn(
                f"app-{n}w", ["serve", "--host", procs.LOOPBACK, "--port", str(port), "--workers", str(n)],
                env=app_env, cwd=workdir, url=f"http://{procs.LOOPBACK}:{port}",
            )  # fmt: skip
            stops.append(app.stop)
            apps.append((n, app, db_url))
        ready = []
        for n, app, db_url in apps:
            procs.wait_ready(app, "/readyz", timeout_s=180)
            ready.append((n, app, _wait_workers(app, n) if n > 1 else [], db_url))
        yield {
            "sim": sim,
            "apps": ready,
            "database_url": database_url,
            "upstream_base_url": base_url,
            "seed_s": round(seed_s, 1),
        }
    finally:
        for stop in reversed(stops):
            with contextlib.suppress(Exception):
                stop()


def _copy_database(pg: Any, database_url: str, i: int) -> str:
    """A copy of the seeded database (``createdb -T``: a file copy, no second seeding)."""
    import subprocess

    from sigmachat.bench.cluster import pg_bin

    source = database_url.rsplit("/", 1)[1]
    name = f"{source}_copy{i}"
    subprocess.run(
        [pg_bin("createdb"), "-h", procs.LOOPBACK, "-p", str(pg.port), "-U", "sigmachat", "-T", source, name],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    return database_url.rsplit("/", 1)[0] + "/" + name


def _redis_db(url: str, index: int) -> str:
    """``redis://host:port/0`` → the same server's database ``index``."""
    return url.rsplit("/", 1)[0] + f"/{index}"


def run_workers_compare(opts: WorkersOptions, console: Any) -> dict[str, Any]:
    """Run the comparison and return its report (JSON under ``opts.out_dir``, a docs section)."""
    from sigmachat.bench.runner import QUESTIONS, BenchError, _demo_users, _upstream, code_version, machine_info

    if len(opts.workers) < 2 or opts.workers[0] != 1:
        raise BenchError("--workers-compare compares 1 worker with more: workers must start with 1, e.g. 1,2")
    unknown = set(opts.paths) - set(APP_PATHS)
    if unknown:
        raise BenchError(f"--workers-compare measures the app paths only ({', '.join(APP_PATHS)})")
    started_at = dt.datetime.now(dt.UTC)
    t0 = time.perf_counter()
    base = _upstream_opts(opts)
    upstream = _upstream(base)
    demo = _demo_users()
    question = next(q for q in QUESTIONS if q.key == "text")
    workdir = Path(tempfile.mkdtemp(prefix="sigmachat-bench-workers-"))
    report: dict[str, Any] = {
        "kind": "sigmachat-bench-workers",
        "schema": 1,
        "started_at": started_at.isoformat(timespec="seconds"),
        "machine": machine_info(),
        "code": code_version(),
        "upstream": {k: v for k, v in upstream.items() if not k.startswith("_")},
        "plan": {
            "workers": list(opts.workers),
            "level": opts.level,
            "streams": opts.streams,
            "rounds": opts.rounds,
            "paths": list(opts.paths),
            "question": question.text,
        },
        "note": opts.note,
    }
    try:
        console.print(f"[dim]work directory {workdir}[/]")
        with _stack(workdir, opts, upstream) as stack:
            console.print(
                f"PostgreSQL seeded in {stack['seed_s']:.0f} s; apps up: "
                + ", ".join(f"{n} worker(s) pid {app.pid}" for n, app, _, _ in stack["apps"])
            )
            load = LoadPlan(
                app_url=stack["apps"][0][1].url,
                app_pid=stack["apps"][0][1].pid,
                upstream="sim",
                upstream_base_url=stack["upstream_base_url"],
                upstream_api_key="sk-bench",
                model=upstream["model"],
                database_url=stack["database_url"],
                users=demo["users"],
                password=demo["password"],
                questions=[question],
                paths=list(opts.paths),
                levels=[opts.level],
                streams={opts.level: opts.streams},
                sim_pid=stack["sim"].pid,
            )
            targets = [Target(n, app.url, app.pid, pids, db) for n, app, pids, db in stack["apps"]]
            plan = WorkersPlan(load, targets, opts.rounds)
            t = time.perf_counter()
            cells = _drive(plan, console)
            report["load_s"] = round(time.perf_counter() - t, 1)
    except RuntimeError as exc:
        raise BenchError(str(exc)) from exc
    finally:
        if not opts.keep_workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    report["cells"] = cells
    report["summary"] = summarize(cells, list(opts.paths), list(opts.workers))
    report["bench_seconds"] = round(time.perf_counter() - t0, 1)
    if hasattr(os, "getloadavg"):
        report["machine"]["load_avg_end"] = [round(x, 2) for x in os.getloadavg()]
    report["outputs"] = {k: str(v) for k, v in write_outputs(report, opts.out_dir, opts.docs_path).items()}
    return report


def _upstream_opts(opts: WorkersOptions) -> Any:
    from sigmachat.bench.runner import BenchOptions

    return BenchOptions(upstream="sim", ttfb_ms=opts.ttfb_ms, tokens_per_s=opts.tokens_per_s)


def _drive(plan: WorkersPlan, console: Any) -> list[dict[str, Any]]:
    def progress(message: tuple[Any, ...]) -> None:
        if message[0] == "cell":
            c = message[1]
            console.print(
                f"[dim]round {c['round'] + 1}[/] {c['path']:9} {c['workers']} worker(s): "
                f"{_us(c):,.0f} µs/token, {c['errors']} errors, {c['intact']}/{c['ok']} intact"
            )

    cells = procs.run_reporting_process(
        workers_loadgen_main, (plan,), name="the load generator", timeout_s=1200, on_message=progress
    )
    return list(cells)


def workers_loadgen_main(plan: WorkersPlan, queue: Any) -> None:
    """Entry point of the load generator's process (``multiprocessing``, spawn context)."""
    try:
        from sigmachat.logging import configure_logging

        configure_logging("WARNING", json=True)
        queue.put(("result", asyncio.run(_load(plan, queue.put))))
    except BaseException:
        queue.put(("error", traceback.format_exc()))


async def _load(plan: WorkersPlan, report: Callable[[tuple], None]) -> list[dict[str, Any]]:
    import openai

    from sigmachat.bench.clients import make_http_client

    load = plan.load
    gen = LoadGenerator(load, lambda message: None)
    http = make_http_client(read_timeout_s=load.stream_deadline_s)
    oa = openai.AsyncOpenAI(
        api_key=load.upstream_api_key, base_url=load.upstream_base_url,
        http_client=make_http_client(read_timeout_s=load.stream_deadline_s), max_retries=0,
    )  # fmt: skip
    question = load.questions[0]
    cells: list[dict[str, Any]] = []

    def aim(target: Target) -> None:
        # The apps share the JWT secret and copies of one database: one login serves both.
        load.app_url, load.app_pid = target.url, target.pid

    async def cell(level: int, streams: int, path: str) -> Any:
        # Fresh connections per cell: a pooled keep-alive connection to the app that sat idle
        # while the other app was measured may be closed by the server (uvicorn's keep-alive
        # timeout) just as it is reused, an error the load would not otherwise have.
        fresh = make_http_client(read_timeout_s=load.stream_deadline_s)
        try:
            return await gen.cell(path, question, level, streams, fresh, oa)
        finally:
            await fresh.aclose()

    try:
        await gen.setup(http)
        await gen.warm_up(http, oa)  # the expected texts (direct path) and the first app's code paths
        for target in plan.targets:
            aim(target)
            for path in load.paths:
                # At the measured level: every worker process gets streams (a cold worker's first
                # requests pay for imports and caches, which would land in round 1).
                await cell(load.levels[0], plan.warm_streams, path)
        for r in range(plan.rounds):
            # Alternate which app goes first: a busy moment of the machine falls on both.
            order = plan.targets if r % 2 == 0 else list(reversed(plan.targets))
            for path in load.paths:
                for target in order:
                    aim(target)
                    result = asdict(await cell(load.levels[0], load.streams[load.levels[0]], path))
                    result.update({"workers": target.workers, "round": r, "worker_pids": target.worker_pids})
                    cells.append(result)
                    report(("cell", result))
    finally:
        await oa.close()
        await http.aclose()
        await gen.close()
    return cells


# ---- figures ---------------------------------------------------------------------------------


def _us(cell: dict[str, Any]) -> float:
    return (cell.get("app_cpu_s") or 0.0) / cell["tokens"] * 1e6 if cell.get("tokens") else float("nan")


def summarize(cells: list[dict[str, Any]], paths: list[str], workers: list[int]) -> dict[str, Any]:
    """Per path and worker count: median CPU µs per token over the rounds, the ratio to one
    worker's (of the medians, and the median of the per-round ratios), and how the CPU of the
    multi-worker app split over its processes (each worker's share: both carry streams)."""
    out: dict[str, Any] = {"paths": {}, "errors": 0, "not_intact": 0, "streams": 0}
    for cell in cells:
        out["errors"] += cell["errors"]
        out["not_intact"] += cell["ok"] - cell["intact"]
        out["streams"] += cell["streams"]
    for path in paths:
        per: dict[str, Any] = {}
        one = {c["round"]: _us(c) for c in cells if c["path"] == path and c["workers"] == 1}
        for n in workers:
            mine = [c for c in cells if c["path"] == path and c["workers"] == n]
            us = {c["round"]: _us(c) for c in mine}
            entry: dict[str, Any] = {
                "us_per_token": [round(v, 1) for _, v in sorted(us.items())],
                "median_us_per_token": _r(median(list(us.values()))),
                "median_core_share": _r(median([c["app_cpu_s"] / c["wall_s"] for c in mine if c["wall_s"]]), 2),
                "median_ttfb_p50_ms": _r(median([c["ttfb_ms"]["p50"] for c in mine if c["ttfb_ms"].get("p50")])),
            }
            if n != 1:
                pairs = [us[r] / one[r] for r in us if r in one and one[r]]
                m1 = median(list(one.values()))
                mn = entry["median_us_per_token"]
                entry["ratio_of_medians"] = _r(mn / m1, 3) if m1 and mn else None
                entry["median_round_ratio"] = _r(median(pairs), 3)
                entry["process_shares"] = _shares(mine)
            per[str(n)] = entry
        out["paths"][path] = per
    return out


def _shares(cells: list[dict[str, Any]]) -> dict[str, float]:
    """Share of the app's CPU per role, over all cells: the master, each worker (busiest first),
    and any other descendant (multiprocessing's resource tracker) when it used any."""
    totals: dict[str, float] = {}
    for c in cells:
        for name, cpu in (c.get("app_cpu_by_process") or {}).items():
            totals[name] = totals.get(name, 0.0) + cpu
    whole = sum(totals.values()) or 1.0
    worker_names = {f"child-{pid}" for c in cells for pid in c.get("worker_pids") or []}
    workers = sorted((v for k, v in totals.items() if k in worker_names), reverse=True)
    other = sum(v for k, v in totals.items() if k != "main" and k not in worker_names)
    shares = {"master": round(totals.get("main", 0.0) / whole, 3)}
    shares.update({f"worker {i + 1}": round(v / whole, 3) for i, v in enumerate(workers)})
    if other > 0:
        shares["other"] = round(other / whole, 3)
    return shares


def _r(v: float | None, digits: int = 1) -> float | None:
    return None if v is None else round(v, digits)


# ---- renderings ------------------------------------------------------------------------------


def markdown_section(report: dict[str, Any]) -> str:
    """The docs section (between markers in docs/benchmarks.md; ``sigmachat bench`` keeps it)."""
    plan, s, m = report["plan"], report["summary"], report["machine"]
    code = report.get("code") or {}
    multi = [n for n in plan["workers"] if n != 1]
    lines = [
        DOCS_START,
        "## Several workers: `serve --workers 2` against one worker",
        "",
        f"Run: {report['started_at']}, code `{code.get('commit', '?')}`"
        f"{' (uncommitted changes)' if code.get('dirty') else ''}, {report['bench_seconds']:.0f} s. Rerun with "
        "`sigmachat bench --workers-compare` (`make bench-workers`).",
        "",
        "Two apps side by side on one PostgreSQL database and one Redis (`SIGMACHAT_REDIS_URL`: run log, leases, "
        "limits), configured alike: `sigmachat serve` with 1 worker and with "
        + ", ".join(f"`--workers {n}`" for n in multi)
        + ". One load generator drives both with the same load: "
        f"{plan['streams']} streams of “{plan['question']}” at {plan['level']} concurrent per cell, per path, "
        f"{plan['rounds']} rounds, the apps taking turns (which goes first alternates per round). The app's CPU is "
        "the sum over all its processes, master included (psutil), divided by the text deltas streamed. "
        "PostgreSQL's and Redis's own CPU are not in it (the same for both apps).",
        "",
        f"{s['streams']} measured streams, {s['errors']} errors, {s['not_intact']} not intact. Load average "
        f"{_load_text(m)} on {m.get('cpu_count')} CPUs.",
        *([f"**What the machine was doing:** {report['note']}", ""] if report.get("note") else [""]),
        "| path | workers | µs/token per round | median µs/token | vs 1 worker (medians) | median of round ratios "
        "| CPU split (master / workers) | app % of a core | TTFB p50 ms |",
        "| --- | ---: | --- | ---: | ---: | ---: | --- | ---: | ---: |",
    ]
    for path, per in s["paths"].items():
        for n, e in per.items():
            shares = e.get("process_shares")
            split = " / ".join(f"{v:.0%}" for v in shares.values()) if shares else "–"
            lines.append(
                f"| {path} | {n} | {', '.join(f'{v:,.0f}' for v in e['us_per_token'])} | "
                f"{_f(e['median_us_per_token'], 0)} | {_x(e.get('ratio_of_medians'))} | "
                f"{_x(e.get('median_round_ratio'))} | {split} | {_pct(e['median_core_share'])} | "
                f"{_f(e['median_ttfb_p50_ms'], 0)} |"
            )
    lines += ["", verdict_text(report), "", DOCS_END, ""]
    return "\n".join(lines)


def verdict_text(report: dict[str, Any]) -> str:
    bits = []
    for path, per in report["summary"]["paths"].items():
        for n, e in per.items():
            if n == "1" or e.get("ratio_of_medians") is None:
                continue
            ok = e["ratio_of_medians"] <= TAX_LIMIT
            shares = e.get("process_shares") or {}
            workers = [v for k, v in shares.items() if k.startswith("worker")]
            carry = f"the busiest worker did {max(workers):.0%} of the app's CPU, the least busy {min(workers):.0%}"
            bits.append(
                f"{path}: {n} workers use ×{e['ratio_of_medians']:.2f} one worker's CPU per token "
                f"({'within' if ok else 'over'} the ×{TAX_LIMIT:.2f} target); {carry if workers else 'no split'}"
            )
    return ("**Verdict:** " + "; ".join(bits) + ".") if bits else ""


def _load_text(m: dict[str, Any]) -> str:
    start, end = m.get("load_avg_start") or [], m.get("load_avg_end") or []
    return f"{start[0] if start else '?'} at start, {end[0] if end else '?'} at end (1 min)"


def _f(v: float | None, digits: int = 1) -> str:
    return "–" if v is None else f"{v:,.{digits}f}"


def _x(v: float | None) -> str:
    return "–" if v is None else f"×{v:.2f}"


def _pct(v: float | None) -> str:
    return "–" if v is None else f"{v:.0%}"


def replace_section(page: str, section: str) -> str:
    """``page`` with its workers section replaced by ``section`` (appended when it has none)."""
    if DOCS_START in page and DOCS_END in page:
        head, rest = page.split(DOCS_START, 1)
        tail = rest.split(DOCS_END, 1)[1].lstrip("\n")
        return head + section + tail
    return page.rstrip("\n") + "\n\n" + section


def existing_section(page: str) -> str | None:
    """The workers section of a docs page, markers included (``sigmachat bench`` keeps it)."""
    if DOCS_START not in page or DOCS_END not in page:
        return None
    body = page.split(DOCS_START, 1)[1].split(DOCS_END, 1)[0]
    return DOCS_START + body + DOCS_END + "\n"


def write_outputs(report: dict[str, Any], out_dir: Path, docs_path: Path | None) -> dict[str, Path]:
    import json

    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = report["started_at"].replace(":", "").replace("-", "")[:15]
    written = {}
    for name in (f"workers-{stamp}.json", "workers-latest.json"):
        path = out_dir / name
        path.write_text(json.dumps(report, indent=2), encoding="utf-8")
        written[name] = path
    if docs_path is not None:
        page = docs_path.read_text(encoding="utf-8") if docs_path.exists() else "# Benchmarks\n"
        docs_path.write_text(replace_section(page, markdown_section(report)), encoding="utf-8")
        written["docs"] = docs_path
    return written


def terminal_table(report: dict[str, Any]) -> Any:
    from rich.table import Table

    table = Table(title="CPU per streamed token: one worker against several (medians over rounds)")
    for h in ("path", "workers", "µs/token per round", "median", "vs 1 worker", "CPU split master/workers"):
        table.add_column(h)
    for path, per in report["summary"]["paths"].items():
        for n, e in per.items():
            shares = e.get("process_shares")
            table.add_row(
                path, n, ", ".join(f"{v:,.0f}" for v in e["us_per_token"]), _f(e["median_us_per_token"], 0),
                _x(e.get("ratio_of_medians")), " / ".join(f"{v:.0%}" for v in shares.values()) if shares else "–",
            )  # fmt: skip
    return table
