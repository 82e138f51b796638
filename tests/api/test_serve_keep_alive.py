"""`sigmachat serve` keeps idle connections open HTTP_KEEP_ALIVE_S, over a real socket.

Closed first by the server (uvicorn's default, 5 s, the same as httpx's own idle timeout and
far below nginx's 60 s), a connection could be closed just as a client sent its next request
on it: the benchmark's 200-stream cells lost a stream or two that way, and behind nginx a POST
caught so is a 502.
"""

from __future__ import annotations

import shutil
import socket
import time
from pathlib import Path

from sigmachat.bench.procs import app_env, free_port, spawn, wait_ready

REQUEST = b"GET /readyz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


def _ask(sock: socket.socket) -> bytes:
    """One request on the open connection; the whole response, or b"" if it was closed."""
    try:
        sock.sendall(REQUEST)
        data = b""
        while b"\r\n\r\n" not in data:
            if not (chunk := sock.recv(65536)):
                return b""
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = int(
            next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length"))
        )
        while len(body) < length:
            body += sock.recv(65536)
        return data
    except OSError:  # reset: the server had closed it
        return b""


def test_an_idle_connection_stays_open_for_the_keep_alive_setting_then_closes(tmp_path: Path, template_db: Path):
    shutil.copy(template_db, tmp_path / "app.db")
    port = free_port()
    env = app_env(
        tmp_path, database_url=f"sqlite+aiosqlite:///{tmp_path / 'app.db'}", openai_base_url=None, openai_api_key="",
        extra={"SIGMACHAT_HTTP_KEEP_ALIVE_S": "2"},
    )  # fmt: skip
    app = spawn("app", ["serve", "--host", "127.0.0.1", "--port", str(port)], env=env, cwd=tmp_path,
                url=f"http://127.0.0.1:{port}")  # fmt: skip
    try:
        wait_ready(app, "/readyz", timeout_s=120)
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            assert _ask(sock).startswith(b"HTTP/1.1 200")
            time.sleep(1.0)  # idle, within the setting: the same connection answers
            assert _ask(sock).startswith(b"HTTP/1.1 200")
            time.sleep(3.0)  # idle past it: the server has closed the connection
            assert _ask(sock) == b""
    finally:
        app.stop()
