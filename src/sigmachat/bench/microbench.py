"""Microbenchmarks in the same report: every tool, and the chat store's hot operations.

Tools: :func:`sigmachat.bench.tools.run_tool_benchmark` (the same runner as
``sigmachat tools bench``) on the largest demo portfolio. Store: the ChatKit SQL store over
the shared chat tables (the one both paths write): append an item, load a 200-item thread,
list a user's threads (the first page, 20 newest) after the load test filled them.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from typing import Any

from sigmachat.bench.stats import Summary
from sigmachat.settings import Settings

THREAD_ITEMS = 200


@dataclass
class _Ctx:
    user_id: str
    portfolio_id: str | None = None


def _timed_summary(samples_s: list[float]) -> dict[str, Any]:
    return Summary.of([s * 1000 for s in samples_s]).as_dict(3)


async def tool_microbench(settings: Settings, *, runs: int) -> dict[str, Any]:
    from sigmachat.bench.tools import run_tool_benchmark
    from sigmachat.services import Services

    services = Services.build(settings)
    try:
        report = await run_tool_benchmark(services, runs=runs)
    finally:
        await services.aclose()
    return report.as_dict()


async def store_microbench(settings: Settings, *, runs: int) -> dict[str, Any]:
    """Times per operation (ms): append (each of 200 items), load 200 items, list threads."""
    from chatkit.types import (
        AssistantMessageContent,
        AssistantMessageItem,
        InferenceOptions,
        ThreadMetadata,
        UserMessageItem,
        UserMessageTextContent,
    )
    from sqlalchemy import func, select

    from sigmachat.db.models import Conversation, User
    from sigmachat.db.session import Database
    from sigmachat.store.chatkit_store import SqlChatKitStore

    db = Database(settings)
    store = SqlChatKitStore(db)
    try:
        async with db.session() as session:
            # The demo user with the most threads (the load test left hundreds).
            row = (
                await session.execute(
                    select(User.id, func.count(Conversation.id).label("n"))
                    .join(Conversation, Conversation.user_id == User.id, isouter=True)
                    .where(User.role == "user")
                    .group_by(User.id)
                    .order_by(func.count(Conversation.id).desc(), User.id)
                    .limit(1)
                )
            ).one()
        ctx = _Ctx(user_id=row[0])
        threads_before = int(row[1])
        now = dt.datetime.now(dt.UTC)
        thread = ThreadMetadata(id=store.generate_thread_id(ctx), title="store benchmark", created_at=now)
        await store.save_thread(thread, ctx)

        appends: list[float] = []
        for i in range(THREAD_ITEMS):
            created = now + dt.timedelta(milliseconds=i)
            item_id = store.generate_item_id("message", thread, ctx)
            if i % 2 == 0:
                item: Any = UserMessageItem(
                    id=item_id, thread_id=thread.id, created_at=created,
                    content=[UserMessageTextContent(text=f"Question {i}: what is my largest position?")],
                    attachments=[], inference_options=InferenceOptions(),
                )  # fmt: skip
            else:
                item = AssistantMessageItem(
                    id=item_id, thread_id=thread.id, created_at=created,
                    content=[AssistantMessageContent(text=f"Answer {i}: " + "Your largest position is NVDA. " * 20,
                                                     annotations=[])],
                )  # fmt: skip
            started = time.perf_counter()
            await store.add_thread_item(thread.id, item, ctx)
            appends.append(time.perf_counter() - started)

        loads: list[float] = []
        loaded = 0
        for _ in range(runs):
            started = time.perf_counter()
            page = await store.load_thread_items(thread.id, None, THREAD_ITEMS, "asc", ctx)
            loads.append(time.perf_counter() - started)
            loaded = len(page.data)

        lists: list[float] = []
        listed = 0
        for _ in range(runs):
            started = time.perf_counter()
            threads = await store.load_threads(20, None, "desc", ctx)
            lists.append(time.perf_counter() - started)
            listed = len(threads.data)
        await store.delete_thread(thread.id, ctx)
    finally:
        await db.dispose()
    return {
        "store": "SqlChatKitStore (sigmachat.store.chatkit_store)",
        "database": settings.database_url.split("://", 1)[0],
        "operations": [
            {
                "op": "append item",
                "detail": f"add_thread_item, each of {THREAD_ITEMS} items",
                "n": len(appends),
                "ms": _timed_summary(appends),
            },
            {
                "op": f"load {THREAD_ITEMS}-item thread",
                "detail": f"load_thread_items(limit={THREAD_ITEMS}) returned {loaded}",
                "n": len(loads),
                "ms": _timed_summary(loads),
            },
            {
                "op": "list threads",
                "detail": f"load_threads(limit=20) of a user with {threads_before + 1} threads, returned {listed}",
                "n": len(lists),
                "ms": _timed_summary(lists),
            },
        ],
    }
