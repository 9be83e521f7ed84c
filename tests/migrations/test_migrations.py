from __future__ import annotations

from datetime import datetime

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect, select, text
from sqlalchemy.exc import IntegrityError

from bot.db import alembic_config, migrate
from bot.models import Base, UsageTotal


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


def test_job_states_are_checked_by_the_database(engine: Engine) -> None:
    with engine.connect() as conn:
        conn.execute(
            text(
                "INSERT INTO conversation (team_id, channel_id, origin, started_by, model_id, model_label, "
                "created_at) VALUES ('T', 'C', 'command', 'U', 'm', 'm', CURRENT_TIMESTAMP)"
            )
        )
        conn.execute(
            text(
                "INSERT INTO turn (conversation_id, team_id, seq, role, parts, created_at) "
                "VALUES (1, 'T', 0, 'user', '[]', CURRENT_TIMESTAMP)"
            )
        )
        insert = (
            "INSERT INTO job (team_id, conversation_id, turn_id, requested_by, model_id, model_label, state, "
            "attempts, not_before, created_at) VALUES ('T', 1, 1, 'U', 'm', 'm', :state, 0, "
            "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
        )
        conn.execute(text(insert), {"state": "queued"})
        with pytest.raises(IntegrityError):
            conn.execute(text(insert), {"state": "paused"})


def test_jobs_from_before_0002_get_their_conversations_model(engine: Engine) -> None:
    cfg = alembic_config(engine)
    command.downgrade(cfg, "0001")
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO conversation (team_id, channel_id, origin, started_by, model_id, model_label, "
                "created_at) VALUES ('T', 'C', 'command', 'U', 'gemini-3-pro-image', 'pro', CURRENT_TIMESTAMP)"
            )
        )
        conn.execute(
            text(
                "INSERT INTO turn (conversation_id, team_id, seq, role, parts, created_at) "
                "VALUES (1, 'T', 0, 'user', '[]', CURRENT_TIMESTAMP)"
            )
        )
        conn.execute(
            text(
                "INSERT INTO job (team_id, conversation_id, turn_id, requested_by, state, stage, attempts, "
                "not_before, created_at) VALUES ('T', 1, 1, 'U', 'queued', 'new', 0, CURRENT_TIMESTAMP, "
                "CURRENT_TIMESTAMP)"
            )
        )
    migrate(engine)
    with engine.connect() as conn:
        row = conn.execute(text("SELECT model_id, model_label FROM job")).one()
    assert tuple(row) == ("gemini-3-pro-image", "pro")


def test_results_from_before_0009_get_their_parent_and_number(engine: Engine) -> None:
    cfg = alembic_config(engine)
    command.downgrade(cfg, "0008")
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO conversation (team_id, channel_id, origin, started_by, model_id, model_label, "
                "created_at) VALUES ('T', 'C', 'command', 'U', 'gemini-3-pro-image', 'pro', CURRENT_TIMESTAMP)"
            )
        )
        for seq, role in enumerate(("user", "model", "user", "user", "model")):
            conn.execute(
                text(
                    "INSERT INTO turn (conversation_id, team_id, seq, role, parts, created_at) "
                    "VALUES (1, 'T', :seq, :role, '[]', CURRENT_TIMESTAMP)"
                ),
                {"seq": seq, "role": role},
            )
        for turn, state, result in ((1, "done", 2), (3, "failed", None), (4, "done", 5)):
            conn.execute(
                text(
                    "INSERT INTO job (team_id, conversation_id, turn_id, requested_by, model_id, model_label, "
                    "state, attempts, not_before, created_at, result_turn_id) VALUES ('T', 1, :turn, 'U', "
                    "'m', 'm', :state, 1, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, :result)"
                ),
                {"turn": turn, "state": state, "result": result},
            )
    migrate(engine)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT kind, parent_job_id, result_number FROM job ORDER BY id")).all()
    assert [tuple(r) for r in rows] == [("turn", None, 1), ("turn", None, None), ("turn", 1, 2)]


