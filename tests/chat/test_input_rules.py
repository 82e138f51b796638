"""Rules a send must pass on both protocols before anything is written: a conversation belongs to
one portfolio (409 portfolio_mismatch), a blank message is refused (422)."""

from __future__ import annotations

from sqlalchemy import select

from sigmachat.db.models import Conversation, Message
from tests.chatkit.helpers import add_message, create, parse_sse
from tests.conftest import FAMILY, login
from tests.sse import parse


async def _portfolios(client, headers) -> list[str]:
    rows = (await client.get("/api/v1/portfolios", headers=headers)).json()
    assert len(rows) == 2  # the family office has two portfolios
    return [r["id"] for r in rows]


async def _messages(services, conversation_id: str) -> list[Message]:
    async with services.db.session() as s:
        return list((await s.execute(select(Message).where(Message.conversation_id == conversation_id))).scalars())


async def _chatkit(client, headers, body: bytes, **extra):
    return await client.post(
        "/chatkit",
        content=body,
        headers={**headers, "Content-Type": "application/json", **extra},
    )


async def test_legacy_send_naming_another_portfolio_is_409_and_writes_nothing(client, services):
    headers = await login(client, FAMILY)
    first, second = await _portfolios(client, headers)
    conv = (await client.post("/api/v1/chat/conversations", json={"portfolio_id": first}, headers=headers)).json()
    body = {
        "conversation_id": conv["id"],
        "text": "What is my largest position?",
        "ui_context": {"portfolio_id": second},
    }
    resp = await client.post("/api/v1/chat/send", json=body, headers=headers)
    assert resp.status_code == 409
    error = resp.json()["error"]
    assert error["code"] == "portfolio_mismatch" and "another portfolio" in error["message"]
    assert error["details"] == {
        "conversation_portfolio_id": first,
        "requested_portfolio_id": second,
    }
    assert await _messages(services, conv["id"]) == []
    # The same send with the conversation's own portfolio goes through.
    body["ui_context"] = {"portfolio_id": first}
    resp = await client.post("/api/v1/chat/send", json=body, headers=headers)
    assert resp.status_code == 200 and parse(resp.text)[-1].event == "done"
    async with services.db.session() as s:
        assert (await s.get(Conversation, conv["id"])).portfolio_id == first


async def test_chatkit_message_with_another_portfolio_header_is_409_and_writes_nothing(client, services):
    headers = await login(client, FAMILY)
    first, second = await _portfolios(client, headers)
    resp = await _chatkit(
        client,
        headers,
        create("What is my largest position?"),
        **{"X-Portfolio-Id": first},
    )
    assert resp.status_code == 200
    thread_id = parse_sse(resp.text)[0].event.thread.id
    before = len(await _messages(services, thread_id))
    resp = await _chatkit(
        client,
        headers,
        add_message(thread_id, "and the second largest?"),
        **{"X-Portfolio-Id": second},
    )
    assert resp.status_code == 409 and resp.headers["content-type"].startswith("application/json")
    assert resp.json()["error"]["code"] == "portfolio_mismatch"
    assert len(await _messages(services, thread_id)) == before
    async with services.db.session() as s:
        assert (await s.get(Conversation, thread_id)).portfolio_id == first
    resp = await _chatkit(
        client,
        headers,
        add_message(thread_id, "and the second largest?"),
        **{"X-Portfolio-Id": first},
    )
    assert resp.status_code == 200


async def test_blank_text_is_422_on_both_protocols_and_changes_nothing(client, services):
    headers = await login(client, FAMILY)
    conv = (await client.post("/api/v1/chat/conversations", json={}, headers=headers)).json()
    for text in ("   ", "\n\t \n", "\u00a0 "):
        resp = await client.post(
            "/api/v1/chat/send",
            json={"conversation_id": conv["id"], "text": text},
            headers=headers,
        )
        assert resp.status_code == 422, text
        assert resp.json()["error"]["code"] == "validation_error"
        assert "empty" in resp.text
    assert await _messages(services, conv["id"]) == []
    resp = await _chatkit(client, headers, create("   "))
    assert resp.status_code == 422 and resp.json()["error"]["code"] == "validation_error"
    resp = await _chatkit(client, headers, add_message(conv["id"], " \n "))
    assert resp.status_code == 422
    assert await _messages(services, conv["id"]) == []
