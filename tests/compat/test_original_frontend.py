"""Every call the original frontend's chat, feedback and memory services make, with the bodies
they send, against our server; asserting the fields those services read."""

from __future__ import annotations

from tests.compat.original_client import OriginalFrontend
from tests.conftest import HEDGE, HNW, login

CONVERSATION_FIELDS = {"id", "mode", "created_at", "provider", "provider_thread_id"}
MEMORY_FIELDS = {"id", "scope", "content", "tags", "created_at"}
FEEDBACK_FIELDS = {"id", "message_id", "rating", "edited_text", "comment"}


async def _portfolio_ids(client, headers) -> list[str]:
    return [p["id"] for p in (await client.get("/api/v1/portfolios", headers=headers)).json()]


async def test_create_conversation_takes_the_original_bodies(client):
    headers = await login(client, HNW)
    ui = OriginalFrontend(client, headers)
    pids = await _portfolio_ids(client, headers)
    # aiChatService's body, with a field the original clients may add.
    resp = await ui.create_conversation(
        mode="green", portfolio_id=pids[0], portfolio_ids=pids, page_hint="portfolio", route="/portfolio", client_hint=1
    )
    assert resp.status_code == 201, resp.text
    conv = resp.json()
    assert CONVERSATION_FIELDS <= set(conv) and conv["mode"] == "green" and conv["provider"] == "openai"
    assert conv["meta_data"]["portfolio_ids"] == pids and conv["meta_data"]["page_hint"] == "portfolio"
    assert conv["portfolio_id"] == pids[0]
    # chatService's body: a mode and nothing else (the user's portfolio is resolved for it).
    blue = await ui.create_conversation(mode="blue")
    assert blue.status_code == 201 and blue.json()["mode"] == "blue" and blue.json()["portfolio_id"] == pids[0]
    # No body fields at all: mode defaults to green as in the original schema.
    assert (await ui.create_conversation()).json()["mode"] == "green"


async def test_bad_mode_is_422_and_creates_nothing(client):
    headers = await login(client, HNW)
    ui = OriginalFrontend(client, headers)
    resp = await ui.create_conversation(mode="purple")
    assert resp.status_code == 422 and "mode" in resp.text
    assert (await ui.list_conversations()).json() == []


async def test_list_get_mode_change_and_delete_in_the_original_shapes(client):
    headers = await login(client, HNW)
    ui = OriginalFrontend(client, headers)
    ids = [(await ui.create_conversation(mode="green")).json()["id"] for _ in range(3)]
    listed = await ui.list_conversations(limit=10)
    assert listed.status_code == 200 and isinstance(listed.json(), list)
    assert [c["id"] for c in listed.json()] == ids[::-1]
    assert all(CONVERSATION_FIELDS <= set(c) for c in listed.json())
    assert len((await ui.list_conversations(limit=2)).json()) == 2

    got = await ui.get_conversation(ids[0])
    assert got.status_code == 200 and CONVERSATION_FIELDS <= set(got.json())

    for method, mode in (("PATCH", "violet"), ("PUT", "indigo")):
        changed = await ui.update_mode(ids[0], mode, method=method)
        assert changed.status_code == 200, changed.text
        body = changed.json()
        assert set(body) == {"id", "previous_mode", "new_mode", "changed_at"} and body["new_mode"] == mode
    assert body["previous_mode"] == "violet"
    assert (await ui.get_conversation(ids[0])).json()["mode"] == "indigo"
    bad = await ui.update_mode(ids[0], "red", method="PUT")
    assert bad.status_code == 422 and (await ui.get_conversation(ids[0])).json()["mode"] == "indigo"

    gone = await ui.delete_conversation(ids[0])
    assert gone.status_code == 204 and gone.content == b""
    assert (await ui.get_conversation(ids[0])).status_code == 404
    assert [c["id"] for c in (await ui.list_conversations()).json()] == ids[:0:-1]


async def test_another_users_conversation_is_unknown_everywhere(client):
    owner = OriginalFrontend(client, await login(client, HEDGE))
    cid = (await owner.create_conversation(mode="blue")).json()["id"]
    ui = OriginalFrontend(client, await login(client, HNW))
    assert (await ui.get_conversation(cid)).status_code == 404
    assert (await ui.update_mode(cid, "green", method="PUT")).status_code == 404
    assert (await ui.delete_conversation(cid)).status_code == 404
    assert (await owner.get_conversation(cid)).json()["mode"] == "blue"


async def test_send_accepts_the_full_ui_context(client):
    headers = await login(client, HNW)
    ui = OriginalFrontend(client, headers)
    pids = await _portfolio_ids(client, headers)
    conv = (await ui.create_conversation(mode="green", portfolio_id=pids[0])).json()
    context = {
        "page_hint": "portfolio", "route": "/portfolio", "portfolio_id": pids[0], "portfolio_ids": pids,
        "selection": {"symbol": "AAPL", "tag": "tech"},
    }  # fmt: skip
    got = await ui.send(conv["id"], "What is my largest position?", ui_context=context)
    assert got.error is None and got.final_text and got.tool_calls and got.unknown == []


