"""Real infrastructure on loopback: PostgreSQL, Redis, nginx and several app instances.

Used by the ``cluster`` tests and by ``sigmachat soak --cluster``. Everything runs from the
Debian packages (``postgresql``, ``redis-server``, ``nginx-light``) in a temporary directory,
on free loopback ports, as a child process stopped at the end (``process_group``). No mocks.

PostgreSQL refuses to run as root: under root the server runs as the ``postgres`` user (the
Debian package creates it) or ``nobody``, in a directory of its own outside root's private
temp dirs.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from sigmachat.bench.procs import (
    _LIVE,
    LOOPBACK,
    ManagedProcess,
    _die_with_parent,
    app_env,
    free_port,
    spawn,
    wait_ready,
)


class MissingTool(RuntimeError):
    """A Debian package the cluster needs is not installed (see ``.ci/run``)."""


def _which(name: str, *candidates: str) -> str:
    for path in (shutil.which(name), *candidates):
        if path and os.access(path, os.X_OK):
            return path
    raise MissingTool(f"{name} not found: apt-get install postgresql redis-server nginx-light")


def pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)
    return _which(name, *found)


def _start(name: str, argv: list[str], log_path: Path, url: str, *, preexec: Callable[[], None] | None = None,
           cwd: Path | None = None) -> ManagedProcess:  # fmt: skip
    log = open(log_path, "wb")

    def child_setup() -> None:  # pragma: no cover - runs in the child
        _die_with_parent()
        if preexec is not None:
            preexec()

    popen = subprocess.Popen(
        argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=cwd,
        start_new_session=True, preexec_fn=child_setup,
    )  # fmt: skip
    proc = ManagedProcess(name, popen, url, log_path, log)
    _LIVE.add(proc)
    return proc


def _wait_for(check: Callable[[], bool], proc: ManagedProcess, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not proc.alive():
            raise RuntimeError(f"{proc.name} exited with {proc.popen.returncode}:\n{proc.log_tail()}")
        with contextlib.suppress(Exception):
            if check():
                return
        time.sleep(0.1)
    raise RuntimeError(f"{proc.name} was not ready within {timeout_s:.0f} s:\n{proc.log_tail()}")


# ---- Redis ---------------------------------------------------------------------------------


def start_redis(workdir: Path) -> ManagedProcess:
    """``redis-server`` on a free port, no persistence; ``proc.url`` is its ``redis://`` URL."""
    port = free_port()
    data = workdir / "redis"
    data.mkdir(parents=True, exist_ok=True)
    argv = [_which("redis-server", "/usr/bin/redis-server"), "--port", str(port), "--bind", LOOPBACK,
            "--save", "", "--appendonly", "no", "--dir", str(data), "--protected-mode", "no"]  # fmt: skip
    proc = _start("redis", argv, workdir / "redis.log", f"redis://{LOOPBACK}:{port}/0")

    def ping() -> bool:
        import redis

        with redis.Redis(host=LOOPBACK, port=port, socket_connect_timeout=1) as client:
            return bool(client.ping())

    _wait_for(ping, proc, 20)
    return proc


# ---- PostgreSQL ----------------------------------------------------------------------------


