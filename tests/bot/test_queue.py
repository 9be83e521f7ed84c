from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import psycopg
import pytest
from sqlalchemy import Engine, event, update
from sqlalchemy.orm import Session, sessionmaker

from bot import ledger, queue, store, wakeup
from bot.db import advisory_lock, reading
from bot.models import Job, utcnow
from bot.options import parse_request
from tests.bot.helpers import CATALOG, add_job, new_conversation
from tests.bot.test_db import wait_until
from tests.bot.test_intake import waiting_advisory_locks


def claim(sessions: sessionmaker[Session], owner: str = "w1", lease: float = 60) -> queue.Lease | None:
    with sessions() as session:
        return queue.claim(session, owner=owner, lease_seconds=lease)


def finish(sessions: sessionmaker[Session], lease: queue.Lease) -> None:
    with sessions() as session:
        assert queue.finish(session, lease, state="done")
        session.commit()


def test_jobs_of_one_conversation_run_one_at_a_time_in_order(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        a = new_conversation(session, thread="1.0")
        b = new_conversation(session, thread="2.0")
        a1, a2, b1 = add_job(session, a), add_job(session, a), add_job(session, b)
        ids = (a1.id, a2.id, b1.id)
    first, second = claim(sessions), claim(sessions)
    assert first is not None and second is not None
    assert (first.job_id, second.job_id) == (ids[0], ids[2])  # a2 waits for a1
    assert claim(sessions) is None
    finish(sessions, first)
    third = claim(sessions)
    assert third is not None and third.job_id == ids[1]


def test_the_next_turn_runs_once_the_answer_before_it_is_stored_and_is_delivered_after_it(
    sessions: sessionmaker[Session],
) -> None:
    with sessions.begin() as session:
        conv = new_conversation(session)
        first, second = add_job(session, conv), add_job(session, conv)
        ids = (first.id, second.id)
    one = claim(sessions)
    assert one is not None and one.job_id == ids[0] and claim(sessions) is None
    with sessions() as session:  # Gemini answered the first: it is being uploaded now
        answer = store.add_user_turn(
            session,
            conversation_id=conv.id,
            team_id=conv.team_id,
            user_id="U1",
            text="x",
            files=[],
            slack_ts=None,
        )
        assert queue.record_answer(
            session, one, result_turn_id=answer, usage={}, gemini_seconds=1.0, model_version=None
        )
        session.commit()
    two = claim(sessions)
    assert two is not None and two.job_id == ids[1]
    with reading(sessions) as session:
        assert queue.delivering(session, two)  # the first result goes into the thread first
        assert not queue.delivering(session, one)
    with sessions.begin() as session:  # its worker died: nothing to wait for
        session.execute(
            update(Job).where(Job.id == ids[0]).values(lease_expires_at=utcnow() - timedelta(seconds=1))
        )
    with reading(sessions) as session:
        assert not queue.delivering(session, two)
    with sessions.begin() as session:
        session.execute(
            update(Job).where(Job.id == ids[0]).values(lease_expires_at=utcnow() + timedelta(seconds=60))
        )
    finish(sessions, one)
    with reading(sessions) as session:
        assert not queue.delivering(session, two)


def test_a_buttons_jobs_need_not_wait_and_count_as_one_request(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        conv = new_conversation(session)
        first = add_job(session, conv, user="U1")
        first.result_turn_id, first.state = first.turn_id, "done"
        reply = add_job(session, conv, user="U2")
        request = parse_request("x", catalog=CATALOG, default_model="nano-banana-2")
        ids = store.enqueue_from_result(
            session, first, kind="variation", requested_by="U1", request=request, count=3
        )
    running = claim(sessions)
    assert running is not None and running.job_id == reply.id
    # The reply runs; the variations don't wait for it, and all three run though U1 may run one request.
    with sessions() as session:
        leases = [queue.claim(session, owner="w", lease_seconds=60, per_user=1) for _ in range(4)]
    assert [lease.job_id if lease else None for lease in leases] == [*ids, None]


def test_lapsed_lease_is_claimed_again_and_the_old_owner_is_fenced_out(
    sessions: sessionmaker[Session],
) -> None:
    with sessions.begin() as session:
        add_job(session, new_conversation(session))
    old = claim(sessions, owner="dead-worker")
    assert old is not None
    assert claim(sessions, owner="w2") is None  # lease still valid
    with sessions.begin() as session:
        session.execute(update(Job).values(lease_expires_at=utcnow() - timedelta(seconds=1)))
    new = claim(sessions, owner="w2")
    assert new is not None and new.job_id == old.job_id and new.attempt == 2
    with sessions() as session:
        assert not queue.heartbeat(session, old, lease_seconds=60)
        assert not queue.record_status(session, old, "1.0")
        assert not queue.record_upload(session, old, "F1")
        assert not queue.record_root(session, old, conversation_id=1, thread_ts="9.0")
        assert not queue.record_parts(session, old, turn_id=1, parts=[{"text": "hijacked"}])
        assert not queue.finish(session, old, state="done")
        assert queue.heartbeat(session, new, lease_seconds=60)
        assert queue.record_status(session, new, "2.0")
        session.commit()
    with sessions() as session:
        job = session.get(Job, new.job_id)
        assert job is not None and job.status_ts == "2.0" and job.upload_file_id is None


def test_only_a_lease_another_worker_holds_counts_as_taken_over(sessions: sessionmaker[Session]) -> None:
    """A heartbeat that comes just after its worker finished or released the job finds nothing to renew:
    that is not a takeover (it was logged as one dozens of times a benchmark run)."""
    with sessions.begin() as session:
        conv = new_conversation(session)
        add_job(session, conv)
        add_job(session, new_conversation(session, thread="2.0"))
    finished, released = claim(sessions), claim(sessions)
    assert finished is not None and released is not None
    finish(sessions, finished)
    with sessions() as session:
        assert queue.release(session, released)
        for lease in (finished, released):
            assert not queue.heartbeat(session, lease, lease_seconds=60)
            assert not queue.taken_over(session, lease)
    with sessions.begin() as session:
        session.execute(update(Job).where(Job.id == released.job_id).values(not_before=utcnow()))
    again = claim(sessions, owner="w2")
    assert again is not None and again.job_id == released.job_id
    with sessions() as session:
        assert queue.taken_over(session, released)
        assert not queue.taken_over(session, again)


def test_ending_a_job_or_giving_it_back_for_now_tells_every_process(
    engine: Engine, sessions: sessionmaker[Session]
) -> None:
    """PostgreSQL: a stored answer, ``finish`` and an immediate ``release`` (a shutdown) notify
    ``banana_jobs`` once they commit, so another process's idle workers take what may run now; a release for
    later does not."""
    if engine.dialect.name != "postgresql":
        pytest.skip("notifications are PostgreSQL's")
    url = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(url, autocommit=True) as listening:
        listening.execute(f"LISTEN {wakeup.CHANNEL}")

        def heard() -> int:
            return sum(1 for _ in listening.notifies(timeout=0.5))

        with sessions.begin() as session:
            for n in range(4):  # four people: nobody's cap on running jobs gets in the way
                add_job(session, new_conversation(session, thread=f"{n}.0"), user=f"U{n}")
        assert heard() == 1  # queueing told them (one notification a transaction)
        leases = [claim(sessions) for _ in range(4)]
        assert all(leases) and heard() == 0  # claims change nothing anyone waits for
        answered, finished, now, later = (lease for lease in leases if lease is not None)
        with sessions() as session:
            turn = session.get_one(Job, answered.job_id).turn_id
            assert queue.record_answer(
                session, answered, result_turn_id=turn, usage={}, gemini_seconds=1.0, model_version=None
            )
            session.commit()
        assert heard() == 1
        finish(sessions, finished)
        assert heard() == 1
        with sessions() as session:
            assert queue.release(session, now)
        assert heard() == 1
        with sessions() as session:
            assert queue.release(session, later, delay_seconds=30)
        assert heard() == 0


def test_released_job_keeps_its_place(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        conv = new_conversation(session)
        first_id, _ = add_job(session, conv).id, add_job(session, conv).id
    lease = claim(sessions)
    assert lease is not None
    with sessions() as session:
        assert queue.release(session, lease)
    again = claim(sessions)
    assert again is not None and again.job_id == first_id


def test_delayed_job_waits_for_not_before(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        add_job(session, new_conversation(session))
    lease = claim(sessions)
    assert lease is not None
    with sessions() as session:
        queue.release(session, lease, delay_seconds=300)
    assert claim(sessions) is None


def test_on_postgresql_claims_take_turns(engine: Engine, sessions: sessionmaker[Session]) -> None:
    """While one claim holds the claims' lock (sent to psycopg with the transaction's BEGIN), the next
    waits for it, then takes the job."""
    if engine.dialect.name != "postgresql":
        pytest.skip("on SQLite the write lock taken at BEGIN IMMEDIATE already serialises the claims")
    with sessions.begin() as session:
        job_id = add_job(session, new_conversation(session)).id
    with ThreadPoolExecutor(max_workers=1) as pool:
        with sessions.begin() as first:
            advisory_lock(first, "banana-claims")
            second = pool.submit(claim, sessions)
            wait_until(lambda: waiting_advisory_locks(engine) == 1)
            assert not second.done()
        lease = second.result(timeout=10)
    assert lease is not None and lease.job_id == job_id


def test_a_claim_takes_its_job_in_one_statement(engine: Engine, sessions: sessionmaker[Session]) -> None:
    """Claims take turns (one at a time in every process): each round trip inside one holds back the
    next. The job is found and taken in one statement (on PostgreSQL after the lock, which goes to psycopg
    directly, with the transaction's BEGIN: ``db.advisory_lock``)."""
    with sessions.begin() as session:
        job_id = add_job(session, new_conversation(session)).id
    statements: list[str] = []

    def seen(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", seen)
    try:
        lease = claim(sessions, lease=30)
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    assert lease is not None and (lease.job_id, lease.attempt) == (job_id, 1)
    statements = [s for s in statements if s != "BEGIN IMMEDIATE"]  # SQLite's write lock
    assert len(statements) == 1 and statements[0].startswith("UPDATE job"), statements
    with sessions() as session:
        job = session.get_one(Job, job_id)
        assert (job.state, job.lease_owner, job.attempts) == ("running", "w1", 1)
        assert job.started_at is not None and job.lease_expires_at is not None
        assert timedelta(seconds=29) < job.lease_expires_at - job.started_at <= timedelta(seconds=30)


def test_concurrent_claims_never_hand_out_a_job_twice(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        for n in range(10):
            conv = new_conversation(session, thread=f"{n}.0")
            for _ in range(3):
                add_job(session, conv)
    claimed: list[int] = []
    lock = threading.Lock()

    def worker(name: str) -> None:
        while True:
            lease = claim(sessions, owner=name)
            if lease is None:
                with sessions() as session:
                    left = session.query(Job).filter(Job.state != "done").count()
                if left == 0:
                    return
                continue
            with lock:
                claimed.append(lease.job_id)
            finish(sessions, lease)

    # Futures, not bare threads: a worker that raises fails the test instead of dying unnoticed.
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = [pool.submit(worker, f"w{i}") for i in range(4)]
        for future in futures:
            future.result(timeout=60)
    assert sorted(claimed) == sorted(set(claimed))
    assert len(claimed) == 30


def test_anything_to_claim_answers_what_claim_would_find(sessions: sessionmaker[Session]) -> None:
    def anything() -> bool:
        with reading(sessions) as session:
            return queue.anything_to_claim(session)

    assert not anything()
    with sessions.begin() as session:
        conversation = new_conversation(session)
        add_job(session, conversation), add_job(session, conversation)
    assert anything()
    first = claim(sessions)
    assert first is not None
    assert not anything()  # the second waits for the first
    finish(sessions, first)
    assert anything()


def queued_for(session: Session, user: str, *, team: str = "T1") -> int:
    """A new conversation of ``user``'s with one queued job; the job's id."""
    return add_job(
        session, new_conversation(session, team=team, thread=f"{user}-{utcnow().timestamp()}"), user=user
    ).id


def test_claims_go_round_robin_across_people_each_below_their_cap(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        alice = [queued_for(session, "UALICE") for _ in range(5)]
        bob, carol = queued_for(session, "UBOB"), queued_for(session, "UCAROL")
    order = [lease.job_id for lease in (claim(sessions) for _ in range(4)) if lease is not None]
    # The oldest first; then whoever runs nothing; Alice's second once the others run one each.
    assert order == [alice[0], bob, carol, alice[1]]
    assert claim(sessions) is None  # Alice has 2 running, her cap; nobody else is waiting


def test_one_free_worker_serves_the_person_served_least_recently_first(
    sessions: sessionmaker[Session],
) -> None:
    """With one worker, Bob's single request waits for one of Alice's forty at most."""
    with sessions.begin() as session:
        alice = [queued_for(session, "UALICE") for _ in range(4)]
    first = claim(sessions)
    assert first is not None and first.job_id == alice[0]
    with sessions.begin() as session:
        bob = queued_for(session, "UBOB")
    finish(sessions, first)
    second = claim(sessions)
    assert second is not None and second.job_id == bob  # before Alice's older ones
    finish(sessions, second)
    third = claim(sessions)
    assert third is not None and third.job_id == alice[1]


def test_the_cap_on_a_persons_running_jobs_is_set_by_the_operator(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        alice = [queued_for(session, "UALICE") for _ in range(3)]
    with sessions() as session:
        one = queue.claim(session, owner="w1", lease_seconds=60, per_user=1)
    assert one is not None and one.job_id == alice[0]
    with sessions() as session:
        assert queue.claim(session, owner="w2", lease_seconds=60, per_user=1) is None
    with reading(sessions) as session:
        assert not queue.anything_to_claim(session, per_user=1)
        assert queue.anything_to_claim(session, per_user=3)


def test_the_position_shown_counts_only_jobs_really_ahead_in_the_same_workspace(
    sessions: sessionmaker[Session],
) -> None:
    with sessions.begin() as session:
        for _ in range(5):
            queued_for(session, "UALICE")
        for _ in range(3):
            queued_for(session, "UDAVE", team="T2")  # another workspace: never ahead
        bob = queued_for(session, "UBOB")
        carol = queued_for(session, "UCAROL")
        alice_sixth = queued_for(session, "UALICE")
        bob_second = queued_for(session, "UBOB")

    def position(job_id: int, user: str) -> int:
        with reading(sessions) as session:
            return queue.position(session, job_id, team_id="T1", user_id=user)

    assert position(bob, "UBOB") == 1  # one of Alice's goes first, not all five
    assert position(carol, "UCAROL") == 2  # one of Alice's, and Bob's
    assert position(alice_sixth, "UALICE") == 5 + 1 + 1  # her own five, then Bob's and Carol's turns
    assert position(bob_second, "UBOB") == 2 + 1 + 1  # Alice's first two, his own first, Carol's


@pytest.mark.parametrize("statement", ["the limit sums", "the position"])
def test_on_sqlite_an_acks_reads_look_at_the_workspaces_queued_jobs_and_six_totals_not_its_history(
    engine: Engine, statement: str
) -> None:
    """Every ack sums what its workspace, person and channel used and counts the jobs ahead of its own. It
    reads the queued and running jobs through ``ix_job_team_state`` (it had read every job the workspace
    ever had: with 20,000 finished, 4.4 ms and 0.9 ms per ack, against 0.09 and 0.04 ms) and six running
    totals by their key (it had summed the month's charges: 19.6 ms per ack at 20,000, against 0.06 ms)."""
    if engine.dialect.name != "sqlite":
        pytest.skip("PostgreSQL picks its plans by its statistics of the table")
    query = ledger.USED if statement == "the limit sums" else queue._AHEAD
    compiled = query.compile(dialect=engine.dialect)
    values = {"team_id": "T1", "user_id": "U1", "channel_id": "C1", "job_id": 1, "day": None, "month": None}
    params = compiled.construct_params(values)
    with engine.connect() as conn:
        plan = conn.exec_driver_sql(
            f"EXPLAIN QUERY PLAN {compiled}", tuple(params[name] for name in compiled.positiontup or ())
        ).all()
    steps = [str(row[3]) for row in plan]
    reads_of_job = [step for step in steps if " job " in f"{step} "]
    assert reads_of_job and all("(team_id=? AND state=?" in read for read in reads_of_job), plan
    assert not any("charge" in step for step in steps), plan
    totals = [step for step in steps if "usage_total" in step]
    key = "(team_id=? AND scope=? AND key=? AND period=? AND start=?)"
    assert len(totals) == (6 if query is ledger.USED else 0) and all(key in read for read in totals), plan
