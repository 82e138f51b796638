"""The streaming response both SSE protocols use: sse-starlette's, made cheaper per frame."""

from __future__ import annotations

from sse_starlette import EventSourceResponse
from starlette.types import Message, Send


def sse_frame(data: str, *, event: str | None = None, id: str | None = None, sep: str = "\r\n") -> bytes:
    """The bytes sse-starlette's ``ServerSentEvent(data, event=, id=, sep=).encode()`` writes,
    without its per-frame StringIO and regular expressions (this runs once per token).

    ``data`` must be one line (JSON is: it escapes CR and LF); ``event`` and ``id`` are ours
    and never contain line breaks. EventSourceResponse writes bytes through unchanged.
    """
    head = f"id: {id}{sep}" if id is not None else ""
    if event is not None:
        head += f"event: {event}{sep}"
    return f"{head}data: {data}{sep}{sep}".encode()


class SSEResponse(EventSourceResponse):
    """``EventSourceResponse`` that skips the per-send cancel scope when no send timeout is set.

    sse-starlette wraps every frame's ``send`` in ``anyio.move_on_after(send_timeout)``, even
    for ``None``, which never fires; entering and leaving that scope cost more than the rest of
    the frame's framing (once per token). Disconnects still cancel the stream through the
    response's own task group, as before.
    """

    async def _send_with_timeout(self, send: Send, message: Message) -> None:
        if self.send_timeout is None:
            await send(message)
            return
        await super()._send_with_timeout(send, message)
