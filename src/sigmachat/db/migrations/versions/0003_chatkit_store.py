"""ChatKit store: exact thread fields on conversations, and an attachments table

Additive only: existing conversations and messages are kept as they are (a NULL ``chatkit``
column means "a thread begun on the Responses path"; the store renders it from its columns).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("conversations") as batch:
        batch.add_column(sa.Column("chatkit", sa.JSON(), nullable=True))

    op.create_table(
        "attachments",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("user_id", sa.String(36), nullable=False),
        sa.Column("thread_id", sa.String(64), nullable=True),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_attachments"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE", name="fk_attachments_user_id_users"),
        sa.ForeignKeyConstraint(
            ["thread_id"], ["conversations.id"], ondelete="CASCADE", name="fk_attachments_thread_id_conversations"
        ),
    )
    op.create_index("ix_attachments_user_id", "attachments", ["user_id"])
    op.create_index("ix_attachments_thread_id", "attachments", ["thread_id"])


def downgrade() -> None:
    op.drop_index("ix_attachments_thread_id", table_name="attachments")
    op.drop_index("ix_attachments_user_id", table_name="attachments")
    op.drop_table("attachments")
    with op.batch_alter_table("conversations") as batch:
        batch.drop_column("chatkit")
