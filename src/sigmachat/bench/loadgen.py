"""The load generator: its own process, async httpx2 and the openai SDK, one cell at a time.

A *cell* is (path, question, concurrency level): ``streams`` answers read by ``level``
concurrent workers, each stream for a demo user in turn (one conversation or thread per
stream: one active run per conversation is enforced). Before measuring, one direct answer per
(user, question) gives the expected text and one answer per app path warms its caches.

With ``rounds`` > 1 every (question, level) is measured that many times, the paths taking
turns within each round (raw, responses, chatkit, raw, ...): a shared machine's CPU figures
drift by a fifth or more from one minute to the next, and a path measured right after the raw reader
is compared with that reading (report.add_cpu takes the median of the paired ratios). The
direct path, the load generator's own floor and the slowest cell, runs in the first round only.

While a cell runs, the app process's CPU time and resident memory are sampled with psutil.
Progress and the final result travel to the parent over a ``multiprocessing`` queue, so the
parent can draw the progress bar without sharing an event loop with the measurement.
"""

from __future__ import annotations

import asyncio
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx2

from sigmachat.bench.clients import (
    DirectRequest,
    StreamResult,
    chatkit_stream,
    direct_stream,
    legacy_stream,
    make_http_client,
)
from sigmachat.bench.integrity import OK, Verdict, check_stream
from sigmachat.bench.raw_reader import raw_stream
from sigmachat.bench.stats import Summary

PATHS = ("direct", "raw", "responses", "chatkit")
APP_PATHS = ("responses", "chatkit")
STAGGER_S = 0.005  # worker w starts w * 5 ms late: 200 streams ramp up over one second
WARMUP_CONCURRENCY = 8  # warming caches is not a load test
NO_EXPECTED = "no_expected_text"
MAX_EXAMPLES = 3


@dataclass(frozen=True, slots=True)
class Question:
    key: str
    text: str
    label: str


@dataclass(slots=True)
class LoadPlan:
    """Everything the worker process needs (picklable: it crosses a process boundary)."""

    app_url: str
    app_pid: int
    upstream: str  # "sim" | "openai"
    upstream_base_url: str | None  # the direct path's base URL (None: api.openai.com)
    upstream_api_key: str
    model: str
    database_url: str  # the bench database: the direct path computes tool outputs from it
    users: list[str]
    password: str
    questions: list[Question]
    paths: list[str]
    levels: list[int]
    streams: dict[int, int]  # streams per cell at each level
    stream_deadline_s: float = 120.0
    deterministic: bool = True  # the upstream answers a request the same way every time
    sim_pid: int | None = None  # the simulator's process: is it CPU-bound during a cell?
    rounds: int = 1  # measurements of each (question, level); the paths alternate within a round


@dataclass(slots=True)
class CellResult:
    path: str
    question: str
    level: int
    streams: int
    wall_s: float
    ttfb_ms: dict[str, Any]
    total_ms: dict[str, Any]
    tokens_per_s: dict[str, Any]
    events: int
    events_per_s: float
    ok: int
    errors: int
    error_kinds: dict[str, int]
    intact: int
    integrity_problems: dict[str, int]
    tool_calls_median: float | None
    app_cpu_s: float | None
    app_peak_rss_mb: float | None
    tokens: int = 0  # text deltas received in the cell (all streams)
    loadgen_cpu_s: float | None = None  # this process (on the raw path: the raw reader's own CPU)
    sim_cpu_s: float | None = None
    # The app's CPU seconds per process ("main", "child-<pid>"): several with --workers N.
    app_cpu_by_process: dict[str, float] | None = None
    integrity_examples: list[dict[str, Any]] = field(default_factory=list)  # the first few damaged streams
    # Each round's own figures (wall_s, tokens, app_cpu_s, loadgen_cpu_s, sim_cpu_s); the cell's
    # are their sums, and its latency summaries cover every round's streams.
    rounds: list[dict[str, Any]] = field(default_factory=list)


@dataclass(slots=True)
class UserCtx:
    email: str
    token: str
    user_id: str
    portfolio_id: str | None
    direct: DirectRequest | None = None


