"""Engine, sessions and migrations for SQLite (default) and PostgreSQL (psycopg 3)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"
_PG_MIGRATION_LOCK = 0x62616E616E61  # "banana": one migrator at a time across processes


def normalise_url(url: str) -> str:
    """Send plain ``postgresql://`` URLs to psycopg 3, which is the driver we ship."""
    parsed = make_url(url)
    if parsed.drivername in {"postgresql", "postgres"}:
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


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


def create_db_engine(url: str, *, pool_size: int = 10) -> Engine:
    """An engine that survives the database going away: connections are checked before use
    (``pool_pre_ping``), so the first use after an outage reconnects instead of failing. Statement
    parameters (image bytes, response URLs) are kept out of error messages and logs."""
    url = normalise_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = create_engine(
            url, connect_args={"timeout": 30, "check_same_thread": False}, hide_parameters=True
        )
        _tune_sqlite(engine)
        return engine
    connect_args = {k: v for k, v in _PG_CONNECT_DEFAULTS.items() if k not in parsed.query}
    return create_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        connect_args=connect_args,
        hide_parameters=True,
    )


def _tune_sqlite(engine: Engine) -> None:
    # WAL lets readers run beside the writer; BEGIN IMMEDIATE takes the write lock up front, so two
    # threads never deadlock upgrading a read lock (the busy timeout only helps when waiting to start).
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        if engine.url.database not in (None, "", ":memory:"):
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


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
    log.info("database is at the newest migration")


def healthy(engine: Engine) -> bool:
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return True
    except Exception as err:
        orig = getattr(err, "orig", None) or err
        detail = (str(orig).strip().splitlines() or [""])[0][:200]
        log.warning("database health check failed: %s: %s", type(orig).__name__, detail)
        return False
