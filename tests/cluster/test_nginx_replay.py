"""The shipped nginx example never replays a POST that already reached an instance.

A ChatKit send has no idempotency key: if nginx passed a POST that an instance had read (and
then died before answering) on to the next instance, the question would be asked twice and
answered by two runs. Two stand-in upstreams on loopback, with the real nginx and the shipped
``sigmachat/data/nginx.conf``: one reads each request and drops the connection without an
answer (an instance killed mid-request), the other answers. Every request carries its own id,
so we see exactly which upstream received it. The legacy send, idempotent by
``client_message_id``, is the one POST that nginx may replay.
"""

from __future__ import annotations

import socket
import socketserver
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from sigmachat.bench.cluster import MissingTool, start_nginx
from sigmachat.bench.procs import LOOPBACK

pytestmark = pytest.mark.cluster


class _Upstream(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, *, dies: bool) -> None:
        super().__init__((LOOPBACK, 0), _Handler)
        self.dies = dies
        self.seen: list[tuple[str, str]] = []  # (method, request id) of every request read

    @property
    def address(self) -> str:
        return f"{LOOPBACK}:{self.server_address[1]}"


class _Handler(socketserver.StreamRequestHandler):
    server: _Upstream

    def handle(self) -> None:
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.request.recv(65536)
            if not chunk:
                return
            head += chunk
        lines = head.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        body_left = int(headers.get("content-length", "0")) - len(head.split(b"\r\n\r\n", 1)[1])
        while body_left > 0:
            body_left -= len(self.request.recv(65536))
        self.server.seen.append((lines[0].split(" ", 1)[0], headers.get("x-test-request", "")))
        if self.server.dies:
            # The whole request was read, then the process "died": reset, no answer at all.
            self.request.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            self.request.close()
            return
        self.request.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")


@pytest.fixture
def balancer(tmp_path: Path) -> Iterator[tuple[str, _Upstream, _Upstream]]:
    dying, healthy = _Upstream(dies=True), _Upstream(dies=False)
    for server in (dying, healthy):
        threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        nginx = start_nginx(tmp_path, [dying.address, healthy.address])
    except MissingTool as exc:
        pytest.skip(str(exc))
    try:
        yield nginx.url, dying, healthy
    finally:
        nginx.stop()
        for server in (dying, healthy):
            server.shutdown()
            server.server_close()


def _until_the_dying_one_reads(
    base: str, method: str, dying: _Upstream, path: str = "/chatkit"
) -> tuple[str, httpx.Response]:
    """Requests until one reaches the dying upstream (round robin: within a few)."""
    for _ in range(6):
        rid = uuid.uuid4().hex
        resp = httpx.request(method, f"{base}{path}", headers={"X-Test-Request": rid}, json={"q": "x"}, timeout=10)
        if (method, rid) in dying.seen:
            return rid, resp
        time.sleep(2.2)  # the dying upstream is skipped for fail_timeout (2 s) after a failure
    raise AssertionError(f"no {method} reached the dying upstream")


def test_a_post_that_reached_a_dying_instance_is_not_replayed_on_another(balancer) -> None:
    base, dying, healthy = balancer
    rid, resp = _until_the_dying_one_reads(base, "POST", dying)
    assert ("POST", rid) not in healthy.seen, "nginx replayed a POST that an instance had already read"
    assert resp.status_code == 502  # the client learns the send failed, and decides (ChatKit: no retry)


def test_an_idempotent_request_is_still_retried_on_the_next_instance(balancer) -> None:
    base, dying, healthy = balancer
    rid, resp = _until_the_dying_one_reads(base, "GET", dying)
    assert ("GET", rid) in healthy.seen and resp.status_code == 200  # resumes move on transparently


def test_a_legacy_send_idempotent_by_client_message_id_is_replayed(balancer) -> None:
    base, dying, healthy = balancer
    rid, resp = _until_the_dying_one_reads(base, "POST", dying, "/api/v1/chat/send")
    assert ("POST", rid) in healthy.seen and resp.status_code == 200
