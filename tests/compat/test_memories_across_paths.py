"""A memory saved on one path changes the next answer on the other path, on the offline model
and on the simulator (over HTTP, both engines): the agent's context really carries it."""

from __future__ import annotations

import json

from tests.chat.test_faults import sim_client  # noqa: F401  (fixture: the app over the simulator)
from tests.chatkit.helpers import add_message, create, parse_sse
from tests.compat.original_client import OriginalFrontend
from tests.conftest import HEDGE, HNW, login

RECALL = "What do you remember about me?"


async def _chatkit_answer(client, headers, body: bytes, **extra_headers) -> tuple[str, str]:
    """(thread id, the assistant's final text) of one ChatKit turn."""
    resp = await client.post("/chatkit", content=body, headers={**headers, **extra_headers})
    assert resp.status_code == 200, resp.text
    frames = parse_sse(resp.text)
    done = [f.event.item for f in frames if f.type == "thread.item.done" and f.event.item.type == "assistant_message"]
    assert done, [f.type for f in frames]
    thread_id = (
        next(f.event.thread.id for f in frames if f.type == "thread.created") if b"threads.create" in body else ""
    )
    return thread_id, done[-1].content[0].text


async def test_offline_memory_saved_on_legacy_changes_the_chatkit_answer(client):
    headers = await login(client, HNW)
    _, before = await _chatkit_answer(client, headers, create(RECALL))
    assert "not asked me to remember anything" in before

    legacy = OriginalFrontend(client, headers)
    conv = (await legacy.create_conversation(mode="green")).json()
    saved = await legacy.send(conv["id"], "Remember that I am saving for a house in 2030.")
    assert saved.tool_calls == ["remember"] and "I am saving for a house in 2030" in saved.final_text
    listed = (await legacy.list_memories()).json()
    assert [m["content"] for m in listed["memories"]] == ["I am saving for a house in 2030"]

    thread_id, after = await _chatkit_answer(client, headers, create(RECALL))
    assert "I am saving for a house in 2030" in after
    # Another user's agent never sees it.
    _, other = await _chatkit_answer(client, await login(client, HEDGE), create(RECALL))
    assert "house" not in other

    # The other direction: saved through ChatKit's agent, read on the legacy path.
    await _chatkit_answer(client, headers, add_message(thread_id, "Remember that I dislike leverage."))
    recalled = await legacy.send(conv["id"], RECALL)
    assert "I dislike leverage" in recalled.final_text and "I am saving for a house in 2030" in recalled.final_text
    # Deleting a memory takes it out of the context.
    first = next(m for m in (await legacy.list_memories()).json()["memories"] if "house" in m["content"])
    assert (await legacy.delete_memory(first["id"])).status_code == 204
    _, later = await _chatkit_answer(client, headers, create(RECALL))
    assert "house" not in later and "I dislike leverage" in later


async def test_simulator_sees_memories_and_mode_on_both_engines(sim_client):  # noqa: F811
    client = sim_client
    headers = await login(client, HNW)
    legacy = OriginalFrontend(client, headers)
    echo = {"X-Sim-Scenario": "echo_context"}
    conv = (await legacy.create_conversation(mode="blue")).json()

    _, before = await _chatkit_answer(client, headers, create("Hello"), **echo)
    assert before == "Mode: green. Memories: none."

    # Saved on the legacy path (the simulator's model calls remember), read by the ChatKit engine.
    saved = await legacy.send(conv["id"], "Remember that my benchmark is the S&P 500.")
    assert saved.tool_calls == ["remember"] and saved.error is None
    thread_id, after = await _chatkit_answer(client, headers, create("Hello"), **echo)
    assert after == "Mode: green. Memories: my benchmark is the S&P 500."

    # The legacy conversation's mode reaches the Responses engine; a mode change on the ChatKit
    # thread (the same record) reaches the Agents engine from its next turn.
    resp = await client.post(
        "/api/v1/chat/send", json={"conversation_id": conv["id"], "text": "Hello"}, headers={**headers, **echo}
    )
    assert '"final_text":"Mode: blue. Memories: my benchmark is the S&P 500."' in resp.text
    assert (await legacy.update_mode(thread_id, "violet", method="PUT")).status_code == 200
    _, changed = await _chatkit_answer(client, headers, add_message(thread_id, "Hello"), **echo)
    assert changed.startswith("Mode: violet.")


async def test_a_new_chatkit_thread_takes_its_mode_from_the_request_metadata(sim_client):  # noqa: F811
    """threads.create's metadata.mode applies from the thread's first answer (ChatKit has no field
    for it); an unknown mode is a 422 and creates no thread."""
    client = sim_client
    headers = await login(client, HNW)
    echo = {"X-Sim-Scenario": "echo_context"}
    body = json.loads(create("Hello"))
    thread_id, first = await _chatkit_answer(
        client, headers, json.dumps({**body, "metadata": {"mode": "indigo"}}).encode(), **echo
    )
    assert first.startswith("Mode: indigo.")
    conv = await OriginalFrontend(client, headers).get_conversation(thread_id)
    assert conv.json()["mode"] == "indigo"

    before = (await client.get("/api/v1/chat/conversations", headers=headers)).json()
    bad = await client.post("/chatkit", content=json.dumps({**body, "metadata": {"mode": "purple"}}), headers=headers)
    assert bad.status_code == 422 and "metadata.mode" in bad.json()["error"]["message"]
    assert (await client.get("/api/v1/chat/conversations", headers=headers)).json() == before