@dataclass(slots=True)
class RoundRun:
    """One measurement of a cell, before its rounds are summed up."""

    results: list[StreamResult]
    wall_s: float
    app_cpu_s: float | None
    app_rss_mb: float | None
    loadgen_cpu_s: float | None
    sim_cpu_s: float | None
    app_cpu_by_process: dict[str, float] | None

    def figures(self) -> dict[str, Any]:
        """What the report needs per round: CPU per token of the app and of the raw reader."""
        return {
            "wall_s": round(self.wall_s, 3),
            "tokens": sum(len(r.deltas) for r in self.results),
            "app_cpu_s": None if self.app_cpu_s is None else round(self.app_cpu_s, 3),
            "loadgen_cpu_s": None if self.loadgen_cpu_s is None else round(self.loadgen_cpu_s, 3),
            "sim_cpu_s": None if self.sim_cpu_s is None else round(self.sim_cpu_s, 3),
        }


def _sum(values: Iterable[float | None]) -> float | None:
    """The sum, or None when any part was not measured."""
    total = 0.0
    for v in values:
        if v is None:
            return None
        total += v
    return total


@dataclass(slots=True)
class LoadResult:
    cells: list[CellResult] = field(default_factory=list)
    expected: dict[str, dict[str, int]] = field(default_factory=dict)  # question -> {chars, tokens}
    warmup: dict[str, Any] = field(default_factory=dict)
    load_s: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class CpuMeter:
    """CPU seconds (user + system) a process used between ``start`` and ``stop``."""

    def __init__(self, pid: int | None) -> None:
        import psutil

        self._proc = psutil.Process(pid) if pid else None
        self._cpu0 = 0.0

    def _cpu(self) -> float:
        assert self._proc is not None  # callers return early when there is no process
        t = self._proc.cpu_times()
        return t.user + t.system

    def start(self) -> None:
        if self._proc is not None:
            self._cpu0 = self._cpu()

    def stop(self) -> float | None:
        return None if self._proc is None else self._cpu() - self._cpu0


class AppSampler:
    """CPU seconds and peak RSS of the app over one cell: its process and every descendant
    (``sigmachat serve --workers N`` is a master with N worker processes), per process and in
    total. psutil; memory is sampled at 20 Hz, the process tree is read at start and stop only
    (listing descendants walks all of ``/proc``: too costly to repeat at 20 Hz)."""

    def __init__(self, pid: int | None, interval_s: float = 0.05) -> None:
        import psutil

        self._proc = psutil.Process(pid) if pid else None
        self.interval_s = interval_s
        self._tree: list[Any] = []
        self._cpu0: dict[int, float] = {}
        self._cpu_last: dict[int, float] = {}
        self.peak_rss = 0
        self._task: asyncio.Task | None = None

    def _read_tree(self) -> None:
        import psutil

        assert self._proc is not None  # callers return early when there is no process
        try:
            children = self._proc.children(recursive=True)
        except psutil.Error:
            children = []
        self._tree = [self._proc, *children]
        for p in self._tree:
            try:
                t = p.cpu_times()
            except psutil.Error:
                continue  # gone: its last reading stands
            self._cpu_last[p.pid] = t.user + t.system

    def _sample(self) -> None:
        import psutil

        rss = 0
        for p in self._tree:
            try:
                rss += p.memory_info().rss
            except psutil.Error:
                continue
        self.peak_rss = max(self.peak_rss, rss)

    async def _loop(self) -> None:
        while True:
            self._sample()
            await asyncio.sleep(self.interval_s)

    def start(self) -> None:
        if self._proc is None:
            return
        self._cpu_last = {}
        self._read_tree()
        self._cpu0 = dict(self._cpu_last)
        self.peak_rss = 0
        self._task = asyncio.get_running_loop().create_task(self._loop())

    def per_process(self) -> dict[str, float]:
        """CPU seconds per process since ``start``: ``main`` (the process started) and
        ``child-<pid>`` for each descendant (a process born during the cell counts whole)."""
        assert self._proc is not None
        root = self._proc.pid
        return {
            "main" if pid == root else f"child-{pid}": round(cpu - self._cpu0.get(pid, 0.0), 3)
            for pid, cpu in sorted(self._cpu_last.items())
        }

    async def stop(self) -> tuple[float | None, float | None]:
        if self._proc is None or self._task is None:
            return None, None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        self._read_tree()
        self._sample()
        total = sum(cpu - self._cpu0.get(pid, 0.0) for pid, cpu in self._cpu_last.items())
        return total, self.peak_rss / 2**20


