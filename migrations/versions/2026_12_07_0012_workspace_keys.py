"""workspace keys: a workspace's own Gemini key (sealed), and whose key paid for each ledger row

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07 09:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "workspace_key",
        sa.Column("team_id", sa.String(32), primary_key=True),
        sa.Column("gemini_key", sa.Text(), nullable=False),
        sa.Column("set_by", sa.String(32), nullable=False),
        sa.Column("set_at", sa.DateTime(), nullable=False),
    )
    with op.batch_alter_table("charge") as batch:
        batch.add_column(sa.Column("key_owner", sa.String(16), nullable=False, server_default="operator"))


def downgrade() -> None:
    with op.batch_alter_table("charge") as batch:
        batch.drop_column("key_owner")
    op.drop_table("workspace_key")
