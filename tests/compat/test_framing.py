"""The legacy stream's bytes, read exactly as the original chat service reads them."""

from __future__ import annotations

from tests.compat.original_client import (
    OriginalFrontend,
    StreamResult,
    handle,
    read_frames,
)
from tests.conftest import HNW, login


def _read_in_chunks(raw: str, size: int) -> StreamResult:
    """Feed the body in fixed-size chunks, as a network would split it."""
    result = StreamResult()
    buffer = ""
    for i in range(0, len(raw), size):
        buffer += raw[i : i + size]
        frames, buffer, bad = read_frames(buffer)
        result.unparsed += bad
        for event, data in frames:
            handle(result, event, data)
    return result


async def test_the_original_parser_reads_every_token_tool_and_done_from_our_stream(client):
    headers = await login(client, HNW)
    ui = OriginalFrontend(client, headers)
    conv = (await ui.create_conversation(mode="green")).json()
    resp = await client.post(
        "/api/v1/chat/send",
        json={"conversation_id": conv["id"], "text": "What is my largest position?"},
        headers={**headers, "Accept": "text/event-stream"},
    )
    assert resp.status_code == 200
    raw = resp.content.decode()
    # Lines end with \n only: with sse-starlette's default \r\n the original splits nothing.
    assert "\r" not in raw and raw.endswith("\n\n")
    for size in (len(raw), 7, 1):
        got = _read_in_chunks(raw, size)
        assert got.unparsed == [] and got.unknown == [] and got.error is None
        assert got.assistant_message_id and got.run_id
        assert len(got.tokens) >= 2 and got.final_text == got.text
        assert got.tool_calls and sorted(got.tool_calls) == sorted(got.tool_results)
        assert got.done["data"]["tool_calls_count"] == len(got.tool_calls)


async def test_the_streaming_client_gets_the_same_answer_as_the_saved_message(client):
    headers = await login(client, HNW)
    ui = OriginalFrontend(client, headers)
    conv = (await ui.create_conversation(mode="green")).json()
    got = await ui.send(conv["id"], "What is my sector exposure?")
    assert got.final_text and got.final_text == got.text
    messages = (await client.get(f"/api/v1/chat/conversations/{conv['id']}/messages", headers=headers)).json()[
        "messages"
    ]
    saved = next(m for m in messages if m["id"] == got.assistant_message_id)
    assert saved["content"] == got.final_text and saved["role"] == "assistant"
