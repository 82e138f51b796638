"""One owner per row: the run manager writes a run's rows, on both protocols, each exactly once.

The writes are counted on the real database engine (``tests.writes``), with the module that
issued each statement. Before this contract, a ChatKit run's answer row was written by the run
manager and again by the ChatKit store (the SDK's upserts), and its tool calls twice.
"""

from __future__ import annotations

import json

from tests.chatkit.conftest import build_runtime
from tests.chatkit.helpers import add_message, create
from tests.conftest import HNW, login
from tests.writes import count_writes

RUN_MANAGER = "runs/manager.py"


async def _stream(rt, body: bytes) -> str:
    handle = await rt.server.handle(body, rt.ctx())
    frames = [json.loads(data) async for _tag, data in handle.frames]
    await rt.manager.wait_finished(handle.run_id, 5)
    return frames[0]["thread"]["id"] if frames[0]["type"] == "thread.created" else ""


async def test_chatkit_run_rows_have_one_writer_each(services):
    rt = await build_runtime(services)
    with count_writes(services.db) as first:
        thread_id = await _stream(rt, create("What is my largest position?"))
    # The question and the answer: inserted once each, the answer updated (saved while it is
    # written, about once a second, then finished), all by the run manager.
    assert first.owners("messages") == {RUN_MANAGER}
    assert first.count("messages", "INSERT") == 2 and first.count("messages", "UPDATE") >= 1
    # The thread is the store's (the SDK creates it); its title is set once, by the run manager,
    # and the SDK's save of the titled thread at the end of the stream writes nothing.
    assert first.count("conversations", "INSERT", owner="store/chatkit_store.py") == 1
    assert first.count("conversations", "UPDATE", owner="store/chatkit_store.py") == 0

    with count_writes(services.db) as second:
        await _stream(rt, add_message(thread_id, "And my second largest?"))
    assert second.owners("messages") == {RUN_MANAGER}
    assert second.count("messages", "INSERT") == 2 and second.count("messages", "UPDATE") >= 1
    assert second.count(owner="store/chatkit_store.py") == 0
    await rt.manager.shutdown(5)


async def test_legacy_run_rows_have_one_writer_each(client, app):
    headers = await login(client, HNW)
    conv = (await client.post("/api/v1/chat/conversations", json={}, headers=headers)).json()
    with count_writes(app.state.services.db) as writes:
        resp = await client.post(
            "/api/v1/chat/send",
            json={"conversation_id": conv["id"], "text": "What is my largest position?"},
            headers=headers,
        )
        assert resp.status_code == 200
        await app.state.services.runs.wait_finished(resp.headers["x-run-id"], 10)
    assert writes.owners("messages") == {RUN_MANAGER}
    assert writes.count("messages", "INSERT") == 2 and writes.count("messages", "UPDATE") >= 1
