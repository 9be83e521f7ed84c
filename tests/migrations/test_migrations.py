from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect

from bot.db import alembic_config, migrate
from bot.models import Base


def test_migrations_create_every_table_and_run_both_ways(engine: Engine) -> None:
    tables = set(inspect(engine).get_table_names())
    assert {"conversation", "turn", "blob", "job", "slack_event", "alembic_version"} <= tables
    cfg = alembic_config(engine)
    command.downgrade(cfg, "base")
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    migrate(engine)
    migrate(engine)  # idempotent: a second process starting finds nothing to do
    assert "job" in inspect(engine).get_table_names()


def test_constraint_names_are_deterministic(engine: Engine) -> None:
    uniques = {u["name"] for u in inspect(engine).get_unique_constraints("conversation")}
    assert "uq_conversation_team_id_channel_id_thread_ts" in uniques


def test_the_models_match_what_the_migrations_build(engine: Engine) -> None:
    """Drift check: a column, index or constraint added to ``bot.models`` without a migration (or the
    other way round) shows up here, on SQLite and on PostgreSQL."""
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(context, Base.metadata)
    assert diff == []
