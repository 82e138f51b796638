"""``sigmachat soak``: concurrent streams for a while, with disconnects, resumes and cancels;
then every run is accounted for from the app's database.

Same process layout as the benchmark (the simulator and the app as separate uvicorn
processes); the client loops run here. Each loop, until the time is up, opens a new
conversation and does one of:

- responses path: read the answer to its end; or disconnect after a random number of events,
  wait a moment, and resume with ``GET /api/v1/chat/runs/{run_id}/stream`` and
  ``Last-Event-ID: <run_id>:<seq>``; or ask ``POST /api/v1/chat/runs/{run_id}/cancel`` mid-answer
  and read on to the final event;
- chatkit path: read the answer to its end, or disconnect mid-answer (the default
  ``chatkit_disconnect=cancel`` policy then cancels the run).

When the loops are done and the app is idle, the database must show, for every user message,
an assistant message (none lost), none still ``streaming`` (none stuck), statuses that agree
with what each client saw, and for every resumed stream the text before plus after the resume
equal to the final answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import random
import shutil
import sqlite3
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx2

from sigmachat.bench import procs
from sigmachat.bench.clients import chatkit_create_body, make_http_client

SOAK_QUESTIONS = (
    "What can you do?",
    "What does NVDA do and what is its price?",
    "How concentrated is my portfolio and what moved today?",
)
OP_TIMEOUT_S = 120.0  # one loop iteration, end to end
IDLE_TIMEOUT_S = 60.0  # after the loops: how long the app may take to finish what is running


@dataclass
class SoakOptions:
    streams: int = 100
    seconds: float = 60.0
    paths: tuple[str, ...] = ("responses", "chatkit")
    chatkit_share: float = 0.3  # of iterations, when both paths are on
    disconnect_share: float = 0.2  # disconnect mid-answer (responses: then resume)
    cancel_share: float = 0.1  # explicit cancel (responses path)
    ttfb_ms: float | None = None
    tokens_per_s: float | None = None
    seed: int = 20250711
    out_dir: Path = Path("bench/results")
    keep_workdir: bool = False


@dataclass
class RunRecord:
    """What one client iteration did and saw."""

    path: str
    action: str  # read | disconnect_resume | cancel | disconnect
    user: str
    question: str
    conversation_id: str | None = None
    run_id: str | None = None
    http_status: int | None = None
    outcome: str = (
        "pending"  # complete | cancelled | failed:<code> | rejected:<why> | client_error:<why> | client_timeout
    )
    disconnected: bool = False  # the planned disconnect / cancel happened before the end
    text_before: str = ""  # deltas before the disconnect
    text_after: str = ""  # deltas after the resume (or after the cancel request)
    final_text: str | None = None  # the stream's own final text
    cancel_answer: str | None = None
    started: float = 0.0
    ended: float = 0.0


@dataclass
class SoakResult:
    records: list[RunRecord] = field(default_factory=list)
    db: dict[str, Any] = field(default_factory=dict)


# ---- one iteration -------------------------------------------------------------------------------


class Client:
    def __init__(self, http: httpx2.AsyncClient, base_url: str, tokens: dict[str, str], rng: random.Random) -> None:
        self.http = http
        self.base = base_url
        self.tokens = tokens
        self.rng = rng

    def _auth(self, user: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[user]}"}

    async def legacy(self, rec: RunRecord) -> None:
        resp = await self.http.post(f"{self.base}/api/v1/chat/conversations", headers=self._auth(rec.user), json={})
        if resp.status_code != 201:
            rec.outcome = f"rejected:conversation_http_{resp.status_code}"
            return
        rec.conversation_id = resp.json()["id"]
        cut_after = self.rng.randint(1, 80) if rec.action != "read" else None
        last_id = ""
        async with self.http.stream(
            "POST", f"{self.base}/api/v1/chat/send", headers=self._auth(rec.user),
            json={"conversation_id": rec.conversation_id, "text": rec.question},
        ) as resp:  # fmt: skip
            rec.http_status = resp.status_code
            if resp.status_code != 200:
                await resp.aread()
                rec.outcome = f"rejected:http_{resp.status_code}"
                return
            rec.run_id = resp.headers.get("x-run-id")
            seen = 0
            cancel: asyncio.Task | None = None
            try:
                async for sse in httpx2.EventSource(resp):
                    if sse.event == "heartbeat":
                        continue
                    last_id = sse.id or last_id
                    seen += 1
                    if self._consume(rec, sse, after=False):
                        return
                    if cut_after is not None and seen >= cut_after:
                        if rec.action == "cancel":
                            # Stop button: cancel from another request, keep reading to the end.
                            if cancel is None:
                                rec.disconnected = True
                                cancel = asyncio.ensure_future(self._cancel(rec))
                            continue
                        rec.disconnected = True
                        break  # leaving the `async with` closes the connection mid-answer
                else:
                    rec.outcome = "client_error:stream_ended_without_terminal_event"
                    return
            finally:
                if cancel is not None:
                    await cancel
        await asyncio.sleep(self.rng.uniform(0.05, 1.5))
        await self._resume(rec, last_id)

    async def _cancel(self, rec: RunRecord) -> None:
        resp = await self.http.post(f"{self.base}/api/v1/chat/runs/{rec.run_id}/cancel", headers=self._auth(rec.user))
        rec.cancel_answer = (resp.json() or {}).get("status") if resp.status_code == 200 else f"http_{resp.status_code}"

    async def _resume(self, rec: RunRecord, last_id: str) -> None:
        headers = {**self._auth(rec.user), "Last-Event-ID": last_id}
        async with self.http.stream(
            "GET", f"{self.base}/api/v1/chat/runs/{rec.run_id}/stream", headers=headers
        ) as resp:
            if resp.status_code != 200:
                body = await resp.aread()
                rec.outcome = f"client_error:resume_http_{resp.status_code}"
                if resp.status_code == 410:  # expired: the persisted message is the answer
                    rec.final_text = (json.loads(body).get("message") or {}).get("content")
                return
            async for sse in httpx2.EventSource(resp):
                if sse.event == "heartbeat":
                    continue
                if self._consume(rec, sse, after=True):
                    return
        rec.outcome = "client_error:resume_ended_without_terminal_event"

    @staticmethod
    def _consume(rec: RunRecord, sse: Any, *, after: bool) -> bool:
        """Take one legacy event; True when it was the terminal one."""
        if sse.event == "message_created":
            return False
        env = json.loads(sse.data)
        data = env.get("data") or {}
        if sse.event == "token":
            if after:
                rec.text_after += data.get("delta", "")
            else:
                rec.text_before += data.get("delta", "")
        elif sse.event == "done":
            rec.final_text = data.get("final_text")
            rec.outcome = "complete"
            return True
        elif sse.event == "error":
            code = data.get("code")
            rec.final_text = data.get("partial_text")
            rec.outcome = "cancelled" if code == "cancelled" else f"failed:{code}"
            return True
        return False

    async def chatkit(self, rec: RunRecord) -> None:
        cut_after = self.rng.randint(1, 80) if rec.action != "read" else None
        last_id = ""
        async with self.http.stream(
            "POST", f"{self.base}/chatkit", headers=self._auth(rec.user), json=chatkit_create_body(rec.question)
        ) as resp:
            rec.http_status = resp.status_code
            if resp.status_code != 200:
                await resp.aread()
                rec.outcome = f"rejected:http_{resp.status_code}"
                return
            rec.run_id = resp.headers.get("x-run-id")
            seen = 0
            async for sse in httpx2.EventSource(resp):
                last_id = sse.id or last_id  # per SSE, the last id carries over to id-less frames
                if not sse.data:
                    continue
                seen += 1
                self._chatkit_frame(rec, json.loads(sse.data), after=False)
                if cut_after is not None and seen >= cut_after and rec.outcome == "pending":
                    rec.disconnected = True
                    break  # leaving the `async with` closes the connection mid-answer
        if not rec.disconnected:
            if rec.outcome == "pending":
                rec.outcome = "client_error:stream_ended_without_answer"
            return
        if rec.action == "disconnect":
            rec.outcome = "disconnected"  # chatkit_disconnect=cancel: the run stops with us
            return
        await asyncio.sleep(self.rng.uniform(0.05, 1.5))
        headers = {**self._auth(rec.user), "Last-Event-ID": last_id}
        async with self.http.stream("GET", f"{self.base}/chatkit/runs/{rec.run_id}/stream", headers=headers) as resp:
            if resp.status_code != 200:
                await resp.aread()
                rec.outcome = f"client_error:resume_http_{resp.status_code}"
                return
            async for sse in httpx2.EventSource(resp):
                if sse.data:
                    self._chatkit_frame(rec, json.loads(sse.data), after=True)
        if rec.outcome == "pending":
            rec.outcome = "client_error:resume_ended_without_answer"

    @staticmethod
    def _chatkit_frame(rec: RunRecord, event: dict[str, Any], *, after: bool) -> None:
        etype = event.get("type")
        if etype == "thread.created":
            rec.conversation_id = (event.get("thread") or {}).get("id")
        elif (
            etype == "thread.item.updated"
            and (event.get("update") or {}).get("type") == "assistant_message.content_part.text_delta"
        ):
            if after:
                rec.text_after += event["update"].get("delta", "")
            else:
                rec.text_before += event["update"].get("delta", "")
        elif etype == "thread.item.done" and (event.get("item") or {}).get("type") == "assistant_message":
            rec.final_text = "".join(p.get("text", "") for p in event["item"].get("content") or [])
            if rec.outcome == "pending":
                rec.outcome = "complete"
        elif etype == "error":
            # ChatKit errors carry a message, not our code; the database says which it was.
            rec.outcome = "ended_with_error"


# ---- the run -----------------------------------------------------------------------------------------


def _choose(rng: random.Random, opts: SoakOptions) -> tuple[str, str]:
    paths = [p for p in opts.paths if p in ("responses", "chatkit")]
    path = paths[0]
    if len(paths) > 1:
        path = "chatkit" if rng.random() < opts.chatkit_share else "responses"
    roll = rng.random()
    if path == "chatkit":
        if roll < opts.disconnect_share / 2:
            return path, "disconnect"
        if roll < opts.disconnect_share:
            return path, "disconnect_resume"
        return path, "read"
    if roll < opts.disconnect_share:
        return path, "disconnect_resume"
    if roll < opts.disconnect_share + opts.cancel_share:
        return path, "cancel"
    return path, "read"


async def _loops(app_url: str, users: list[str], password: str, opts: SoakOptions, tick: Any) -> list[RunRecord]:
    rng = random.Random(opts.seed)
    records: list[RunRecord] = []
    http = make_http_client(read_timeout_s=OP_TIMEOUT_S)
    try:
        tokens = {}
        for email in users:
            resp = await http.post(f"{app_url}/api/v1/auth/login", json={"email": email, "password": password})
            resp.raise_for_status()
            tokens[email] = resp.json()["access_token"]
        client = Client(http, app_url, tokens, rng)
        deadline = time.monotonic() + opts.seconds
        active = [0]

        async def loop(i: int) -> None:
            await asyncio.sleep(i * 0.01)  # ramp up over a second
            n = 0
            while time.monotonic() < deadline:
                path, action = _choose(rng, opts)
                rec = RunRecord(
                    path, action, users[(i + n) % len(users)], SOAK_QUESTIONS[(i + n) % len(SOAK_QUESTIONS)]
                )
                n += 1
                records.append(rec)
                rec.started = time.perf_counter()
                active[0] += 1
                try:
                    async with asyncio.timeout(OP_TIMEOUT_S):
                        await (client.chatkit(rec) if path == "chatkit" else client.legacy(rec))
                except TimeoutError:
                    rec.outcome = "client_timeout"
                except (httpx2.TransportError, ValueError) as exc:
                    rec.outcome = f"client_error:{type(exc).__name__}"
                finally:
                    active[0] -= 1
                    rec.ended = time.perf_counter()

        tasks = [asyncio.ensure_future(loop(i)) for i in range(opts.streams)]
        while not all(t.done() for t in tasks):
            tick(len(records), active[0])
            await asyncio.wait(tasks, timeout=0.5)
        for t in tasks:
            t.result()  # surface a bug in the loop itself
    finally:
        await http.aclose()
    return records


def _db_rows(db_path: Path, sql: str, args: tuple = ()) -> list[tuple]:
    # Read-only, straight from SQLite: the accounting must not depend on the API under test.
    with contextlib.closing(sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=30)) as conn:
        return conn.execute(sql, args).fetchall()


def wait_idle(db_path: Path, timeout_s: float = IDLE_TIMEOUT_S) -> float:
    """Wait until no assistant message is 'streaming'; returns the seconds waited."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        (n,) = _db_rows(db_path, "SELECT count(*) FROM messages WHERE role='assistant' AND status='streaming'")[0]
        if n == 0:
            break
        time.sleep(0.5)
    return time.monotonic() - started


