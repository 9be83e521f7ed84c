"""End-to-end fixtures: fake Slack + fake Gemini on loopback, and the real app as a child process."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url

from bot.db import create_db_engine, session_factory
from bot.models import Conversation, Job
from bot.sandbox.fake_gemini import FakeGemini
from bot.sandbox.fake_slack import FakeSlack, Upload
from bot.sandbox.process import AppProcess, free_port
from bot.sandbox.scenario import sandbox_env
from tests.conftest import BACKENDS, fresh_database_url

CHANNEL = "C0GENERAL"
# On PYTHONPATH with CLOCK_OFFSET_SECONDS: the app's processes see their clock moved (moved_clock/).
MOVED_CLOCK = str(Path(__file__).with_name("moved_clock"))
T = TypeVar("T")


def rows(database_url: str, table: type[T]) -> list[T]:
    """Every row of ``table`` (Job or Conversation), read straight from the database, by id."""
    engine = create_db_engine(database_url)
    try:
        with session_factory(engine)() as session:
            return list(session.scalars(select(table).order_by(table.id)))  # type: ignore[attr-defined]
    finally:
        engine.dispose()


def sql(database_url: str, statement: str) -> list[tuple[Any, ...]]:
    """The rows of one SQL statement, read straight from the app's database (tables without a model of
    ours: the installations, the workspace keys)."""
    engine = create_db_engine(database_url)
    try:
        with engine.connect() as conn:
            return [tuple(row) for row in conn.execute(text(statement))]
    finally:
        engine.dispose()


def refuse_writes(database_url: str, *, refuse: bool = True) -> None:
    """PostgreSQL answers reads but refuses writes (as a full disk or a read-only failover would), or
    takes them again. The app's connections are cut, so they pick the setting up when they reconnect."""
    url = make_url(database_url)
    admin = create_engine(url.set(drivername="postgresql+psycopg"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            setting = "on" if refuse else "off"
            conn.execute(text("SET default_transaction_read_only = off"))  # this session may still write
            conn.execute(
                text(f'ALTER DATABASE "{url.database}" SET default_transaction_read_only = {setting}')
            )
            conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = :db AND pid <> pg_backend_pid()"
                ),
                {"db": url.database},
            )
    finally:
        admin.dispose()


def job_rows(database_url: str) -> list[Job]:
    return rows(database_url, Job)


def conversation_rows(database_url: str) -> list[Conversation]:
    return rows(database_url, Conversation)


@dataclass
class Stack:
    slack: FakeSlack
    gemini: FakeGemini
    env: dict[str, str]
    tmp: Path
    apps: list[AppProcess] = field(default_factory=list)

    @property
    def app(self) -> AppProcess:
        return self.apps[-1]

    def start_app(
        self, *, command: str = "serve", wait: bool = True, wrapper: Sequence[str] = (), **overrides: str
    ) -> AppProcess:
        env = {**self.env, **overrides}
        if command == "serve" and "PORT" not in overrides:
            env["PORT"] = str(free_port())
        log_path = self.tmp / f"app-{len(self.apps)}.log"
        app = AppProcess(env, command=command, log_path=log_path, wrapper=wrapper).start()
        self.apps.append(app)
        if command == "serve":
            self.slack.request_url = f"{app.url}/slack/events"
            if wait:
                app.wait_healthy()
        return app

    def logs(self) -> str:
        return "\n".join(app.logs() for app in self.apps)

    def root_message(self, channel: str = CHANNEL) -> dict[str, object]:
        """The bot's newest top-level message in ``channel``."""
        return self.slack.wait_for(
            lambda: next(
                (
                    m
                    for m in reversed(self.slack.messages)
                    if m.get("bot_id") and m.get("channel") == channel and not m.get("thread_ts")
                ),
                None,
            )
        )

    def uploads(self, n: int, timeout: float = 30.0) -> list[Upload]:
        return self.slack.wait_for_uploads(n, timeout=timeout)

    def jobs(self) -> list[Job]:
        """Every job row, read straight from the app's database, by id."""
        return job_rows(self.env["DATABASE_URL"])

    def settled(self, timeout: float = 30.0) -> None:
        """Until every job has ended (done or failed): a job's last post (its result card) comes after its
        image, so a case that waited for the image alone could see it land in the next case."""
        self.slack.wait_for(lambda: all(j.state in ("done", "failed") for j in self.jobs()), timeout=timeout)

    def wait_for_jobs(self, done: Callable[[list[Job]], bool], timeout: float = 30.0) -> list[Job]:
        """The job rows, once ``done(rows)`` holds for them (re-read whenever the stand-ins record
        something, and every 50 ms)."""
        return self.slack.wait_for(lambda: (rows := self.jobs()) and done(rows) and rows, timeout=timeout)


