"""Database unavailable at send time → 503 with a clear message, nothing half-written."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from sigmachat.db.models import Message
from tests.conftest import HNW, login


async def test_send_while_database_is_down_is_503_and_writes_nothing(client, app):
    headers = await login(client, HNW)
    conv = (await client.post("/api/v1/chat/conversations", json={}, headers=headers)).json()
    db = app.state.services.db
    good_engine, good_maker = db.engine, db.sessionmaker
    # A path below a regular file can never be opened: every connection attempt fails.
    broken = create_async_engine("sqlite+aiosqlite:////etc/hostname/unreachable.db")
    db.engine, db.sessionmaker = broken, async_sessionmaker(broken, expire_on_commit=False)
    try:
        resp = await client.post(
            "/api/v1/chat/send", json={"conversation_id": conv["id"], "text": "hello"}, headers=headers
        )
        assert resp.status_code == 503
        body = resp.json()
        assert body["error"]["code"] == "service_unavailable" and "database" in body["error"]["message"].lower()
        assert "sqlite" not in resp.text.lower() and "select" not in resp.text.lower()
        assert resp.headers["retry-after"]
        ready = await client.get("/readyz")
        assert ready.status_code == 503
    finally:
        db.engine, db.sessionmaker = good_engine, good_maker
        await broken.dispose()
    async with db.session() as s:
        assert (await s.execute(select(Message).where(Message.conversation_id == conv["id"]))).scalars().all() == []
    assert app.state.services.runs.active_count() == 0
