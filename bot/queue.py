"""The job queue is the ``job`` table.

A job is claimable when it is queued (and its ``not_before`` has passed) or running with a lapsed lease, and
every earlier unfinished job of its conversation has its answer stored: so the turns of one conversation
reach Gemini one at a time, in order, and a reply always edits the newest result before it, while the result
before it is still on its way into the thread (its delivery goes first: ``delivering``). Jobs made by a
result card's buttons (Regenerate, Variations, Finalize) build on a result that exists already, and don't
wait. On PostgreSQL the claim locks with ``FOR UPDATE SKIP LOCKED``, so any number of worker processes share
the queue; SQLite serialises writers. Every write by a worker is fenced by (``lease_owner``, ``attempts``): a
worker whose lease was taken over can no longer change the job. A run records each side effect as it happens
with a typed transition (``record_root``, ``record_status``, ``record_parts``, ``record_answer``,
``record_upload``); these are the crash checkpoints a later run starts from. They don't commit: the caller's
transaction does, and a transition that returns False (the lease is gone) must roll it back.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

from sqlalchemy import (
    DateTime,
    Interval,
    Select,
    Update,
    and_,
    bindparam,
    case,
    exists,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Session, aliased
from sqlalchemy.sql import ColumnElement
from sqlalchemy.sql.selectable import ScalarSelect

from bot import wakeup
from bot.db import advisory_lock, on_postgresql
from bot.models import Conversation, Job, JobState, Turn, utcnow

UNFINISHED: tuple[JobState, ...] = ("queued", "running")


def db_now(session: Session) -> Any:
    """Now by the database's clock, as a value for a statement: leases and delays are timed by one clock
    that every host shares, so a worker whose own clock runs ahead can't think a live lease lapsed. On
    SQLite every process runs on one host, so its clock is that host's."""
    return server_now() if on_postgresql(session) else utcnow()


def server_now() -> Any:
    """PostgreSQL's clock (UTC), as an expression for a statement."""
    return func.timezone("UTC", func.statement_timestamp(), type_=DateTime)


@dataclass(frozen=True)
class Lease:
    job_id: int
    owner: str
    attempt: int


DEFAULT_USER_CONCURRENCY = 2


@functools.cache
def _claimable(dialect: str, *, locking: bool) -> Select[Any]:
    """The next job to claim, built once per database and kind: building it (aliased subqueries) cost more
    than running it, and the looking worker runs it every poll. ``:now`` on SQLite, the database's clock
    on PostgreSQL (``db_now``); ``:per_user``, the running jobs a person may have.

    Claimable: queued and due, or running with a lapsed lease; no earlier unfinished job of its
    conversation still waiting for its answer (the order within a conversation stays; an earlier result
    being uploaded need not hold the next request back), unless a result card's button made it (it
    builds on a result that is there, so the jobs of a Variations press run side by side); its requester
    below ``per_user`` running requests (a press's jobs are one request).
    Among those, round-robin across people: the fewest running jobs first, then the person served least
    recently (never served first), then the oldest job. So one person's burst of forty requests holds
    another person's single request back by one free worker slot at most."""
    now = _now(dialect)
    earlier, other, sibling, served = aliased(Job), aliased(Job), aliased(Job), aliased(Job)
    live = and_(other.state == "running", other.lease_expires_at >= now)
    # Running requests by person, counted once per claim (not once per candidate: forty waiting turns of
    # one person would count her forty running ones forty times, twice).
    running_by_person = (
        select(
            other.team_id,
            other.requested_by,
            func.count(func.coalesce(other.group_id, other.id).distinct()).label("requests"),
        )
        .where(live)
        .group_by(other.team_id, other.requested_by)
        .subquery("running_by_person")
    )
    # A Variations job's running siblings are its own request, which doesn't count against it. (A candidate
    # itself is never among the running: a running candidate's lease has lapsed.)
    # The conditions are tried in order: an ungrouped job (most) is never probed.
    own_request_running = case(
        (Job.group_id.is_(None), 0),
        (
            exists().where(  # a press's jobs are one person's: the requester's index finds them
                sibling.team_id == Job.team_id,
                sibling.requested_by == Job.requested_by,
                sibling.state == "running",
                sibling.group_id == Job.group_id,
                sibling.lease_expires_at >= now,
            ),
            1,
        ),
        else_=0,
    )
    running = func.coalesce(running_by_person.c.requests, 0) - own_request_running
    last_served = (
        select(func.max(served.started_at))
        .where(served.team_id == Job.team_id, served.requested_by == Job.requested_by)
        .scalar_subquery()
    )
    query = (
        select(Job.id)
        .outerjoin(
            running_by_person,
            and_(
                running_by_person.c.team_id == Job.team_id,
                running_by_person.c.requested_by == Job.requested_by,
            ),
        )
        .where(
            or_(
                and_(Job.state == "queued", Job.not_before <= now),
                and_(Job.state == "running", Job.lease_expires_at < now),
            ),
            or_(
                Job.kind != "turn",  # a button's job builds on a result that is there already
                ~exists().where(
                    earlier.conversation_id == Job.conversation_id,
                    earlier.id < Job.id,
                    earlier.state.in_(UNFINISHED),
                    earlier.result_turn_id.is_(None),
                ),
            ),
            running < bindparam("per_user"),
        )
        .order_by(running, last_served.asc().nulls_first(), Job.id)
        .limit(1)
    )
    return query.with_for_update(skip_locked=True, of=Job) if locking else query


