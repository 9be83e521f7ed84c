"""Transactions on both databases: reads that stay out of the writers' way."""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, event, text, update
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from bot import store
from bot.db import (
    Checkpoints,
    ProcessTurns,
    WriteTurns,
    create_db_engine,
    image_engine,
    listener_sessions,
    reading,
    session_factory,
    write_turns,
)
from bot.images import inspect
from bot.models import Job
from tests.bot.helpers import add_job, new_conversation
from tests.images import encode


def queued_job(sessions: sessionmaker[Session]) -> int:
    with sessions.begin() as session:
        return add_job(session, new_conversation(session)).id


def test_a_read_neither_waits_for_a_writer_nor_sees_its_uncommitted_change(
    sessions: sessionmaker[Session],
) -> None:
    job_id = queued_job(sessions)

    def attempts() -> int:
        with reading(sessions) as session:
            job = session.get(Job, job_id)
            assert job is not None
            return job.attempts

    # The writer holds the write lock (SQLite) and the row's lock (PostgreSQL) until it ends.
    with sessions.begin() as writer, ThreadPoolExecutor(max_workers=1) as pool:
        writer.execute(update(Job).where(Job.id == job_id).values(attempts=5))
        assert pool.submit(attempts).result(timeout=10) == 0
    assert attempts() == 5


def test_a_write_slipped_into_a_read_is_refused_on_postgresql(
    engine: Engine, sessions: sessionmaker[Session]
) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL enforces READ ONLY; SQLite's deferred BEGIN would take the lock")
    job_id = queued_job(sessions)
    with pytest.raises(DBAPIError, match="read-only"), reading(sessions) as session:
        session.execute(update(Job).where(Job.id == job_id).values(attempts=5))


def test_a_read_leaves_the_connection_as_it_found_it(sessions: sessionmaker[Session]) -> None:
    """The connection goes back to the pool: the next (writing) transaction on it may write."""
    job_id = queued_job(sessions)
    for _ in range(3):
        with reading(sessions) as session:
            session.get(Job, job_id)
        with sessions.begin() as session:
            session.execute(update(Job).where(Job.id == job_id).values(attempts=Job.attempts + 1))
    with reading(sessions) as session:
        job = session.get(Job, job_id)
        assert job is not None and job.attempts == 3


def test_a_write_that_ends_badly_lets_the_next_writer_in(sessions: sessionmaker[Session]) -> None:
    job_id = queued_job(sessions)

    def write() -> None:
        with sessions.begin() as session:
            session.execute(update(Job).where(Job.id == job_id).values(attempts=Job.attempts + 1))

    def fail_in_a_transaction() -> None:
        with sessions.begin() as session:
            session.execute(update(Job).where(Job.id == job_id).values(attempts=9))
            raise RuntimeError("boom")

    def leave_without_commit() -> None:
        with sessions() as session:  # closed with its transaction open: the session rolls it back
            session.execute(update(Job).where(Job.id == job_id).values(attempts=9))

    with ThreadPoolExecutor(max_workers=1) as pool:
        failed = pool.submit(fail_in_a_transaction)
        pool.submit(leave_without_commit).result(timeout=10)
        pool.submit(write).result(timeout=10)  # a lock still held by that thread would stop this
    with pytest.raises(RuntimeError, match="boom"):
        failed.result()
    with reading(sessions) as session:
        job = session.get(Job, job_id)
        assert job is not None and job.attempts == 1


def bump(session: Session, job_id: int) -> None:
    """A write: one more attempt on the job."""
    session.execute(update(Job).where(Job.id == job_id).values(attempts=Job.attempts + 1))


def write(sessions: sessionmaker[Session], job_id: int, order: list[str], name: str) -> None:
    """A transaction that writes, noting ``name`` in ``order`` while it holds the write turn."""
    with sessions.begin() as session:
        bump(session, job_id)
        order.append(name)


