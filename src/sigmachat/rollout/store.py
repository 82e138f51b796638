"""Flag state in the database: read it, change it (optimistically, audited), list the audit log.

Every instance of the service reads the same row, so a change made through any instance, the
admin API or the CLI reaches all of them (see ``provider.py`` for how fast).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, cast

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import CursorResult, select, update
from sqlalchemy.exc import IntegrityError

from sigmachat.db.models import RolloutAudit, RolloutFlag, as_utc, utcnow
from sigmachat.db.session import Database
from sigmachat.errors import Conflict
from sigmachat.logging import get_logger
from sigmachat.rollout.rules import FLAG_KEY, FlagState, normalise_email

log = get_logger("sigmachat.rollout")

MAX_LIST = 10_000  # allowlists are for named users and pilots, not for the whole user base


def _unique(values: list[str]) -> list[str]:
    return list(dict.fromkeys(values))


class FlagUpdate(BaseModel):
    """A partial change: only the fields given are changed; lists given replace the old list.

    ``expected_version`` (optional) makes the change conditional on the state the caller saw,
    so two operators editing the lists at once cannot silently undo each other (409).
    """

    model_config = ConfigDict(extra="forbid")

    # Defaults are not validated, so an explicit ``null`` is rejected while omission means "keep".
    # The None defaults are therefore deliberate sentinels outside the declared (non-optional) types,
    # which mypy cannot express: hence the targeted ignores below.
    percent: int = Field(default=None, ge=0, le=100, strict=True)  # type: ignore[assignment]
    kill_switch: bool = Field(default=None, strict=True)  # type: ignore[assignment]
    allow_users: list[str] = Field(default=None, max_length=MAX_LIST)  # type: ignore[arg-type]
    allow_portfolios: list[str] = Field(default=None, max_length=MAX_LIST)  # type: ignore[arg-type]
    deny_users: list[str] = Field(default=None, max_length=MAX_LIST)  # type: ignore[arg-type]
    default: Literal["responses", "chatkit"] = None  # type: ignore[assignment]
    expected_version: int = Field(default=None, ge=0, strict=True)  # type: ignore[assignment]

    @field_validator("allow_users", "deny_users")
    @classmethod
    def _emails(cls, value: list[str]) -> list[str]:
        return _unique([normalise_email(v) for v in value])

    @field_validator("allow_portfolios")
    @classmethod
    def _ids(cls, value: list[str]) -> list[str]:
        ids = [v.strip() for v in value]
        if any(not v or len(v) > 64 for v in ids):
            raise ValueError("portfolio ids are 1..64 characters")
        return _unique(ids)

    def changes(self) -> dict[str, Any]:
        return {k: v for k, v in self.model_dump(exclude_unset=True).items() if k != "expected_version"}


class VersionConflict(Conflict):
    code = "rollout_version_conflict"


_FIELDS = ("percent", "kill_switch", "allow_users", "allow_portfolios", "deny_users", "default")


def _state_of(row: RolloutFlag) -> FlagState:
    return FlagState(
        key=row.key,
        version=row.version,
        percent=row.percent,
        kill_switch=row.kill_switch,
        allow_users=tuple(row.allow_users or ()),
        allow_portfolios=tuple(row.allow_portfolios or ()),
        deny_users=tuple(row.deny_users or ()),
        default=row.default_variant,
        updated_at=as_utc(row.updated_at) if row.updated_at else None,
        updated_by=row.updated_by or None,
    )


def _as_json(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


class RolloutStore:
    """Reads and writes one flag's row. ``default_variant`` is the state before any change."""

    def __init__(self, db: Database, *, default_variant: str = "responses", flag_key: str = FLAG_KEY) -> None:
        self.db = db
        self.flag_key = flag_key
        self.initial = FlagState(key=flag_key, default=default_variant)

    async def version(self) -> int:
        """The current version only: the cheap query instances poll to notice a change."""
        async with self.db.session() as session:
            v = (
                await session.execute(select(RolloutFlag.version).where(RolloutFlag.key == self.flag_key))
            ).scalar_one_or_none()
        return v or 0

    async def get(self) -> FlagState:
        async with self.db.session() as session:
            row = await session.get(RolloutFlag, self.flag_key)
            return _state_of(row) if row is not None else self.initial

    async def update(self, patch: FlagUpdate | dict[str, Any], *, actor: str) -> FlagState:
        """Apply a partial change and audit it, atomically. A change that changes nothing is not
        written (no new version, no audit row)."""
        if not isinstance(patch, FlagUpdate):
            patch = FlagUpdate.model_validate(patch)
        async with self.db.session() as session:
            row = await session.get(RolloutFlag, self.flag_key)
            current = _state_of(row) if row is not None else self.initial
            if patch.expected_version is not None and patch.expected_version != current.version:
                raise VersionConflict(
                    "The rollout state changed since you loaded it; reload and try again.",
                    details={"expected_version": patch.expected_version, "version": current.version},
                )
            old: dict[str, Any] = {}
            new: dict[str, Any] = {}
            for name, value in patch.changes().items():
                before = _as_json(getattr(current, name))
                if before != value:
                    old[name], new[name] = before, value
            if not new:
                return current
            merged = {name: new.get(name, _as_json(getattr(current, name))) for name in _FIELDS}
            version = current.version + 1
            now = utcnow()
            values = dict(
                version=version,
                percent=merged["percent"],
                kill_switch=merged["kill_switch"],
                allow_users=merged["allow_users"],
                allow_portfolios=merged["allow_portfolios"],
                deny_users=merged["deny_users"],
                default_variant=merged["default"],
                updated_at=now,
                updated_by=actor,
            )
            if row is None:
                session.add(RolloutFlag(key=self.flag_key, **values))
            else:
                # Compare-and-set on the version: a concurrent writer (another instance, the CLI)
                # makes this match no row, and we report a conflict instead of losing its change.
                # An UPDATE returns a CursorResult (which has rowcount); session.execute is typed as Result.
                result = cast(
                    CursorResult[Any],
                    await session.execute(
                        update(RolloutFlag)
                        .where(RolloutFlag.key == self.flag_key, RolloutFlag.version == current.version)
                        .values(**values)
                        .execution_options(synchronize_session=False)
                    ),
                )
                if result.rowcount != 1:
                    await session.rollback()
                    raise VersionConflict("The rollout state was changed concurrently; try again.")
            session.add(
                RolloutAudit(flag_key=self.flag_key, version=version, actor=actor, changed_at=now, old=old, new=new)
            )
            try:
                await session.commit()
            except IntegrityError as exc:  # two first writes raced on the primary key
                raise VersionConflict("The rollout state was changed concurrently; try again.") from exc
        log.info("rollout_changed", flag=self.flag_key, version=version, actor=actor, old=old, new=new)
        return await self.get()

    async def modify(self, build: Callable[[FlagState], dict[str, Any]], *, actor: str, attempts: int = 5) -> FlagState:
        """Read-modify-write (e.g. "add this email to the allowlist"), retried on a conflict."""
        for attempt in range(attempts):
            state = await self.get()
            patch = FlagUpdate.model_validate({**build(state), "expected_version": state.version})
            try:
                return await self.update(patch, actor=actor)
            except VersionConflict:
                if attempt == attempts - 1:
                    raise
        raise AssertionError("unreachable")

    async def audit(self, *, limit: int = 50, before_id: int | None = None) -> list[dict[str, Any]]:
        """Newest first; ``before_id`` pages further back."""
        stmt = select(RolloutAudit).where(RolloutAudit.flag_key == self.flag_key)
        if before_id is not None:
            stmt = stmt.where(RolloutAudit.id < before_id)
        stmt = stmt.order_by(RolloutAudit.id.desc()).limit(limit)
        async with self.db.session() as session:
            rows = (await session.execute(stmt)).scalars().all()
        return [
            {
                "id": r.id,
                "flag": r.flag_key,
                "version": r.version,
                "actor": r.actor,
                "changed_at": as_utc(r.changed_at).isoformat() if r.changed_at else None,
                "old": r.old,
                "new": r.new,
            }
            for r in rows
        ]
