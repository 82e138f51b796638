"""The shadow comparison wired into the live app: a paired shadow run is recorded, never shown."""

from __future__ import annotations

import asyncio
import shutil

import httpx
from asgi_lifespan import LifespanManager
from sqlalchemy import select

from sigmachat.api.app import create_app
from sigmachat.db.models import Message, RunRecord
from tests.conftest import BASE_URL, HNW, login, make_settings
from tests.sse import parse


async def test_sampled_turn_gets_a_shadow_run_on_the_other_engine(tmp_path, template_db):
    shutil.copy(template_db, tmp_path / "sigmachat.db")
    app = create_app(make_settings(tmp_path, shadow_sample_rate=1.0))
    async with (
        LifespanManager(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE_URL) as client,
    ):
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
        live_id = frames[0].data["run_id"]
        db = app.state.services.db
        shadow = None
        for _ in range(200):  # the shadow runs in the background; bounded wait
            async with db.session() as s:
                shadow = (
                    await s.execute(select(RunRecord).where(RunRecord.pair_id == live_id, RunRecord.shadow.is_(True)))
                ).scalar_one_or_none()
            if shadow is not None:
                break
            await asyncio.sleep(0.05)
        assert shadow is not None, "no shadow run recorded"
        assert shadow.engine == "agents" and shadow.status == "completed"
        async with db.session() as s:
            live = await s.get(RunRecord, live_id)
            rows = (await s.execute(select(Message).where(Message.conversation_id == conv["id"]))).scalars().all()
        assert live is not None and live.engine == "responses" and not live.shadow
        assert len(rows) == 2  # the shadow answer is never stored as a message
        msgs = (await client.get(f"/api/v1/chat/conversations/{conv['id']}/messages", headers=headers)).json()[
            "messages"
        ]
        assert [m["run_id"] for m in msgs] == [live_id, live_id]