def test_on_sqlite_a_listeners_write_goes_before_the_waiting_workers_writes(engine: Engine) -> None:
    turns = write_turns(engine)
    if turns is None:
        pytest.skip("PostgreSQL has no database-wide write lock")
    workers, listeners = session_factory(engine), listener_sessions(engine)
    job_id = queued_job(workers)
    order: list[str] = []
    with ThreadPoolExecutor(max_workers=4) as pool:
        with workers.begin() as holder:  # a worker's write is under way
            bump(holder, job_id)
            waiting = [pool.submit(write, workers, job_id, order, f"worker {i}") for i in (1, 2)]
            wait_until(lambda: turns.waiting[False] == 2)
            waiting.append(pool.submit(write, listeners, job_id, order, "listener"))
            wait_until(lambda: turns.waiting[True] == 1)
        for future in waiting:
            future.result(timeout=10)
    assert order[0] == "listener"
    assert sorted(order[1:]) == ["worker 1", "worker 2"]


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def test_on_sqlite_a_waiting_worker_writes_after_a_few_listener_writes_however_many_wait() -> None:
    """Listeners go first, but a steady stream of them (a burst of requests) does not starve the workers:
    a claim or a stored answer waits for a few listener writes at most."""
    turns = WriteTurns()
    order: list[str] = []

    def write(urgent: bool, name: str) -> None:
        turns.acquire(urgent=urgent)
        order.append(name)
        turns.release()

    turns.acquire(urgent=True)  # a listener writes; a worker and ten more listeners queue behind it
    with ThreadPoolExecutor(max_workers=11) as pool:
        futures = [pool.submit(write, False, "worker")]
        wait_until(lambda: turns.waiting[False] == 1)
        futures += [pool.submit(write, True, f"listener {i}") for i in range(10)]
        wait_until(lambda: turns.waiting[True] == 10)
        turns.release()
        for future in futures:
            future.result(timeout=10)
    assert order.index("worker") == WriteTurns.LISTENER_RUN - 1  # after the first listener's run


@contextmanager
def another_process(engine: Engine, *, busy_timeout: int | None = None) -> Iterator[Engine]:
    """An engine on the same SQLite file, standing for another process: its own connections, its own
    ``WriteTurns`` and its own descriptors of the lock files (``flock`` locks belong to those, so two of
    them exclude each other as two processes do). ``busy_timeout``: SQLite's own wait, in milliseconds."""
    if write_turns(engine) is None:
        pytest.skip("PostgreSQL has no database-wide write lock")
    other = create_db_engine(engine.url.render_as_string(hide_password=False))
    if busy_timeout is not None:

        @event.listens_for(other, "connect")
        def _no_waiting(dbapi_connection: Any, _record: Any) -> None:  # after the app's own PRAGMAs
            dbapi_connection.execute(f"PRAGMA busy_timeout={busy_timeout}")

    try:
        yield other
    finally:
        other.dispose()


def across(engine: Engine) -> ProcessTurns:
    turns = write_turns(engine)
    assert turns is not None and turns.across is not None
    return turns.across


def test_on_sqlite_another_processs_writer_waits_for_the_turn_not_in_sqlites_busy_loop(
    engine: Engine,
) -> None:
    """Its writer starts once this one's COMMIT has ended, never meeting SQLite's lock held: with SQLite's
    own wait off, a BEGIN IMMEDIATE that met it would fail at once ("database is locked")."""
    sessions = session_factory(engine)
    job_id = queued_job(sessions)
    with another_process(engine, busy_timeout=0) as other, ThreadPoolExecutor(max_workers=1) as pool:
        with sessions.begin() as holder:
            bump(holder, job_id)
            waiting = pool.submit(write, session_factory(other), job_id, [], "other process's writer")
            wait_until(lambda: across(other).waiting)
        waiting.result(timeout=10)
    with reading(sessions) as session:
        assert session.get_one(Job, job_id).attempts == 2


def test_on_sqlite_a_processs_listeners_go_before_another_processs_waiting_worker(engine: Engine) -> None:
    """The acks' process keeps the gate while its listeners wait: the other process's worker, which came
    first, writes after them."""
    turns = write_turns(engine)
    if turns is None:
        pytest.skip("PostgreSQL has no database-wide write lock")
    listeners = listener_sessions(engine)
    job_id = queued_job(listeners)
    order: list[str] = []
    with another_process(engine) as other, ThreadPoolExecutor(max_workers=2) as pool:
        with listeners.begin() as holder:  # an ack's write is under way
            bump(holder, job_id)
            waiting = [pool.submit(write, session_factory(other), job_id, order, "other process's worker")]
            wait_until(lambda: across(other).waiting)
            waiting.append(pool.submit(write, listeners, job_id, order, "listener"))
            wait_until(lambda: turns.waiting[True] == 1)
        for future in waiting:
            future.result(timeout=10)
    assert order == ["listener", "other process's worker"]


