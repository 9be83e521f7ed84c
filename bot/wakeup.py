"""Waking idle workers in every process the moment a job is queued: PostgreSQL ``LISTEN``/``NOTIFY``.

A transaction that queues a job (or ends one, which may let the next turn of its conversation run) also
notifies the ``banana_jobs`` channel; PostgreSQL delivers the notification when it commits. Each worker
process holds one connection that listens (``Listener``) and wakes an idle worker for each notification.
The pool still polls, slowly, for what no notification announces (a retry whose delay came due) and while
the listening connection is down. SQLite has no notifications: there the pool polls often, and a job
queued in the same process wakes its workers directly.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import psycopg
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session
from sqlalchemy.sql import ColumnElement

from bot.db import on_postgresql

log = logging.getLogger(__name__)

CHANNEL = "banana_jobs"
RECONNECT_SECONDS = 5.0


def announce(session: Session) -> None:
    """Once this transaction commits, every listening process wakes a worker (PostgreSQL only)."""
    if on_postgresql(session):
        session.execute(select(func.pg_notify(CHANNEL, "")))


def notified() -> ColumnElement[Any]:
    """``pg_notify`` as a column, for a statement that queues a job in one round trip (``RETURNING``)."""
    return func.pg_notify(CHANNEL, "")


class Listener:
    """A thread holding a connection that ``LISTEN``s on ``CHANNEL``: ``wake()`` for each notification;
    ``up(True/False)`` as the connection comes and goes (the pool polls faster while it is down)."""

    def __init__(
        self,
        engine: Engine,
        *,
        wake: Callable[[], None],
        up: Callable[[bool], None],
        stopping: threading.Event,
    ) -> None:
        self._conninfo = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        self._wake = wake
        self._up = up
        self._stopping = stopping

    def start(self) -> None:
        threading.Thread(target=self._run, name="banana-listen", daemon=True).start()

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                with psycopg.connect(self._conninfo, autocommit=True, connect_timeout=10) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self._up(True)
                    log.info("listening for new jobs (PostgreSQL LISTEN %s)", CHANNEL)
                    while not self._stopping.is_set():
                        for _ in conn.notifies(timeout=1.0):
                            self._wake()
            except psycopg.Error as err:
                log.warning(
                    "listening for new jobs failed (%s); polling meanwhile, again in %.0f s",
                    type(err).__name__,
                    RECONNECT_SECONDS,
                )
            finally:
                self._up(False)
            self._stopping.wait(RECONNECT_SECONDS)
