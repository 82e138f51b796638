"""Abuse controls for starting runs: send rate, concurrent streams and a daily token budget.

Rate limiting uses the ``limits`` library (moving window); its storage is in-process by
default and any ``limits`` storage URI (e.g. ``async+redis://``) by configuration, so the
limit holds across instances. With ``SIGMACHAT_REDIS_URL`` the storage is that Redis. The
concurrent-run cap is counted by the run coordinator (shared through Redis as well) and the
daily token budget is summed from the database every instance shares.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from limits import parse
from limits.aio.strategies import MovingWindowRateLimiter
from limits.storage import StorageTypes, storage_from_string
from sqlalchemy import ScalarResult, select
from sqlalchemy.ext.asyncio import AsyncSession

from sigmachat.db.models import Message
from sigmachat.errors import RateLimited
from sigmachat.settings import Settings


def rate_limit_storage(settings: Settings) -> StorageTypes:
    """The ``limits`` storage: explicit URI, else the shared Redis, else in process.

    Redis schemes use ``limits``' redis-py bridge (``implementation="redispy"``): its default,
    coredis, is another client we would have to install for this alone.
    """
    uri = settings.rate_limit_storage
    if uri == "async+memory://" and settings.redis_url:
        uri = "async+" + settings.redis_url
    if uri.startswith(("async+redis", "async+rediss")):
        return storage_from_string(uri, implementation="redispy", key_prefix=f"{settings.redis_prefix}limits")
    return storage_from_string(uri)


class UsageGuard:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._send_limit = parse(settings.send_rate_limit) if settings.send_rate_limit else None
        self._limiter = MovingWindowRateLimiter(rate_limit_storage(settings))

    async def check_send(self, user_id: str) -> None:
        if self._send_limit is None:
            return
        if not await self._limiter.hit(self._send_limit, "send", user_id):
            stats = await self._limiter.get_window_stats(self._send_limit, "send", user_id)
            retry_after = max(1, int(stats.reset_time - time.time()) + 1)
            raise RateLimited(
                f"You are sending messages too quickly (limit {self.settings.send_rate_limit}). "
                f"Try again in {retry_after} s.",
                headers={"Retry-After": str(retry_after)},
                details={"retry_after_ms": retry_after * 1000, "limit": self.settings.send_rate_limit},
            )

    def check_concurrency(self, active_for_user: int) -> None:
        limit = self.settings.max_concurrent_runs_per_user
        if limit and active_for_user >= limit:
            raise RateLimited(
                f"You already have {active_for_user} answers being written; wait for one to finish.",
                headers={"Retry-After": "2"},
                details={"retry_after_ms": 2000, "limit": limit},
            )

    async def check_budget(self, session: AsyncSession, user_id: str, now: dt.datetime | None = None) -> None:
        budget = self.settings.daily_token_budget
        if not budget:
            return
        now = now or dt.datetime.now(dt.UTC)
        day_start = now.replace(hour=0, minute=0, second=0, microsecond=0)
        rows: ScalarResult[dict[str, Any] | None] = (
            await session.execute(
                select(Message.usage).where(
                    Message.user_id == user_id, Message.role == "assistant", Message.created_at >= day_start
                )
            )
        ).scalars()
        used = sum(int((u or {}).get("input_tokens", 0)) + int((u or {}).get("output_tokens", 0)) for u in rows)
        if used >= budget:
            reset = int((day_start + dt.timedelta(days=1) - now).total_seconds()) + 1
            raise RateLimited(
                f"You have used today's token budget ({used:,} of {budget:,} tokens). It resets at midnight UTC.",
                headers={"Retry-After": str(reset)},
                details={"retry_after_ms": reset * 1000, "used_tokens": used, "budget": budget},
            )
