from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, event, func, select, text
from sqlalchemy.orm import Session, sessionmaker

from bot import ledger
from bot.catalog import Catalog
from bot.db import lock_requester
from bot.intake import Intake, Outcome
from bot.ledger import Payer, charge_row
from bot.limits import parse_limits
from bot.models import Conversation, Job, Turn, utcnow
from bot.payloads import Command, EditSubmission, EditTarget
from bot.prices import load_prices
from tests.bot.helpers import BOT, add_job, new_conversation, parsed
from tests.bot.test_db import wait_until


def jobs(sessions: sessionmaker[Session]) -> int:
    with sessions() as session:
        return int(session.scalar(select(func.count()).select_from(Job)) or 0)


def make_intake(sessions: sessionmaker[Session]) -> Intake:
    return Intake(sessions=sessions, catalog=Catalog(), default_model="nano-banana-2")


def test_mention_delivered_as_app_mention_and_message_and_retried_makes_one_job(
    sessions: sessionmaker[Session],
) -> None:
    intake = make_intake(sessions)
    message = parsed(text=f"<@{BOT}> a fox")
    assert intake.message(message, event_id="EvMention").job_id is not None
    assert intake.message(message, event_id="EvMessage").duplicate
    assert intake.message(message, event_id="EvMention").duplicate
    assert jobs(sessions) == 1


def test_replies_continue_only_bot_threads(sessions: sessionmaker[Session]) -> None:
    intake = make_intake(sessions)
    intake.message(parsed(text=f"<@{BOT}> a fox --ar 16:9"), event_id="Ev1")
    assert intake.message(parsed(ts="11.0", thread_ts="10.0", text="make it blue"), event_id="Ev2").job_id
    assert (
        intake.message(parsed(ts="12.0", thread_ts="99.0", text="unrelated"), event_id="Ev3").job_id is None
    )
    assert jobs(sessions) == 2
    with sessions() as session:
        conversation = session.scalars(select(Conversation)).one()
        assert conversation.aspect_ratio == "16:9"  # kept for the reply


def test_bad_option_in_a_reply_gets_a_private_answer_and_no_job(sessions: sessionmaker[Session]) -> None:
    intake = make_intake(sessions)
    intake.message(parsed(text=f"<@{BOT}> a fox"), event_id="Ev1")
    outcome = intake.message(parsed(ts="11.0", thread_ts="10.0", text="bigger --size 9K"), event_id="Ev2")
    assert outcome.reply and "Sizes it has" in outcome.reply
    assert jobs(sessions) == 1


def test_slash_command_help_and_errors_answer_privately(sessions: sessionmaker[Session]) -> None:
    intake = make_intake(sessions)

    def command(text: str) -> Outcome:
        return intake.command(
            Command(team_id="T1", channel_id="C1", user_id="U1", text=text, response_url=None)
        )

    assert "--model" in str(command("help").reply)
    assert "--model" in str(command("").reply)
    assert "`--nope`" in str(command("x --nope").reply)
    assert "1,000 characters long" in str(command("x --model " + "m" * 1000).reply)
    assert jobs(sessions) == 0
    first = command("a mug")
    assert first.job_id is not None and first.reply == "🍌 Got it — working on your image."
    assert "1 request is ahead of yours" in str(command("a cup").reply)
    assert jobs(sessions) == 2


def test_every_entry_point_answers_with_an_outcome(sessions: sessionmaker[Session]) -> None:
    intake = make_intake(sessions)
    target = EditTarget(channel_id="C1", thread_ts="10.0", file_ids=["F1"], response_url=None)
    edited = intake.edit(EditSubmission(team_id="T1", user_id="U1", target=target, text="make it 'blue'"))
    assert edited.job_id is not None and edited.reply is None
    refused = intake.edit(EditSubmission(team_id="T1", user_id="U1", target=target, text="x --ar 7:3"))
    assert refused.job_id is None and refused.reply and "7:3" in refused.reply
    assert len(refused.reply) <= 150 and "&" not in refused.reply  # plain text under the modal's input
    empty = intake.message(parsed(text=f"<@{BOT}>", files=[]), event_id="Ev9")
    assert empty.job_id is None and empty.reply and "Tell me what to make" in empty.reply
    assert jobs(sessions) == 1


