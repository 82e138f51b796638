"""An OpenFeature provider backed by our database (``flag_provider = "db"``).

Evaluation is local (the rules in ``rules.py`` over a cached :class:`FlagState`); the cache is
refreshed at most every ``ttl_s`` seconds by reading only the flag's version, and the full row
is read again only when that version moved. So every instance sees a change within
``ttl_s`` + one query, without a restart, and an idle instance costs nothing.

Because it is a plain OpenFeature provider, an operator can replace it with the Unleash,
flagd or LaunchDarkly provider by configuration (see ``service.py`` and docs/runbook.md).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from openfeature.evaluation_context import EvaluationContext
from openfeature.exception import ErrorCode, GeneralError
from openfeature.flag_evaluation import FlagResolutionDetails, Reason
from openfeature.provider import AbstractProvider, Metadata

from sigmachat.logging import get_logger
from sigmachat.rollout.rules import FlagState, decide
from sigmachat.rollout.store import RolloutStore

log = get_logger("sigmachat.rollout")

# Our rule names mapped onto the OpenFeature standard reasons (the rule itself travels in
# the flag metadata, so /chat/config can tell the operator exactly which rule matched).
_REASONS = {
    "kill_switch": Reason.DISABLED,
    "allow_user": Reason.TARGETING_MATCH,
    "allow_portfolio": Reason.TARGETING_MATCH,
    "deny_user": Reason.TARGETING_MATCH,
    "percentage": Reason.SPLIT,
    "default": Reason.DEFAULT,
}


class DbFlagProvider(AbstractProvider):
    """Resolves ``chat_backend`` from the ``rollout_flags`` row, cached for ``ttl_s`` seconds.

    Use the async resolution (``get_string_details_async``): it refreshes the cache. The sync
    resolution answers from the cache as it is (it cannot query the async database).
    """

    def __init__(self, store: RolloutStore, *, ttl_s: float = 2.0, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.store = store
        self.ttl_s = ttl_s
        self._clock = clock
        self._state: FlagState | None = None
        self._checked_at = float("-inf")
        self._lock: asyncio.Lock | None = None
        self.refreshes = 0  # full reloads (a version change seen), for tests and debugging

    def get_metadata(self) -> Metadata:
        return Metadata(name="sigmachat-db")

    # ---- cache -------------------------------------------------------------------------------

    def invalidate(self) -> None:
        """Forget the freshness (not the state): the next evaluation re-reads the version.
        Called after a change made through this instance, so it applies here at once."""
        self._checked_at = float("-inf")

    async def state(self) -> FlagState:
        if self._state is not None and self._clock() - self._checked_at < self.ttl_s:
            return self._state
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:  # one refresh at a time; concurrent callers reuse its result
            if self._state is not None and self._clock() - self._checked_at < self.ttl_s:
                return self._state
            try:
                version = await self.store.version()
                if self._state is None or version != self._state.version:
                    self._state = await self.store.get()
                    self.refreshes += 1
                self._checked_at = self._clock()
            except Exception as exc:
                if self._state is None:
                    raise GeneralError(f"rollout state unavailable: {type(exc).__name__}") from exc
                # Keep serving the last known state (and retry on the next evaluation) rather than
                # flipping everyone to the default while the database hiccups.
                log.warning("rollout_refresh_failed", error=type(exc).__name__, version=self._state.version)
            return self._state

    # ---- OpenFeature ---------------------------------------------------------------------------

    def _resolve(
        self, state: FlagState, flag_key: str, ctx: EvaluationContext | None, stale: bool = False
    ) -> FlagResolutionDetails[str]:
        attrs = dict(ctx.attributes) if ctx is not None else {}
        decision = decide(
            state,
            ctx.targeting_key if ctx is not None else None,
            email=_str_or_none(attrs.get("email")),
            portfolio_id=_str_or_none(attrs.get("portfolio_id")),
        )
        metadata: dict[str, bool | int | float | str] = {"flag_version": state.version, "rule": decision.rule}
        if decision.bucket is not None:
            metadata["bucket"] = decision.bucket
        if stale:
            metadata["stale"] = True
        return FlagResolutionDetails(
            value=decision.variant,
            variant=decision.variant,
            reason=Reason.STALE if stale else _REASONS[decision.rule],
            flag_metadata=metadata,
        )

    def resolve_string_details(
        self, flag_key: str, default_value: str, evaluation_context: EvaluationContext | None = None
    ) -> FlagResolutionDetails[str]:
        if flag_key != self.store.flag_key:
            return _not_found(flag_key, default_value)
        if self._state is None:
            return FlagResolutionDetails(
                value=default_value, reason=Reason.ERROR, error_code=ErrorCode.PROVIDER_NOT_READY,
                error_message="state not loaded yet; evaluate asynchronously",
            )  # fmt: skip
        stale = self._clock() - self._checked_at >= self.ttl_s
        return self._resolve(self._state, flag_key, evaluation_context, stale=stale)

    async def resolve_string_details_async(
        self, flag_key: str, default_value: str, evaluation_context: EvaluationContext | None = None
    ) -> FlagResolutionDetails[str]:
        if flag_key != self.store.flag_key:
            return _not_found(flag_key, default_value)
        state = await self.state()
        return self._resolve(state, flag_key, evaluation_context)

    # This provider serves one string flag; every other type or key is "not found", which makes
    # the OpenFeature client answer the caller's default with reason ERROR.
    def resolve_boolean_details(self, flag_key, default_value, evaluation_context=None):
        return _not_found(flag_key, default_value)

    def resolve_integer_details(self, flag_key, default_value, evaluation_context=None):
        return _not_found(flag_key, default_value)

    def resolve_float_details(self, flag_key, default_value, evaluation_context=None):
        return _not_found(flag_key, default_value)

    def resolve_object_details(self, flag_key, default_value, evaluation_context=None):
        return _not_found(flag_key, default_value)


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _not_found(flag_key: str, default_value):
    return FlagResolutionDetails(
        value=default_value, reason=Reason.ERROR, error_code=ErrorCode.FLAG_NOT_FOUND,
        error_message=f"flag {flag_key!r} is not served by the sigmachat-db provider",
    )  # fmt: skip
