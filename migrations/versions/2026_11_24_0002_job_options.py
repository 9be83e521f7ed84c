"""job options: the model and options each job was asked with

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 06:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = (("model_id", 128), ("model_label", 128), ("aspect_ratio", 8), ("image_size", 8))


def upgrade() -> None:
    with op.batch_alter_table("job") as batch:
        for name, length in COLUMNS:
            batch.add_column(sa.Column(name, sa.String(length=length), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("job") as batch:
        for name, _ in reversed(COLUMNS):
            batch.drop_column(name)
