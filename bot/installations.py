"""The app installed in many workspaces (OAuth): slack_sdk's SQLAlchemy installation and OAuth state
stores, on the bot's own database, whose tables our migrations create (``bot.models``: 0010). Every token
(bot, user, refresh) is encrypted at rest with ``BANANA_ENCRYPTION_KEY`` (a Fernet key: AES-128 in CBC mode
with an HMAC, from the ``cryptography`` library), so a copy of the database file holds no usable token.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from cryptography.fernet import Fernet, InvalidToken
from slack_sdk.oauth.installation_store import InstallationStore
from slack_sdk.oauth.installation_store.sqlalchemy import SQLAlchemyInstallationStore
from slack_sdk.oauth.state_store.sqlalchemy import SQLAlchemyOAuthStateStore
from sqlalchemy import Dialect, Engine, Text
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.types import TypeDecorator

from bot import queue
from bot.errors import SlackAuthError, StartupError

if TYPE_CHECKING:
    from bot.slack import SlackGateway

log = logging.getLogger(__name__)

TOKEN_COLUMNS = ("bot_token", "bot_refresh_token", "user_token", "user_refresh_token")
# What an install asks for: manifest.yml's bot scopes (a test keeps the two the same).
BOT_SCOPES = (
    "commands",
    "chat:write",
    "files:write",
    "files:read",
    "app_mentions:read",
    "users:read",
    "im:write",
    "channels:history",
    "groups:history",
    "im:history",
    "mpim:history",
)
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


class Workspaces:
    """The Slack gateway of each workspace the app serves, and what happens when one removes the app.

    One workspace (``token``: ``SLACK_BOT_TOKEN``): one gateway for every job. Many (``store``: OAuth
    mode): each workspace's bot token is read from the installation store when a job or a button needs it
    (one query; the token is sealed at rest), and its gateway is made once per token and kept, with its
    cache of people's names. A workspace that is not installed (or removed the app) raises
    ``SlackAuthError("not_installed")``: nothing can be posted there.
    """

    def __init__(
        self,
        *,
        sessions: sessionmaker[Session],
        make: Callable[[str], SlackGateway],
        token: str | None = None,
        store: InstallationStore | None = None,
    ) -> None:
        self._sessions = sessions
        self._make = make
        self._store = store
        self._single = make(token) if token else None
        self._gateways: dict[str, SlackGateway] = {}
        self._lock = threading.Lock()

    def __call__(self, team_id: str) -> SlackGateway:
        if self._single is not None:
            return self._single
        bot = self._store.find_bot(enterprise_id=None, team_id=team_id) if self._store else None
        if bot is None or not bot.bot_token:
            raise SlackAuthError("not_installed")
        with self._lock:
            gateway = self._gateways.get(team_id)
            if gateway is None or gateway.client.token != bot.bot_token:
                gateway = self._gateways[team_id] = self._make(bot.bot_token)
            return gateway

    def removed(self, team_id: str) -> int:
        """Slack says the workspace removed the app (``app_uninstalled``) or revoked its bot token
        (``tokens_revoked``): its tokens are deleted (the installation's rows too, which hold the bot token
        as well), and its queued jobs end (failed, ``app_uninstalled``) since nothing can be posted there
        any more. How many jobs ended."""
        if self._store is not None:
            self._store.delete_all(enterprise_id=None, team_id=team_id)
        with self._lock:
            self._gateways.pop(team_id, None)
        with self._sessions.begin() as session:
            ended = queue.cancel_team(session, team_id, code="app_uninstalled")
        log.info("workspace %s removed the app: its tokens are deleted, %d queued jobs ended", team_id, ended)
        return ended
