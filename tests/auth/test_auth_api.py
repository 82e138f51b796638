"""Login, cookies, Bearer vs cookie, expired/tampered tokens, CSRF."""

from __future__ import annotations

import datetime as dt

import jwt
from fastapi import APIRouter

from sigmachat.api.deps import IdentityDep
from tests.conftest import BASE_URL, DEMO_PASSWORD, HNW, login


async def test_login_success_returns_token_and_sets_secure_cookie_flags(client):
    resp = await client.post("/api/v1/auth/login", json={"email": HNW, "password": DEMO_PASSWORD})
    assert resp.status_code == 200
    body = resp.json()
    assert body["token_type"] == "bearer" and body["expires_in"] > 0 and body["access_token"]
    cookie = resp.headers["set-cookie"]
    assert cookie.startswith("auth_token=")
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie or "samesite=lax" in cookie.lower()
    assert "Secure" not in cookie  # default is plain http on localhost


async def test_cookie_secure_flag_when_configured(tmp_path, template_db):
    import shutil

    import httpx
    from asgi_lifespan import LifespanManager

    from sigmachat.api.app import create_app
    from tests.conftest import make_settings

    shutil.copy(template_db, tmp_path / "sigmachat.db")
    app = create_app(make_settings(tmp_path, cookie_secure=True))
    async with (
        LifespanManager(app) as m,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=m.app), base_url=BASE_URL) as c,
    ):
        resp = await c.post("/api/v1/auth/login", json={"email": HNW, "password": DEMO_PASSWORD})
        assert "Secure" in resp.headers["set-cookie"]


async def test_login_is_case_insensitive_on_email(client):
    resp = await client.post("/api/v1/auth/login", json={"email": HNW.upper(), "password": DEMO_PASSWORD})
    assert resp.status_code == 200


async def test_wrong_password_and_unknown_user_get_the_same_generic_401(client):
    wrong = await client.post("/api/v1/auth/login", json={"email": HNW, "password": "nope-nope"})
    unknown = await client.post("/api/v1/auth/login", json={"email": "who@example.com", "password": "nope-nope"})
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json()["error"]["message"] == unknown.json()["error"]["message"] == "Incorrect email or password."
    assert "set-cookie" not in wrong.headers


async def test_malformed_login_body_is_422_with_field_errors(client):
    resp = await client.post("/api/v1/auth/login", content=b"{not json", headers={"content-type": "application/json"})
    assert resp.status_code == 422
    resp = await client.post("/api/v1/auth/login", json={"email": HNW})
    assert resp.status_code == 422
    fields = [d["field"] for d in resp.json()["error"]["details"]]
    assert "password" in fields


async def test_bearer_and_cookie_are_both_accepted(client):
    headers = await login(client)
    me = await client.get("/api/v1/auth/me", headers=headers)
    assert me.status_code == 200 and me.json()["email"] == HNW
    # The login above also set the cookie on the client: no header needed.
    me_cookie = await client.get("/api/v1/auth/me")
    assert me_cookie.status_code == 200 and me_cookie.json()["email"] == HNW


async def test_no_credentials_is_401(client):
    resp = await client.get("/api/v1/portfolios")
    assert resp.status_code == 401
    assert resp.json()["error"]["code"] == "not_authenticated"


async def test_expired_token_is_rejected_with_auth_expired(client, services):
    user_id = (await client.get("/api/v1/auth/me", headers=await login(client))).json()["id"]
    client.cookies.clear()
    old = dt.datetime.now(dt.UTC) - dt.timedelta(days=3)
    token = services.tokens.issue(user_id, "user", now=old)
    resp = await client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 401
    assert resp.json()["error"]["code"] == "auth_expired"


