"""Keyset paging of the conversation list: complete, ordered, no duplicates, for any page size."""

from __future__ import annotations

import asyncio
import datetime as dt

from hypothesis import HealthCheck, given
from hypothesis import settings as settings_
from hypothesis import strategies as st
from sqlalchemy import select

from sigmachat.chat.conversations import list_conversations
from sigmachat.db.models import Conversation, User
from tests.conftest import HEDGE, HNW, login


async def _seed_conversations(services, email, n, same_timestamp_every=3):
    async with services.db.session() as s:
        user = (await s.execute(select(User).where(User.email == email))).scalar_one()
        base = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
        for i in range(n):
            # Several share a timestamp so the id tie-breaker is exercised.
            ts = base + dt.timedelta(seconds=i // same_timestamp_every)
            s.add(
                Conversation(
                    id=f"thr_{i:04d}", user_id=user.id, title=f"c{i}", created_at=ts, updated_at=ts, metadata_={}
                )
            )
        await s.commit()
        return user.id


def test_paging_walks_every_conversation_newest_first(settings):
    """Any page size walks all 23 conversations once, newest first (ties broken by id)."""
    from sigmachat.services import Services

    async def seed():
        services = Services.build(settings)
        try:
            return await _seed_conversations(services, HNW, 23)
        finally:
            await services.aclose()

    user_id = asyncio.run(seed())

    async def walk(limit):
        services = Services.build(settings)
        seen, cursor = [], None
        try:
            while True:
                async with services.db.session() as s:
                    page, cursor = await list_conversations(s, user_id, limit=limit, before=cursor)
                assert len(page) <= limit
                seen.extend(c.id for c in page)
                if cursor is None:
                    return seen
        finally:
            await services.aclose()

    @settings_(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(st.integers(min_value=1, max_value=30))
    def check(limit):
        seen = asyncio.run(walk(limit))
        assert len(seen) == len(set(seen)) == 23
        assert seen == sorted(seen, reverse=True)  # ids were assigned in creation order

    check()


async def test_api_paging_and_isolation(client, services):
    await _seed_conversations(services, HNW, 5)
    headers = await login(client, HNW)
    resp = await client.get("/api/v1/chat/conversations?limit=2", headers=headers)
    # The original API's bare list; our keyset cursor rides in a header.
    cursor = resp.headers["X-Next-Cursor"]
    assert [c["id"] for c in resp.json()] == ["thr_0004", "thr_0003"] and cursor
    second = await client.get("/api/v1/chat/conversations", params={"limit": 2, "before": cursor}, headers=headers)
    assert [c["id"] for c in second.json()] == ["thr_0002", "thr_0001"] and second.headers["X-Next-Cursor"]
    params = {"limit": 2, "before": second.headers["X-Next-Cursor"]}
    third = await client.get("/api/v1/chat/conversations", params=params, headers=headers)
    assert [c["id"] for c in third.json()] == ["thr_0000"] and "X-Next-Cursor" not in third.headers
    # The original API's offset paging walks the same order.
    by_offset = await client.get("/api/v1/chat/conversations", params={"limit": 2, "offset": 2}, headers=headers)
    assert [c["id"] for c in by_offset.json()] == ["thr_0002", "thr_0001"]
    both = await client.get("/api/v1/chat/conversations", params={"offset": 1, "before": cursor}, headers=headers)
    assert both.status_code == 422
    bad = await client.get("/api/v1/chat/conversations", params={"before": "garbage"}, headers=headers)
    assert bad.status_code == 422
    assert (await client.get("/api/v1/chat/conversations?limit=0", headers=headers)).status_code == 422
    assert (await client.get("/api/v1/chat/conversations?limit=101", headers=headers)).status_code == 422
    other = await login(client, HEDGE)
    assert (await client.get("/api/v1/chat/conversations", headers=other)).json() == []