def account(db_path: Path, records: list[RunRecord]) -> dict[str, Any]:
    """Every run from the database's point of view, checked against what the clients saw."""
    users = _db_rows(db_path, "SELECT id, run_id, conversation_id FROM messages WHERE role='user'")
    assistants = {
        run_id: (status, content, (json.loads(error) if error else None))
        for run_id, status, content, error in _db_rows(
            db_path, "SELECT run_id, status, content, error FROM messages WHERE role='assistant' AND run_id IS NOT NULL"
        )
    }
    lost = [uid for uid, run_id, _ in users if not run_id or run_id not in assistants]
    statuses = Counter(status for status, _, _ in assistants.values())
    problems: list[dict[str, Any]] = []
    resumed = resumed_intact = 0
    for rec in records:
        if rec.run_id is None:
            continue
        row = assistants.get(rec.run_id)
        if row is None:
            problems.append({"run_id": rec.run_id, "problem": "no assistant message", "client": rec.outcome})
            continue
        status, content, _error = row
        expected_status = _expected_status(rec, status)
        if expected_status is not None and status not in expected_status:
            problems.append(
                {"run_id": rec.run_id, "problem": f"status {status}, client saw {rec.outcome}", "action": rec.action}
            )
        if rec.outcome == "complete" and rec.final_text is not None and content != rec.final_text:
            problems.append(
                {
                    "run_id": rec.run_id,
                    "problem": "stored text differs from the streamed final text",
                    "action": rec.action,
                }
            )
        if (
            rec.outcome in ("complete", "cancelled", "ended_with_error")
            and rec.final_text is not None
            and rec.outcome != "disconnected"
        ):
            received = rec.text_before + rec.text_after
            if rec.action == "disconnect_resume" and rec.disconnected:
                resumed += 1
                resumed_intact += int(received == rec.final_text)
            if received != rec.final_text:
                problems.append(
                    {
                        "run_id": rec.run_id,
                        "problem": "text received (before + after any resume) differs from the final text",
                        "action": rec.action,
                        "path": rec.path,
                    }
                )
    return {
        "user_messages": len(users),
        "assistant_messages": len(assistants),
        "statuses": dict(statuses),
        "lost": len(lost),
        "stuck": statuses.get("streaming", 0),
        "resumed": resumed,
        "resumed_intact": resumed_intact,
        "problems": problems[:50],
        "problem_count": len(problems),
    }


