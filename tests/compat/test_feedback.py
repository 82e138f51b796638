"""Message feedback: the original API and ChatKit's items.feedback write one record, shown in
history and counted per path by the comparison report."""

from __future__ import annotations

import datetime as dt

from sigmachat.telemetry.report import build_report
from tests.chatkit.helpers import create, parse_sse, req
from tests.compat.original_client import OriginalFrontend
from tests.conftest import HEDGE, HNW, login


async def _answer(client, headers) -> tuple[OriginalFrontend, str, str]:
    ui = OriginalFrontend(client, headers)
    conv = (await ui.create_conversation(mode="green")).json()
    got = await ui.send(conv["id"], "What is my largest position?")
    assert got.assistant_message_id and got.final_text
    return ui, conv["id"], got.assistant_message_id


async def _history(client, headers, conversation_id):
    resp = await client.get(f"/api/v1/chat/conversations/{conversation_id}/messages", headers=headers)
    return {m["id"]: m for m in resp.json()["messages"]}


async def test_rate_read_change_and_delete_in_the_original_shapes(client):
    headers = await login(client, HNW)
    ui, cid, mid = await _answer(client, headers)
    none = await ui.get_feedback(mid)
    assert none.status_code == 200 and none.json() is None  # unrated: null, as the original answers

    up = await ui.submit_feedback(mid, rating="up")
    assert up.status_code == 200
    assert {k: up.json()[k] for k in ("id", "message_id", "rating", "edited_text", "comment")} == {
        "id": mid, "message_id": mid, "rating": "up", "edited_text": None, "comment": None,
    }  # fmt: skip
    down = await ui.submit_feedback(mid, rating="down", edited_text="Shorter, please.", comment="Too long")
    assert down.json()["rating"] == "down" and down.json()["edited_text"] == "Shorter, please."
    got = (await ui.get_feedback(mid)).json()
    assert (got["rating"], got["comment"]) == ("down", "Too long")
    shown = (await _history(client, headers, cid))[mid]
    assert shown["feedback"] == "negative" and shown["feedback_detail"]["edited_text"] == "Shorter, please."

    assert (await ui.delete_feedback(mid)).status_code == 204
    assert (await ui.get_feedback(mid)).json() is None
    assert (await ui.delete_feedback(mid)).status_code == 404  # nothing left to delete
    assert (await _history(client, headers, cid))[mid]["feedback"] is None


async def test_bad_feedback_is_refused_and_changes_nothing(client):
    headers = await login(client, HNW)
    ui, cid, mid = await _answer(client, headers)
    await ui.submit_feedback(mid, rating="up")
    assert (await ui.submit_feedback(mid, rating="meh")).status_code == 422
    assert (await ui.submit_feedback(mid, rating="down", comment="x" * 5000)).status_code == 422
    user_msg = next(m for m in (await _history(client, headers, cid)).values() if m["role"] == "user")
    own = await ui.submit_feedback(user_msg["id"], rating="up")
    assert own.status_code == 400 and "answers" in own.json()["error"]["message"]
    assert (await ui.get_feedback(mid)).json()["rating"] == "up"

    # Another user's message id is answered exactly like an unknown id.
    intruder = OriginalFrontend(client, await login(client, HEDGE))
    for method in ("submit", "get", "delete"):
        call = getattr(intruder, f"{method}_feedback")
        foreign = await (call(mid, rating="down") if method == "submit" else call(mid))
        unknown = await (call("msg_doesnotexist", rating="down") if method == "submit" else call("msg_doesnotexist"))
        assert foreign.status_code == unknown.status_code == 404
        assert foreign.json()["error"]["message"] == unknown.json()["error"]["message"]
    assert (await ui.get_feedback(mid)).json()["rating"] == "up"


async def test_chatkit_feedback_is_the_same_record_and_the_report_counts_it_per_path(app, client):
    services = app.state.services
    headers = await login(client, HNW)
    ui, _, legacy_mid = await _answer(client, headers)
    await ui.submit_feedback(legacy_mid, rating="down", edited_text="Lead with the number.")

    resp = await client.post("/chatkit", content=create("What is my sector exposure?"), headers=headers)
    frames = parse_sse(resp.text)
    thread_id = next(f.event.thread.id for f in frames if f.type == "thread.created")
    answer_id = next(
        f.event.item.id for f in frames if f.type == "thread.item.done" and f.event.item.type == "assistant_message"
    )
    body = req("items.feedback", thread_id=thread_id, item_ids=[answer_id], kind="positive")
    assert (await client.post("/chatkit", content=body, headers=headers)).json() == {}
    # Read through the original API: the ChatKit thumbs-up is an "up".
    assert (await ui.get_feedback(answer_id)).json()["rating"] == "up"

    await services.telemetry.recorder.flush()  # the runs rows are written off the hot path
    report = await build_report(services.db, services.settings, dt.timedelta(hours=1))
    legacy, chatkit = report["paths"]["responses"]["feedback"], report["paths"]["chatkit"]["feedback"]
    assert (legacy["negative"], legacy["positive"], legacy["edited"], legacy["ratio"]) == (1, 0, 1, 0.0)
    assert (chatkit["positive"], chatkit["negative"], chatkit["edited"], chatkit["ratio"]) == (1, 0, 0, 1.0)