async def test_tampered_and_foreign_key_tokens_are_rejected(client, services):
    headers = await login(client)
    client.cookies.clear()
    token = headers["Authorization"].split()[1]
    header, payload, sig = token.split(".")
    tampered = f"{header}.{payload}.{sig[:-2]}{'AA' if sig[-2:] != 'AA' else 'BB'}"
    assert (await client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {tampered}"})).status_code == 401
    claims = jwt.decode(token, options={"verify_signature": False})
    claims["role"] = "admin"
    forged = jwt.encode(claims, "some-other-secret-with-enough-length-000", algorithm="HS256")
    assert (await client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {forged}"})).status_code == 401
    none_alg = jwt.encode(claims, None, algorithm="none")
    assert (await client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {none_alg}"})).status_code == 401


async def test_csrf_cookie_post_from_foreign_origin_is_rejected_and_changes_nothing(client):
    await login(client)  # cookie set on the client
    resp = await client.post("/api/v1/auth/logout", headers={"Origin": "https://evil.example"})
    assert resp.status_code == 403
    assert resp.json()["error"]["code"] == "csrf_rejected"
    assert (await client.get("/api/v1/auth/me")).status_code == 200  # still signed in


async def test_csrf_cookie_post_without_origin_or_referer_is_rejected(client, app):
    await login(client)

    # A state-changing probe route guarded by the same dependency every API route uses.
    router = APIRouter()

    @router.post("/api/v1/_probe")
    async def _probe(identity: IdentityDep) -> dict:
        return {"ok": True}

    app.include_router(router)
    assert (await client.post("/api/v1/_probe")).status_code == 403
    assert (await client.post("/api/v1/_probe", headers={"Origin": BASE_URL})).status_code == 200
    assert (await client.post("/api/v1/_probe", headers={"Referer": BASE_URL + "/chat"})).status_code == 200
    # Bearer requests are not exposed to CSRF: no Origin needed.
    token = (await client.post("/api/v1/auth/login", json={"email": HNW, "password": DEMO_PASSWORD})).json()[
        "access_token"
    ]
    client.cookies.clear()
    assert (await client.post("/api/v1/_probe", headers={"Authorization": f"Bearer {token}"})).status_code == 200


async def test_logout_clears_cookie(client):
    await login(client)
    resp = await client.post("/api/v1/auth/logout", headers={"Origin": BASE_URL})
    assert resp.status_code == 204
    assert "auth_token=" in resp.headers["set-cookie"] and "Max-Age=0" in resp.headers["set-cookie"]
    assert (await client.get("/api/v1/auth/me")).status_code == 401


async def _login_status(client, email: str, password: str):
    return await client.post("/api/v1/auth/login", json={"email": email, "password": password})


async def test_failed_sign_ins_are_throttled_per_account_with_retry_after(client):
    statuses = [(await _login_status(client, HNW, "wrong-password")).status_code for _ in range(5)]
    assert statuses == [401] * 5
    resp = await _login_status(client, HNW, "wrong-password")
    assert resp.status_code == 429 and int(resp.headers["retry-after"]) >= 1
    assert resp.json()["error"]["code"] == "rate_limited"
    # While throttled even the right password is refused (the guess is not checked at all).
    assert (await _login_status(client, HNW, DEMO_PASSWORD)).status_code == 429
    # Another account from the same client is not locked by the first one's failures.
    from tests.conftest import INDIVIDUAL

    assert (await _login_status(client, INDIVIDUAL, DEMO_PASSWORD)).status_code == 200


async def test_throttling_looks_the_same_for_unknown_and_existing_accounts(client):
    for email in (HNW, "nobody-here@example.com"):
        for _ in range(5):
            assert (await _login_status(client, email, "wrong-password")).status_code == 401
    known = await _login_status(client, HNW, "wrong-password")
    unknown = await _login_status(client, "nobody-here@example.com", "wrong-password")
    assert known.status_code == unknown.status_code == 429
    assert known.json()["error"]["message"].split(" in ")[0] == unknown.json()["error"]["message"].split(" in ")[0]
    assert set(known.json()["error"]) == set(unknown.json()["error"])


async def test_failed_sign_ins_are_throttled_per_client_address(client):
    # 20 failures from one address across many accounts: the 21st attempt is refused,
    # whichever account it names (credential stuffing from one client).
    for i in range(20):
        assert (await _login_status(client, f"user{i}@example.com", "wrong-password")).status_code == 401
    resp = await _login_status(client, "someone-else@example.com", "wrong-password")
    assert resp.status_code == 429 and resp.headers["retry-after"]
    # A correct password from that address waits too.
    assert (await _login_status(client, HNW, DEMO_PASSWORD)).status_code == 429