def _expected_status(rec: RunRecord, status: str) -> set[str] | None:
    """The persisted statuses consistent with what the client saw (None: anything goes)."""
    if rec.outcome == "complete":
        return {"complete"}
    if rec.outcome == "cancelled":
        return {"cancelled"}
    if rec.outcome.startswith("failed:"):
        return {"failed", "incomplete", "interrupted", "cancelled"}
    if rec.outcome == "disconnected":  # chatkit: cancelled by policy, unless it had just finished
        return {"cancelled", "complete"}
    if rec.outcome == "ended_with_error":  # chatkit: an error event (a cancel after a disconnect, or a failure)
        return {"cancelled", "failed", "incomplete", "interrupted"}
    return None


def summarize(records: list[RunRecord], db: dict[str, Any], opts: SoakOptions, extra: dict[str, Any]) -> dict[str, Any]:
    by = Counter(
        (
            r.path,
            r.action,
            r.outcome.split(":", 1)[0] if r.outcome.startswith(("rejected", "client_error")) else r.outcome,
        )
        for r in records
    )
    rejected = Counter(
        r.outcome for r in records if r.outcome.startswith(("rejected", "client_error", "client_timeout"))
    )
    cancels = [r for r in records if r.action == "cancel" and r.run_id]
    disconnects = [r for r in records if r.action in ("disconnect_resume", "disconnect") and r.disconnected]
    duration = max((r.ended for r in records), default=0) - min((r.started for r in records), default=0)
    accounted = db["lost"] == 0 and db["stuck"] == 0 and db["problem_count"] == 0
    # A 5xx, a dropped connection or a hung request is the service failing, even when the
    # database stays consistent: the soak is not healthy then.
    server_failures = sum(n for k, n in rejected.items() if _is_server_failure(k))
    return {
        "kind": "sigmachat-soak",
        "accounted": accounted,
        "server_failures": server_failures,
        "ok": accounted and server_failures == 0,
        "options": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(opts).items()},
        "iterations": len(records),
        "runs_started": sum(1 for r in records if r.run_id),
        "duration_s": round(duration, 1),
        "client": {
            "by_path_action_outcome": [
                {"path": p, "action": a, "outcome": o, "n": n} for (p, a, o), n in sorted(by.items())
            ],
            "rejected_or_client_errors": dict(rejected),
            "disconnects": len(disconnects),
            "resumes": sum(1 for r in records if r.action == "disconnect_resume" and r.disconnected),
            "cancels_requested": sum(1 for r in cancels if r.cancel_answer is not None),
            "cancel_answers": dict(Counter(r.cancel_answer for r in cancels if r.cancel_answer)),
        },
        "db": db,
        **extra,
    }