@dataclass(eq=False)
class Postgres:
    proc: ManagedProcess
    port: int
    datadir: Path
    _dbs: int = field(default=0)

    def create_database(self, name: str | None = None) -> str:
        """A fresh database; returns its SQLAlchemy asyncpg URL."""
        self._dbs += 1
        name = name or f"sigmachat_{self._dbs}"
        subprocess.run(
            [pg_bin("createdb"), "-h", LOOPBACK, "-p", str(self.port), "-U", "sigmachat", name],
            check=True, capture_output=True, timeout=30,
        )  # fmt: skip
        return f"postgresql+asyncpg://sigmachat@{LOOPBACK}:{self.port}/{name}"

    def stop(self) -> None:
        # SIGINT is PostgreSQL's "fast" shutdown: it does not wait for pooled clients to leave
        # (SIGTERM, "smart", would wait for every open connection of every test).
        import signal

        if self.proc.alive():
            self.proc.popen.send_signal(signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.popen.wait(timeout=15)
        self.proc.stop(timeout_s=5)
        shutil.rmtree(self.datadir, ignore_errors=True)


def _postgres_user() -> Callable[[], None] | None:
    """Under root, drop to an unprivileged user in the child (PostgreSQL refuses root)."""
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam("postgres")
    except KeyError:
        entry = pwd.getpwnam("nobody")

    def drop() -> None:  # pragma: no cover - runs in the child
        os.setgid(entry.pw_gid)
        os.setuid(entry.pw_uid)

    drop.uid, drop.gid = entry.pw_uid, entry.pw_gid  # type: ignore[attr-defined]
    return drop


def start_postgres(workdir: Path) -> Postgres:
    """``initdb`` + ``postgres`` (trust auth, loopback only, fsync off: test data only)."""
    drop = _postgres_user()
    # Not under workdir: pytest's temp dirs are private to root, the server user cannot enter them.
    datadir = Path(tempfile.mkdtemp(prefix="sigmachat-pg-"))
    if drop is not None:
        os.chown(datadir, drop.uid, drop.gid)  # type: ignore[attr-defined]
    pgdata = datadir / "data"
    init = subprocess.run(
        [pg_bin("initdb"), "-D", str(pgdata), "-U", "sigmachat", "--auth=trust", "-E", "UTF8", "--no-sync"],
        capture_output=True, timeout=120, preexec_fn=drop, cwd=datadir, check=False,
    )  # fmt: skip
    if init.returncode != 0:
        raise RuntimeError(f"initdb failed: {init.stderr.decode(errors='replace')[-2000:]}")
    port = free_port()
    argv = [pg_bin("postgres"), "-D", str(pgdata), "-p", str(port), "-k", str(datadir),
            "-c", f"listen_addresses={LOOPBACK}", "-c", "fsync=off", "-c", "synchronous_commit=off",
            "-c", "full_page_writes=off", "-c", "max_connections=300"]  # fmt: skip
    log_path = workdir / "postgres.log"
    proc = _start("postgres", argv, log_path, f"postgresql://{LOOPBACK}:{port}", preexec=drop, cwd=datadir)

    def ready() -> bool:
        done = subprocess.run([pg_bin("pg_isready"), "-h", LOOPBACK, "-p", str(port)], capture_output=True, timeout=5)
        return done.returncode == 0

    _wait_for(ready, proc, 60)
    return Postgres(proc, port, datadir)


# ---- nginx ---------------------------------------------------------------------------------


def nginx_conf(listen: int, upstreams: list[str], prefix: Path) -> str:
    """The shipped example (``sigmachat/data/nginx.conf``) with ports and paths filled in."""
    template = resources.files("sigmachat.data").joinpath("nginx.conf").read_text()
    servers = "\n".join(f"        server {u} max_fails=1 fail_timeout=2s;" for u in upstreams)
    conf = template.replace("{{servers}}", servers).replace("{{listen}}", f"{LOOPBACK}:{listen}")
    conf = conf.replace("{{prefix}}", str(prefix))
    if os.geteuid() == 0:
        conf = "user root;\n" + conf  # workers as root too: they write into root's temp dir
    return conf


def start_nginx(workdir: Path, upstreams: list[str]) -> ManagedProcess:
    prefix = workdir / "nginx"
    prefix.mkdir(parents=True, exist_ok=True)
    port = free_port()
    conf = prefix / "nginx.conf"
    conf.write_text(nginx_conf(port, upstreams, prefix))
    argv = [_which("nginx", "/usr/sbin/nginx"), "-p", str(prefix), "-c", str(conf), "-e", str(prefix / "error.log")]
    proc = _start("nginx", argv, workdir / "nginx.log", f"http://{LOOPBACK}:{port}")

    def listening() -> bool:
        import socket

        with socket.create_connection((LOOPBACK, port), timeout=1):
            return True

    _wait_for(listening, proc, 20)
    return proc


# ---- the app cluster -----------------------------------------------------------------------


@dataclass(eq=False)
class AppInstance:
    """One ``sigmachat serve`` with a fixed port, restartable with the same configuration."""

    name: str
    port: int
    env: dict[str, str]
    workdir: Path
    proc: ManagedProcess | None = None
    starts: int = 0

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def start(self, *, wait: bool = True) -> ManagedProcess:
        self.starts += 1
        self.proc = spawn(
            f"{self.name}-{self.starts}", ["serve", "--host", LOOPBACK, "--port", str(self.port)],
            env=self.env, cwd=self.workdir, url=self.url,
        )  # fmt: skip
        if wait:
            wait_ready(self.proc, "/readyz", timeout_s=120)
        return self.proc

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop()

    def kill(self) -> None:
        """SIGKILL: the instance dies mid-work, as in a crash or an OOM kill."""
        if self.proc is not None and self.proc.alive():
            self.proc.popen.kill()
            self.proc.popen.wait(timeout=10)
            self.proc.stop()

    def terminate(self, timeout_s: float = 60.0) -> int | None:
        """SIGTERM and wait: the graceful drain."""
        return self.proc.stop(timeout_s=timeout_s) if self.proc is not None else None


@dataclass(eq=False)
class Cluster:
    workdir: Path
    postgres: Postgres
    redis: ManagedProcess
    database_url: str
    instances: list[AppInstance]
    nginx: ManagedProcess

    @property
    def url(self) -> str:
        return self.nginx.url


def migrate_and_seed(workdir: Path, env: Mapping[str, str]) -> None:
    """``sigmachat seed`` (migrates first) once, before instances start side by side."""
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "sigmachat.cli.main", "seed"], env=dict(env), cwd=workdir,
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"sigmachat seed failed ({done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")


