"""job requester indexes: fair turns look up a person's running jobs and when they were last served

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07 04:35:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_job_requester_state", "job", ["team_id", "requested_by", "state"])
    op.create_index("ix_job_requester_started", "job", ["team_id", "requested_by", "started_at"])


def downgrade() -> None:
    op.drop_index("ix_job_requester_started", table_name="job")
    op.drop_index("ix_job_requester_state", table_name="job")