def _now(dialect: str) -> ColumnElement[Any]:
    """Now in a statement built once per database (``db_now`` for one built per call): the database's
    clock on PostgreSQL, else the ``:now`` parameter that ``_at_now`` fills in."""
    return server_now() if dialect == "postgresql" else bindparam("now", type_=DateTime)


def _at_now(session: Session, **params: Any) -> tuple[str, dict[str, Any]]:
    """The session's database, and ``params`` with ``:now`` where ``_now`` needs it."""
    dialect = session.get_bind().dialect.name
    return dialect, params if dialect == "postgresql" else {**params, "now": utcnow()}


def anything_to_claim(session: Session, *, per_user: int = DEFAULT_USER_CONCURRENCY) -> bool:
    """Whether a job is claimable now: a read, for idle workers to ask before they ``claim`` (which takes
    the write lock on SQLite), so that a pool of idle workers costs the listeners nothing."""
    dialect, params = _at_now(session, per_user=per_user)
    return session.scalars(_claimable(dialect, locking=False), params).first() is not None


def claim(
    session: Session, *, owner: str, lease_seconds: float, per_user: int = DEFAULT_USER_CONCURRENCY
) -> Lease | None:
    """Take the next claimable job (``_claimable``), or None, in one statement (``_taking``). Commits.
    On PostgreSQL, claims take turns (a transaction-scoped advisory lock), so two workers can't both take
    a person's last running slot; on SQLite the write lock does the same."""
    advisory_lock(session, "banana-claims")
    dialect, params = _at_now(session, per_user=per_user, owner=owner)
    lease = timedelta(seconds=lease_seconds)
    params.update({"lease": lease} if dialect == "postgresql" else {"expires": params["now"] + lease})
    taken = session.connection().execute(_taking(dialect), params).first()
    if taken is None:
        session.rollback()
        return None
    session.commit()
    return Lease(job_id=int(taken[0]), owner=owner, attempt=int(taken[1]))


@functools.cache
def _taking(dialect: str) -> Update:
    """The claim: the next claimable job marked running, its lease ``:lease`` from now (PostgreSQL's
    clock; ``:expires`` on SQLite) for ``:owner``; its id and attempt. Built once per database, like
    ``_claimable``; one statement, since each round trip inside the claim holds back the next claim."""
    now = _now(dialect)
    expires = now + bindparam("lease", type_=Interval) if dialect == "postgresql" else bindparam("expires")
    next_job = _claimable(dialect, locking=True).scalar_subquery().correlate(None)
    return (
        update(Job)
        .where(Job.id == next_job)
        .values(
            state="running",
            lease_owner=bindparam("owner"),
            lease_expires_at=expires,
            attempts=Job.attempts + 1,
            started_at=now,
        )
        .returning(Job.id, Job.attempts)
    )


def _fenced(lease: Lease) -> ColumnElement[bool]:
    return and_(
        Job.id == lease.job_id,
        Job.lease_owner == lease.owner,
        Job.attempts == lease.attempt,
        Job.state == "running",
    )


def heartbeat(session: Session, lease: Lease, *, lease_seconds: float) -> bool:
    """Extend the lease. False means the job is no longer ours (taken over or finished)."""
    extended = _update_job(
        session, lease, lease_expires_at=db_now(session) + timedelta(seconds=lease_seconds)
    )
    session.commit()
    return extended