def test_on_sqlite_a_processs_listeners_let_the_gate_go_after_their_run(engine: Engine) -> None:
    """However many of its listeners wait, after ``LISTENER_RUN`` of them the gate is free for a moment
    for another process's worker; and at once when none waits."""
    if write_turns(engine) is None:
        pytest.skip("PostgreSQL has no database-wide write lock")
    turns = ProcessTurns(str(engine.url.database))
    gate = os.open(f"{engine.url.database}-gate", os.O_RDONLY)

    def gate_free() -> bool:
        try:
            fcntl.flock(gate, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        fcntl.flock(gate, fcntl.LOCK_UN)
        return True

    try:
        free = []
        for _ in range(WriteTurns.LISTENER_RUN + 1):
            turns.enter(urgent=True)
            assert not gate_free()
            turns.leave(listeners_waiting=True)
            free.append(gate_free())
        assert free == [False] * (WriteTurns.LISTENER_RUN - 1) + [True, False]
        turns.enter(urgent=False)  # one of this process's workers between the listeners: gate kept
        turns.leave(listeners_waiting=True)
        assert not gate_free()
        turns.enter(urgent=True)
        turns.leave(listeners_waiting=False)
        assert gate_free()
        turns.enter(urgent=False)  # a worker alone holds the gate only until it has the turn
        assert gate_free()
        turns.leave(listeners_waiting=False)
    finally:
        os.close(gate)


def test_a_writer_that_waits_too_long_gets_a_database_error(engine: Engine) -> None:
    turns = write_turns(engine)
    if turns is None:
        pytest.skip("PostgreSQL has no database-wide write lock")
    turns.acquire(urgent=False)
    try:
        impatient = WriteTurns(timeout=0.05)
        impatient.acquire(urgent=True)
        with pytest.raises(OperationalError, match="database is locked"):
            impatient.acquire(urgent=True)
    finally:
        turns.release()


def test_a_connection_that_carried_an_image_is_closed_instead_of_pooled(
    sessions: sessionmaker[Session],
) -> None:
    """libpq keeps its buffers at the largest message a connection carried (12 MB after reading one 6 MB
    image) and SQLite its page cache: kept in a pool of dozens, that was a gigabyte with 4K images."""
    data = encode("PNG")

    def dbapi_connection(session: Session) -> object:
        return session.connection().connection.dbapi_connection

    with sessions() as session:
        first = dbapi_connection(session)
    with sessions.begin() as session:
        assert dbapi_connection(session) is first  # an ordinary transaction's connection is pooled
        blob_id = store.save_blob(session, team_id="T1", data=data, info=inspect(data)).id
    with sessions() as session:
        second = dbapi_connection(session)
        assert second is not first
        assert store.load_blob(session, team_id="T1", blob_id=blob_id).data == data
    with sessions() as session:
        assert dbapi_connection(session) is not second


def backend_pid(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())


def cut_off(database_url: str, pid: int) -> None:
    """The server ends one connection, as a restart or a dropped network path would."""
    admin = create_engine(database_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    finally:
        admin.dispose()


@contextmanager
def connection_cut_off(database_url: str, *, ping_after_idle: float) -> Iterator[tuple[Engine, int]]:
    """An engine whose one pooled connection the server has just ended, and that connection's pid."""
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite has no server to lose")
    engine = create_db_engine(database_url, ping_after_idle=ping_after_idle)
    try:
        pid = backend_pid(engine)
        cut_off(database_url, pid)
        yield engine, pid
    finally:
        engine.dispose()


def test_on_postgresql_a_connection_that_sat_in_the_pool_is_checked_before_use(database_url: str) -> None:
    with connection_cut_off(database_url, ping_after_idle=0.0) as (engine, pid):
        assert backend_pid(engine) != pid  # found dead before use: a new connection, and no error


def test_on_postgresql_a_connection_back_a_moment_ago_goes_out_unchecked(database_url: str) -> None:
    """A check before every use cost a round trip per transaction (a dozen per job). One returned within
    ``ping_after_idle`` is alive, save for the moment the server goes away: that transaction fails (as the
    next would have), and the pool is renewed."""
    with connection_cut_off(database_url, ping_after_idle=3600.0) as (engine, pid):
        with pytest.raises(OperationalError):
            backend_pid(engine)
        assert backend_pid(engine) != pid


def test_on_postgresql_image_connections_stay_open_up_to_their_number(engine: Engine) -> None:
    """A new PostgreSQL connection costs the server a process start: reconnecting after every image was
    half the database's CPU in the benchmark. Transactions that carry images have a pool of their own,
    whose ``connections`` stay open (their buffers the size of an image, that many and no more); more at
    once get a connection that is closed when they end."""
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite's connections are files reopened in microseconds: a carrier is closed")
    images = image_engine(engine, connections=2)
    opened: list[object] = []
    event.listen(images, "connect", lambda dbapi_connection, _record: opened.append(dbapi_connection))
    try:
        sessions = session_factory(images)
        data = encode("PNG")
        with sessions.begin() as session:
            blob_id = store.save_blob(session, team_id="T1", data=data, info=inspect(data)).id
        with ExitStack() as stack:  # three at once
            for session in [stack.enter_context(sessions()) for _ in range(3)]:
                assert store.load_blob(session, team_id="T1", blob_id=blob_id).data == data
        assert len(opened) == 3 and images.pool.checkedin() == 2  # the third one was closed
        for _ in range(5):
            with sessions() as session:
                assert store.load_blob(session, team_id="T1", blob_id=blob_id).data == data
        assert len(opened) == 3  # one at a time, the kept ones serve
    finally:
        images.dispose()


def test_on_sqlite_the_next_writer_is_let_in_only_once_the_commit_has_ended(engine: Engine) -> None:
    """SQLAlchemy's commit event comes just before SQLite's COMMIT: a writer let in there met the lock
    still held, and slept in SQLite's busy handler (1, 2, 5 … 100 ms) while an ack waited behind it."""
    turns = write_turns(engine)
    if turns is None:
        pytest.skip("PostgreSQL has no database-wide write lock")
    sessions = session_factory(engine)
    job_id = queued_job(sessions)
    held_when: list[tuple[str, bool]] = []

    def before_commit(_conn: object) -> None:
        held_when.append(("commit", turns.held))

    def before_rollback(_conn: object) -> None:
        held_when.append(("rollback", turns.held))

    event.listen(engine, "commit", before_commit)
    event.listen(engine, "rollback", before_rollback)
    try:
        with sessions.begin() as session:
            session.execute(update(Job).where(Job.id == job_id).values(attempts=1))
        assert not turns.held
        with sessions() as session:
            session.execute(update(Job).where(Job.id == job_id).values(attempts=2))
            session.rollback()
        assert not turns.held
    finally:
        event.remove(engine, "commit", before_commit)
        event.remove(engine, "rollback", before_rollback)
    assert held_when == [("commit", True), ("rollback", True)]


def test_on_sqlite_a_connection_lost_in_the_middle_of_a_write_gives_the_turn_back(engine: Engine) -> None:
    turns = write_turns(engine)
    if turns is None:
        pytest.skip("PostgreSQL has no database-wide write lock")
    sessions = session_factory(engine)
    job_id = queued_job(sessions)
    with engine.connect() as conn:
        conn.begin()
        conn.execute(update(Job).where(Job.id == job_id).values(attempts=1))
        assert turns.held
        conn.invalidate()  # what SQLAlchemy does with a connection that broke: closes it
        assert not turns.held
        conn.rollback()
    with sessions.begin() as session:
        session.execute(update(Job).where(Job.id == job_id).values(attempts=2))


def test_on_sqlite_no_commit_copies_the_log_back_and_the_background_checkpoints_keep_it_small(
    engine: Engine, sessions: sessionmaker[Session]
) -> None:
    """A commit that took the log past 1000 pages used to copy it into the database file, and sync it,
    before its request could answer. ``Checkpoints`` does that in a thread of its own."""
    if engine.dialect.name != "sqlite":
        pytest.skip("PostgreSQL checkpoints on its own")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 0
    wal = Path(str(engine.url.database) + "-wal")

    def a_round_of_writes_grows_the_log() -> bool:
        before = wal.stat().st_size if wal.exists() else 0
        with sessions.begin() as session:
            for _ in range(20):
                add_job(session, new_conversation(session, thread=None), "x" * 2000)
        return wal.stat().st_size > before

    assert all([a_round_of_writes_grows_the_log() for _ in range(60)])  # no commit started it over
    assert wal.stat().st_size > 1000 * 4096  # past the point where a commit would have checkpointed
    checkpoints = Checkpoints(engine, every=0.01)
    checkpoints.start()
    try:  # once the log is copied back, the next writer starts it over from its beginning
        wait_until(lambda: not a_round_of_writes_grows_the_log())
    finally:
        checkpoints.stop()
