"""continuity with the original chat API: conversation modes, memories, feedback details

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("conversations") as batch:
        batch.add_column(sa.Column("mode", sa.String(16), nullable=False, server_default="green"))
    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("feedback_edited_text", sa.Text(), nullable=True))
        batch.add_column(sa.Column("feedback_comment", sa.Text(), nullable=True))
        batch.add_column(sa.Column("feedback_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "memories",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("user_id", sa.String(36), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("scope", sa.String(16), nullable=False),
        sa.Column("portfolio_id", sa.String(36), nullable=True),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_memories_user_id_users", ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["portfolio_id"], ["portfolios.id"], name="fk_memories_portfolio_id_portfolios", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_memories"),
    )
    op.create_index("ix_memories_user_created", "memories", ["user_id", "created_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_memories_user_created", table_name="memories")
    op.drop_table("memories")
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("feedback_at")
        batch.drop_column("feedback_comment")
        batch.drop_column("feedback_edited_text")
    with op.batch_alter_table("conversations") as batch:
        batch.drop_column("mode")
