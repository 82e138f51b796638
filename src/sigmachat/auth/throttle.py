"""Sign-in throttling: failed attempts are limited per account and per client address.

Uses the ``limits`` library (moving window) on the same storage as the send rate
(:func:`sigmachat.runs.limits.rate_limit_storage`: in process by default, the shared Redis
with ``REDIS_URL`` or any ``RATE_LIMIT_STORAGE``), so the limits hold across instances.
Only failures count, so a user who signs in correctly is never slowed down;
once either window is full every attempt is refused with 429 and ``Retry-After``, right or
wrong password alike. The account key is the normalised email whether or not such an
account exists, and the refusal is the same sentence, so throttling reveals nothing about
which accounts exist.
"""

from __future__ import annotations

import hashlib
import time

from limits import RateLimitItem, parse
from limits.aio.strategies import MovingWindowRateLimiter

from sigmachat.auth.service import normalise_email
from sigmachat.errors import RateLimited
from sigmachat.runs.limits import rate_limit_storage
from sigmachat.settings import Settings


def _account_key(email: str) -> str:
    # Hashed: storage (Redis) need not hold email addresses.
    return hashlib.sha256(normalise_email(email).encode()).hexdigest()[:32]


class LoginThrottle:
    def __init__(self, settings: Settings) -> None:
        self._account = parse(settings.login_rate_limit_account) if settings.login_rate_limit_account else None
        self._client = parse(settings.login_rate_limit_client) if settings.login_rate_limit_client else None
        self._limiter = MovingWindowRateLimiter(rate_limit_storage(settings))

    def _windows(self, email: str, client: str) -> list[tuple[RateLimitItem, str, str]]:
        out = []
        if self._account is not None:
            out.append((self._account, "login-account", _account_key(email)))
        if self._client is not None:
            out.append((self._client, "login-client", client or "unknown"))
        return out

    async def check(self, email: str, client: str) -> None:
        """Refuse (429) while the account's or the client's window of failures is full."""
        waits = []
        for item, scope, key in self._windows(email, client):
            if not await self._limiter.test(item, scope, key):
                stats = await self._limiter.get_window_stats(item, scope, key)
                waits.append(max(1, int(stats.reset_time - time.time()) + 1))
        if waits:
            retry_after = max(waits)
            raise RateLimited(
                f"Too many sign-in attempts. Try again in {retry_after} s.",
                headers={"Retry-After": str(retry_after)},
                details={"retry_after_ms": retry_after * 1000},
            )

    async def failed(self, email: str, client: str) -> None:
        """Count one failed attempt against the account and the client."""
        for item, scope, key in self._windows(email, client):
            await self._limiter.hit(item, scope, key)
