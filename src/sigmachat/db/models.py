"""ORM models. Portable types only: the same schema runs on SQLite and PostgreSQL (asyncpg)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import cast

from sqlalchemy import (
    JSON,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

# Deterministic constraint names so Alembic migrations are stable across databases.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


# JSON columns store Python None as SQL NULL, however the row is written: left unset by the ORM,
# set to None by the ORM, or given as None to a Core insert (SQLAlchemy's default writes the JSON
# text 'null' for the last two, so the same "no value" was stored two ways).
JSON_VALUE = JSON(none_as_null=True)


def new_id() -> str:
    return str(uuid.uuid4())


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def as_utc(value: dt.datetime) -> dt.datetime:
    """A timestamp read back from the database, made timezone-aware.

    SQLite hands back naive datetimes for timezone-aware columns; everything we write is UTC.
    """
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {dt.datetime: DateTime(timezone=True), dict: JSON_VALUE}


class User(Base):
    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    email: Mapped[str] = mapped_column(String(320), unique=True, index=True)
    full_name: Mapped[str] = mapped_column(String(200), default="")
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16), default="user")  # user | admin
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    portfolios: Mapped[list[Portfolio]] = relationship(back_populates="owner")


class Portfolio(Base):
    __tablename__ = "portfolios"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    owner_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    equity_balance: Mapped[float] = mapped_column(Float, default=0.0)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    owner: Mapped[User] = relationship(back_populates="portfolios")
    positions: Mapped[list[Position]] = relationship(
        back_populates="portfolio", cascade="all, delete-orphan", order_by="Position.symbol"
    )

    __table_args__ = (UniqueConstraint("owner_id", "name", name="uq_portfolios_owner_name"),)


class Position(Base):
    """One lot. A symbol held in several lots has several rows; analytics aggregate by symbol."""

    __tablename__ = "positions"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    portfolio_id: Mapped[str] = mapped_column(ForeignKey("portfolios.id", ondelete="CASCADE"), index=True)
    symbol: Mapped[str] = mapped_column(String(40), index=True)
    quantity: Mapped[float] = mapped_column(Float)  # signed: negative means short
    entry_price: Mapped[float] = mapped_column(Float, default=0.0)
    entry_date: Mapped[dt.date] = mapped_column(Date)
    exit_date: Mapped[dt.date | None] = mapped_column(Date, nullable=True)  # closed lots
    asset_class: Mapped[str] = mapped_column(String(16))  # PUBLIC | OPTIONS | PRIVATE
    underlying: Mapped[str | None] = mapped_column(String(40), nullable=True)
    strike: Mapped[float | None] = mapped_column(Float, nullable=True)
    expiry: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    option_type: Mapped[str | None] = mapped_column(String(1), nullable=True)  # C | P
    seed_key: Mapped[str | None] = mapped_column(String(80), nullable=True)  # idempotent seeding

    portfolio: Mapped[Portfolio] = relationship(back_populates="positions")

    __table_args__ = (UniqueConstraint("portfolio_id", "seed_key", name="uq_positions_seed_key"),)


class DailyPrice(Base):
    """Daily closes. source='demo' from the generator, 'import' from a CSV; imports win."""

    __tablename__ = "daily_prices"

    symbol: Mapped[str] = mapped_column(String(40), primary_key=True)
    date: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    source: Mapped[str] = mapped_column(String(16), primary_key=True)
    close: Mapped[float] = mapped_column(Float)

    __table_args__ = (Index("ix_daily_prices_date", "date"),)


class AppState(Base):
    """Small key/value facts about the installation (price data version, seed marker)."""

    __tablename__ = "app_state"

    key: Mapped[str] = mapped_column(String(80), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


def table_of(model: type[Base]) -> Table:
    """The table of a mapped class, for Core statements. A declaratively mapped class's
    ``__table__`` is a Table; SQLAlchemy types it as the wider FromClause."""
    return cast(Table, model.__table__)


def prefixed_id(prefix: str) -> str:
    """ChatKit-style ids (thr_, msg_, ...) shared by both chat paths: one history, one id scheme."""
    return f"{prefix}_{uuid.uuid4().hex[:16]}"


class Conversation(Base):
    """A conversation of the Responses path is a ChatKit thread: the same row serves both."""

    __tablename__ = "conversations"

    id: Mapped[str] = mapped_column(String(64), primary_key=True, default=lambda: prefixed_id("thr"))
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    portfolio_id: Mapped[str | None] = mapped_column(ForeignKey("portfolios.id", ondelete="SET NULL"), nullable=True)
    title: Mapped[str | None] = mapped_column(String(200), nullable=True)
    # The analyst style of the conversation (agent/instructions.py MODES); changeable any time.
    mode: Mapped[str] = mapped_column(String(16), default="green", server_default="green")
    status: Mapped[dict | None] = mapped_column(JSON_VALUE, nullable=True)  # ChatKit thread status
    metadata_: Mapped[dict] = mapped_column("metadata", JSON_VALUE, default=dict)
    # ChatKit thread fields without a column of their own (exact created_at as given,
    # allowed_image_domains), so a thread round-trips losslessly; NULL for legacy rows.
    chatkit: Mapped[dict | None] = mapped_column(JSON_VALUE, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    __table_args__ = (Index("ix_conversations_user_created", "user_id", "created_at", "id"),)


class Message(Base):
    """One item of a conversation (ChatKit: a thread item).

    ``role``/``content``/``tool_calls`` serve the Responses path and its history API;
    ``item_type``/``payload`` keep the exact ChatKit item so it round-trips losslessly.
    """

    __tablename__ = "messages"

    id: Mapped[str] = mapped_column(String(64), primary_key=True, default=lambda: prefixed_id("msg"))
    conversation_id: Mapped[str] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    item_type: Mapped[str] = mapped_column(String(40), default="message")  # ChatKit item type
    role: Mapped[str | None] = mapped_column(String(16), nullable=True)  # user | assistant
    content: Mapped[str] = mapped_column(Text, default="")
    tool_calls: Mapped[list | None] = mapped_column(JSON_VALUE, nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="complete")
    model: Mapped[str | None] = mapped_column(String(120), nullable=True)
    engine: Mapped[str | None] = mapped_column(String(16), nullable=True)
    run_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    usage: Mapped[dict | None] = mapped_column(JSON_VALUE, nullable=True)
    first_token_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    latency_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    error: Mapped[dict | None] = mapped_column(JSON_VALUE, nullable=True)
    client_message_id: Mapped[str | None] = mapped_column(String(100), nullable=True)
    payload: Mapped[dict | None] = mapped_column(JSON_VALUE, nullable=True)  # exact ChatKit item JSON
    # The user's rating of an answer, whichever path it came from: "positive" | "negative"
    # (ChatKit's words; the original chat API's up/down map onto them at its edge), with the
    # optional corrected answer and comment of the original feedback API.
    feedback: Mapped[str | None] = mapped_column(String(16), nullable=True)
    feedback_edited_text: Mapped[str | None] = mapped_column(Text, nullable=True)
    feedback_comment: Mapped[str | None] = mapped_column(Text, nullable=True)
    feedback_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)
    offline: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        Index("ix_messages_conversation_created", "conversation_id", "created_at", "id"),
        UniqueConstraint("conversation_id", "client_message_id", name="uq_messages_client_message_id"),
    )


class Attachment(Base):
    """ChatKit attachment metadata (the exact ChatKit Attachment JSON), owned by one user."""

    __tablename__ = "attachments"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    thread_id: Mapped[str | None] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), nullable=True, index=True
    )
    payload: Mapped[dict] = mapped_column(JSON_VALUE)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


__all__ = [
    "Attachment",
    "AppState",
    "Base",
    "Conversation",
    "Message",
    "prefixed_id",
    "DailyPrice",
    "Portfolio",
    "Position",
    "User",
    "as_utc",
    "new_id",
    "utcnow",
]


# --- rollout control (issue 7) -------------------------------------------------------------


class RolloutFlag(Base):
    """The state of one rollout flag (``chat_backend``). ``version`` grows by one on every change:
    instances compare it with their cached copy to pick up a change without a restart."""

    __tablename__ = "rollout_flags"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, default=1)
    percent: Mapped[int] = mapped_column(Integer, default=0)
    kill_switch: Mapped[bool] = mapped_column(default=False)
    allow_users: Mapped[list] = mapped_column(JSON_VALUE, default=list)  # lower-case emails
    allow_portfolios: Mapped[list] = mapped_column(JSON_VALUE, default=list)  # portfolio ids
    deny_users: Mapped[list] = mapped_column(JSON_VALUE, default=list)  # lower-case emails
    default_variant: Mapped[str] = mapped_column(String(16))
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(200), default="")


class RolloutAudit(Base):
    """Every change of a rollout flag: who, when, and each changed field's old and new value."""

    __tablename__ = "rollout_audit"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    flag_key: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer)  # the flag version this change produced
    actor: Mapped[str] = mapped_column(String(200))  # "user:<email>" | "cli:<os user>"
    changed_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    old: Mapped[dict] = mapped_column(JSON_VALUE)  # changed fields only
    new: Mapped[dict] = mapped_column(JSON_VALUE)

    __table_args__ = (Index("ix_rollout_audit_flag_id", "flag_key", "id"),)


