"""A database of its own for a test or a benchmark run."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from bot.db import normalise_url


@contextmanager
def private_database(url: str | None, *, sqlite_file: Path, prefix: str) -> Iterator[str]:
    """The URL of a database to use: ``sqlite_file`` when ``url`` is empty, ``url`` itself when it is a
    SQLite file, else a new database (``<prefix>_…``) on the PostgreSQL server at ``url``, dropped
    afterwards, never ``url``'s own (whose rows a run would delete). On PostgreSQL the role needs the
    CREATEDB privilege."""
    if not url or make_url(url).get_backend_name() == "sqlite":
        yield url or f"sqlite:///{sqlite_file}"
        return
    server = create_engine(make_url(normalise_url(url)), isolation_level="AUTOCOMMIT")
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with server.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield server.url.set(database=name).render_as_string(hide_password=False)
    finally:
        with server.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        server.dispose()
