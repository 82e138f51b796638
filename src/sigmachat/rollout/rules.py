"""The ``chat_backend`` flag: its state, the bucketing, and the first-match rules.

Pure functions over a :class:`FlagState`, so the same decision is reproducible in a test, in
the CLI and in any instance of the service. The provider (``provider.py``) only adds caching
and the OpenFeature shape around :func:`decide`.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Final, Literal

import mmh3
from pydantic import BaseModel, ConfigDict, Field

FLAG_KEY = "chat_backend"
RESPONSES: Final = "responses"
CHATKIT: Final = "chatkit"
VARIANTS = (RESPONSES, CHATKIT)
Variant = Literal["responses", "chatkit"]

# Which rule decided, in evaluation order (the API's ``reason``).
Rule = Literal["kill_switch", "allow_user", "allow_portfolio", "deny_user", "percentage", "default"]

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")


def normalise_email(value: str) -> str:
    """Lower-case and trim; raises ValueError for something that is not an email address."""
    email = value.strip().lower()
    if not _EMAIL.match(email) or len(email) > 320:
        raise ValueError(f"not an email address: {value!r}")
    return email


def bucket(user_id: str, flag_key: str = FLAG_KEY) -> int:
    """The user's bucket, 1..100: murmur3_32("<flag>:<user>", seed 0, unsigned) % 100 + 1.

    The same formula as Unleash's ``normalizedValue`` (gradual rollout with stickiness on the
    user id), so the assignment survives a move to Unleash and never depends on the process.
    """
    return mmh3.hash(f"{flag_key}:{user_id}", seed=0, signed=False) % 100 + 1


class FlagState(BaseModel):
    """What an operator controls. ``version`` 0 means "never changed" (no database row yet)."""

    model_config = ConfigDict(frozen=True)

    key: str = FLAG_KEY
    version: int = 0
    percent: int = Field(default=0, ge=0, le=100)
    kill_switch: bool = False
    allow_users: tuple[str, ...] = ()
    allow_portfolios: tuple[str, ...] = ()
    deny_users: tuple[str, ...] = ()
    default: Variant = RESPONSES
    updated_at: dt.datetime | None = None
    updated_by: str | None = None

    def public(self) -> dict:
        """The JSON the admin API and the CLI show."""
        return {
            "flag": self.key,
            "version": self.version,
            "percent": self.percent,
            "kill_switch": self.kill_switch,
            "allow_users": list(self.allow_users),
            "allow_portfolios": list(self.allow_portfolios),
            "deny_users": list(self.deny_users),
            "default": self.default,
            "updated_at": self.updated_at.isoformat() if self.updated_at else None,
            "updated_by": self.updated_by,
        }


@dataclass(frozen=True, slots=True)
class Decision:
    variant: Variant
    rule: Rule
    bucket: int | None  # only computed when the percentage rule was reached
    version: int


def decide(
    state: FlagState, user_id: str | None, email: str | None = None, portfolio_id: str | None = None
) -> Decision:
    """First match wins: kill switch, allowlists, denylist, percentage, default."""
    email = email.strip().lower() if email else None
    if state.kill_switch:
        return Decision(RESPONSES, "kill_switch", None, state.version)
    if email and email in state.allow_users:
        return Decision(CHATKIT, "allow_user", None, state.version)
    if portfolio_id and portfolio_id in state.allow_portfolios:
        return Decision(CHATKIT, "allow_portfolio", None, state.version)
    if email and email in state.deny_users:
        return Decision(RESPONSES, "deny_user", None, state.version)
    if user_id:
        b = bucket(user_id, state.key)
        if b <= state.percent:
            return Decision(CHATKIT, "percentage", b, state.version)
        return Decision(state.default, "default", b, state.version)
    return Decision(state.default, "default", None, state.version)
