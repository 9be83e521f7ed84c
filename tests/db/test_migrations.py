from __future__ import annotations

from alembic import command
from sqlalchemy import Engine, inspect

from bot.db import alembic_config, migrate


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
