"""job state: a CHECK on the four states, no ``stage``, every job with its own model

``stage`` was written and never read: the recorded side effects (``status_ts``, ``result_turn_id``,
``upload_file_id``, the conversation's ``thread_ts``) are what a later run starts from. Jobs queued before
0002 get their conversation's model, so ``model_id`` and ``model_label`` can be NOT NULL.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06 18:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STATES = "state IN ('queued', 'running', 'done', 'failed')"


def upgrade() -> None:
    for column in ("model_id", "model_label"):
        op.execute(
            f"UPDATE job SET {column} = (SELECT conversation.{column} FROM conversation "  # noqa: S608
            f"WHERE conversation.id = job.conversation_id) WHERE {column} IS NULL"
        )
    with op.batch_alter_table("job") as batch:
        batch.drop_column("stage")
        batch.alter_column("model_id", existing_type=sa.String(length=128), nullable=False)
        batch.alter_column("model_label", existing_type=sa.String(length=128), nullable=False)
        batch.create_check_constraint(op.f("ck_job_state"), STATES)


def downgrade() -> None:
    with op.batch_alter_table("job") as batch:
        batch.drop_constraint(op.f("ck_job_state"), type_="check")
        batch.alter_column("model_label", existing_type=sa.String(length=128), nullable=True)
        batch.alter_column("model_id", existing_type=sa.String(length=128), nullable=True)
        batch.add_column(sa.Column("stage", sa.String(length=16), nullable=False, server_default="new"))
