"""GET /chat/config follows the flag; the admin rollout API is admin-only, validated and audited."""

from __future__ import annotations

from sqlalchemy import select

from sigmachat.db.models import Portfolio, User
from tests.conftest import ADMIN, HEDGE, HNW, login


async def _ids(app, email: str) -> tuple[str, str, str]:
    async with app.state.services.db.session() as session:
        user = (await session.execute(select(User).where(User.email == email))).scalar_one()
        own = (await session.execute(select(Portfolio.id).where(Portfolio.owner_id == user.id))).scalars().first()
        other = (await session.execute(select(Portfolio.id).where(Portfolio.owner_id != user.id))).scalars().first()
    return user.id, own, other


async def test_config_answers_backend_reason_and_version(client, hnw_headers):
    resp = await client.get("/api/v1/chat/config", headers=hnw_headers)
    assert resp.status_code == 200
    assert resp.json() == {"backend": "responses", "reason": "default", "flag_version": 0, "max_message_chars": 4000}


async def test_non_admins_get_403_on_every_admin_route(client, hnw_headers):
    for method, path in (
        ("GET", "/api/v1/admin/rollout"),
        ("PUT", "/api/v1/admin/rollout"),
        ("GET", "/api/v1/admin/rollout/audit"),
    ):
        resp = await client.request(
            method, path, headers=hnw_headers, json={"percent": 100} if method == "PUT" else None
        )
        assert resp.status_code == 403, (method, path)
        assert resp.json()["error"]["code"] == "forbidden"
    client.cookies.clear()  # login also set the session cookie
    assert (await client.get("/api/v1/admin/rollout")).status_code == 401
    assert (await client.get("/api/v1/chat/config", headers=hnw_headers)).json()["backend"] == "responses"


async def test_admin_changes_the_rollout_and_users_follow(app, client):
    admin = await login(client, ADMIN)
    user = await login(client, HNW)
    resp = await client.get("/api/v1/admin/rollout", headers=admin)
    assert resp.status_code == 200 and resp.json()["version"] == 0 and resp.json()["managed_here"] is True

    resp = await client.put("/api/v1/admin/rollout", headers=admin, json={"allow_users": [" Demo_HNW@SigmaSight.com "]})
    assert resp.status_code == 200, resp.text
    state = resp.json()
    assert state["allow_users"] == [HNW] and state["version"] == 1 and state["updated_by"] == f"user:{ADMIN}"
    assert state["percent"] == 0 and state["kill_switch"] is False  # a partial update keeps the rest

    assert (await client.get("/api/v1/chat/config", headers=user)).json() == {
        "backend": "chatkit",
        "reason": "allow_user",
        "flag_version": 1,
        "max_message_chars": 4000,
    }

    resp = await client.put("/api/v1/admin/rollout", headers=admin, json={"kill_switch": True})
    assert resp.json()["kill_switch"] is True and resp.json()["allow_users"] == [HNW]
    assert (await client.get("/api/v1/chat/config", headers=user)).json() == {
        "backend": "responses",
        "reason": "kill_switch",
        "flag_version": 2,
        "max_message_chars": 4000,
    }

    audit = (await client.get("/api/v1/admin/rollout/audit", headers=admin)).json()["entries"]
    assert [(e["version"], e["actor"], e["new"]) for e in audit] == [
        (2, f"user:{ADMIN}", {"kill_switch": True}),
        (1, f"user:{ADMIN}", {"allow_users": [HNW]}),
    ]
    page = (await client.get("/api/v1/admin/rollout/audit?limit=1", headers=admin)).json()
    assert [e["version"] for e in page["entries"]] == [2] and page["next_before_id"] == audit[0]["id"]


async def test_portfolio_allowlist_counts_only_for_the_owner(app, client):
    admin = await login(client, ADMIN)
    _, own, other = await _ids(app, HNW)
    await client.put("/api/v1/admin/rollout", headers=admin, json={"allow_portfolios": [own, other]})
    user = await login(client, HNW)
    mine = (await client.get(f"/api/v1/chat/config?portfolio_id={own}", headers=user)).json()
    assert (mine["backend"], mine["reason"]) == ("chatkit", "allow_portfolio")
    # Naming someone else's allowlisted portfolio does not opt a user in.
    hedge = await login(client, HEDGE)
    _, hedge_own, _ = await _ids(app, HEDGE)
    if own != hedge_own:
        foreign = (await client.get(f"/api/v1/chat/config?portfolio_id={own}", headers=hedge)).json()
        assert foreign["reason"] != "allow_portfolio"


async def test_percentage_rollout_through_the_api_matches_the_bucket(app, client):
    from sigmachat.rollout import bucket

    admin = await login(client, ADMIN)
    user_id, _, _ = await _ids(app, HNW)
    b = bucket(user_id)
    user = await login(client, HNW)
    await client.put("/api/v1/admin/rollout", headers=admin, json={"percent": b - 1})
    assert (await client.get("/api/v1/chat/config", headers=user)).json()["backend"] == "responses"
    version = (await client.put("/api/v1/admin/rollout", headers=admin, json={"percent": b})).json()["version"]
    # (b - 1 may be 0, the initial value: then the first PUT changed nothing and made no version)
    assert (await client.get("/api/v1/chat/config", headers=user)).json() == {
        "backend": "chatkit",
        "reason": "percentage",
        "flag_version": version,
        "max_message_chars": 4000,
    }


async def test_invalid_updates_are_422_and_change_nothing(client):
    admin = await login(client, ADMIN)
    for body in (
        {"percent": 150},
        {"percentage": 5},
        {"deny_users": ["nobody"]},
        {"default": "maybe"},
        {"kill_switch": None},
    ):
        resp = await client.put("/api/v1/admin/rollout", headers=admin, json=body)
        assert resp.status_code == 422, body
        assert resp.json()["error"]["code"] == "validation_error"
    assert (await client.get("/api/v1/admin/rollout", headers=admin)).json()["version"] == 0
    assert (await client.get("/api/v1/admin/rollout/audit", headers=admin)).json()["entries"] == []


async def test_stale_expected_version_is_409(client):
    admin = await login(client, ADMIN)
    await client.put("/api/v1/admin/rollout", headers=admin, json={"percent": 1})
    resp = await client.put("/api/v1/admin/rollout", headers=admin, json={"percent": 10, "expected_version": 0})
    assert resp.status_code == 409 and resp.json()["error"]["code"] == "rollout_version_conflict"
