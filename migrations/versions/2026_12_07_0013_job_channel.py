"""job.channel_id: its conversation's channel, copied, so that the limit check sums queued requests by
channel without joining each to its conversation

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07 22:45:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("job") as batch:
        batch.add_column(sa.Column("channel_id", sa.String(length=32), nullable=True))
    op.execute(
        "UPDATE job SET channel_id = (SELECT conversation.channel_id FROM conversation "
        "WHERE conversation.id = job.conversation_id)"
    )


def downgrade() -> None:
    with op.batch_alter_table("job") as batch:
        batch.drop_column("channel_id")