def _is_server_failure(outcome: str) -> bool:
    """5xx answers, transport errors and timeouts (4xx such as 409/429 are the service saying no)."""
    if outcome == "client_timeout" or outcome.startswith("client_error:"):
        return True
    code = outcome.rsplit("http_", 1)[-1] if "http_" in outcome else ""
    return code.isdigit() and int(code) >= 500


def run_soak(opts: SoakOptions, console: Any) -> dict[str, Any]:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from sigmachat.bench.runner import _demo_users, machine_info
    from sigmachat.settings import get_settings

    settings = get_settings()
    ttfb = opts.ttfb_ms if opts.ttfb_ms is not None else settings.sim_ttfb_ms
    tps = opts.tokens_per_s if opts.tokens_per_s is not None else settings.sim_tokens_per_s
    started_at = dt.datetime.now(dt.UTC)
    t0 = time.perf_counter()
    machine = machine_info()
    demo = _demo_users()
    workdir = Path(tempfile.mkdtemp(prefix="sigmachat-soak-"))
    try:
        with procs.process_group() as group:
            stack = procs.start_stack(group, workdir, sim=(ttfb, tps), seed_cache_dir=opts.out_dir / ".cache")
            console.print(f"Simulator ({ttfb:g} ms, {tps:g} tokens/s) and app up in {stack.startup_s:.1f} s; "
                          f"{opts.streams} client loops for {opts.seconds:g} s…")  # fmt: skip
            import psutil

            app_proc = psutil.Process(stack.app.pid)
            cpu0 = sum(app_proc.cpu_times()[:2])
            peak = [0]

            with Progress(
                TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(), console=console
            ) as progress:
                task = progress.add_task("starting", total=opts.seconds)
                t_loops = time.monotonic()

                def tick(n: int, active: int) -> None:
                    with contextlib.suppress(Exception):
                        peak[0] = max(peak[0], app_proc.memory_info().rss)
                    elapsed = time.monotonic() - t_loops
                    phase = "running" if elapsed < opts.seconds else "draining"
                    progress.update(
                        task,
                        completed=min(elapsed, opts.seconds),
                        description=f"{phase}: {n} iterations, {active} in flight",
                    )

                records = asyncio.run(_loops(stack.app.url, demo["users"], demo["password"], opts, tick))
            db_path = workdir / "bench.db"
            idle_s = wait_idle(db_path)
            cpu_s = sum(app_proc.cpu_times()[:2]) - cpu0
            db = account(db_path, records)
            app_alive = stack.app.alive()
        result = summarize(
            records,
            db,
            opts,
            {
                "started_at": started_at.isoformat(timespec="seconds"),
                "upstream": {"kind": "sim", "ttfb_ms": ttfb, "tokens_per_s": tps},
                "machine": machine,
                "idle_wait_s": round(idle_s, 1),
                "app": {"cpu_s": round(cpu_s, 1), "peak_rss_mb": round(peak[0] / 2**20, 1), "alive_at_end": app_alive},
                "soak_seconds": round(time.perf_counter() - t0, 1),
            },
        )
        if opts.keep_workdir:
            result["workdir"] = str(workdir)
    finally:
        if not opts.keep_workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    opts.out_dir.mkdir(parents=True, exist_ok=True)
    stamp = started_at.strftime("%Y%m%dT%H%M%S")
    body = json.dumps(result, indent=2)
    for name in (f"soak-{stamp}.json", "soak-latest.json"):
        (opts.out_dir / name).write_text(body, encoding="utf-8")
    result["outputs"] = [str(opts.out_dir / f"soak-{stamp}.json"), str(opts.out_dir / "soak-latest.json")]
    return result


