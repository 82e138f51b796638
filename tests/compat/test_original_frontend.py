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
