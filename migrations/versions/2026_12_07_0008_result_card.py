"""result card: the card posted under each image, and what each request sent Gemini

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07 04:50:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("job") as batch:
        batch.add_column(sa.Column("card_ts", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("sent_turns", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("sent_images", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("job") as batch:
        batch.drop_column("sent_images")
        batch.drop_column("sent_turns")
        batch.drop_column("card_ts")