def test_jobs_from_before_0013_get_their_conversations_channel(engine: Engine) -> None:
    cfg = alembic_config(engine)
    command.downgrade(cfg, "0012")
    with engine.begin() as conn:
        for channel in ("C1", "C2"):
            conn.execute(
                text(
                    "INSERT INTO conversation (team_id, channel_id, origin, started_by, model_id, model_label, "
                    "created_at) VALUES ('T', :channel, 'command', 'U', 'm', 'm', CURRENT_TIMESTAMP)"
                ),
                {"channel": channel},
            )
            conn.execute(
                text(
                    "INSERT INTO turn (conversation_id, team_id, seq, role, parts, created_at) "
                    "SELECT id, 'T', 0, 'user', '[]', CURRENT_TIMESTAMP FROM conversation WHERE channel_id = :channel"
                ),
                {"channel": channel},
            )
        conn.execute(
            text(
                "INSERT INTO job (team_id, conversation_id, turn_id, requested_by, model_id, model_label, state, "
                "attempts, not_before, created_at) SELECT 'T', conversation_id, id, 'U', 'm', 'm', 'queued', 0, "
                "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP FROM turn ORDER BY id DESC"
            )
        )
    migrate(engine)
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT conversation.channel_id, job.channel_id FROM job JOIN conversation ON conversation.id = job.conversation_id"
            )
        ).all()
    assert sorted(tuple(r) for r in rows) == [("C1", "C1"), ("C2", "C2")]


def test_charges_from_before_0015_are_in_the_running_totals(engine: Engine) -> None:
    """0015 adds up the ledger's rows written before it, for every workspace, person, channel, day and
    month; later rows are added by its trigger."""
    cfg = alembic_config(engine)
    command.downgrade(cfg, "0014")
    insert = text(
        "INSERT INTO charge (team_id, user_id, channel_id, model_requested, priced_as, outcome, billed, images, "
        "prompt_tokens, image_tokens, text_tokens, thinking_tokens, cost_micros, at, key_owner) "
        "VALUES ('T', :user, :channel, 'm', 'm', 'image', 'yes', 1, 0, 0, 0, 0, :micros, :at, 'operator')"
    )
    with engine.begin() as conn:
        for user, channel, micros, at in [
            ("U1", "C1", 10, datetime(2026, 11, 30, 23, 59, 59, 999999)),
            ("U1", "C2", 20, datetime(2026, 12, 1)),
            ("U2", "C1", 40, datetime(2026, 12, 1, 12)),
        ]:
            conn.execute(insert, {"user": user, "channel": channel, "micros": micros, "at": at})
    migrate(engine)
    with engine.begin() as conn:
        conn.execute(insert, {"user": "U2", "channel": "C2", "micros": 80, "at": datetime(2026, 12, 2, 8)})
        rows = conn.execute(
            select(UsageTotal.scope, UsageTotal.key, UsageTotal.period, UsageTotal.start, UsageTotal.micros)
        ).all()
    day = month = datetime(2026, 12, 1)  # the first of the month: its day's start and its month's
    totals = {(scope, key, period, start): micros for scope, key, period, start, micros in rows}
    assert totals == {
        ("workspace", "", "day", datetime(2026, 11, 30)): 10,
        ("workspace", "", "month", datetime(2026, 11, 1)): 10,
        ("user", "U1", "day", datetime(2026, 11, 30)): 10,
        ("user", "U1", "month", datetime(2026, 11, 1)): 10,
        ("channel", "C1", "day", datetime(2026, 11, 30)): 10,
        ("channel", "C1", "month", datetime(2026, 11, 1)): 10,
        ("workspace", "", "day", day): 60,
        ("workspace", "", "month", month): 140,
        ("workspace", "", "day", datetime(2026, 12, 2)): 80,
        ("user", "U1", "day", day): 20,
        ("user", "U1", "month", month): 20,
        ("user", "U2", "day", day): 40,
        ("user", "U2", "month", month): 120,
        ("user", "U2", "day", datetime(2026, 12, 2)): 80,
        ("channel", "C2", "day", day): 20,
        ("channel", "C2", "month", month): 100,
        ("channel", "C1", "day", day): 40,
        ("channel", "C1", "month", month): 40,
        ("channel", "C2", "day", datetime(2026, 12, 2)): 80,
    }
