"""Running the simulator over TCP with uvicorn, able to cut connections for real.

An ASGI app cannot close its connection without answering: uvicorn sends a 500 when the app
raises before the response starts. The simulator's reset and drop scenarios need a real cut,
so it runs on a small subclass of uvicorn's h11 protocol that aborts the TCP connection
(SO_LINGER 0, so the peer sees a reset) when the app raises :class:`SimulatedDisconnect`.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from typing import Any

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from sigmachat.sim.app import SimApp, SimulatedDisconnect


class AbortingH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, plus: ``SimulatedDisconnect`` from the app resets the connection."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        inner = self.app

        async def app(scope: Any, receive: Any, send: Any) -> None:
            try:
                await inner(scope, receive, send)
            except SimulatedDisconnect:
                self._reset_connection()
                # Let connection_lost run so uvicorn sees a disconnect, not a silent app.
                for _ in range(3):
                    await asyncio.sleep(0)

        self.app = app

    def _reset_connection(self) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            except OSError:  # not fatal: the peer then sees a plain close instead of a reset
                pass
        transport.abort()


def uvicorn_config(
    app: SimApp, *, host: str, port: int, log_level: str = "warning", keep_alive_s: int | None = None
) -> uvicorn.Config:
    """``keep_alive_s``: how long an idle connection stays open (None: uvicorn's 5 s). The app's
    upstream client drops idle connections after 5 s too, and a request sent on one as the
    server closed it failed (see the app's HTTP_KEEP_ALIVE_S): the sim CLI passes that setting."""
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        http=AbortingH11Protocol,
        lifespan="on",
        log_level=log_level,
        access_log=False,
        timeout_graceful_shutdown=2,
    )
    if keep_alive_s is not None:
        config.timeout_keep_alive = keep_alive_s
    return config


def serve(
    app: SimApp,
    *,
    host: str = "127.0.0.1",
    port: int = 9100,
    log_level: str = "warning",
    keep_alive_s: int | None = None,
) -> None:
    uvicorn.Server(uvicorn_config(app, host=host, port=port, log_level=log_level, keep_alive_s=keep_alive_s)).run()