def taken_over(session: Session, lease: Lease) -> bool:
    """Whether another worker runs the job now. A heartbeat that finds nothing to renew usually came just
    after its own worker finished the job or gave it back: that is not a takeover."""
    theirs = select(Job.id).where(
        Job.id == lease.job_id,
        Job.state == "running",
        or_(Job.lease_owner != lease.owner, Job.attempts != lease.attempt),
    )
    return session.scalars(theirs).first() is not None


def finish(
    session: Session,
    lease: Lease,
    *,
    state: Literal["done", "failed"],
    error_code: str | None = None,
    error_message: str | None = None,
) -> bool:
    """Mark done or failed. Does not commit, so callers can finish in the same transaction as other writes.
    The next turn of its conversation may run now: workers in every process are told (``wakeup``)."""
    finished = _update_job(
        session,
        lease,
        state=state,
        finished_at=db_now(session),
        lease_owner=None,
        lease_expires_at=None,
        error_code=error_code,
        error_message=error_message,
    )
    if finished:
        wakeup.announce(session)
    return finished


def release(session: Session, lease: Lease, *, delay_seconds: float = 0.0) -> bool:
    """Give the job back (shutdown, or a retry later). It keeps its place in the conversation's order.
    Given back for now (a shutdown), workers in every process are told (``wakeup``)."""
    released = _update_job(
        session,
        lease,
        state="queued",
        lease_owner=None,
        lease_expires_at=None,
        not_before=db_now(session) + timedelta(seconds=delay_seconds),
    )
    if released and delay_seconds <= 0:
        wakeup.announce(session)
    session.commit()
    return released


def cancel_team(session: Session, team_id: str, *, code: str) -> int:
    """End every queued job of a workspace (failed, ``code``): it removed the app. How many."""
    result = session.execute(
        update(Job)
        .where(Job.team_id == team_id, Job.state == "queued")
        .values(
            state="failed",
            finished_at=db_now(session),
            error_code=code,
            error_message="the app was removed from the workspace",
        ),
        execution_options={"synchronize_session": False},
    )
    return int(getattr(result, "rowcount", 0))


def _ours(session: Session, lease: Lease) -> bool:
    """Whether the lease still holds; locks the job row until the transaction ends (PostgreSQL)."""
    return session.scalars(select(Job.id).where(_fenced(lease)).with_for_update()).first() is not None


def _update_job(session: Session, lease: Lease, **values: object) -> bool:
    """Change the job if the lease still holds; whether it did."""
    # No synchronize_session: the caller holds no Job objects to refresh, and matching them costs CPU
    # in every step of every job.
    statement = update(Job).where(_fenced(lease)).values(**values)
    result = session.execute(statement, execution_options={"synchronize_session": False})
    return bool(getattr(result, "rowcount", 0))


def record_root(session: Session, lease: Lease, *, conversation_id: int, thread_ts: str) -> bool:
    """The conversation's root message was posted: its ``ts`` is the thread from now on."""
    if not _ours(session, lease):
        return False
    session.execute(
        update(Conversation).where(Conversation.id == conversation_id).values(thread_ts=thread_ts)
    )
    return True


def record_status(session: Session, lease: Lease, status_ts: str) -> bool:
    """The "working on it" message was posted."""
    return _update_job(session, lease, status_ts=status_ts)


def record_parts(session: Session, lease: Lease, *, turn_id: int, parts: list[dict[str, Any]]) -> bool:
    """The job's user turn was resolved: its text made readable, its attachments downloaded."""
    if not _ours(session, lease):
        return False
    session.execute(update(Turn).where(Turn.id == turn_id).values(parts=parts))
    return True


def record_answer(
    session: Session,
    lease: Lease,
    *,
    result_turn_id: int,
    usage: dict[str, Any],
    gemini_seconds: float,
    model_version: str | None,
    sent: tuple[int, int] = (0, 0),
    parent_job_id: int | None = None,
) -> bool:
    """Gemini's answer is stored (``result_turn_id``): it is paid for, and never asked for again.
    ``sent``: the turns and the images the request carried; ``parent_job_id``: the result it was made
    from. The result gets the next number of its conversation (the caller holds the conversation's row
    lock). The next turn of the conversation may run now: workers in every process are told."""
    recorded = _update_job(
        session,
        lease,
        parent_job_id=parent_job_id,
        result_number=_NEXT_RESULT_NUMBER,
        result_turn_id=result_turn_id,
        answered_at=db_now(session),
        usage=usage,
        gemini_seconds=gemini_seconds,
        model_version=model_version,
        sent_turns=sent[0],
        sent_images=sent[1],
    )
    if recorded:
        wakeup.announce(session)
    return recorded


