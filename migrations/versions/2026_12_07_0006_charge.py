"""charge: the cost ledger, one row per call sent to Gemini

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07 04:10:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "charge",
        sa.Column("id", Id, nullable=False),
        sa.Column("team_id", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("channel_id", sa.String(length=32), nullable=False),
        sa.Column("job_id", Id, nullable=True),
        sa.Column("model_requested", sa.String(length=128), nullable=False),
        sa.Column("model_version", sa.String(length=128), nullable=True),
        sa.Column("priced_as", sa.String(length=128), nullable=False),
        sa.Column("image_size", sa.String(length=8), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("billed", sa.String(length=8), nullable=False),
        sa.Column("images", sa.Integer(), nullable=False),
        sa.Column("prompt_tokens", sa.Integer(), nullable=False),
        sa.Column("image_tokens", sa.Integer(), nullable=False),
        sa.Column("text_tokens", sa.Integer(), nullable=False),
        sa.Column("thinking_tokens", sa.Integer(), nullable=False),
        sa.Column("cost_micros", sa.BigInteger(), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"], ["job.id"], name=op.f("fk_charge_job_id_job"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_charge")),
    )
    op.create_index("ix_charge_team_at", "charge", ["team_id", "at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_charge_team_at", table_name="charge")
    op.drop_table("charge")
