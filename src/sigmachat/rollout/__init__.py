"""Rollout control: which chat path (Responses or ChatKit) serves a user, and how to change it.

- ``rules``: the flag state, Unleash-compatible bucketing and the first-match rules;
- ``store``: the state in the database, changed atomically and audited;
- ``provider``: the OpenFeature provider over the store (cached, version-checked);
- ``service``: what the app and the CLI call (``RolloutService.backend_for``).
"""

from sigmachat.rollout.provider import DbFlagProvider
from sigmachat.rollout.rules import CHATKIT, FLAG_KEY, RESPONSES, Decision, FlagState, bucket, decide
from sigmachat.rollout.service import BackendDecision, RolloutService
from sigmachat.rollout.store import FlagUpdate, RolloutStore, VersionConflict

__all__ = [
    "BackendDecision",
    "CHATKIT",
    "DbFlagProvider",
    "Decision",
    "FLAG_KEY",
    "FlagState",
    "FlagUpdate",
    "RESPONSES",
    "RolloutService",
    "RolloutStore",
    "VersionConflict",
    "bucket",
    "decide",
]
