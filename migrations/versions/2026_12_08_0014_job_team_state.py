"""job (team_id, state, requested_by) index: every ack sums the workspace's queued and running requests
(the limits) and counts the queued jobs ahead of its own (the position); without it SQLite read every job
the workspace ever had

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-08 01:10:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_job_team_state", "job", ["team_id", "state", "requested_by"])


def downgrade() -> None:
    op.drop_index("ix_job_team_state", table_name="job")
