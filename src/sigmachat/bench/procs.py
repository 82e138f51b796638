"""The benchmark's process layout: the simulator and the app as separate uvicorn processes.

Both are started through the ``sigmachat`` command line (``sigmachat sim``, ``sigmachat
serve``) exactly as an operator would, on free loopback ports, with the app configured by
environment variables only. Every child is registered so it is stopped whatever happens:
``ProcessGroup`` is a context manager, an ``atexit`` hook stops stragglers, and on Linux a
child also gets SIGTERM if the benchmark itself dies (``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import hashlib
import multiprocessing
import os
import queue as queue_mod
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx2

LOOPBACK = "127.0.0.1"
_LIVE: set[ManagedProcess] = set()


# Ports this process has handed out (see free_port).
_HANDED_OUT: set[int] = set()


def _probe_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        port: int = s.getsockname()[1]
        return port


def free_port() -> int:
    """A TCP port free on the loopback interface right now, and not handed out before by this
    process. Two calls made before either server binds could get the same port (the kernel may
    give it again once the probe's socket is closed): the second server then failed to bind,
    while its readiness check was answered by the first (a two-instance cluster that was one
    instance twice, found when a test killed "the other" instance)."""
    while (port := _probe_port()) in _HANDED_OUT:
        pass
    _HANDED_OUT.add(port)
    return port


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    # Linux only: if the benchmark is killed, its servers get SIGTERM instead of living on.
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@dataclass(eq=False)
class ManagedProcess:
    """A child server: its Popen, base URL and log file. ``stop()`` is idempotent."""

    name: str
    popen: subprocess.Popen
    url: str
    log_path: Path
    _log: IO[bytes] | None = field(default=None, repr=False)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, timeout_s: float = 10.0) -> int | None:
        """SIGTERM, wait up to ``timeout_s`` (graceful shutdown), then SIGKILL."""
        try:
            if self.popen.poll() is None:
                self.popen.send_signal(signal.SIGTERM)
                try:
                    self.popen.wait(timeout=timeout_s)
                except subprocess.TimeoutExpired:
                    self.popen.kill()
                    self.popen.wait(timeout=5)
        finally:
            _LIVE.discard(self)
            if self._log is not None:
                self._log.close()
                self._log = None
        return self.popen.returncode

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def _stop_all() -> None:
    for proc in list(_LIVE):
        with contextlib.suppress(Exception):
            proc.stop(timeout_s=3)


atexit.register(_stop_all)


def spawn(name: str, args: list[str], *, env: Mapping[str, str], cwd: Path, url: str) -> ManagedProcess:
    """Start ``python -m sigmachat.cli.main ARGS`` with ``env``; output goes to ``cwd/NAME.log``."""
    log_path = cwd / f"{name}.log"
    log = open(log_path, "wb")
    popen = subprocess.Popen(
        [sys.executable, "-m", "sigmachat.cli.main", *args],
        env=dict(env),
        cwd=cwd,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        # Own session: a Ctrl-C in the terminal reaches the benchmark, which then stops its
        # children in order, instead of killing everything at once mid-measurement.
        start_new_session=True,
        preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
    )
    proc = ManagedProcess(name, popen, url, log_path, log)
    _LIVE.add(proc)
    return proc


def wait_ready(proc: ManagedProcess, path: str, *, timeout_s: float = 60.0) -> None:
    """Poll ``GET url+path`` until it answers 200, the process dies, or the time is up."""
    deadline = time.monotonic() + timeout_s
    last = "no answer"
    with httpx2.Client(timeout=2.0) as client:
        while time.monotonic() < deadline:
            if not proc.alive():
                raise RuntimeError(f"{proc.name} exited with {proc.popen.returncode}:\n{proc.log_tail()}")
            try:
                resp = client.get(proc.url + path)
                if resp.status_code == 200:
                    return
                last = f"HTTP {resp.status_code}"
            except httpx2.TransportError as exc:
                last = type(exc).__name__
            time.sleep(0.1)
    raise RuntimeError(f"{proc.name} was not ready within {timeout_s:.0f} s ({last}):\n{proc.log_tail()}")


# ---- the environment of the app under test -------------------------------------------------


def base_env() -> dict[str, str]:
    """The parent's environment without any SIGMACHAT_/OPENAI_ setting: the children get
    exactly the configuration written below, not whatever the developer's shell holds."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("SIGMACHAT_", "OPENAI_"))}


def app_env(
    workdir: Path,
    *,
    database_url: str,
    openai_base_url: str | None,
    openai_api_key: str,
    model: str | None = None,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The app configured like production, with the per-user abuse limits off.

    A benchmark sends hundreds of messages a minute from four demo users: the send rate,
    concurrent-run and token-budget limits would turn it into a rate-limit test.
    """
    env = base_env()
    env.update(
        {
            "SIGMACHAT_DATABASE_URL": database_url,
            "SIGMACHAT_VAR_DIR": str(workdir),
            "SIGMACHAT_JWT_SECRET": secrets.token_urlsafe(48),
            "SIGMACHAT_OPENAI_API_KEY": openai_api_key,
            "SIGMACHAT_LOG_LEVEL": "WARNING",
            "SIGMACHAT_LOG_JSON": "true",
            "SIGMACHAT_SEND_RATE_LIMIT": "",
            "SIGMACHAT_MAX_CONCURRENT_RUNS_PER_USER": "0",
            "SIGMACHAT_DAILY_TOKEN_BUDGET": "0",
            "SIGMACHAT_ALLOW_FAULT_INJECTION": "false",
            "SIGMACHAT_AUTO_SEED": "true",
        }
    )
    if openai_base_url:
        env["SIGMACHAT_OPENAI_BASE_URL"] = openai_base_url
    if model:
        env["SIGMACHAT_MODEL"] = model
    env.update(extra or {})
    return env


# What a benchmark wires itself (its database, upstream, secret and address): a setting given
# for the measured app may not change these, or the run would measure something else or fail.
BENCH_WIRED_SETTINGS = frozenset(
    {"database_url", "var_dir", "jwt_secret", "openai_api_key", "openai_base_url", "model", "auto_seed", "host", "port"}
)


def app_settings(pairs: Iterable[str]) -> dict[str, str]:
    """``NAME=VALUE`` settings for the measured app, as the environment that sets them.

    NAME is a setting as the README's table lists it, with or without the ``SIGMACHAT_``
    prefix, in any case (``CHATKIT_ENGINE=responses``). Raises ``ValueError`` saying what
    was wrong: no ``=``, an unknown setting, one the benchmark wires itself, or a value the
    setting refuses (checked here, before any process starts).
    """
    from pydantic import ValidationError

    from sigmachat.settings import Settings

    env: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        field_name, value = name.strip().lower().removeprefix("sigmachat_"), value.strip()
        if not sep or not field_name:
            raise ValueError(f"{pair!r}: a setting is given as NAME=VALUE, e.g. CHATKIT_ENGINE=responses.")
        if field_name not in Settings.model_fields:
            raise ValueError(f"{name.strip()}: no such setting (the README's settings table lists them).")
        if field_name in BENCH_WIRED_SETTINGS:
            raise ValueError(f"{name.strip()}: the benchmark sets this itself.")
        try:
            Settings.model_validate({field_name: value})
        except ValidationError as exc:
            # Only this setting's own errors: the rest comes from this shell, not the app's.
            if mine := [e["msg"] for e in exc.errors() if e["loc"][:1] == (field_name,)]:
                raise ValueError(f"{name.strip()}={value}: {mine[0]}.") from None
        env[f"SIGMACHAT_{field_name.upper()}"] = value
    return env


def shown_settings(env: Mapping[str, str]) -> dict[str, str]:
    """The app settings a run changed, for its report: secrets and URLs (which may carry a
    password) only as set."""
    from pydantic import SecretStr

    from sigmachat.settings import Settings

    shown: dict[str, str] = {}
    for key, value in env.items():
        name = key.removeprefix("SIGMACHAT_")
        field = Settings.model_fields.get(name.lower())
        hidden = field is None or field.annotation in (SecretStr, SecretStr | None) or name.endswith("_URL")
        shown[name] = "(set)" if hidden else value
    return shown


def seed_database(
    workdir: Path, database_url: str, *, cache_dir: Path | None, timeout_s: float = 300.0
) -> tuple[float, bool]:
    """Migrate and seed the demo data into ``database_url`` (a SQLite file URL).

    Seeding writes ~46,000 demo price rows (10+ s on a small machine); the result is a pure
    function of the seed code and settings, so a seeded template is kept in ``cache_dir``
    under a key of those inputs and copied. Returns (seconds, whether the cache was used).
    """
    started = time.perf_counter()
    target = Path(database_url.split(":///", 1)[1])
    key = seed_cache_key()
    cached = cache_dir / f"seeded-{key}.db" if cache_dir else None
    if cached is not None and cached.exists():
        shutil.copyfile(cached, target)
        return time.perf_counter() - started, True
    env = base_env()
    env.update(
        {"SIGMACHAT_DATABASE_URL": database_url, "SIGMACHAT_VAR_DIR": str(workdir), "SIGMACHAT_LOG_LEVEL": "WARNING"}
    )
    done = subprocess.run(
        [sys.executable, "-m", "sigmachat.cli.main", "seed"],
        env=env, cwd=workdir, capture_output=True, text=True, timeout=timeout_s, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"sigmachat seed failed ({done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    if cached is not None:
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_suffix(".tmp")
        shutil.copyfile(target, tmp)
        tmp.replace(cached)
    return time.perf_counter() - started, False


def seed_cache_key() -> str:
    """Hash of everything the seeded database depends on: the seed, generator, migrations and
    demo data files, and the defaults of the price settings."""
    import sigmachat
    from sigmachat.settings import Settings

    root = Path(sigmachat.__file__).parent
    digest = hashlib.sha256()
    parts = [
        *sorted((root / "demo").glob("*.py")),
        *sorted((root / "market").glob("*.py")),
        *sorted((root / "db").rglob("*.py")),
        *sorted((root / "data").glob("*.json")),
    ]
    for path in parts:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    defaults = Settings(_env_file=None)
    digest.update(f"{defaults.as_of_date}|{defaults.price_seed}|{defaults.price_history_days}".encode())
    return digest.hexdigest()[:16]


@contextlib.contextmanager
def process_group() -> Iterator[list[ManagedProcess]]:
    """A list to put started processes in; all of them are stopped on exit, in reverse order."""
    procs: list[ManagedProcess] = []
    try:
        yield procs
    finally:
        for proc in reversed(procs):
            with contextlib.suppress(Exception):
                proc.stop()


@dataclass
class Stack:
    """The simulator (unless the upstream is OpenAI) and the app, up and ready."""

    workdir: Path
    database_url: str
    app: ManagedProcess
    sim: ManagedProcess | None
    upstream_base_url: str | None  # what the app (and the direct path) talk to
    upstream_api_key: str
    seed_s: float
    seed_cached: bool
    startup_s: float


def start_stack(
    group: list[ManagedProcess],
    workdir: Path,
    *,
    sim: tuple[float, float] | None,
    openai: tuple[str, str | None] | None = None,
    seed_cache_dir: Path | None = None,
    extra_env: Mapping[str, str] | None = None,
) -> Stack:
    """Seed a database in ``workdir``, then start the simulator (``sim=(ttfb_ms, tokens_per_s)``)
    and the app side by side. ``openai=(api_key, base_url)`` instead points the app at OpenAI.
    Processes go into ``group`` as they start, so the caller's ``process_group`` stops them."""
    database_url = f"sqlite+aiosqlite:///{workdir / 'bench.db'}"
    seed_s, cached = seed_database(workdir, database_url, cache_dir=seed_cache_dir)
    started = time.perf_counter()
    sim_proc = None
    if sim is not None:
        ttfb_ms, tokens_per_s = sim
        port = free_port()
        sim_proc = spawn(
            "sim",
            ["sim", "--host", LOOPBACK, "--port", str(port),
             "--ttfb-ms", f"{ttfb_ms:g}", "--tokens-per-s", f"{tokens_per_s:g}"],
            env={**base_env(), "SIGMACHAT_LOG_LEVEL": "WARNING"}, cwd=workdir, url=f"http://{LOOPBACK}:{port}",
        )  # fmt: skip
        group.append(sim_proc)
        base_url: str | None = f"{sim_proc.url}/v1"
        api_key = "sk-bench"
    elif openai is not None:
        api_key, base_url = openai
    else:
        raise ValueError("start_stack needs sim=(ttfb_ms, tokens_per_s) or openai=(key, base_url)")
    env = app_env(workdir, database_url=database_url, openai_base_url=base_url, openai_api_key=api_key, extra=extra_env)
    port = free_port()
    app = spawn(
        "app", ["serve", "--host", LOOPBACK, "--port", str(port)], env=env, cwd=workdir, url=f"http://{LOOPBACK}:{port}"
    )
    group.append(app)
    if sim_proc is not None:
        wait_ready(sim_proc, "/v1/models", timeout_s=60)
    wait_ready(app, "/readyz", timeout_s=120)
    return Stack(workdir, database_url, app, sim_proc, base_url, api_key, seed_s, cached, time.perf_counter() - started)


def run_reporting_process(
    target: Callable[..., None],
    args: tuple[Any, ...],
    *,
    name: str,
    timeout_s: float,
    on_message: Callable[[tuple[Any, ...]], None],
    error: type[Exception] = RuntimeError,
) -> Any:
    """Run ``target(*args, queue)`` in a fresh interpreter and return what it reports as
    ``("result", value)``; ``("error", text)`` raises ``error``; any other message goes to
    ``on_message`` (progress). A clean interpreter: no inherited event loop or threads."""
    ctx = multiprocessing.get_context("spawn")
    q = ctx.Queue()
    proc = ctx.Process(target=target, args=(*args, q), name=name, daemon=True)
    proc.start()
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            if time.monotonic() > deadline:
                raise error(f"{name} did not finish within {timeout_s:.0f} s")
            try:
                message = q.get(timeout=0.5)
            except queue_mod.Empty:
                if not proc.is_alive():
                    raise error(f"{name} exited ({proc.exitcode}) without a result") from None
                continue
            if message[0] == "result":
                return message[1]
            if message[0] == "error":
                raise error(f"{name} failed:\n{message[1]}")
            on_message(message)
    finally:
        proc.join(timeout=10)
        if proc.is_alive():
            proc.terminate()
            proc.join(timeout=5)
        q.close()