def make_stack(tmp_path: Path, backend: str, **overrides: str) -> Iterator[Stack]:
    with FakeSlack() as slack, FakeGemini() as gemini:
        for url in fresh_database_url(backend, tmp_path):
            env = sandbox_env(slack, gemini, database_url=url, port=0)
            env.update({"BANANA_WORKERS": "3", **overrides})
            stack = Stack(slack=slack, gemini=gemini, env=env, tmp=tmp_path)
            try:
                yield stack
            finally:
                for app in stack.apps:
                    app.terminate(timeout=30)


def module_stack(tmp_path_factory: pytest.TempPathFactory, name: str) -> Iterator[Stack]:
    """A running app on SQLite shared by a module's independent cases (each app start costs about 1 s)."""
    stacks = make_stack(tmp_path_factory.mktemp(name), "sqlite")
    stack = next(stacks)
    stack.start_app()
    yield stack
    next(stacks, None)


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    """The app running on SQLite."""
    stack_iter = make_stack(tmp_path, "sqlite")
    stack = next(stack_iter)
    stack.start_app()
    yield stack
    next(stack_iter, None)


@pytest.fixture(params=BACKENDS)
def any_db_stack(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stack]:
    """A stack whose app is not started yet, on SQLite and (when configured) PostgreSQL."""
    yield from make_stack(tmp_path, request.param)


@pytest.fixture
def pg_stack(tmp_path: Path) -> Iterator[Stack]:
    """A stack on a fresh PostgreSQL database whose app is not started yet; skipped without PostgreSQL."""
    if "postgresql" not in BACKENDS:
        pytest.skip("needs PostgreSQL: set TEST_DATABASE_URL")
    yield from make_stack(tmp_path, "postgresql")


class TcpProxy:
    """A loopback TCP proxy (127.0.0.1:``port`` → ``target``) that can be cut and restored, to take a
    server away from the app without touching the server itself.

    ``cut()`` closes the listener and every open connection (both sides), so the app sees its connections
    drop and new ones refused; ``restore()`` listens again on the same port."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self._stop = threading.Event()
        self._acceptor: threading.Thread | None = None
        self.connections = 0  # accepted so far

    def __enter__(self) -> TcpProxy:
        self.restore()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.cut()

    @property
    def up(self) -> bool:
        return self._listener is not None

    def restore(self) -> None:
        assert self._listener is None, "the proxy is already up"
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        listener.settimeout(0.05)  # so the accept loop notices cut() promptly
        self.port = listener.getsockname()[1]
        self._stop = threading.Event()
        self._listener = listener
        self._acceptor = threading.Thread(
            target=self._accept, args=(listener, self._stop), name="tcp-proxy", daemon=True
        )
        self._acceptor.start()

    def cut(self) -> None:
        listener, self._listener = self._listener, None
        if listener is None:
            return
        self._stop.set()
        if self._acceptor is not None:
            self._acceptor.join(timeout=5)
        listener.close()
        with self._lock:
            sockets = list(self._sockets)
            self._sockets.clear()
        for sock in sockets:
            _close_hard(sock)

    def _accept(self, listener: socket.socket, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                _close_hard(client)
                continue
            with self._lock:
                if stop.is_set():
                    _close_hard(client)
                    _close_hard(upstream)
                    return
                self._sockets.update((client, upstream))
                self.connections += 1
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(
                    target=self._pump, args=(src, dst), name="tcp-proxy-pump", daemon=True
                ).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            with self._lock:
                self._sockets.discard(src)
                self._sockets.discard(dst)
            _close_hard(src)
            _close_hard(dst)


def _close_hard(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()
