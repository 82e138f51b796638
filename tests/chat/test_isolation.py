"""Two users, every legacy chat endpoint: another user's ids behave exactly like unknown ids."""

from __future__ import annotations

from tests.conftest import HEDGE, HNW, login
from tests.sse import parse


def _strip(resp):
    body = resp.json()
    body["error"].pop("request_id", None)
    return resp.status_code, body


async def test_no_cross_user_access_on_any_chat_endpoint(client):
    owner = await login(client, HNW)
    conv = (await client.post("/api/v1/chat/conversations", json={}, headers=owner)).json()
    frames = parse(
        (
            await client.post(
                "/api/v1/chat/send",
                json={"conversation_id": conv["id"], "text": "What is my largest position?"},
                headers=owner,
            )
        ).text
    )
    run_id = frames[0].data["run_id"]
    intruder = await login(client, HEDGE)
    client.cookies.clear()

    probes = [
        ("GET", "/api/v1/chat/conversations/{cid}", None),
        ("PATCH", "/api/v1/chat/conversations/{cid}", {"title": "mine now"}),
        ("GET", "/api/v1/chat/conversations/{cid}/messages", None),
        ("POST", "/api/v1/chat/send", {"conversation_id": "{cid}", "text": "leak?"}),
        ("GET", "/api/v1/chat/runs/{rid}/stream", None),
        ("POST", "/api/v1/chat/runs/{rid}/cancel", None),
        ("DELETE", "/api/v1/chat/conversations/{cid}", None),
    ]
    for method, template, body in probes:
        results = []
        for cid, rid in ((conv["id"], run_id), ("thr_unknown000000", "run_unknown")):
            url = template.replace("{cid}", cid).replace("{rid}", rid)
            payload = (
                None
                if body is None
                else {k: (v.replace("{cid}", cid) if isinstance(v, str) else v) for k, v in body.items()}
            )
            resp = await client.request(method, url, json=payload, headers=intruder)
            results.append(_strip(resp))
        foreign, unknown = results
        assert foreign == unknown, (method, template, foreign, unknown)
        assert foreign[0] == 404
    # The owner's data is untouched by all of the above.
    still = await client.get(f"/api/v1/chat/conversations/{conv['id']}", headers=owner)
    assert still.status_code == 200 and still.json()["title"] != "mine now"
    msgs = (await client.get(f"/api/v1/chat/conversations/{conv['id']}/messages", headers=owner)).json()["messages"]
    assert [m["role"] for m in msgs] == ["user", "assistant"]
    assert (await client.get("/api/v1/chat/conversations", headers=intruder)).json() == []


async def test_resume_of_a_finished_run_replays_to_its_end_and_from_a_sequence(client):
    headers = await login(client, HNW)
    conv = (await client.post("/api/v1/chat/conversations", json={}, headers=headers)).json()
    frames = parse(
        (
            await client.post(
                "/api/v1/chat/send",
                json={"conversation_id": conv["id"], "text": "What is my largest position?"},
                headers=headers,
            )
        ).text
    )
    run_id = frames[0].data["run_id"]
    full = parse((await client.get(f"/api/v1/chat/runs/{run_id}/stream", headers=headers)).text)
    assert [f.id for f in full] == [f.id for f in frames[1:]]
    tail = parse(
        (
            await client.get(f"/api/v1/chat/runs/{run_id}/stream", headers={**headers, "Last-Event-ID": f"{run_id}:3"})
        ).text
    )
    assert tail[0].data["seq"] == 4 and tail[-1].event == "done"
    after = parse((await client.get(f"/api/v1/chat/runs/{run_id}/stream?after=5", headers=headers)).text)
    assert after[0].data["seq"] == 6


async def test_expired_run_answers_410_with_the_saved_message(client, app):
    headers = await login(client, HNW)
    conv = (await client.post("/api/v1/chat/conversations", json={}, headers=headers)).json()
    frames = parse(
        (
            await client.post(
                "/api/v1/chat/send",
                json={"conversation_id": conv["id"], "text": "What is my largest position?"},
                headers=headers,
            )
        ).text
    )
    run_id = frames[0].data["run_id"]
    log = app.state.services.runs.events
    assert await log.expire(now=10**12) >= 1  # far future: every finished run has expired
    resp = await client.get(f"/api/v1/chat/runs/{run_id}/stream", headers=headers)
    assert resp.status_code == 410
    body = resp.json()
    assert body["error"]["code"] == "run_expired" and body["message"]["id"] == frames[0].data["assistant_message_id"]
    assert body["message"]["status"] == "complete"
