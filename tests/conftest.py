"""Shared fixtures: real databases (SQLite always, PostgreSQL when TEST_DATABASE_URL is set)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from bot.db import create_db_engine, image_engine, migrate, session_factory
from bot.sandbox.databases import private_database
from bot.sandbox.fake_gemini import FakeGemini
from bot.sandbox.fake_slack import FakeSlack
from tests.bot.stack import InProcess

PG_URL = os.environ.get("TEST_DATABASE_URL")
BACKENDS = ["sqlite"] + (["postgresql"] if PG_URL else [])


def fresh_database_url(backend: str, tmp_path: Path) -> Iterator[str]:
    """A brand-new, empty database of that backend; dropped afterwards."""
    server = PG_URL if backend == "postgresql" else None
    with private_database(server, sqlite_file=tmp_path / "banana.db", prefix="banana_test") as url:
        yield url


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    yield from fresh_database_url(request.param, tmp_path)


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    eng = create_db_engine(database_url)
    migrate(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    return session_factory(engine)


@pytest.fixture
def stand_ins(engine: Engine, sessions: sessionmaker[Session]) -> Iterator[InProcess]:
    images = image_engine(engine)
    try:
        with FakeSlack() as slack, FakeGemini() as gemini, httpx.Client(timeout=10) as http:
            yield InProcess(
                sessions=sessions,
                slack=slack,
                gemini=gemini,
                http=http,
                image_sessions=session_factory(images),
            )
    finally:
        if images is not engine:
            images.dispose()