def test_a_slash_command_is_one_statement_outside_a_transaction_on_postgresql(
    engine: Engine, sessions: sessionmaker[Session]
) -> None:
    """Under load every round trip to PostgreSQL waits for the CPU again: a new /banana took six (begin,
    three inserts, its place in the queue, commit) and takes one, which commits on its own."""
    if engine.dialect.name != "postgresql":
        pytest.skip("on SQLite a write is a transaction that takes the write lock (BEGIN IMMEDIATE)")
    intake = make_intake(sessions)
    statements: list[tuple[str, bool]] = []

    def record(conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append((statement.split()[0].upper(), conn.connection.dbapi_connection.autocommit))

    ahead = intake.command(
        Command(team_id="T1", channel_id="C1", user_id="U1", text="a mug", response_url=None)
    )
    event.listen(engine, "before_cursor_execute", record)
    try:
        outcome = intake.command(
            Command(
                team_id="T1", channel_id="C2", user_id="U2", text="a cup --ar 4:5", response_url="https://x"
            )
        )
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert statements == [("WITH", True)]
    assert "1 request is ahead of yours" in str(outcome.reply)
    with sessions() as session:
        job = session.get_one(Job, outcome.job_id)
        conversation = session.get_one(Conversation, job.conversation_id)
        turn = session.get_one(Turn, job.turn_id)
        assert (job.state, job.requested_by, job.aspect_ratio, job.attempts) == ("queued", "U2", "4:5", 0)
        assert (conversation.channel_id, conversation.started_by, conversation.origin) == (
            "C2",
            "U2",
            "command",
        )
        assert (conversation.response_url, conversation.aspect_ratio, conversation.thread_ts) == (
            "https://x",
            "4:5",
            None,
        )
        assert (turn.conversation_id, turn.seq, turn.role, turn.parts) == (
            conversation.id,
            0,
            "user",
            [{"text": "a cup"}],
        )
        assert job.created_at >= session.get_one(Job, ahead.job_id).created_at


def test_limits_count_the_ledger_and_the_queued_requests_of_the_person_channel_and_workspace(
    sessions: sessionmaker[Session],
) -> None:
    """On both databases: the ledger's rows this month (by scope and day), plus the estimate of requests
    queued without an answer; a request that would go over is refused and queues nothing."""
    prices = load_prices()
    intake = Intake(
        sessions=sessions,
        catalog=Catalog(),
        default_model="nano-banana-2.1",
        limits=parse_limits("user/day=3,channel/month=$0.20"),
        prices=prices,
    )
    now = utcnow()
    with sessions.begin() as session:
        for user, channel, at in [
            ("UALICE", "C1", now),  # today, here: counts for Alice's day and the channel's month
            ("UBOB", "C1", now),
            ("UALICE", "C2", now),  # another channel: Alice's day only
            ("UALICE", "C1", now - timedelta(days=40)),  # an earlier month: nothing
        ]:
            row = charge_row(
                prices,
                Payer("T1", user, channel, None, "gemini-nano-banana-2.1", "1K"),
                outcome="image",
                billed="yes",
                usage={},
                model_version=None,
            )
            ledger.charge(session, {**row, "at": at})

    def command(text: str, user: str = "UALICE", channel: str = "C1") -> Outcome:
        return intake.command(
            Command(team_id="T1", channel_id=channel, user_id=user, text=text, response_url=None)
        )

    # Alice: 2 images today; the channel: $0.0672 of $0.20 this month, then a queued request's $0.0493.
    assert command("a red kite").job_id is not None
    over_day = command("a blue kite")
    assert over_day.job_id is None and "`user/day=3`" in str(over_day.reply)
    assert "3 images used today" in str(over_day.reply)
    assert command("a kite", user="UCAROL").job_id is not None  # $0.0672 + 2 × $0.0493 = $0.166
    over_month = command("a kite", user="UDAVE")
    assert over_month.job_id is None and "`channel/month=$0.2`" in str(over_month.reply)
    assert command("a kite", user="UDAVE", channel="C3").job_id is not None
    assert jobs(sessions) == 3


def test_a_refused_command_leaves_nothing_behind(sessions: sessionmaker[Session]) -> None:
    """On PostgreSQL the job is queued in the statement that sums the ledger, and rolled back if the check
    refuses it: no conversation, turn or job stays. The first request, on an empty ledger, fits."""
    intake = Intake(
        sessions=sessions,
        catalog=Catalog(),
        default_model="nano-banana-2.1",
        limits=parse_limits("user/day=1"),
    )
    command = Command(team_id="T1", channel_id="C1", user_id="UALICE", text="a kite", response_url=None)
    first = intake.command(command)
    assert first.job_id is not None and "Got it" in str(first.reply)
    refused = intake.command(command)
    assert refused.job_id is None and "`user/day=1`" in str(refused.reply)
    with sessions() as session:
        counts = [session.scalar(select(func.count()).select_from(t)) for t in (Conversation, Turn, Job)]
    assert counts == [1, 1, 1]


def test_queued_requests_count_for_their_person_channel_and_workspace(
    sessions: sessionmaker[Session],
) -> None:
    """The estimates of requests still queued count where they were asked: the channel's share is read from
    the job's own ``channel_id``, copied from its conversation as it is queued."""
    intake = Intake(
        sessions=sessions,
        catalog=Catalog(),
        default_model="nano-banana-2.1",
        limits=parse_limits("workspace/month=$0.10,channel/month=$0.05,user/day=2"),
    )

    def command(user: str, channel: str) -> Outcome:
        return intake.command(
            Command(team_id="T1", channel_id=channel, user_id=user, text="a kite", response_url=None)
        )

    assert command("UALICE", "C1").job_id is not None  # $0.0493 queued in C1
    over_channel = command("UBOB", "C1")
    assert over_channel.job_id is None and "`channel/month=$0.05`" in str(over_channel.reply)
    assert command("UBOB", "C2").job_id is not None  # $0.0986 queued in the workspace
    over_workspace = command("UCAROL", "C3")
    assert over_workspace.job_id is None and "`workspace/month=$0.1`" in str(over_workspace.reply)
    with sessions() as session:
        used = ledger.used(
            session, team_id="T1", user_id="UALICE", channel_id="C1", now=utcnow(), prices=load_prices()
        )
        assert sorted(session.scalars(select(Job.channel_id))) == ["C1", "C2"]
    assert [used[key].images for key in (("user", "day"), ("channel", "month"), ("workspace", "month"))] == [
        1,
        1,
        2,
    ]


def test_a_persons_requests_are_checked_one_at_a_time_so_two_at_once_cant_both_fit(
    engine: Engine, sessions: sessionmaker[Session]
) -> None:
    """PostgreSQL: while one of Alice's requests is between its check and its commit, her next one waits
    for it (an advisory lock on her), then counts it. (SQLite's write lock serialises every write.)"""
    if engine.dialect.name != "postgresql":
        pytest.skip("on SQLite the write lock taken at BEGIN IMMEDIATE already serialises the checks")
    intake = Intake(
        sessions=sessions,
        catalog=Catalog(),
        default_model="nano-banana-2.1",
        limits=parse_limits("user/day=1"),
    )

    def command(text: str) -> Outcome:
        return intake.command(
            Command(team_id="T1", channel_id="C1", user_id="UALICE", text=text, response_url=None)
        )

    with ThreadPoolExecutor(max_workers=1) as pool:
        with sessions.begin() as first:  # Alice's first request: checked, queued, not yet committed
            lock_requester(first, "T1", "UALICE")
            add_job(first, new_conversation(first, team="T1"), user="UALICE")
            second = pool.submit(command, "a blue kite")
            wait_until(lambda: waiting_advisory_locks(engine) == 1)  # the second waits for the first
            assert not second.done()
        assert "`user/day=1`" in str(second.result(timeout=10).reply)  # and then counts it
    assert jobs(sessions) == 1


def waiting_advisory_locks(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(
            conn.scalar(text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"))
            or 0
        )
