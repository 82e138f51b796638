"""End to end through the app: the legacy SSE chat API with the offline analyst model."""

from __future__ import annotations

from sqlalchemy import select

from sigmachat.db.models import Message
from tests.conftest import HEDGE, HNW, login
from tests.sse import parse


async def _conversation(client, headers, **body):
    resp = await client.post("/api/v1/chat/conversations", json=body, headers=headers)
    assert resp.status_code == 201, resp.text
    return resp.json()


async def _send(client, headers, conversation_id, text, **extra):
    resp = await client.post(
        "/api/v1/chat/send", json={"conversation_id": conversation_id, "text": text, **extra}, headers=headers
    )
    return resp, parse(resp.text)


async def test_largest_position_streams_the_documented_event_sequence(client):
    headers = await login(client, HNW)
    conv = await _conversation(client, headers)
    resp, frames = await _send(client, headers, conv["id"], "What is my largest position?")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/event-stream")
    assert resp.headers["cache-control"] == "no-cache" and resp.headers["x-accel-buffering"] == "no"
    names = [f.event for f in frames]
    assert names[0] == "message_created" and names[1] == "start" and names[-1] == "done"
    assert "tool_call" in names and "tool_result" in names
    assert names.index("tool_result") < names.index("token") and names.count("token") >= 2
    created = frames[0].data
    assert (
        created["type"] == "message_created"
        and created["assistant_message_id"]
        and created["conversation_id"] == conv["id"]
    )
    run_id = created["run_id"]
    # Envelopes and ids: gap-free sequence 1..n after message_created (0).
    seqs = [f.data["seq"] for f in frames[1:]]
    assert seqs == list(range(1, len(seqs) + 1))
    assert [f.id for f in frames] == [f"{run_id}:{i}" for i in range(len(frames))]
    for f in frames[1:]:
        assert set(f.data) == {"type", "run_id", "seq", "data", "timestamp"} and f.data["type"] == f.event
    assert frames[1].data["data"]["offline"] is True
    done = frames[-1].data["data"]
    # The answer names the symbol the portfolio API shows as largest.
    pf = (await client.get("/api/v1/portfolios", headers=headers)).json()[0]
    detail = (await client.get(f"/api/v1/portfolios/{pf['id']}", headers=headers)).json()
    largest = detail["holdings"][0]["symbol"]
    assert largest in done["final_text"]
    assert done["tool_calls_count"] >= 1 and done["usage"]["output_tokens"] > 0


async def test_history_is_persisted_and_fed_to_the_next_turn(client):
    headers = await login(client, HNW)
    conv = await _conversation(client, headers)
    await _send(client, headers, conv["id"], "What is my largest position?")
    msgs = (await client.get(f"/api/v1/chat/conversations/{conv['id']}/messages", headers=headers)).json()["messages"]
    assert [m["role"] for m in msgs] == ["user", "assistant"]
    assistant = msgs[1]
    assert assistant["status"] == "complete" and assistant["offline"] is True and assistant["tool_calls"]
    assert "output" not in assistant["tool_calls"][0]  # the raw tool text stays server-side
    _, frames = await _send(client, headers, conv["id"], "And what is my sector exposure?")
    assert frames[-1].event == "done"
    msgs = (await client.get(f"/api/v1/chat/conversations/{conv['id']}/messages", headers=headers)).json()["messages"]
    assert len(msgs) == 4
    listed = (await client.get("/api/v1/chat/conversations", headers=headers)).json()
    assert listed[0]["id"] == conv["id"] and listed[0]["title"]


async def test_unknown_or_foreign_conversation_is_404_before_any_stream(client):
    other = await login(client, HEDGE)
    foreign = await _conversation(client, other)
    headers = await login(client, HNW)
    for cid in (foreign["id"], "thr_doesnotexist"):
        resp, _ = await _send(client, headers, cid, "hi")
        assert resp.status_code == 404 and resp.headers["content-type"].startswith("application/json")
        assert resp.json()["error"]["code"] == "not_found"


async def test_bad_send_input_is_422_and_changes_nothing(client, services):
    headers = await login(client, HNW)
    conv = await _conversation(client, headers)
    for body in (
        {"conversation_id": conv["id"], "text": ""},
        {"conversation_id": conv["id"], "text": "x" * 4001},
        {"text": "hi"},
    ):
        resp = await client.post("/api/v1/chat/send", json=body, headers=headers)
        assert resp.status_code == 422, body
    async with services.db.session() as s:
        assert not (await s.execute(select(Message).where(Message.conversation_id == conv["id"]))).scalars().all()


async def test_oversized_body_is_413(client):
    headers = await login(client, HNW)
    resp = await client.post(
        "/api/v1/chat/send", content=b"x" * 300_000, headers={**headers, "content-type": "application/json"}
    )
    assert resp.status_code == 413 and resp.json()["error"]["code"] == "payload_too_large"


async def test_foreign_portfolio_in_conversation_create_is_404(client):
    other = await login(client, HEDGE)
    hedge_pf = (await client.get("/api/v1/portfolios", headers=other)).json()[0]["id"]
    headers = await login(client, HNW)
    resp = await client.post("/api/v1/chat/conversations", json={"portfolio_id": hedge_pf}, headers=headers)
    assert resp.status_code == 404


async def test_failure_kinds_are_served_from_the_one_table(client):
    from sigmachat.agent.failures import KINDS

    assert (await client.get("/api/v1/chat/failures")).status_code == 401
    headers = await login(client, HNW)
    body = (await client.get("/api/v1/chat/failures", headers=headers)).json()
    served = {f["code"]: f for f in body["failures"]}
    assert set(served) == set(KINDS)
    assert served["cancelled"]["status"] == "cancelled" and served["response_incomplete"]["status"] == "incomplete"
    assert served["network_error"] == {
        "code": "network_error",
        "retryable": True,
        "error_type": "NETWORK_ERROR",
        "message": KINDS["network_error"].message,
        "status": "failed",
    }