def summarize_cell(
    path: str,
    question: str,
    level: int,
    results: list[StreamResult],
    expected: Callable[[StreamResult], str | None],
    wall_s: float,
    cpu_s: float | None,
    rss_mb: float | None,
    *,
    require_expected: bool = True,
    loadgen_cpu_s: float | None = None,
    sim_cpu_s: float | None = None,
    app_cpu_by_process: dict[str, float] | None = None,
    rounds: list[dict[str, Any]] | None = None,
) -> CellResult:
    """Aggregate one cell's streams. Timing figures use completed streams only.

    ``require_expected``: the upstream is deterministic, so a stream without an expected text
    (its warm-up failed) cannot be shown intact and counts as ``no_expected_text``.
    """
    good = [r for r in results if r.ok]
    # not ok means error is set (StreamResult.ok is ``error is None``)
    errors = Counter(r.error for r in results if r.error is not None)
    verdicts = [
        Verdict(False, NO_EXPECTED) if require_expected and expected(r) is None else check_stream(r, expected(r))
        for r in good
    ]
    problems = Counter(v.problem for v in verdicts if not v.intact)
    examples = [
        {
            "user": r.user,
            "run_id": r.run_id,
            "problem": v.problem,
            **first_difference(r.text, expected(r) or r.final_text or ""),
        }
        for r, v in zip(good, verdicts, strict=True)
        if not v.intact
    ][:MAX_EXAMPLES]
    events = sum(r.events for r in results)
    tools = sorted(r.tool_calls for r in good)
    return CellResult(
        path=path,
        question=question,
        level=level,
        streams=len(results),
        wall_s=round(wall_s, 3),
        ttfb_ms=Summary.of(r.ttfb_ms for r in good).as_dict(),
        total_ms=Summary.of(r.total_ms for r in good).as_dict(),
        tokens_per_s=Summary.of(r.tokens_per_s for r in good).as_dict(),
        events=events,
        events_per_s=round(events / wall_s, 1) if wall_s > 0 else 0.0,
        ok=len(good),
        errors=sum(errors.values()),
        error_kinds=dict(errors),
        intact=sum(1 for v in verdicts if v.intact),
        integrity_problems=dict(problems),
        tool_calls_median=float(tools[len(tools) // 2]) if tools else None,
        app_cpu_s=None if cpu_s is None else round(cpu_s, 3),
        app_peak_rss_mb=None if rss_mb is None else round(rss_mb, 1),
        tokens=sum(len(r.deltas) for r in results),
        loadgen_cpu_s=None if loadgen_cpu_s is None else round(loadgen_cpu_s, 3),
        sim_cpu_s=None if sim_cpu_s is None else round(sim_cpu_s, 3),
        app_cpu_by_process=app_cpu_by_process,
        integrity_examples=examples,
        rounds=rounds or [],
    )


def first_difference(got: str, want: str, context: int = 60) -> dict[str, Any]:
    """Where two texts part, with a little context on each side: enough to tell a dropped
    token from an answer that changed (a tool that failed under load writes another answer)."""
    i = next((k for k, (a, b) in enumerate(zip(got, want, strict=False)) if a != b), min(len(got), len(want)))
    start = max(0, i - context)
    return {
        "at": i,
        "got_len": len(got),
        "want_len": len(want),
        "got": got[start : i + context],
        "want": want[start : i + context],
    }


class LoadGenerator:
    def __init__(self, plan: LoadPlan, report: Callable[[tuple], None]) -> None:
        self.plan = plan
        self.report = report  # ("advance", n, text) messages to the parent
        self.users: list[UserCtx] = []
        self.expected: dict[tuple[str, str], str] = {}
        self._tool_cache: dict[tuple[str, str, str], asyncio.Future] = {}

    # ---- setup -----------------------------------------------------------------------------

    async def setup(self, http: httpx2.AsyncClient) -> None:
        from sigmachat.agent.instructions import instructions_for
        from sigmachat.db.session import Database
        from sigmachat.settings import Settings
        from sigmachat.tools.registry import build_registry

        plan = self.plan
        # The app runs with default settings apart from its environment; the direct path
        # sends what the app's Responses engine sends, built from the same defaults.
        self.settings = Settings(_env_file=None, database_url=plan.database_url, log_level="WARNING")
        self.db = Database(self.settings)
        self.registry = build_registry(self.settings)
        tools = self.registry.openai_tools()
        extra = {"store": False} if plan.upstream == "openai" else {}
        for email in plan.users:
            resp = await http.post(
                f"{plan.app_url}/api/v1/auth/login", json={"email": email, "password": plan.password}
            )
            resp.raise_for_status()
            token = resp.json()["access_token"]
            auth = {"Authorization": f"Bearer {token}"}
            me = (await http.get(f"{plan.app_url}/api/v1/auth/me", headers=auth)).json()
            # A conversation created without a portfolio gets the user's default one: the
            # portfolio every path then uses for this user.
            probe = await http.post(f"{plan.app_url}/api/v1/chat/conversations", headers=auth, json={})
            probe.raise_for_status()
            pid = probe.json()["portfolio_id"]
            user = UserCtx(email, token, me["id"], pid)
            user.direct = DirectRequest(
                model=plan.model,
                instructions=instructions_for(as_of=self.settings.as_of_date, portfolio_id=pid),
                tools=tools,
                extra=extra,
            )
            self.users.append(user)

    async def close(self) -> None:
        if getattr(self, "db", None) is not None:
            await self.db.dispose()

    async def tool_output(self, email: str, name: str, arguments: str) -> str:
        """What the app would hand the model for this call, computed once and reused."""
        from sigmachat.tools.registry import ToolContext

        key = (email, name, arguments)
        fut = self._tool_cache.get(key)
        if fut is None:
            user = next(u for u in self.users if u.email == email)
            ctx = ToolContext(
                user_id=user.user_id,
                portfolio_id=user.portfolio_id,
                session_factory=self.db.session,
                settings=self.settings,
            )
            fut = asyncio.ensure_future(self.registry.call(name, arguments, ctx))
            self._tool_cache[key] = fut
        return (await fut).model_text

    # ---- one stream ------------------------------------------------------------------------

    async def one(
        self, path: str, user: UserCtx, question: Question, http: httpx2.AsyncClient, oa: Any
    ) -> StreamResult:
        deadline = self.plan.stream_deadline_s
        assert user.direct is not None  # setup() gives every user its DirectRequest
        if path == "direct":
            return await direct_stream(
                oa, user.direct, question.text, self.tool_output, user=user.email, deadline_s=deadline
            )
        if path == "raw":
            base = self.plan.upstream_base_url or ""
            return await raw_stream(
                base,
                self.plan.upstream_api_key,
                user.direct,
                question.text,
                self.tool_output,
                user=user.email,
                deadline_s=deadline,
            )
        if path == "responses":
            # A new conversation per stream, created on the clock as the original frontend does.
            return await legacy_stream(
                http, self.plan.app_url, user.token, None, question.text,
                portfolio_id=user.portfolio_id, user=user.email, deadline_s=deadline,
            )  # fmt: skip
        if path == "chatkit":
            return await chatkit_stream(
                http,
                self.plan.app_url,
                user.token,
                user.portfolio_id,
                question.text,
                user=user.email,
                deadline_s=deadline,
            )
        raise ValueError(f"unknown path {path}")

    def _expected_for(self, question: Question) -> Callable[[StreamResult], str | None]:
        if not self.plan.deterministic:
            return lambda r: None
        return lambda r: self.expected.get((r.user, question.key))

    # ---- warm-up and expected answers --------------------------------------------------------

    async def warm_up(self, http: httpx2.AsyncClient, oa: Any) -> dict[str, Any]:
        """Expected texts from the direct path for every (user, question), then one answer per
        app path and question (the first user's: the code paths and shared caches get warm)."""
        info: dict[str, Any] = {"direct_failed": 0, "app_failed": 0, "app_not_intact": 0}
        pairs = [(u, q) for u in self.users for q in self.plan.questions]
        sem = asyncio.Semaphore(WARMUP_CONCURRENCY)

        async def one(path: str, u: UserCtx, q: Question) -> StreamResult:
            async with sem:
                return await self.one(path, u, q, http, oa)

        direct = await asyncio.gather(*(one("direct", u, q) for u, q in pairs))
        self.report(("advance", len(pairs), "warm-up: expected answers"))
        for (u, q), r in zip(pairs, direct, strict=True):
            if r.ok:
                self.expected[(u.email, q.key)] = r.text
            else:
                info["direct_failed"] += 1
        app_paths = [p for p in self.plan.paths if p in APP_PATHS]
        firsts = [(self.users[0], q) for q in self.plan.questions]
        jobs = [(path, u, q) for path in app_paths for u, q in firsts]
        # Two at a time: these are all the first user's, and a server with its default limits
        # admits three concurrent runs per user (a refusal here would say nothing about the
        # paths); the benchmark's own app has no limit.
        two = asyncio.Semaphore(2)

        async def warm_one(path: str, u: UserCtx, q: Question) -> StreamResult:
            async with two:
                return await self.one(path, u, q, http, oa)

        warm = await asyncio.gather(*(warm_one(*job) for job in jobs))
        self.report(("advance", len(jobs), "warm-up: app paths"))
        failures: Counter[str] = Counter()
        for (path, _, q), r in zip(jobs, warm, strict=True):
            if not r.ok:
                info["app_failed"] += 1
                failures[f"{path}: {r.error}"] += 1
            elif check_stream(r, self._expected_for(q)(r)).problem != OK:
                info["app_not_intact"] += 1
        if failures:
            info["app_failures"] = dict(failures)
        return info

    # ---- a cell ----------------------------------------------------------------------------

    async def cell(
        self, path: str, question: Question, level: int, n: int, http: httpx2.AsyncClient, oa: Any
    ) -> CellResult:
        """One cell measured once."""
        return self.summarize(path, question, level, [await self.measure(path, question, level, n, http, oa)])

    async def measure(
        self, path: str, question: Question, level: int, n: int, http: httpx2.AsyncClient, oa: Any
    ) -> RoundRun:
        """One round of a cell: its streams and what the processes spent on them."""
        users = [self.users[i % len(self.users)] for i in range(n)]
        results: list[StreamResult | None] = [None] * n
        queue: asyncio.Queue[int] = asyncio.Queue()
        for i in range(n):
            queue.put_nowait(i)
        label = f"{path} · {question.key} · {level} concurrent"

        async def worker(w: int) -> None:
            await asyncio.sleep(w * STAGGER_S)
            while True:
                try:
                    i = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                results[i] = await self.one(path, users[i], question, http, oa)
                self.report(("advance", 1, label))

        # No app sampling on the raw path: the app is idle then, and the sampler's own psutil
        # calls would land in the raw reader's CPU figure (this process's).
        sampler = AppSampler(self.plan.app_pid if path != "raw" else None)
        sim = CpuMeter(self.plan.sim_pid)
        sampler.start()
        sim.start()
        # This process's CPU: on the raw path the reader's own cost per token; on every path,
        # with the simulator's, whether the cell measured the app or a saturated load source.
        loadgen_cpu0 = time.process_time()
        started = time.perf_counter()
        await asyncio.gather(*(worker(w) for w in range(min(level, n))))
        wall = time.perf_counter() - started
        loadgen_cpu = time.process_time() - loadgen_cpu0
        sim_cpu = sim.stop()
        cpu_s, rss_mb = await sampler.stop()
        return RoundRun(
            results=[r for r in results if r is not None], wall_s=wall, app_cpu_s=cpu_s, app_rss_mb=rss_mb,
            loadgen_cpu_s=loadgen_cpu, sim_cpu_s=sim_cpu,
            app_cpu_by_process=sampler.per_process() if cpu_s is not None else None,
        )  # fmt: skip

    def summarize(self, path: str, question: Question, level: int, runs: list[RoundRun]) -> CellResult:
        """A cell from its rounds: every stream counts once, the CPU and wall times add up."""
        by_process: dict[str, float] | None = None
        for run in runs:
            if run.app_cpu_by_process is not None:
                by_process = by_process or {}
                for who, cpu in run.app_cpu_by_process.items():
                    by_process[who] = round(by_process.get(who, 0.0) + cpu, 3)
        return summarize_cell(
            path, question.key, level, [r for run in runs for r in run.results], self._expected_for(question),
            sum(run.wall_s for run in runs), _sum(run.app_cpu_s for run in runs),
            max((run.app_rss_mb for run in runs if run.app_rss_mb is not None), default=None),
            require_expected=self.plan.deterministic, loadgen_cpu_s=_sum(run.loadgen_cpu_s for run in runs),
            sim_cpu_s=_sum(run.sim_cpu_s for run in runs), app_cpu_by_process=by_process,
            rounds=[run.figures() for run in runs],
        )  # fmt: skip

    async def run(self) -> LoadResult:
        import openai

        plan = self.plan
        out = LoadResult()
        started = time.perf_counter()
        http = make_http_client(read_timeout_s=plan.stream_deadline_s)
        oa = openai.AsyncOpenAI(
            api_key=plan.upstream_api_key,
            base_url=plan.upstream_base_url,
            http_client=make_http_client(read_timeout_s=plan.stream_deadline_s),
            max_retries=0,  # a failure is a data point, not something to hide
        )
        try:
            await self.setup(http)
            out.warmup = await self.warm_up(http, oa)
            for q in plan.questions:
                texts = [t for (_, key), t in self.expected.items() if key == q.key]
                if texts:
                    from sigmachat.offline.protocol import split_tokens

                    out.expected[q.key] = {
                        "chars": round(sum(len(t) for t in texts) / len(texts)),
                        "tokens": round(sum(len(split_tokens(t)) for t in texts) / len(texts)),
                    }
            for level in plan.levels:
                for q in plan.questions:
                    runs: dict[str, list[RoundRun]] = {path: [] for path in plan.paths}
                    for round_ in range(plan.rounds):
                        for path in plan.paths:
                            if path == "direct" and round_ > 0:
                                continue  # the floor: measured once (see the module's docstring)
                            runs[path].append(await self.measure(path, q, level, plan.streams[level], http, oa))
                    out.cells += [self.summarize(path, q, level, runs[path]) for path in plan.paths]
        finally:
            await oa.close()
            await http.aclose()
            await self.close()
        out.load_s = round(time.perf_counter() - started, 2)
        return out


def total_steps(plan: LoadPlan) -> int:
    """Progress units: warm-up answers plus every measured stream."""
    pairs = len(plan.users) * len(plan.questions)
    warm = pairs + len(plan.questions) * len([p for p in plan.paths if p in APP_PATHS])  # direct always warms up
    measured = sum(plan.rounds if path != "direct" else 1 for path in plan.paths)
    return warm + sum(plan.streams[level] for level in plan.levels) * len(plan.questions) * measured


def worker_main(plan: LoadPlan, queue: Any) -> None:
    """Entry point of the load-generator process (``multiprocessing``, spawn context)."""
    try:
        from sigmachat.logging import configure_logging

        configure_logging("WARNING", json=True)  # tool logs would scribble over the progress bar
        gen = LoadGenerator(plan, queue.put)
        result = asyncio.run(gen.run())
        queue.put(("result", result.as_dict()))
    except BaseException:  # the parent shows it; a silent worker would look like a hang
        queue.put(("error", traceback.format_exc()))
