"""Engine, sessions and migrations for SQLite (default) and PostgreSQL (psycopg 3)."""

from __future__ import annotations

import logging
import os
import sqlite3
import sys
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import psycopg
from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, insert, text, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, InvalidatePoolError, NoSuchModuleError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from bot.errors import StartupError
from bot.models import HealthCheck, utcnow
from bot.redaction import shown_url

if sys.platform != "win32":
    import fcntl

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"
_PG_MIGRATION_LOCK = 0x62616E616E61  # "banana": one migrator at a time across processes


def normalise_url(url: str) -> str:
    """Send plain ``postgresql://`` URLs to psycopg 3, which is the driver we ship."""
    parsed = make_url(url)
    if parsed.drivername in {"postgresql", "postgres"}:
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


PING_AFTER_IDLE = 0.5  # seconds in the pool before a PostgreSQL connection is checked on its way out

# libpq settings unless the URL sets them: give up connecting after 10 s, and notice a server that vanished
# without closing the connection (a dead host, a dropped NAT entry) within about a minute, instead of
# waiting on it forever.
_PG_CONNECT_DEFAULTS = {
    "connect_timeout": 10,
    "keepalives": 1,
    "keepalives_idle": 30,
    "keepalives_interval": 10,
    "keepalives_count": 3,
}


def create_db_engine(url: str, *, pool_size: int = 10, ping_after_idle: float = PING_AFTER_IDLE) -> Engine:
    """An engine that survives the database going away: a PostgreSQL connection that sat in the pool for
    ``ping_after_idle`` seconds is checked before use (``_ping_after_idle``), so the first use after an
    outage reconnects instead of failing. Statement parameters (image bytes, response URLs) are kept out
    of error messages and logs.

    ``pool_size``: the threads that may use the database at once (request threads, workers, the
    heartbeat), on SQLite too: a thread that has to wait for a pooled connection waits behind every
    transaction ahead of it, and an ack that waits is a failed request in Slack's eyes."""
    url = normalise_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        in_memory = parsed.database in (None, "", ":memory:")
        pool_args: dict[str, Any] = {} if in_memory else {"pool_size": pool_size, "max_overflow": 4}
        engine = create_engine(
            url,
            connect_args={"timeout": 30, "check_same_thread": False, "factory": _SQLiteConnection},
            hide_parameters=True,
            **pool_args,
        )
        _tune_sqlite(engine)
        if not in_memory:  # an in-memory database lives only as long as its one connection
            _close_image_carriers(engine)
        return engine
    engine = _postgresql_engine(url, pool_size=pool_size, max_overflow=4, ping_after_idle=ping_after_idle)
    _close_image_carriers(engine)
    return engine


def _postgresql_engine(url: str, *, pool_size: int, max_overflow: int, ping_after_idle: float) -> Engine:
    parsed = make_url(url)
    connect_args = {k: v for k, v in _PG_CONNECT_DEFAULTS.items() if k not in parsed.query}
    engine = create_engine(
        url,
        pool_size=pool_size,
        max_overflow=max_overflow,
        connect_args=connect_args,
        hide_parameters=True,
    )
    _ping_after_idle(engine, ping_after_idle)
    return engine


_RETURNED = "banana_returned"  # connection info: when it last came back to the pool (time.monotonic)