def _next_result_number() -> ScalarSelect[Any]:
    """The job's conversation's next result number, inside the UPDATE that stores the answer."""
    other = aliased(Job)
    newest = select(func.coalesce(func.max(other.result_number), 0) + 1)
    return newest.where(other.conversation_id == Job.conversation_id).scalar_subquery()


_NEXT_RESULT_NUMBER = _next_result_number()  # built once: an aliased ``Job`` costs milliseconds to build


def delivering(session: Session, lease: Lease) -> bool:
    """Whether an earlier job of the job's conversation is still being delivered by a live worker: its
    image and card go into the thread first. A job given back for later, or whose worker died, doesn't hold
    it up."""
    dialect, params = _at_now(session, job_id=lease.job_id)
    return session.scalars(_delivering(dialect), params).first() is not None


@functools.cache
def _delivering(dialect: str) -> Select[Any]:
    """Built once per database, as ``_claimable`` is: an aliased ``Job`` costs milliseconds to build."""
    now = _now(dialect)
    mine = aliased(Job)
    return (
        select(Job.id)
        .where(
            mine.id == bindparam("job_id"),
            Job.conversation_id == mine.conversation_id,
            Job.id < mine.id,
            Job.state == "running",
            Job.lease_expires_at >= now,
        )
        .limit(1)
    )


def record_card(session: Session, lease: Lease, card_ts: str) -> bool:
    """The result card was posted under the image."""
    return _update_job(session, lease, card_ts=card_ts)


def card_numbers(session: Session, job_id: int) -> tuple[int, int | None, int | None]:
    """The job's result number, its parent's and its source's (the result whose button made it)."""
    row = session.execute(_CARD_NUMBERS, {"job_id": job_id}).one()
    return int(row[0] or 0), row[1], row[2]


def _card_numbers() -> Select[int | None, int | None, int | None]:
    parent, source = aliased(Job), aliased(Job)
    return (
        select(Job.result_number, parent.result_number, source.result_number)
        .outerjoin(parent, parent.id == Job.parent_job_id)
        .outerjoin(source, source.id == Job.source_job_id)
        .where(Job.id == bindparam("job_id"))
    )


_CARD_NUMBERS = _card_numbers()  # built once: an aliased ``Job`` costs milliseconds to build


def record_upload(session: Session, lease: Lease, file_id: str | None) -> bool:
    """An upload was started (its file id, before it is shared), or given up (None)."""
    return _update_job(session, lease, upload_file_id=file_id)


def jobs_ahead(*, team_id: Any, user_id: Any, job_id: Any) -> Select[Any]:
    """How many queued jobs will be claimed before ``job_id`` (values or columns): in its workspace only,
    and, as claims go round-robin across people, the requester's own earlier ones plus, from each other
    person, at most one more than that. Running jobs are not in its way. Only jobs queued before it count,
    so it works inside the statement that inserts it (``store.start_at_once``).

    Counted per person (an index scan and a count each), not numbered job by job: on the ack path, with a
    thousand jobs queued, numbering them took 0.7 ms of SQLite's time per ``/banana``, counting 0.1 ms."""
    earlier = (Job.team_id == team_id, Job.state == "queued", Job.id < job_id)
    per_person = (
        select(Job.requested_by, func.count().label("queued"))
        .where(*earlier)
        .group_by(Job.requested_by)
        .subquery()
    )
    own = select(func.count()).where(*earlier, Job.requested_by == user_id).scalar_subquery()
    theirs = per_person.c.queued
    ahead = case((per_person.c.requested_by == user_id, theirs), (theirs <= own + 1, theirs), else_=own + 1)
    return select(func.coalesce(func.sum(ahead), 0)).select_from(per_person)


# Built once: building a statement costs as much as running it, and this one is on the ack path.
_AHEAD = jobs_ahead(team_id=bindparam("team_id"), user_id=bindparam("user_id"), job_id=bindparam("job_id"))


def position(session: Session, job_id: int, *, team_id: str, user_id: str) -> int:
    """How many queued jobs will be claimed before this one (``jobs_ahead``)."""
    values = {"job_id": job_id, "team_id": team_id, "user_id": user_id}
    return int(session.connection().scalar(_AHEAD, values) or 0)