def summary_tables(result: dict[str, Any]) -> list[Any]:
    from rich.table import Table

    db = result["db"]
    t = Table(
        title=f"Soak: {result['options']['streams']} concurrent client loops for {result['options']['seconds']:g} s",
        title_justify="left",
    )
    t.add_column("figure")
    t.add_column("value", justify="right")
    rows = [
        ("iterations (client loops' turns)", result["iterations"]),
        ("runs started (got a run id)", result["runs_started"]),
        ("user messages stored", db["user_messages"]),
        ("assistant messages stored", db["assistant_messages"]),
        *[(f"  status {k}", v) for k, v in sorted(db["statuses"].items())],
        ("lost (user message without an answer)", db["lost"]),
        ("stuck ('streaming' once idle)", db["stuck"]),
        ("disconnects mid-answer", result["client"]["disconnects"]),
        ("resumed streams (Last-Event-ID)", db["resumed"]),
        ("  intact (before + after = final text)", db["resumed_intact"]),
        ("cancels requested", result["client"]["cancels_requested"]),
        *[(f"  cancel answered {k}", v) for k, v in sorted(result["client"]["cancel_answers"].items())],
        *[
            (f"rejected / client error: {k}", v)
            for k, v in sorted(result["client"]["rejected_or_client_errors"].items())
        ],
        ("client/database disagreements", db["problem_count"]),
        ("server-side failures (5xx, dropped, timeout)", result["server_failures"]),
        ("app CPU s / peak RSS MB", f"{result['app']['cpu_s']} / {result['app']['peak_rss_mb']}"),
        ("waited for idle (s)", result["idle_wait_s"]),
    ]
    for k, v in rows:
        t.add_row(k, str(v))
    detail = Table(title="By path, action and client-observed outcome", title_justify="left")
    for h in ("path", "action", "outcome", "n"):
        detail.add_column(h, justify="right" if h == "n" else "left")
    for row in result["client"]["by_path_action_outcome"]:
        detail.add_row(row["path"], row["action"], row["outcome"], str(row["n"]))
    return [t, detail]