@contextlib.contextmanager
def cluster(
    workdir: Path,
    *,
    instances: int = 2,
    openai_base_url: str | None = None,
    extra_env: Mapping[str, str] | None = None,
) -> Iterator[Cluster]:
    """PostgreSQL + Redis + ``instances`` app processes + nginx round robin; all stopped on exit.

    Without ``openai_base_url`` the instances answer with the built-in offline model.
    """
    started: list[Callable[[], object]] = []
    try:
        pg = start_postgres(workdir)
        started.append(pg.stop)
        redis = start_redis(workdir)
        started.append(redis.stop)
        database_url = pg.create_database()
        env = app_env(
            workdir, database_url=database_url, openai_base_url=openai_base_url,
            openai_api_key="sk-cluster" if openai_base_url else "",
            extra={"SIGMACHAT_REDIS_URL": redis.url, "SIGMACHAT_AUTO_MIGRATE": "false", "SIGMACHAT_AUTO_SEED": "false",
                   **(extra_env or {})},
        )  # fmt: skip
        if not openai_base_url:
            env.pop("SIGMACHAT_OPENAI_API_KEY", None)
        migrate_and_seed(workdir, {**env, "SIGMACHAT_AUTO_MIGRATE": "true"})
        apps = [AppInstance(chr(ord("a") + i), free_port(), env, workdir) for i in range(instances)]
        for app in apps:
            started.append(app.stop)
            app.start(wait=False)
        for app in apps:
            assert app.proc is not None
            wait_ready(app.proc, "/readyz", timeout_s=120)
        nginx = start_nginx(workdir, [f"{LOOPBACK}:{a.port}" for a in apps])
        started.append(nginx.stop)
        yield Cluster(workdir, pg, redis, database_url, apps, nginx)
    finally:
        for stop in reversed(started):
            with contextlib.suppress(Exception):
                stop()
