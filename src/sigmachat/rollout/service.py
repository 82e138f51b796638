"""The rollout service: which chat backend serves this user, asked through OpenFeature.

``flag_provider`` chooses the provider:

- ``"db"`` (default): :class:`DbFlagProvider`, our database, changed with the admin API or
  ``sigmachat rollout set``.
- ``"package.module:factory"``: any OpenFeature provider. ``factory(settings)`` (or
  ``factory()``) returns it, e.g. a three-line module that builds
  ``openfeature.contrib.provider.flagd.FlagdProvider(...)`` or the Unleash / LaunchDarkly
  providers. The flag key is ``chat_backend`` with string variants ``responses``/``chatkit``;
  the context carries the targeting key (user id) and the attributes ``email`` and
  ``portfolio_id``. Rollout changes are then made in that system; our admin API answers 409.

Evaluation happens when a request arrives (GET /chat/config, a send), never during a run: a
run keeps the engine it started with, and the next turn follows the flag.
"""

from __future__ import annotations

import importlib
import inspect
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from openfeature import api
from openfeature.evaluation_context import EvaluationContext
from openfeature.provider import FeatureProvider
from openfeature.provider.no_op_provider import NoOpProvider
from sqlalchemy import select

from sigmachat.db.models import Portfolio
from sigmachat.db.session import Database
from sigmachat.errors import Conflict
from sigmachat.logging import get_logger
from sigmachat.rollout.provider import DbFlagProvider
from sigmachat.rollout.rules import FLAG_KEY, RESPONSES, VARIANTS, FlagState
from sigmachat.rollout.store import FlagUpdate, RolloutStore
from sigmachat.settings import Settings

log = get_logger("sigmachat.rollout")

SAFE_FALLBACK = RESPONSES  # what a user gets when the flag cannot be evaluated at all


@dataclass(frozen=True, slots=True)
class BackendDecision:
    backend: str  # responses | chatkit
    reason: (
        str  # kill_switch | allow_user | allow_portfolio | deny_user | percentage | default | error | <provider reason>
    )
    flag_version: int
    bucket: int | None = None

    def public(self) -> dict[str, Any]:
        return {"backend": self.backend, "reason": self.reason, "flag_version": self.flag_version}


class ExternalProviderManaged(Conflict):
    code = "rollout_managed_externally"


def load_provider(spec: str, settings: Settings) -> FeatureProvider:
    """Import ``module:factory`` and build the provider (passing settings if it takes one)."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ValueError(f"flag_provider must be 'db' or 'package.module:factory', got {spec!r}")
    factory = getattr(importlib.import_module(module_name), attr)
    try:
        takes_args = bool(inspect.signature(factory).parameters)
    except (TypeError, ValueError):
        takes_args = False
    return factory(settings) if takes_args else factory()


class RolloutService:
    """One per process. Registers its provider under a private OpenFeature domain, so two
    app instances in one process (tests) never share or overwrite each other's provider."""

    def __init__(
        self,
        settings: Settings,
        db: Database,
        *,
        provider: FeatureProvider | None = None,
        observer: Callable[[BackendDecision], None] | None = None,
    ) -> None:
        self.settings = settings
        self.store = RolloutStore(db, default_variant=settings.chat_backend)
        if provider is None:
            if settings.flag_provider == "db":
                provider = DbFlagProvider(self.store, ttl_s=settings.flag_cache_ttl_s)
            else:
                provider = load_provider(settings.flag_provider, settings)
        self.provider = provider
        self.observer = observer
        self.domain = f"sigmachat-{uuid.uuid4().hex[:12]}"
        if isinstance(provider, DbFlagProvider):
            api.set_provider_and_wait(provider, self.domain)  # initialize() is a no-op for ours
        else:
            api.set_provider(provider, self.domain)  # a remote provider initialises in the background
        self.client = api.get_client(self.domain)

    @property
    def managed_here(self) -> bool:
        """True when the flag lives in our database (admin API and CLI can change it)."""
        return isinstance(self.provider, DbFlagProvider)

    @property
    def provider_name(self) -> str:
        return self.provider.get_metadata().name

    async def backend_for(
        self, *, user_id: str, email: str | None = None, portfolio_id: str | None = None
    ) -> BackendDecision:
        attributes: dict[str, Any] = {}
        if email:
            attributes["email"] = email.strip().lower()
        if portfolio_id:
            attributes["portfolio_id"] = portfolio_id
        details = await self.client.get_string_details_async(
            FLAG_KEY, SAFE_FALLBACK, EvaluationContext(targeting_key=user_id, attributes=attributes)
        )
        meta = details.flag_metadata or {}
        backend = details.value if details.value in VARIANTS else SAFE_FALLBACK
        if details.error_code:
            reason = "error"
            log.warning("rollout_evaluation_failed", error_code=str(details.error_code), message=details.error_message)
        else:
            reason = str(meta.get("rule") or (details.reason or "unknown")).lower()
        version = meta.get("flag_version", 0)
        bucket = meta.get("bucket")
        decision = BackendDecision(
            backend=backend,
            reason=reason,
            flag_version=int(version) if isinstance(version, int | float) else 0,
            bucket=bucket if isinstance(bucket, int) else None,
        )
        if self.observer is not None:
            try:
                self.observer(decision)
            except Exception:  # metrics must never change the answer
                log.exception("rollout_observer_failed")
        return decision

    async def backend_for_user(self, session: Any, user: Any, *, portfolio_id: str | None = None) -> BackendDecision:
        """The decision for a signed-in user. A portfolio id counts only if the user owns it, so
        nobody can opt into a pilot by naming someone else's allowlisted portfolio."""
        if portfolio_id:
            owned = await session.execute(
                select(Portfolio.id).where(Portfolio.id == portfolio_id, Portfolio.owner_id == user.id)
            )
            if owned.scalar_one_or_none() is None:
                portfolio_id = None
        return await self.backend_for(user_id=user.id, email=user.email, portfolio_id=portfolio_id)

    # ---- changes (database provider only) ------------------------------------------------------

    def _require_db(self) -> None:
        if not self.managed_here:
            raise ExternalProviderManaged(
                f"The rollout is managed by the {self.provider_name} provider; change it there.",
                details={"provider": self.provider_name},
            )

    async def state(self) -> FlagState:
        return await self.store.get()

    async def update(self, patch: FlagUpdate | dict[str, Any], *, actor: str) -> FlagState:
        self._require_db()
        state = await self.store.update(patch, actor=actor)
        self._changed()
        return state

    async def modify(self, build: Callable[[FlagState], dict[str, Any]], *, actor: str) -> FlagState:
        self._require_db()
        state = await self.store.modify(build, actor=actor)
        self._changed()
        return state

    def _changed(self) -> None:
        if isinstance(self.provider, DbFlagProvider):
            self.provider.invalidate()  # this instance applies its own change at once

    def close(self) -> None:
        # Detach our provider from its domain (the SDK shuts it down in the background).
        api.set_provider(NoOpProvider(), self.domain)