def _ping_after_idle(engine: Engine, seconds: float) -> None:
    """Check a connection before use once it has sat in the pool for ``seconds`` (a restart, a dropped
    network path or the server's idle timeout happen while it waits there), and replace it if it is dead,
    instead of before every use (``pool_pre_ping``), which cost a round trip per transaction: a dozen
    per job, one per ack. So does HikariCP (its ``aliveBypassWindow``, 500 ms). A connection back from a
    transaction a moment ago is alive, save for that very moment: then its next transaction fails as
    the one after would have, and the pool is renewed."""

    @event.listens_for(engine, "connect")
    @event.listens_for(engine, "checkin")
    def _returned(dbapi_connection: Any, record: Any) -> None:
        record.info[_RETURNED] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _check(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        if time.monotonic() - record.info.get(_RETURNED, float("-inf")) < seconds:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as err:
            # The pool drops this connection and every other as old, and connects anew.
            raise InvalidatePoolError(f"a pooled connection was dead: {err}") from err


IMAGE_CONNECTIONS = 4  # PostgreSQL connections kept for transactions that carry images (``image_engine``)


def image_engine(engine: Engine, *, connections: int = IMAGE_CONNECTIONS) -> Engine:
    """The engine for transactions that write or read images (``carried_image``).

    On PostgreSQL a pool of its own, on the same database: ``connections`` of them stay open with their
    image-sized buffers, and more at once get connections that are closed when they end (no limit on how
    many: a job never waits for one). Closing every connection that carried an image (as ``engine`` does,
    for a stray one) cost a reconnect per image, and the server a process start for each: half its CPU in
    the benchmark. On SQLite ``engine`` itself: reopening a file costs microseconds, and one engine keeps
    the writers' turns (``WriteTurns``) in one queue."""
    if engine.dialect.name != "postgresql":
        return engine
    url = engine.url.render_as_string(hide_password=False)
    return _postgresql_engine(url, pool_size=connections, max_overflow=-1, ping_after_idle=PING_AFTER_IDLE)


_CARRIED_IMAGE = "banana_carried_image"  # connection info: close it rather than pool it


def carried_image(session: Session) -> None:
    """Mark the session's connection as one that carried an image. An ``image_engine`` pool keeps it (a
    few such connections, no more); any other pool closes it when it comes back instead of keeping it.

    A connection keeps memory sized to the largest value it carried: libpq its buffers (12 MB after
    reading one 6 MB image, 6 MB after writing one), SQLite its page cache. Pooled by the dozen, with
    4K images, that was a gigabyte."""
    session.connection().info[_CARRIED_IMAGE] = True


def _close_image_carriers(engine: Engine) -> None:
    @event.listens_for(engine, "checkin")
    def _on_checkin(dbapi_connection: Any, record: Any) -> None:
        if record.info.pop(_CARRIED_IMAGE, False) and dbapi_connection is not None:
            record.invalidate()


_READS = "banana_reads"  # execution option: the transaction only reads (see ``reading``)


@contextmanager
def reading(sessions: sessionmaker[Session]) -> Iterator[Session]:
    """A session for a transaction that only reads. On SQLite it begins with a plain (deferred) ``BEGIN``:
    it takes no lock that a writer waits for and waits for no writer (WAL gives it a snapshot), where
    every other transaction begins ``BEGIN IMMEDIATE``. On PostgreSQL it is a ``READ ONLY`` transaction,
    so a write slipped into it fails in the tests instead of upgrading a lock in production."""
    with sessions() as session:
        session.connection(execution_options={_READS: True, "postgresql_readonly": True})
        yield session


@contextmanager
def autocommit(sessions: sessionmaker[Session]) -> Iterator[Session]:
    """PostgreSQL: a session whose every statement commits on its own. For work that is one statement it
    saves the BEGIN and COMMIT round trips (on the ack path, under load, each costs a wait for the CPU)."""
    with sessions() as session:
        session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
        yield session


def is_postgresql(sessions: sessionmaker[Session]) -> bool:
    bind = sessions.kw.get("bind")
    return bind is not None and bind.dialect.name == "postgresql"


def on_postgresql(session: Session) -> bool:
    """The session's database is PostgreSQL (``is_postgresql`` asks a sessionmaker)."""
    return bool(session.get_bind().dialect.name == "postgresql")


def advisory_lock(session: Session, key: str) -> None:
    """Until this transaction ends, every other transaction that asks for ``key`` waits (PostgreSQL: a
    transaction-scoped advisory lock). On SQLite nothing: the write lock taken at BEGIN IMMEDIATE already
    serialises every writer."""
    if not on_postgresql(session):
        return
    driver = session.connection().connection.driver_connection
    assert isinstance(driver, psycopg.Connection)
    # Sent in a pipeline, with the BEGIN that psycopg puts before a transaction's first statement: one round
    # trip, not two (on every claim and every limit check), and without SQLAlchemy's work for a result.
    with driver.pipeline() if _PIPELINES else nullcontext(), driver.cursor() as cursor:
        cursor.execute(_ADVISORY_LOCK, (key,))


_ADVISORY_LOCK = "SELECT pg_advisory_xact_lock(hashtext(%s))"
_PIPELINES = psycopg.Pipeline.is_supported()  # libpq 14 or newer (psycopg[binary] brings one)


def lock_requester(session: Session, team_id: str, user_id: str) -> None:
    """Until this transaction ends, this person's other limit checks wait: nobody gets past their own
    limit by sending many requests at once. Different people are checked side by side (a workspace-wide
    lock made every ack of a busy workspace wait in line: 1.2 s at p99 under load), so a channel or
    workspace limit can be passed by the requests that arrive at the same instant, a few cents each."""
    advisory_lock(session, f"banana-limits:{team_id}:{user_id}")


class WriteTurns:
    """Whose turn it is to write to a SQLite database: listeners first, workers not starved.

    Writers queue here before ``BEGIN IMMEDIATE``. SQLite's own wait (the busy timeout) is a
    sleep-and-retry loop whose sleeps grow to 100 ms, so with dozens of workers wanting the lock a
    listener's write could lose round after round and its ack wait a second. Here the next writer starts
    the moment the last one ends, and a listener's write (``urgent``, the ack path) goes before every
    worker's that is waiting, except that after ``LISTENER_RUN`` listener writes in a row a waiting worker
    goes next: a burst of requests would otherwise hold every claim and every stored answer until it ended
    (a second and more in the benchmark's makespan).

    Within the process the turns are a condition variable; ``path`` (the database file) adds
    ``ProcessTurns``, the same turns across the processes that write to it."""

    LISTENER_RUN = 4

    def __init__(self, *, timeout: float = 30.0, path: str | None = None) -> None:
        lock = threading.Lock()
        self._urgent = threading.Condition(lock)
        self._others = threading.Condition(lock)
        self._busy = False
        self._run = 0  # listener writes in a row
        self._timeout = timeout
        self.waiting = {True: 0, False: 0}  # urgent → how many wait (for tests and curious operators)
        self.across = ProcessTurns(path) if path is not None and _FLOCK else None

    def acquire(self, *, urgent: bool) -> None:
        deadline = time.monotonic() + self._timeout
        condition = self._urgent if urgent else self._others
        with condition:
            self.waiting[urgent] += 1
            try:
                while self._busy or urgent == self._workers_due():
                    if not condition.wait(max(0.0, deadline - time.monotonic())):
                        self._urgent.notify()  # the ones this writer kept waiting may go now
                        raise OperationalError(
                            "BEGIN IMMEDIATE",
                            None,
                            sqlite3.OperationalError(
                                "database is locked (waited for this process's writers)"
                            ),
                        )
            finally:
                self.waiting[urgent] -= 1
            self._busy = True
            self._run = self._run + 1 if urgent else 0
        if self.across is not None:
            try:
                self.across.enter(urgent=urgent)
            except BaseException:
                self._release()
                raise

    def _workers_due(self) -> bool:
        """A worker writes next: one waits, and no listener does or the listeners have had their run."""
        return bool(self.waiting[False]) and (not self.waiting[True] or self._run >= self.LISTENER_RUN)

    @property
    def held(self) -> bool:
        """A writer of this process holds the turn."""
        return self._busy

    def release(self) -> None:
        if self.across is not None:
            with self._urgent:
                self.across.leave(listeners_waiting=bool(self.waiting[True]))
        self._release()

    def _release(self) -> None:
        with self._urgent:
            self._busy = False
            (self._others if self._workers_due() else self._urgent).notify()


_FLOCK = sys.platform != "win32"  # elsewhere each process's turns are its own, as before


class ProcessTurns:
    """The writers' turns across the processes that write to one SQLite file (a ``serve`` and its worker
    process), on two lock files beside it (``flock(2)``): the next process's writer starts the moment the
    last one's COMMIT has ended, where SQLite's busy loop let it sleep up to 100 ms, and a process's
    listeners go before other processes' workers.

    Each process sends one writer at a time (``WriteTurns``) for ``<database>-turn``, always through
    ``<database>-gate`` first, so no writer holds the turn while it waits for the gate. A process whose
    listeners write (the acks) keeps the gate from its first listener's write until none of its listeners
    waits, or ``WriteTurns.LISTENER_RUN`` of them wrote in a row; a worker holds it only until it has the
    turn. So a burst of acks waits for at most the one write of another process under way, and the
    workers write again after a few acks. The kernel lets the locks go with a process that dies; one that
    is stopped (SIGSTOP, a debugger) inside a write holds the others up until it goes on, as it holds
    SQLite's own lock."""

    def __init__(self, database: str) -> None:
        self._database = database
        self._fds: tuple[int, int] | None = None  # opened by the first writer, after SQLite opened the file
        self._gate_held = False  # by this process's listeners
        self._run = 0  # listener writes since they took the gate
        self.waiting = False  # this process's writer waits for another process's (for tests and operators)

    def enter(self, *, urgent: bool) -> None:
        """Wait for this process's writer's turn (called by the one writer ``WriteTurns`` let in)."""
        turn, gate = self._files()
        self.waiting = True
        try:
            if not self._gate_held:
                fcntl.flock(gate, fcntl.LOCK_EX)
            fcntl.flock(turn, fcntl.LOCK_EX)
        finally:
            self.waiting = False
        if urgent:
            self._gate_held = True
            self._run += 1
        elif not self._gate_held:
            fcntl.flock(gate, fcntl.LOCK_UN)

    def leave(self, *, listeners_waiting: bool) -> None:
        turn, gate = self._files()
        fcntl.flock(turn, fcntl.LOCK_UN)
        if self._gate_held and (not listeners_waiting or self._run >= WriteTurns.LISTENER_RUN):
            fcntl.flock(gate, fcntl.LOCK_UN)
            self._gate_held = False
            self._run = 0

    def _files(self) -> tuple[int, int]:
        """The two lock files' descriptors, opened (and created) on first use: a database SQLite can't open
        fails with SQLite's error, and its hint, not with one about these."""
        if self._fds is None:
            turn, gate = (
                os.open(f"{self._database}-{name}", os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
                for name in ("turn", "gate")
            )
            self._fds = turn, gate
            weakref.finalize(self, _close, turn, gate)
        return self._fds


def _close(*fds: int) -> None:
    for fd in fds:
        os.close(fd)


_TURNS: weakref.WeakKeyDictionary[Engine, WriteTurns] = weakref.WeakKeyDictionary()


def write_turns(engine: Engine) -> WriteTurns | None:
    """The engine's ``WriteTurns`` (SQLite), or None."""
    return _TURNS.get(engine)


def listener_sessions(engine: Engine) -> sessionmaker[Session]:
    """Sessions for the listeners (the ack path): on SQLite their writes go before the workers'."""
    return session_factory(engine.execution_options(**{_URGENT: True}))


def _tune_sqlite(engine: Engine) -> None:
    """WAL lets readers run beside the writer. A writing transaction begins with BEGIN IMMEDIATE, taking the
    write lock up front, so two threads never deadlock upgrading a read lock; a reading one (``reading``)
    begins deferred and takes no lock at all. Writers take turns (``WriteTurns``), within the process and
    with the other processes writing to the file. No commit copies the log back into the database file
    (``Checkpoints`` does, in a thread of its own)."""
    on_file = engine.url.database not in (None, "", ":memory:")
    turns = _TURNS.setdefault(engine, WriteTurns(path=engine.url.database if on_file else None))

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        dbapi_connection.turns = turns
        cursor = dbapi_connection.cursor()
        if on_file:
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA wal_autocheckpoint=0")  # see Checkpoints
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        options = conn.get_execution_options()
        if options.get(_READS):
            conn.exec_driver_sql("BEGIN")
            return
        dbapi_connection = conn.connection.dbapi_connection
        turns.acquire(urgent=bool(options.get(_URGENT)))
        dbapi_connection.writing = True
        try:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        except BaseException:
            dbapi_connection.end_write()
            raise


class _SQLiteConnection(sqlite3.Connection):
    """A SQLite connection that gives this process's write turn back once its COMMIT or ROLLBACK has
    ended (or once it is closed, as a broken connection is). SQLAlchemy's commit and rollback events come
    just before them: a writer let in there met the lock still held, and slept in SQLite's busy handler
    (1, 2, 5 … 100 ms) while the ack it served waited."""

    turns: WriteTurns | None = None  # set on connect
    writing = False  # holds the turn: set by the engine's begin listener

    def commit(self) -> None:
        try:
            super().commit()
        finally:
            self.end_write()

    def rollback(self) -> None:
        try:
            super().rollback()
        finally:
            self.end_write()

    def close(self) -> None:
        try:
            super().close()
        finally:
            self.end_write()

    def end_write(self) -> None:
        if self.writing and self.turns is not None:
            self.writing = False
            self.turns.release()


_URGENT = "banana_urgent"  # execution option: a listener's transaction (``listener_sessions``)


class Checkpoints:
    """SQLite: copy the write-ahead log back into the database file every ``every`` seconds, from a thread
    of its own, on a connection of its own.

    SQLite's default does it in whichever commit takes the log past 1000 pages: that commit copies the
    pages and syncs the file before it returns, and the request that made it waits (an ack among the
    slowest one in a hundred). A PASSIVE checkpoint takes no lock that a writer or a reader waits for.
    Once the whole log is copied, the next writer starts it from the beginning, so it stays small."""

    def __init__(self, engine: Engine, *, every: float = 1.0) -> None:
        self._path = engine.url.database if engine.dialect.name == "sqlite" else None
        self._every = every
        self._stopping = threading.Event()

    def start(self) -> None:
        if self._path not in (None, "", ":memory:"):
            threading.Thread(target=self._run, name="banana-checkpoints", daemon=True).start()

    def stop(self) -> None:
        self._stopping.set()

    def _run(self) -> None:
        connection = sqlite3.connect(str(self._path), isolation_level=None, check_same_thread=False)
        try:
            while not self._stopping.wait(self._every):
                try:
                    connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except sqlite3.Error as err:  # the next round tries again
                    log.warning("could not checkpoint the database's log (%s)", err)
        finally:
            connection.close()


def open_database(url: str, *, pool_size: int = 10) -> Engine:
    """An engine on the newest migration; every problem a ``StartupError`` of one line with a hint."""
    try:
        engine = create_db_engine(url, pool_size=pool_size)
        migrate(engine)
    except Exception as err:  # whatever the driver raises: the operator gets a sentence, not a traceback
        raise StartupError(explain_database_error(url, err)) from err
    return engine


_HINTS = (
    ("does not exist", "create the database (for example `createdb`) or fix the name in DATABASE_URL"),
    ("password authentication failed", "check the user name and password in DATABASE_URL"),
    ("role", "check the user name in DATABASE_URL"),
    ("connection refused", "check the host and port in DATABASE_URL and that the server is running"),
    ("could not translate host name", "check the host name in DATABASE_URL"),
    ("timeout expired", "check the host and port in DATABASE_URL and the network in between"),
    ("unable to open database file", "check the path in DATABASE_URL: its folder must exist and be writable"),
    ("readonly database", "check that the process may write the database file and its folder"),
    ("disk i/o error", "check the disk holding the database (space, permissions)"),
)


def explain_database_error(url: str, err: BaseException) -> str:
    """``the database at <url> can't be used: <cause>; <hint>``."""
    shown = shown_url(url)
    if isinstance(err, NoSuchModuleError | ModuleNotFoundError):
        scheme = shown.split("://", 1)[0]
        return (
            f"the database at {shown} can't be used: there is no driver for {scheme}://; use postgresql:// "
            "(psycopg is installed) or sqlite:///, or install the driver for your database"
        )
    if isinstance(err, ArgumentError):
        return f"DATABASE_URL is not a database URL ({err}); for example postgresql://user:pass@host/db"
    orig = getattr(err, "orig", None) or err
    cause = " ".join(str(orig).split()) or type(orig).__name__
    cause = cause.replace(str(make_url(url).password or "\0"), "***") if "://" in url else cause
    hint = next((h for needle, h in _HINTS if needle in cause.lower()), "check DATABASE_URL")
    return f"the database at {shown} can't be used: {cause[:300]}; {hint}"


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def alembic_config(engine: Engine | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if engine is not None:
        cfg.set_main_option(
            "sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%")
        )
    return cfg


def migrate(engine: Engine) -> None:
    """Upgrade to the newest revision; on PostgreSQL under an advisory lock so processes take turns."""
    cfg = alembic_config(engine)
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": _PG_MIGRATION_LOCK})
            conn.commit()
        try:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
            conn.commit()
        finally:
            if engine.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": _PG_MIGRATION_LOCK})
                conn.commit()
    log.debug("database is at the newest migration")


def health_problem(engine: Engine) -> str | None:
    """Why the database can't serve the bot right now, or None. It must take a write, not only answer a
    read: a full disk, a read-only server, or (SQLite) a database file deleted under the running process
    (which would go on writing to the vanished file) all make it unhealthy."""
    database = engine.url.database
    on_file = engine.url.get_backend_name() == "sqlite" and database not in (None, "", ":memory:")
    if on_file and not Path(str(database)).exists():
        return f"the database file {database} is gone"
    try:
        with engine.begin() as conn:
            written = conn.execute(update(HealthCheck).where(HealthCheck.id == 1).values(checked_at=utcnow()))
            if not getattr(written, "rowcount", 0):
                conn.execute(insert(HealthCheck).values(id=1, checked_at=utcnow()))
    except Exception as err:
        orig = getattr(err, "orig", None) or err
        detail = (str(orig).strip().splitlines() or [""])[0][:200]
        return f"{type(orig).__name__}: {detail}"
    return None


def healthy(engine: Engine) -> bool:
    problem = health_problem(engine)
    if problem is not None:
        log.warning("database health check failed: %s", problem)
    return problem is None
