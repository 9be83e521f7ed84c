"""usage_total: the ledger's running totals per workspace, person and channel, per day and month, kept by a
trigger on charge, so that an ack's limit check reads six rows instead of summing the month's charges

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-08 01:05:00

The trigger, not the app, adds each charge: a process of an older version still running during a rolling
deploy writes charges without knowing of this table, and they must count all the same. (A later migration
that rebuilds ``charge`` in SQLite's batch mode drops the trigger with the old table: create it again.)
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Each charge counts six times: for its workspace (key ""), its person and its channel, for the day and the
# month that hold its ``at`` (UTC, as the limits count). ``{c}``: the charge (``NEW``, or the table).
_SPLIT = """
    SELECT {c}.team_id AS team_id, s.scope AS scope,
           CASE s.scope WHEN 'workspace' THEN '' WHEN 'user' THEN {c}.user_id ELSE {c}.channel_id END AS key,
           p.period AS period, CASE p.period WHEN 'day' THEN {day} ELSE {month} END AS start,
           {c}.images AS images, {c}.cost_micros AS micros
    FROM {table}(SELECT 'workspace' AS scope UNION ALL SELECT 'user' UNION ALL SELECT 'channel') AS s,
         (SELECT 'day' AS period UNION ALL SELECT 'month') AS p
"""
_INTO = "INSERT INTO usage_total (team_id, scope, key, period, start, images, micros)"


def _split(dialect: str, *, new: bool) -> str:
    at = "NEW.at" if new else "charge.at"
    if dialect == "postgresql":
        day, month = f"date_trunc('day', {at})", f"date_trunc('month', {at})"
    else:  # SQLAlchemy keeps SQLite's datetimes as text, 'YYYY-MM-DD HH:MM:SS.ffffff': a start likewise
        day = f"substr({at}, 1, 10) || ' 00:00:00.000000'"
        month = f"substr({at}, 1, 7) || '-01 00:00:00.000000'"
    return _SPLIT.format(c="NEW" if new else "charge", table="" if new else "charge, ", day=day, month=month)


def _add(table: str) -> str:
    return (
        "ON CONFLICT (team_id, scope, key, period, start) DO UPDATE SET "
        f"images = {table}images + excluded.images, micros = {table}micros + excluded.micros"
    )


def upgrade() -> None:
    op.create_table(
        "usage_total",
        sa.Column("team_id", sa.String(length=32), nullable=False),
        sa.Column("scope", sa.String(length=16), nullable=False),
        sa.Column("key", sa.String(length=32), nullable=False),
        sa.Column("period", sa.String(length=8), nullable=False),
        sa.Column("start", sa.DateTime(), nullable=False),
        sa.Column("images", sa.BigInteger(), nullable=False),
        sa.Column("micros", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("team_id", "scope", "key", "period", "start"),
    )
    dialect = op.get_bind().dialect.name
    op.execute(  # the charges written so far; the app's own text, no input
        f"{_INTO} SELECT team_id, scope, key, period, start, sum(images), sum(micros) "  # noqa: S608
        f"FROM ({_split(dialect, new=False)}) AS split GROUP BY team_id, scope, key, period, start"
    )
    if dialect == "postgresql":
        op.execute(
            "CREATE FUNCTION banana_usage_total() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            f"{_INTO} {_split(dialect, new=True)} {_add('usage_total.')}; RETURN NULL; END $$"
        )
        op.execute(
            "CREATE TRIGGER charge_usage_total AFTER INSERT ON charge "
            "FOR EACH ROW EXECUTE FUNCTION banana_usage_total()"
        )
    else:  # WHERE true: SQLite's parser needs it between a SELECT and its ON CONFLICT
        op.execute(
            "CREATE TRIGGER charge_usage_total AFTER INSERT ON charge FOR EACH ROW BEGIN "
            f"{_INTO} {_split(dialect, new=True)} WHERE true {_add('')}; END"
        )


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS charge_usage_total" + (" ON charge" if _pg() else ""))
    if _pg():
        op.execute("DROP FUNCTION IF EXISTS banana_usage_total()")
    op.drop_table("usage_total")


def _pg() -> bool:
    return op.get_bind().dialect.name == "postgresql"
