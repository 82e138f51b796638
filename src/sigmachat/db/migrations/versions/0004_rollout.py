"""rollout flag state and its audit log

Additive only. No row is seeded: while ``rollout_flags`` has no ``chat_backend`` row the flag
reads as "0 %, no lists, default = the chat_backend setting", i.e. exactly the behaviour before
this migration; the first change made by an operator writes the row (version 1).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rollout_flags",
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("percent", sa.Integer(), nullable=False),
        sa.Column("kill_switch", sa.Boolean(), nullable=False),
        sa.Column("allow_users", sa.JSON(), nullable=False),
        sa.Column("allow_portfolios", sa.JSON(), nullable=False),
        sa.Column("deny_users", sa.JSON(), nullable=False),
        sa.Column("default_variant", sa.String(16), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(200), nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_rollout_flags"),
    )
    op.create_table(
        "rollout_audit",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("flag_key", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("old", sa.JSON(), nullable=False),
        sa.Column("new", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_rollout_audit"),
    )
    op.create_index("ix_rollout_audit_flag_id", "rollout_audit", ["flag_key", "id"])


def downgrade() -> None:
    op.drop_index("ix_rollout_audit_flag_id", table_name="rollout_audit")
    op.drop_table("rollout_audit")
    op.drop_table("rollout_flags")
