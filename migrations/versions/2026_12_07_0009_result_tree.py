"""result tree: jobs made by a result card's buttons, and what each result was made from

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 06:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("job") as batch:
        batch.add_column(sa.Column("kind", sa.String(length=16), nullable=False, server_default="turn"))
        batch.add_column(sa.Column("parent_job_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite")))
        batch.add_column(sa.Column("source_job_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite")))
        batch.add_column(sa.Column("group_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite")))
        batch.add_column(sa.Column("result_number", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("deleted_at", sa.DateTime(), nullable=True))
        batch.create_foreign_key("fk_job_parent", "job", ["parent_job_id"], ["id"], ondelete="SET NULL")
        batch.create_foreign_key("fk_job_source", "job", ["source_job_id"], ["id"], ondelete="SET NULL")
    # Until now every job answered the newest turn after the result before it: its parent is the newest
    # job of its conversation done before it, and results are numbered in the order of their jobs.
    op.execute(
        "UPDATE job SET parent_job_id = (SELECT max(e.id) FROM job e WHERE e.conversation_id = "
        "job.conversation_id AND e.state = 'done' AND e.id < job.id) WHERE result_turn_id IS NOT NULL"
    )
    op.execute(
        "UPDATE job SET result_number = (SELECT count(*) FROM job e WHERE e.conversation_id = "
        "job.conversation_id AND e.result_turn_id IS NOT NULL AND e.id <= job.id) "
        "WHERE result_turn_id IS NOT NULL"
    )


def downgrade() -> None:
    with op.batch_alter_table("job") as batch:
        batch.drop_constraint("fk_job_source", type_="foreignkey")
        batch.drop_constraint("fk_job_parent", type_="foreignkey")
        for column in ("deleted_at", "result_number", "group_id", "source_job_id", "parent_job_id", "kind"):
            batch.drop_column(column)
