"""SSEResponse: no ping follows a stream's final frame, whenever the ping falls due."""

from __future__ import annotations

import asyncio

from sigmachat.protocols.sse_response import NO_PING, SSEResponse

PING = b": ping\n\n"
LAST = b"data: done\n\n"


async def _body(frames, ping_factory, *, slow_send_of: bytes | None = None) -> list[bytes]:
    """The body chunks an SSEResponse sends for ``frames`` with a ping due every 10 ms.
    ``slow_send_of``: that chunk's send waits 100 ms, as a write to a slow client does."""
    sent: list[bytes] = []

    async def send(message):
        if message["type"] == "http.response.body":
            sent.append(message["body"])
            if message["body"] == slow_send_of:
                await asyncio.sleep(0.1)

    async def receive():
        await asyncio.Event().wait()  # the client never disconnects

    response = SSEResponse(frames, ping=0.01, ping_message_factory=ping_factory)
    await response({"type": "http", "method": "GET"}, receive, send)
    return sent


def _after_last(sent: list[bytes]) -> list[bytes]:
    return sent[sent.index(LAST) + 1 :]


async def test_a_ping_building_as_the_final_frame_is_ready_goes_before_it():
    # The final frame becomes ready while the ping is being built: anyio's lock used to yield
    # to the loop right after the ping took it, the final frame went out then, and the ping
    # followed it.
    ready = asyncio.Event()

    def ping() -> bytes:
        ready.set()
        return PING

    async def frames():
        yield b"data: 1\n\n"
        await ready.wait()
        yield LAST

    sent = await _body(frames(), ping)
    assert sent.count(PING) == 1
    assert _after_last(sent) == [b""]  # only the body's end


async def test_no_ping_follows_a_final_frame_held_up_by_a_slow_client():
    ended = False

    async def frames():
        nonlocal ended
        yield b"data: 1\n\n"
        ended = True
        yield LAST

    sent = await _body(frames(), lambda: NO_PING if ended else PING, slow_send_of=LAST)
    assert _after_last(sent) == [b""]
    assert NO_PING not in sent[:-1]  # an empty chunk is never written


async def test_pings_flow_until_the_final_frame():
    async def frames():
        yield b"data: 1\n\n"
        await asyncio.sleep(0.2)
        yield LAST

    sent = await _body(frames(), lambda: PING)
    assert sent.count(PING) >= 3
    assert _after_last(sent) == [b""]


async def test_without_no_ping_a_slow_final_send_is_followed_by_pings():
    # The control for the test above: the pings that NO_PING suppresses are really due.
    async def frames():
        yield b"data: 1\n\n"
        yield LAST

    assert PING in _after_last(await _body(frames(), lambda: PING, slow_send_of=LAST))
