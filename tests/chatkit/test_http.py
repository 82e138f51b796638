"""POST /chatkit end to end through the app, with the offline analyst model (no network)."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from sigmachat.db.models import Message
from sigmachat.tools.registry import tool_title
from tests.chatkit.helpers import add_message, compact, create, parse_sse, req
from tests.conftest import BASE_URL, HNW, INDIVIDUAL, login
from tests.sse import parse as parse_legacy

QUESTION = "What is my largest position?"


async def chatkit(client, headers, body: bytes, **extra_headers):
    return await client.post(
        "/chatkit", content=body, headers={**headers, "Content-Type": "application/json", **extra_headers}
    )


async def largest_symbol(client, headers) -> str:
    pf = (await client.get("/api/v1/portfolios", headers=headers)).json()[0]
    return (await client.get(f"/api/v1/portfolios/{pf['id']}", headers=headers)).json()["holdings"][0]["symbol"]


async def test_done_when_threads_create_answers_the_largest_position(client):
    headers = await login(client, HNW)
    resp = await chatkit(client, headers, create(QUESTION))
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/event-stream")
    run_id = resp.headers["x-run-id"]
    assert run_id.startswith("run_")
    frames = parse_sse(resp.text)  # every frame validates as a ThreadStreamEvent
    kinds = compact(frames)
    assert kinds[:3] == ["thread.created", "thread.item.done:user_message", "stream_options"]
    assert kinds[-3:] == [
        "thread.item.updated:assistant_message.content_part.text_delta",
        "thread.item.done:assistant_message",
        "thread.updated",
    ]
    assert "thread.item.added:workflow" in kinds and "thread.item.done:workflow" in kinds
    assert kinds.index("thread.item.done:workflow") < kinds.index("thread.item.added:assistant_message")
    ids = [f.id for f in frames if f.id]
    assert ids and all(i.startswith(f"{run_id}:") for i in ids)
    seqs = [int(i.rsplit(":", 1)[1]) for i in ids]
    assert seqs == sorted(set(seqs))
    answer = [f.event.item for f in frames if f.type == "thread.item.done"][-1]
    deltas = "".join(
        f.event.update.delta
        for f in frames
        if f.type == "thread.item.updated" and f.event.update.type.endswith("text_delta")
    )
    assert answer.content[0].text == deltas
    symbol = await largest_symbol(client, headers)
    assert symbol in answer.content[0].text
    workflow = [f.event.item for f in frames if f.type == "thread.item.done" and f.event.item.type == "workflow"][0]
    assert all(t.status_indicator == "complete" and t.content for t in workflow.workflow.tasks)
    assert workflow.workflow.summary is not None

    thread_id = frames[0].event.thread.id
    listed = (await chatkit(client, headers, req("threads.list", limit=10))).json()
    assert thread_id in [t["id"] for t in listed["data"]]
    assert listed["data"][0]["title"] == QUESTION

    messages = (await client.get(f"/api/v1/chat/conversations/{thread_id}/messages", headers=headers)).json()[
        "messages"
    ]
    assert [m["role"] for m in messages] == ["user", "assistant"]
    assert messages[0]["content"] == QUESTION and messages[0]["id"] == frames[1].event.item.id
    assert messages[1]["id"] == answer.id and messages[1]["content"] == answer.content[0].text
    assert messages[1]["status"] == "complete" and messages[1]["engine"] == "agents" and messages[1]["run_id"] == run_id
    assert messages[1]["tool_calls"] and messages[1]["offline"] is True
    # The thread is an ordinary conversation too.
    conv = (await client.get(f"/api/v1/chat/conversations/{thread_id}", headers=headers)).json()
    assert conv["title"] == QUESTION


async def test_a_chatkit_run_can_be_resumed_on_the_legacy_stream(client):
    headers = await login(client, HNW)
    resp = await chatkit(client, headers, create(QUESTION))
    run_id = resp.headers["x-run-id"]
    legacy = await client.get(f"/api/v1/chat/runs/{run_id}/stream", headers={**headers, "Last-Event-ID": f"{run_id}:3"})
    assert legacy.status_code == 200
    frames = parse_legacy(legacy.text)
    assert frames[0].data["seq"] == 4 and frames[-1].event == "done"
    other = await login(client, INDIVIDUAL)
    assert (await client.get(f"/api/v1/chat/runs/{run_id}/stream", headers=other)).status_code == 404


async def test_history_continuity_responses_to_chatkit_to_responses(client):
    headers = await login(client, HNW)
    conv = (await client.post("/api/v1/chat/conversations", json={}, headers=headers)).json()
    sent = await client.post(
        "/api/v1/chat/send", json={"conversation_id": conv["id"], "text": QUESTION}, headers=headers
    )
    assert parse_legacy(sent.text)[-1].event == "done"

    # The Responses-path conversation opens in ChatKit with its whole history, tool steps included.
    thread = (await chatkit(client, headers, req("threads.get_by_id", thread_id=conv["id"]))).json()
    assert [i["type"] for i in thread["items"]["data"]] == ["user_message", "workflow", "assistant_message"]
    assert thread["items"]["data"][0]["content"][0]["text"] == QUESTION
    assert all(t["status_indicator"] == "complete" for t in thread["items"]["data"][1]["workflow"]["tasks"])

    # ... and continues there.
    resp = await chatkit(client, headers, add_message(conv["id"], "What is my sector exposure?"))
    assert resp.status_code == 200 and compact(parse_sse(resp.text))[-1] == "thread.item.done:assistant_message"

    # ... and back on the Responses path, which sees the ChatKit turn as history.
    sent = await client.post(
        "/api/v1/chat/send", json={"conversation_id": conv["id"], "text": "Thanks, and my volatility?"}, headers=headers
    )
    assert parse_legacy(sent.text)[-1].event == "done"
    messages = (await client.get(f"/api/v1/chat/conversations/{conv['id']}/messages", headers=headers)).json()[
        "messages"
    ]
    assert [(m["role"], m["engine"]) for m in messages] == [
        ("user", None), ("assistant", "responses"),
        ("user", None), ("assistant", "agents"),
        ("user", None), ("assistant", "responses"),
    ]  # fmt: skip
    assert all(m["status"] == "complete" for m in messages)
    from sigmachat.chat.conversations import history_from_messages

    services = client._transport.app.state.services
    async with services.db.session() as session:
        rows = (await session.execute(
            select(Message).where(Message.conversation_id == conv["id"]).order_by(Message.created_at, Message.id)
        )).scalars().all()  # fmt: skip
    turns = history_from_messages(list(rows))
    assert [t.role for t in turns] == ["user", "assistant"] * 3
    assert turns[3].tool_calls and all(tc.output for tc in turns[3].tool_calls)  # the ChatKit turn's tool outputs
    items = (await chatkit(client, headers, req("items.list", thread_id=conv["id"], order="asc", limit=50))).json()[
        "data"
    ]
    assert [i["type"] for i in items] == ["user_message", "workflow", "assistant_message"] * 3


async def test_failures_outside_the_stream_are_json_4xx(client):
    headers = await login(client, HNW)
    cases = [
        (req("threads.get_by_id", thread_id="thr_nope"), 404, "not_found"),
        (add_message("thr_nope", "hi"), 404, "not_found"),
        (b"{oops", 400, "bad_request"),
        (b'{"type": "threads.teleport", "params": {}}', 400, "not_supported"),
        (req("attachments.create", name="a.png", size=1, mime_type="image/png"), 400, "not_supported"),
        (req("threads.custom_action", thread_id="thr_x", action={"type": "a", "payload": {}}), 400, "not_supported"),
        (create("x" * 4001), 422, "validation_error"),
    ]
    for body, status, code in cases:
        resp = await chatkit(client, headers, body)
        assert resp.status_code == status, (body, resp.text)
        assert resp.headers["content-type"].startswith("application/json")
        assert resp.json()["error"]["code"] == code
    client.cookies.clear()
    resp = await client.post("/chatkit", content=create())
    assert resp.status_code == 401 and resp.json()["error"]["code"] == "not_authenticated"


async def test_portfolio_header_is_checked_for_ownership(client):
    headers = await login(client, HNW)
    other = await login(client, INDIVIDUAL)
    foreign = (await client.get("/api/v1/portfolios", headers=other)).json()[0]["id"]
    resp = await chatkit(client, headers, create(QUESTION), **{"X-Portfolio-Id": foreign})
    assert resp.status_code == 404 and resp.json()["error"]["code"] == "not_found"
    own = (await client.get("/api/v1/portfolios", headers=headers)).json()[0]["id"]
    resp = await chatkit(client, headers, create(QUESTION), **{"X-Portfolio-Id": own})
    assert resp.status_code == 200


async def test_cookie_posts_need_a_same_origin(client):
    client.cookies.clear()
    login_resp = await client.post("/api/v1/auth/login", json={"email": HNW, "password": "demo12345"})
    assert login_resp.status_code == 200
    resp = await client.post("/chatkit", content=req("threads.list"), headers={"Content-Type": "application/json"})
    assert resp.status_code == 403 and resp.json()["error"]["code"] == "csrf_rejected"
    resp = await client.post("/chatkit", content=req("threads.list"), headers={"Origin": BASE_URL})
    assert resp.status_code == 200 and "data" in resp.json()


async def test_second_user_is_isolated_over_http(client):
    alice = await login(client, HNW)
    bob = await login(client, INDIVIDUAL)
    frames = parse_sse((await chatkit(client, alice, create(QUESTION))).text)
    thread_id = frames[0].event.thread.id
    user_item = frames[1].event.item.id
    for body in (
        req("threads.get_by_id", thread_id=thread_id),
        req("items.list", thread_id=thread_id),
        req("threads.update", thread_id=thread_id, title="mine"),
        req("threads.delete", thread_id=thread_id),
        req("items.feedback", thread_id=thread_id, item_ids=[user_item], kind="positive"),
        add_message(thread_id, "leak it"),
        req("threads.retry_after_item", thread_id=thread_id, item_id=user_item),
    ):
        resp = await chatkit(client, bob, body)
        assert resp.status_code == 404, body
    assert thread_id not in [t["id"] for t in (await chatkit(client, bob, req("threads.list"))).json()["data"]]
    assert (await client.get(f"/api/v1/chat/conversations/{thread_id}/messages", headers=bob)).status_code == 404
    thread = (await chatkit(client, alice, req("threads.get_by_id", thread_id=thread_id))).json()
    assert thread["title"] == QUESTION and len(thread["items"]["data"]) == 3


@pytest.mark.parametrize("order", ["asc", "desc"])
async def test_items_paging_over_http(client, order):
    headers = await login(client, HNW)
    frames = parse_sse((await chatkit(client, headers, create(QUESTION))).text)
    thread_id = frames[0].event.thread.id
    await chatkit(client, headers, add_message(thread_id, "And my sector exposure?"))
    everything = (await chatkit(client, headers, req("items.list", thread_id=thread_id, order=order, limit=50))).json()[
        "data"
    ]
    seen, after = [], None
    while True:
        params = {"thread_id": thread_id, "order": order, "limit": 2, **({"after": after} if after else {})}
        page = (await chatkit(client, headers, req("items.list", **params))).json()
        seen += [i["id"] for i in page["data"]]
        if not page["has_more"]:
            break
        after = page["after"]
    assert seen == [i["id"] for i in everything] and len(seen) == 6


async def test_feedback_update_and_delete_over_http(client):
    headers = await login(client, HNW)
    frames = parse_sse((await chatkit(client, headers, create(QUESTION))).text)
    thread_id = frames[0].event.thread.id
    answer_id = [f.event.item.id for f in frames if f.type == "thread.item.done"][-1]
    assert (
        await chatkit(
            client, headers, req("items.feedback", thread_id=thread_id, item_ids=[answer_id], kind="positive")
        )
    ).json() == {}
    messages = (await client.get(f"/api/v1/chat/conversations/{thread_id}/messages", headers=headers)).json()[
        "messages"
    ]
    assert messages[1]["feedback"] == "positive"
    renamed = (
        await chatkit(client, headers, req("threads.update", thread_id=thread_id, title="Largest holding"))
    ).json()
    assert renamed["title"] == "Largest holding"
    assert (await chatkit(client, headers, req("threads.delete", thread_id=thread_id))).json() == {}
    assert (await client.get(f"/api/v1/chat/conversations/{thread_id}", headers=headers)).status_code == 404


async def test_same_question_same_tools_on_both_engines(client):
    """The offline model picks tools by intent; both engines must hand it the same conversation."""
    headers = await login(client, HNW)
    questions = [
        QUESTION,
        "Show my sector exposure",
        "How volatile is my portfolio?",
        "Run a stress test",
        "What are my factor exposures?",
        "How concentrated am I?",
    ]
    runs = client._transport.app.state.services.runs

    async def tools_of(run_id: str) -> list[str]:
        return [e.name for e in await runs.events.read(run_id) if e.type == "tool_started"]

    for question in questions:
        conv = (await client.post("/api/v1/chat/conversations", json={}, headers=headers)).json()
        legacy = parse_legacy(
            (
                await client.post(
                    "/api/v1/chat/send", json={"conversation_id": conv["id"], "text": question}, headers=headers
                )
            ).text
        )
        resp = await chatkit(client, headers, create(question))
        responses_tools = await tools_of(legacy[0].data["run_id"])
        agents_tools = await tools_of(resp.headers["x-run-id"])
        assert responses_tools, question
        assert agents_tools == responses_tools, question
        # ... and the ChatKit workflow shows them in that order.
        frames = parse_sse(resp.text)
        tasks = [
            t.title
            for f in frames
            if f.type == "thread.item.done" and f.event.item.type == "workflow"
            for t in f.event.item.workflow.tasks
        ]
        assert tasks == [tool_title(n) for n in responses_tools]


async def test_chatkit_resume_replays_the_same_frames_after_a_sequence(client):
    headers = await login(client, HNW)
    resp = await chatkit(client, headers, create(QUESTION))
    run_id = resp.headers["x-run-id"]
    original = parse_sse(resp.text)
    cut = next(i for i, f in enumerate(original) if f.id == f"{run_id}:3")
    expected = [f for f in original[cut + 1 :] if f.type != "thread.updated"]  # thread.updated is the SDK's own
    resumed = await client.get(f"/chatkit/runs/{run_id}/stream", headers={**headers, "Last-Event-ID": f"{run_id}:3"})
    assert resumed.status_code == 200 and resumed.headers["x-run-id"] == run_id
    frames = parse_sse(resumed.text)
    assert [(f.id, f.event) for f in frames] == [(f.id, f.event) for f in expected]
    assert (await client.get(f"/chatkit/runs/{run_id}/stream?after=0", headers=headers)).status_code == 200
    other = await login(client, INDIVIDUAL)
    assert (await client.get(f"/chatkit/runs/{run_id}/stream", headers=other)).status_code == 404
    # A legacy-path run is not a ChatKit run.
    conv = (await client.post("/api/v1/chat/conversations", json={}, headers=headers)).json()
    sent = parse_legacy(
        (
            await client.post("/api/v1/chat/send", json={"conversation_id": conv["id"], "text": "hi"}, headers=headers)
        ).text
    )
    assert (await client.get(f"/chatkit/runs/{sent[0].data['run_id']}/stream", headers=headers)).status_code == 404


async def test_x_disconnect_takes_only_continue_or_cancel(client):
    headers = await login(client)
    resp = await client.post("/chatkit", content=create("hi"), headers={**headers, "X-Disconnect": "sometimes"})
    assert resp.status_code == 422 and resp.json()["error"]["code"] == "validation_error"
    threads = await client.post("/chatkit", content=req("threads.list"), headers=headers)
    assert json.loads(threads.text)["data"] == []  # nothing was created
