"""The cluster soak's ChatKit client keeps what it has seen across a resume."""

from __future__ import annotations

import json
import random
from collections.abc import AsyncIterator

import httpx2

from sigmachat.bench.cluster_soak import ClusterClient, Turn

SSE = "text/event-stream"
DONE = {
    "type": "thread.item.done",
    "item": {"type": "assistant_message", "id": "msg_1", "content": [{"type": "output_text", "text": "Hi."}]},
}


def _frame(seq: int, event: dict) -> bytes:
    return f"id: run_1:{seq}\ndata: {json.dumps(event)}\n\n".encode()


class _CutAfter(httpx2.AsyncByteStream):
    """The answer's frames, then the connection drops before the stream's end."""

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield _frame(1, {"type": "thread.item.updated", "update": {"type": "assistant_message.content_part.text_delta",
                                                                   "delta": "Hi."}})  # fmt: skip
        yield _frame(2, DONE)
        yield _frame(3, {"type": "thread.updated"})
        raise httpx2.ReadError("connection reset")


async def test_an_answer_done_before_the_stream_broke_is_complete_after_the_resume() -> None:
    resumes: list[str] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        if request.method == "POST":
            return httpx2.Response(200, headers={"x-run-id": "run_1", "content-type": SSE}, stream=_CutAfter())
        resumes.append(request.headers["Last-Event-ID"])
        return httpx2.Response(
            200, headers={"content-type": SSE}, content=b""
        )  # nothing after the last id: the run had ended

    async with httpx2.AsyncClient(transport=httpx2.MockTransport(handler)) as http:
        client = ClusterClient(http, "http://app", {"u": "token"}, random.Random(1))
        client._pause = _no_pause  # type: ignore[method-assign]
        turn = Turn("chatkit", "u", "Hello?", None)
        await client.chatkit(turn)
    assert turn.outcome == "complete" and turn.final_text == turn.received == "Hi."
    assert resumes == ["run_1:3"] and turn.drops == 1


async def _no_pause() -> None:
    return None