async def test_memory_service_calls_and_shapes(client):
    headers = await login(client, HNW)
    ui = OriginalFrontend(client, headers)
    pid = (await _portfolio_ids(client, headers))[0]
    created = await ui.create_memory(content="I prefer tables over prose.")
    assert created.status_code == 201 and MEMORY_FIELDS <= set(created.json())
    assert created.json()["scope"] == "user" and created.json()["tags"] == {}
    scoped = await ui.create_memory(
        content="This is my retirement account.", scope="portfolio", portfolio_id=pid, tags={"k": "v"}
    )
    assert scoped.status_code == 201 and scoped.json()["tags"] == {"k": "v"}

    listed = (await ui.list_memories()).json()
    assert set(listed) == {"memories", "total", "limit"} and listed["total"] == 2 and listed["limit"] == 50
    assert [m["content"] for m in listed["memories"]] == [
        "This is my retirement account.",
        "I prefer tables over prose.",
    ]
    assert all(MEMORY_FIELDS <= set(m) for m in listed["memories"])
    assert [m["scope"] for m in (await ui.list_memories(scope="portfolio", portfolio_id=pid)).json()["memories"]] == [
        "portfolio"
    ]
    assert (await ui.memory_count()).json() == {"count": 2, "max_allowed": 50}

    assert (await ui.delete_memory(created.json()["id"])).status_code == 204
    assert (await ui.delete_memory(created.json()["id"])).status_code == 404
    assert (await ui.delete_all_memories()).json() == {"deleted": 1}
    assert (await ui.memory_count()).json()["count"] == 0


async def test_bad_memories_are_refused_and_change_nothing(client):
    headers = await login(client, HNW)
    ui = OriginalFrontend(client, headers)
    assert (await ui.create_memory(content="x" * 501)).status_code == 422
    assert (await ui.create_memory(content="   ")).status_code == 422
    assert (await ui.create_memory(content="ok", scope="team")).status_code == 422
    assert (await ui.create_memory(content="ok", scope="portfolio")).status_code == 422
    foreign_pid = (await _portfolio_ids(client, await login(client, HEDGE)))[0]
    assert (await ui.create_memory(content="ok", scope="portfolio", portfolio_id=foreign_pid)).status_code == 404
    assert (await ui.memory_count()).json()["count"] == 0

    for i in range(50):
        assert (await ui.create_memory(content=f"fact number {i}")).status_code == 201
    full = await ui.create_memory(content="one too many")
    assert full.status_code == 409 and "Delete some" in full.json()["error"]["message"]
    assert (await ui.memory_count()).json()["count"] == 50
    # Another user's memory id is unknown to this user, and their list is untouched.
    other = OriginalFrontend(client, await login(client, HEDGE))
    mid = (await ui.list_memories(limit=1)).json()["memories"][0]["id"]
    assert (await other.delete_memory(mid)).status_code == 404
    assert (await other.delete_all_memories()).json() == {"deleted": 0}
    assert (await ui.memory_count()).json()["count"] == 50


async def test_one_conversation_walked_through_as_the_original_frontend_does(client):
    headers = await login(client, HNW)
    ui = OriginalFrontend(client, headers)
    pids = await _portfolio_ids(client, headers)
    conv = (
        await ui.create_conversation(mode="green", portfolio_id=pids[0], page_hint="ai-chat", route="/ai-chat")
    ).json()

    first = await ui.send(
        conv["id"], "What is my largest position and my sector exposure?", ui_context={"page_hint": "ai-chat"}
    )
    assert first.error is None and first.unknown == [] and first.unparsed == []
    assert len(first.tool_calls) >= 2 and sorted(first.tool_calls) == sorted(first.tool_results)
    assert first.final_text == first.text and first.assistant_message_id

    rated = await ui.submit_feedback(first.assistant_message_id, rating="up", comment="clear")
    assert rated.status_code == 200 and rated.json()["rating"] == "up"

    assert (await ui.update_mode(conv["id"], "blue")).json()["new_mode"] == "blue"
    terse = await ui.send(conv["id"], "What is my largest position and my sector exposure?")
    # The quant mode keeps the figures and drops most of the prose.
    assert terse.error is None and len(terse.final_text) < len(first.final_text)

    assert (await ui.create_memory(content="I hold my positions for years.")).status_code == 201
    recalled = await ui.send(conv["id"], "What do you remember about me?")
    assert "I hold my positions for years." in recalled.final_text
    assert (await ui.memory_count()).json()["count"] == 1

    listed = (await ui.list_conversations()).json()
    assert listed[0]["id"] == conv["id"] and listed[0]["mode"] == "blue"
    assert (await ui.get_feedback(first.assistant_message_id)).json()["comment"] == "clear"
    assert (await ui.delete_conversation(conv["id"])).status_code == 204
    assert (await ui.list_conversations()).json() == []
    # Its messages went with it: their feedback is now unknown.
    assert (await ui.get_feedback(first.assistant_message_id)).status_code == 404


def _shown_text(resp, fallback: str) -> str:
    """What the original services show for a failed call: ``error.detail || '<fallback>'``."""
    detail = resp.json().get("detail")
    return detail if isinstance(detail, str) and detail else fallback


async def test_original_services_show_our_error_message(client):
    """Each error family (validation, not found, our own AppError, the body limit) carries its
    message where the original frontend reads it, equal to our own ``error.message``."""
    headers = await login(client, HNW)
    ui = OriginalFrontend(client, headers)
    cases = [
        await ui.create_conversation(mode="purple"),  # 422 from request validation
        await ui.get_conversation("00000000-0000-0000-0000-000000000000"),  # 404 from a service
        await client.get("/api/v1/chat/no-such-route", headers=headers),  # 404 from routing
        await client.post(
            "/api/v1/chat/conversations",
            headers={**headers, "Content-Type": "application/json"},
            content=b'{"mode": "' + b"x" * 2_000_000 + b'"}',
        ),  # 413 from the body-size limit
    ]
    for resp in cases:
        assert resp.status_code >= 400
        body = resp.json()
        shown = _shown_text(resp, "Failed to create conversation")
        assert shown == body["error"]["message"] and shown != "Failed to create conversation", body
    assert [r.status_code for r in cases] == [422, 404, 404, 413]
