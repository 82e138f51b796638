"""Flag state in the database: audited changes, validation, and propagation between instances."""

from __future__ import annotations

import asyncio
import time

import pytest
from pydantic import ValidationError

from sigmachat.rollout import FlagUpdate, RolloutService, VersionConflict
from sigmachat.services import Services


async def test_initial_state_follows_the_chat_backend_setting(services):
    state = await services.rollout.state()
    assert (state.version, state.percent, state.kill_switch, state.default) == (0, 0, False, "responses")
    decision = await services.rollout.backend_for(user_id="u1")
    assert decision.public() == {"backend": "responses", "reason": "default", "flag_version": 0}


async def test_every_change_is_audited_with_old_and_new_values(services):
    rollout = services.rollout
    await rollout.update({"percent": 10}, actor="user:admin@sigmasight.com")
    await rollout.update({"kill_switch": True, "allow_users": ["A@X.io", "a@x.io", "b@x.io"]}, actor="cli:ops")
    same = await rollout.update({"kill_switch": True}, actor="cli:ops")  # no change: no version, no audit
    assert same.version == 2
    entries = await rollout.store.audit()
    assert [(e["version"], e["actor"]) for e in entries] == [(2, "cli:ops"), (1, "user:admin@sigmasight.com")]
    assert entries[1]["old"] == {"percent": 0} and entries[1]["new"] == {"percent": 10}
    assert entries[0]["old"] == {"kill_switch": False, "allow_users": []}
    assert entries[0]["new"] == {"kill_switch": True, "allow_users": ["a@x.io", "b@x.io"]}
    assert entries[0]["changed_at"].endswith("+00:00")
    state = await rollout.state()
    assert state.updated_by == "cli:ops" and state.allow_users == ("a@x.io", "b@x.io")


async def test_stale_expected_version_is_a_conflict(services):
    await services.rollout.update({"percent": 5}, actor="t")
    with pytest.raises(VersionConflict):
        await services.rollout.update({"percent": 6, "expected_version": 0}, actor="t")


@pytest.mark.parametrize(
    "body",
    [{"percent": 101}, {"percent": -1}, {"percent": "50"}, {"percent": None}, {"kill_switch": "yes"},
     {"allow_users": ["not-an-email"]}, {"default": "agents"}, {"surprise": 1}, {"allow_portfolios": [""]}],
)  # fmt: skip
def test_invalid_updates_are_rejected(body):
    with pytest.raises(ValidationError):
        FlagUpdate.model_validate(body)


async def test_a_change_reaches_a_second_instance_within_five_seconds(settings):
    """Two service containers on one SQLite file, as two app processes would be."""
    first, second = Services.build(settings), Services.build(settings)
    try:
        assert (await second.rollout.backend_for(user_id="u1")).backend == "responses"  # second has cached state
        await first.rollout.update({"default": "chatkit"}, actor="t")
        assert (await first.rollout.backend_for(user_id="u1")).backend == "chatkit"  # the writer applies at once

        changed = time.monotonic()
        await first.rollout.update({"kill_switch": True}, actor="t")
        seen = None
        while time.monotonic() - changed < 5.0:
            decision = await second.rollout.backend_for(user_id="u1")
            if decision.reason == "kill_switch":
                seen = time.monotonic() - changed
                break
            await asyncio.sleep(0.05)
        assert seen is not None, "the second instance did not see the kill switch within 5 s"
        assert decision.backend == "responses" and decision.flag_version == 2
    finally:
        await first.aclose()
        await second.aclose()


async def test_a_cached_state_survives_a_database_hiccup(services):
    rollout = services.rollout
    await rollout.update({"default": "chatkit"}, actor="t")
    assert (await rollout.backend_for(user_id="u1")).backend == "chatkit"

    async def broken() -> int:
        raise OSError("database gone")

    rollout.provider.invalidate()
    rollout.store.version = broken  # type: ignore[method-assign]
    decision = await rollout.backend_for(user_id="u1")
    assert (decision.backend, decision.flag_version) == ("chatkit", 1)


async def test_without_any_state_the_safe_fallback_is_responses(settings):
    services = Services.build(settings)
    try:

        async def broken() -> int:
            raise OSError("database gone")

        services.rollout.store.version = broken  # type: ignore[method-assign]
        decision = await services.rollout.backend_for(user_id="u1")
        assert (decision.backend, decision.reason) == ("responses", "error")
    finally:
        await services.aclose()


async def test_an_external_provider_is_chosen_by_configuration(settings, services):
    settings = settings.model_copy(update={"flag_provider": "tests.rollout.external:build"})
    rollout = RolloutService(settings, services.db)
    try:
        decision = await rollout.backend_for(user_id="u1", email="x@y.z")
        assert decision.public() == {"backend": "chatkit", "reason": "static", "flag_version": 7}
        assert not rollout.managed_here
        with pytest.raises(Exception) as info:
            await rollout.update({"percent": 5}, actor="t")
        assert getattr(info.value, "status_code", None) == 409
    finally:
        rollout.close()
