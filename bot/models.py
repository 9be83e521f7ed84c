"""Tables. Every row carries its workspace (``team_id``) so one workspace never sees another's data."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, get_args

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from bot.answer import Billed, CallOutcome

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# BIGINT primary keys on PostgreSQL, but INTEGER on SQLite so they stay ROWID aliases.
Id = BigInteger().with_variant(Integer(), "sqlite")


def utcnow() -> datetime:
    from datetime import UTC

    return datetime.now(UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Conversation(Base):
    """One Slack thread the bot answers in. ``thread_ts`` is None until a slash command's root is posted."""

    __tablename__ = "conversation"
    __table_args__ = (UniqueConstraint("team_id", "channel_id", "thread_ts"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    team_id: Mapped[str] = mapped_column(String(32))
    channel_id: Mapped[str] = mapped_column(String(32))
    thread_ts: Mapped[str | None] = mapped_column(String(32))
    origin: Mapped[str] = mapped_column(String(16))  # command | mention | dm | shortcut
    started_by: Mapped[str] = mapped_column(String(32))
    model_id: Mapped[str] = mapped_column(String(128))
    model_label: Mapped[str] = mapped_column(String(128))
    aspect_ratio: Mapped[str | None] = mapped_column(String(8))
    image_size: Mapped[str | None] = mapped_column(String(8))
    response_url: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Blob(Base):
    """Image bytes, kept out of the turn rows and referenced by id."""

    __tablename__ = "blob"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    team_id: Mapped[str] = mapped_column(String(32))
    mime_type: Mapped[str] = mapped_column(String(64))
    sha256: Mapped[str] = mapped_column(String(64))
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    size: Mapped[int] = mapped_column(Integer)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Turn(Base):
    """One ``contents[]`` entry. ``parts`` are Gemini's parts verbatim, with image bytes moved to ``blob``.

    An image part is stored as ``{"inlineData": {"mimeType": …, "blobId": N}, "thoughtSignature": …}``.
    A user turn may hold ``{"slackFile": {…}}`` parts until its job downloads the attachments, and a
    ``{"slackText": …}`` part (Slack's markup) until its job turns it into the text a person reads.
    """

    __tablename__ = "turn"
    __table_args__ = (UniqueConstraint("conversation_id", "seq"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversation.id", ondelete="CASCADE"))
    team_id: Mapped[str] = mapped_column(String(32))
    seq: Mapped[int] = mapped_column(Integer)
    role: Mapped[str] = mapped_column(String(8))  # user | model
    parts: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    user_id: Mapped[str | None] = mapped_column(String(32))
    slack_ts: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


JobState = Literal["queued", "running", "done", "failed"]
JobKind = Literal["turn", "regenerate", "variation", "finalize"]
JOB_STATES: tuple[JobState, ...] = get_args(JobState)


class Job(Base):
    """A durable unit of work: answer one user turn. Jobs of a conversation run one at a time, by id.

    ``state``: queued → running → done | failed. The side effects a run has had are recorded as they
    happen (``status_ts``, ``result_turn_id``, ``upload_file_id``, the conversation's ``thread_ts``), so a
    job that is run again after a crash skips what is already done (no second root message, Gemini call
    or image).
    """

    __tablename__ = "job"
    __table_args__ = (CheckConstraint(f"state IN {JOB_STATES!r}", name="state"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    team_id: Mapped[str] = mapped_column(String(32))
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversation.id", ondelete="CASCADE"))
    turn_id: Mapped[int] = mapped_column(ForeignKey("turn.id", ondelete="CASCADE"))
    requested_by: Mapped[str] = mapped_column(String(32))
    # Its conversation's, copied when it is queued: the limit check sums queued requests by channel without
    # a join (``ledger.USED``). Jobs from before 0013 got theirs from their conversations.
    channel_id: Mapped[str | None] = mapped_column(String(32))
    # The model and options this job was asked with, fixed when it is queued: a later reply that changes
    # them must not change a job that is still waiting.
    model_id: Mapped[str] = mapped_column(String(128))
    model_label: Mapped[str] = mapped_column(String(128))
    aspect_ratio: Mapped[str | None] = mapped_column(String(8))
    image_size: Mapped[str | None] = mapped_column(String(8))
    # The ``modelVersion`` Gemini reported for the answer: a deprecated ID may be served (and billed) by
    # its successor, so cost is priced by this, not by ``model_id``.
    model_version: Mapped[str | None] = mapped_column(String(128))
    state: Mapped[JobState] = mapped_column(String(16), default="queued")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_expires_at: Mapped[datetime | None] = mapped_column(DateTime)
    not_before: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    status_ts: Mapped[str | None] = mapped_column(String(32))
    result_turn_id: Mapped[int | None] = mapped_column(ForeignKey("turn.id", ondelete="SET NULL"))
    upload_file_id: Mapped[str | None] = mapped_column(String(32))
    card_ts: Mapped[str | None] = mapped_column(String(32))  # the result card under the image, once posted
    # What made the job: a message in the thread ("turn") or a result card's button ("regenerate",
    # "variation", "finalize"; ``source_job_id``: the result whose button it was). ``parent_job_id``: the
    # result this one was made from (a turn's is fixed when its answer is stored: the newest result
    # before it). ``group_id``: the first job of a Variations press, one request for the per-person cap.
    kind: Mapped[JobKind] = mapped_column(String(16), default="turn", server_default="turn")
    parent_job_id: Mapped[int | None] = mapped_column(
        ForeignKey("job.id", name="fk_job_parent", ondelete="SET NULL")
    )
    source_job_id: Mapped[int | None] = mapped_column(
        ForeignKey("job.id", name="fk_job_source", ondelete="SET NULL")
    )
    group_id: Mapped[int | None] = mapped_column(Id)
    result_number: Mapped[int | None] = mapped_column(
        Integer
    )  # "Result 3" of its conversation, once answered
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime)  # Delete: its image and messages are gone
    # What the request sent Gemini: the conversation's turns and the images among them ("View settings").
    sent_turns: Mapped[int | None] = mapped_column(Integer)
    sent_images: Mapped[int | None] = mapped_column(Integer)
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(Text)
    usage: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    gemini_seconds: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime)
    answered_at: Mapped[datetime | None] = mapped_column(DateTime)  # the next turn may run from here
    finished_at: Mapped[datetime | None] = mapped_column(DateTime)


Index("ix_job_claim", Job.state, Job.not_before, Job.id)
Index("ix_job_conversation", Job.conversation_id, Job.id)
# Fair turns (``queue._claimable``): a requester's running jobs, and when they were last served.
Index("ix_job_requester_state", Job.team_id, Job.requested_by, Job.state)
Index("ix_job_requester_started", Job.team_id, Job.requested_by, Job.started_at)
# The limit check's sums (``ledger.USED``): a workspace's queued and running jobs, not every one it had.
Index("ix_job_team_state", Job.team_id, Job.state, Job.requested_by)
Index("ix_turn_conversation", Turn.conversation_id, Turn.seq)


class SlackEvent(Base):
    """Keys of what Slack delivered: ``event:<event_id>`` and ``msg:<team>:<channel>:<ts>``.

    Inserted in the same transaction as the job it produced, so a retry of an event that was never
    stored is processed, and every later copy is recognised.
    """

    __tablename__ = "slack_event"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    team_id: Mapped[str] = mapped_column(String(32))
    dedupe_key: Mapped[str] = mapped_column(String(200), unique=True)
    job_id: Mapped[int | None] = mapped_column(ForeignKey("job.id", ondelete="SET NULL"))
    received_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Charge(Base):
    """The cost ledger: one row per call sent to Gemini, whatever came back. ``billed``: "yes" (an
    answer with ``usageMetadata``), "no" (an error Google does not bill), "maybe" (sent, and no answer
    read: a timeout, a dropped connection; counted at its estimate). Money in micro-dollars. ``at`` is the
    app's clock (UTC): day and month limits are counted by it."""

    __tablename__ = "charge"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    team_id: Mapped[str] = mapped_column(String(32))
    user_id: Mapped[str] = mapped_column(String(32))
    channel_id: Mapped[str] = mapped_column(String(32))
    job_id: Mapped[int | None] = mapped_column(ForeignKey("job.id", ondelete="SET NULL"))
    model_requested: Mapped[str] = mapped_column(String(128))
    model_version: Mapped[str | None] = mapped_column(String(128))
    priced_as: Mapped[str] = mapped_column(String(128))  # the price table's entry used
    image_size: Mapped[str | None] = mapped_column(String(8))
    outcome: Mapped[CallOutcome] = mapped_column(String(16))
    billed: Mapped[Billed] = mapped_column(String(8))
    images: Mapped[int] = mapped_column(Integer, default=0)
    prompt_tokens: Mapped[int] = mapped_column(Integer, default=0)
    image_tokens: Mapped[int] = mapped_column(Integer, default=0)
    text_tokens: Mapped[int] = mapped_column(Integer, default=0)
    thinking_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cost_micros: Mapped[int] = mapped_column(BigInteger, default=0)
    at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    # Whose Gemini key paid: "operator" (GEMINI_API_KEY) or "workspace" (its own, ``/banana key``).
    key_owner: Mapped[str] = mapped_column(String(16), default="operator", server_default="operator")


Index("ix_charge_team_at", Charge.team_id, Charge.at)


class UsageTotal(Base):
    """The ledger's running totals, one row per workspace, person and channel (``scope`` and ``key``: the
    workspace's has the key "") and per day and month (``period`` and its ``start``, by ``Charge.at``).
    Kept by the database itself: a trigger on ``charge`` adds each row's images and cost (migration 0015),
    so that a process of any version, writing a charge, keeps them. An ack's limit check reads six of
    them by their key (``ledger.USED``), where it summed the month's charges."""

    __tablename__ = "usage_total"

    team_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    scope: Mapped[str] = mapped_column(String(16), primary_key=True)
    key: Mapped[str] = mapped_column(String(32), primary_key=True)
    period: Mapped[str] = mapped_column(String(8), primary_key=True)
    start: Mapped[datetime] = mapped_column(DateTime, primary_key=True)
    images: Mapped[int] = mapped_column(BigInteger, default=0)
    micros: Mapped[int] = mapped_column(BigInteger, default=0)


class WorkspaceKey(Base):
    """A workspace's own Gemini API key (``bot.workspace_keys``), sealed with ``BANANA_ENCRYPTION_KEY``."""

    __tablename__ = "workspace_key"

    team_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    gemini_key: Mapped[str] = mapped_column(Text)  # a Fernet token, never the key
    set_by: Mapped[str] = mapped_column(String(32))
    set_at: Mapped[datetime] = mapped_column(DateTime)


class HealthCheck(Base):
    """One row that ``/healthz`` rewrites: a database that answers reads but refuses writes (disk full,
    read-only) is not healthy."""

    __tablename__ = "health_check"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    checked_at: Mapped[datetime] = mapped_column(DateTime)


# Installations in many workspaces (OAuth): the tables of slack_sdk's SQLAlchemy installation and OAuth
# state stores (``bot.installations``), created by our migrations. Their columns are slack_sdk's, except
# that the tokens are Text: they are stored encrypted, which makes them longer.
def _bot_columns() -> list[Column[Any]]:
    """The columns ``slack_bots`` has, which ``slack_installations`` has too."""
    return [
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("client_id", String(32), nullable=False),
        Column("app_id", String(32), nullable=False),
        Column("enterprise_id", String(32)),
        Column("enterprise_name", String(200)),
        Column("team_id", String(32)),
        Column("team_name", String(200)),
        Column("bot_token", Text),
        Column("bot_id", String(32)),
        Column("bot_user_id", String(32)),
        Column("bot_scopes", String(1000)),
        Column("bot_refresh_token", Text),
        Column("bot_token_expires_at", DateTime),
        Column("is_enterprise_install", Boolean, nullable=False),
        Column("installed_at", DateTime, nullable=False, server_default=func.now()),
    ]


SLACK_INSTALLATIONS = Table(
    "slack_installations",
    Base.metadata,
    *_bot_columns(),
    Column("enterprise_url", String(200)),
    Column("user_id", String(32), nullable=False),
    Column("user_token", Text),
    Column("user_scopes", String(1000)),
    Column("user_refresh_token", Text),
    Column("user_token_expires_at", DateTime),
    Column("incoming_webhook_url", String(200)),
    Column("incoming_webhook_channel", String(200)),
    Column("incoming_webhook_channel_id", String(200)),
    Column("incoming_webhook_configuration_url", String(200)),
    Column("token_type", String(32)),
    Index("slack_installations_idx", "client_id", "enterprise_id", "team_id", "user_id", "installed_at"),
)
SLACK_BOTS = Table(
    "slack_bots",
    Base.metadata,
    *_bot_columns(),
    Index("slack_bots_idx", "client_id", "enterprise_id", "team_id", "installed_at"),
)
SLACK_OAUTH_STATES = Table(
    "slack_oauth_states",
    Base.metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("state", String(200), nullable=False),
    Column("expire_at", DateTime, nullable=False),
)
