"""runs: the upstream's own error code and message, and why an answer was cut

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("upstream_error_code", sa.String(80), nullable=True))
        batch.add_column(sa.Column("upstream_error_message", sa.String(500), nullable=True))
        batch.add_column(sa.Column("incomplete_reason", sa.String(40), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("incomplete_reason")
        batch.drop_column("upstream_error_message")
        batch.drop_column("upstream_error_code")
