"""The app installed in many workspaces (OAuth): slack_sdk's SQLAlchemy installation and OAuth state
stores, on the bot's own database, whose tables our migrations create (``bot.models``: 0010). Every token
(bot, user, refresh) is encrypted at rest with ``BANANA_ENCRYPTION_KEY`` (a Fernet key: AES-128 in CBC mode
with an HMAC, from the ``cryptography`` library), so a copy of the database file holds no usable token.
"""

from __future__ import annotations

import hashlib
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from slack_sdk.oauth.installation_store.sqlalchemy import SQLAlchemyInstallationStore
from slack_sdk.oauth.state_store.sqlalchemy import SQLAlchemyOAuthStateStore
from sqlalchemy import Dialect, Engine, Text
from sqlalchemy.types import TypeDecorator

from bot.errors import StartupError

TOKEN_COLUMNS = ("bot_token", "bot_refresh_token", "user_token", "user_refresh_token")
STATE_SECONDS = 600  # an install link is good for ten minutes

_KEYS: dict[str, Fernet] = {}  # by a digest of the key: a column type carries the digest, never the key


def check_key(key: str) -> str | None:
    """Why ``key`` can't be ``BANANA_ENCRYPTION_KEY``, or None."""
    try:
        Fernet(key.encode())
    except (ValueError, TypeError):
        return (
            "BANANA_ENCRYPTION_KEY is not a Fernet key (32 url-safe base64-encoded bytes); make one with "
            '`python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"`'
        )
    return None


class Sealed(TypeDecorator[str]):
    """A string column stored encrypted: written sealed, read back in the clear."""

    impl = Text
    cache_ok = True

    def __init__(self, key_digest: str) -> None:
        super().__init__()
        self.key_digest = key_digest

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        return None if value is None else _KEYS[self.key_digest].encrypt(value.encode()).decode()

    def process_result_value(self, value: str | None, dialect: Dialect) -> str | None:
        if value is None:
            return None
        try:
            return _KEYS[self.key_digest].decrypt(value.encode()).decode()
        except InvalidToken as err:
            raise StartupError(
                "a token in the database can't be decrypted with BANANA_ENCRYPTION_KEY: the key changed "
                "since it was stored; set the old key back (or have the workspace install the app again)"
            ) from err


def _sealed(key: str) -> Sealed:
    problem = check_key(key)
    if problem:
        raise StartupError(problem)
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    _KEYS[digest] = Fernet(key.encode())
    return Sealed(digest)


class EncryptedInstallationStore(SQLAlchemyInstallationStore):
    """slack_sdk's store, with its token columns sealed (``Sealed``). Its tables are the migrations'."""

    def __init__(self, *, client_id: str, engine: Engine, encryption_key: str) -> None:
        super().__init__(client_id=client_id, engine=engine)
        sealed = _sealed(encryption_key)
        for table in (self.installations, self.bots):
            for name in TOKEN_COLUMNS:
                if name in table.c:
                    table.c[name].type = sealed  # before any statement is built with it

    def create_tables(self) -> Any:
        raise NotImplementedError("the migrations create these tables (python app.py migrate)")


def state_store(engine: Engine) -> SQLAlchemyOAuthStateStore:
    """The OAuth ``state`` values of install links in progress (one use each, ten minutes)."""
    return SQLAlchemyOAuthStateStore(expiration_seconds=STATE_SECONDS, engine=engine)