__all__ += ["RolloutAudit", "RolloutFlag"]


# --- telemetry (issue 7) -------------------------------------------------------------------


class RunRecord(Base):
    """One row per finished run of either path (live or shadow): the comparison's raw data.

    No foreign keys on purpose: telemetry outlives deleted conversations and users.
    """

    __tablename__ = "runs"

    run_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    path: Mapped[str] = mapped_column(String(16))  # responses | chatkit
    engine: Mapped[str] = mapped_column(String(16))  # responses | agents
    protocol: Mapped[str] = mapped_column(String(16))  # legacy_sse | chatkit | shadow
    conversation_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    user_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    portfolio_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    model: Mapped[str | None] = mapped_column(String(120), nullable=True)
    offline: Mapped[bool] = mapped_column(default=False)
    status: Mapped[str] = mapped_column(String(16))  # completed | failed | cancelled | incomplete | interrupted
    error_code: Mapped[str | None] = mapped_column(String(40), nullable=True)
    # The upstream's own words for a failure (telemetry only: never shown to users).
    upstream_error_code: Mapped[str | None] = mapped_column(String(80), nullable=True)
    upstream_error_message: Mapped[str | None] = mapped_column(String(500), nullable=True)
    incomplete_reason: Mapped[str | None] = mapped_column(String(40), nullable=True)  # why an answer was cut
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    retries: Mapped[int] = mapped_column(Integer, default=0)
    fallback_used: Mapped[bool] = mapped_column(default=False)
    ttfb_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    duration_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    input_tokens: Mapped[int] = mapped_column(Integer, default=0)
    output_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cached_tokens: Mapped[int] = mapped_column(Integer, default=0)
    reasoning_tokens: Mapped[int] = mapped_column(Integer, default=0)
    output_tokens_per_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    tool_call_count: Mapped[int] = mapped_column(Integer, default=0)
    tool_calls: Mapped[list] = mapped_column(JSON_VALUE, default=list)  # [{name, call_id, duration_ms, ok}] in order
    answer_chars: Mapped[int] = mapped_column(Integer, default=0)
    event_count: Mapped[int] = mapped_column(Integer, default=0)
    last_seq: Mapped[int] = mapped_column(Integer, default=0)
    shadow: Mapped[bool] = mapped_column(default=False)
    pair_id: Mapped[str | None] = mapped_column(String(64), nullable=True)  # the live run a shadow run answered
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)  # run start
    finished_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        Index("ix_runs_shadow_created", "shadow", "created_at"),
        Index("ix_runs_pair_id", "pair_id"),
    )


__all__ += ["RunRecord"]


# --- memories (issue 12) -------------------------------------------------------------------


class Memory(Base):
    """A fact a user asked the analyst to remember; read into the agent's context on both paths."""

    __tablename__ = "memories"

    id: Mapped[str] = mapped_column(String(64), primary_key=True, default=lambda: prefixed_id("mem"))
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    content: Mapped[str] = mapped_column(Text)
    scope: Mapped[str] = mapped_column(String(16), default="user")  # user | portfolio
    portfolio_id: Mapped[str | None] = mapped_column(ForeignKey("portfolios.id", ondelete="CASCADE"), nullable=True)
    tags: Mapped[dict] = mapped_column(JSON_VALUE, default=dict)
    source: Mapped[str] = mapped_column(String(16), default="api")  # api | tool (the remember tool)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    __table_args__ = (Index("ix_memories_user_created", "user_id", "created_at", "id"),)


__all__ += ["Memory"]
