"""More concurrent streams than database connections: nothing stalls (regression of a pool cap).

Streaming responses used to keep the request's database session, so ~15 concurrent streams
(pool 5 + 10 overflow) exhausted the pool and every further send waited 30 s and failed.
"""

from __future__ import annotations

import asyncio
import shutil

import httpx
from asgi_lifespan import LifespanManager

from sigmachat.api.app import create_app
from tests.conftest import BASE_URL, HNW, login, make_settings
from tests.sse import parse

STREAMS = 24


async def test_more_concurrent_streams_than_pooled_connections_all_complete(tmp_path, template_db):
    shutil.copy(template_db, tmp_path / "sigmachat.db")
    settings = make_settings(
        tmp_path,
        send_rate_limit="",
        max_concurrent_runs_per_user=0,
        daily_token_budget=0,
        offline_ttfb_ms=50,
        offline_tokens_per_s=400,  # paced, so all streams are open at the same time
    )
    app = create_app(settings)
    async with (
        LifespanManager(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE_URL, timeout=60) as client,
    ):
        headers = await login(client, HNW)
        convs = [
            (await client.post("/api/v1/chat/conversations", json={}, headers=headers)).json()["id"]
            for _ in range(STREAMS)
        ]

        async def send(cid):
            resp = await client.post(
                "/api/v1/chat/send", json={"conversation_id": cid, "text": "What can you do?"}, headers=headers
            )
            return resp.status_code, parse(resp.text)[-1].event

        results = await asyncio.wait_for(asyncio.gather(*(send(c) for c in convs)), timeout=45)
        assert results == [(200, "done")] * STREAMS
        # Once background writers (telemetry) settle, no connection stays checked out.
        pool = app.state.services.db.engine.pool
        for _ in range(100):
            if pool.checkedout() == 0:
                break
            await asyncio.sleep(0.05)
        assert pool.checkedout() == 0
