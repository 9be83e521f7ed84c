"""A workspace's own Gemini API key (OAuth mode): an admin sets it with ``/banana key``, it is tried with one
free call (the model list) before it is saved, stored sealed with ``BANANA_ENCRYPTION_KEY`` (Fernet), never
shown again, and used for that workspace's images; without one, the operator's ``GEMINI_API_KEY`` pays.
The ledger records whose key paid for each call (``charge.key_owner``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from bot import messages
from bot.db import reading
from bot.models import WorkspaceKey, utcnow

KeyRequest = Literal["set", "remove"]
_WORDS: dict[str, KeyRequest] = {"key": "set", "key remove": "remove"}


def key_request(text: str) -> KeyRequest | None:
    """``/banana key`` or ``/banana key remove`` (the whole text: "key lime pie" is a prompt)."""
    return _WORDS.get(" ".join(text.lower().split()))


@dataclass(frozen=True)
class KeyInfo:
    """What may be said about a saved key: who saved it and when, never the key."""

    set_by: str
    set_at: datetime


class WorkspaceKeys:
    """``encryption_key``: ``BANANA_ENCRYPTION_KEY``; None (one workspace) turns the feature off.
    ``check``: why Gemini refuses a key, or None (``GeminiClient.check_key``)."""

    def __init__(
        self,
        *,
        sessions: sessionmaker[Session],
        encryption_key: str | None,
        check: Callable[[str], str | None] = lambda _key: None,
    ) -> None:
        self._sessions = sessions
        self._fernet = Fernet(encryption_key.encode()) if encryption_key else None
        self._check = check

    @property
    def enabled(self) -> bool:
        return self._fernet is not None

    def get(self, team_id: str) -> str | None:
        """The workspace's own key, or None (the operator's pays). A key sealed with another
        ``BANANA_ENCRYPTION_KEY`` can't be opened: the operator's key is used, as if none were set."""
        if self._fernet is None:
            return None
        with reading(self._sessions) as session:
            sealed = session.scalar(select(WorkspaceKey.gemini_key).where(WorkspaceKey.team_id == team_id))
        if sealed is None:
            return None
        try:
            return self._fernet.decrypt(sealed.encode()).decode()
        except InvalidToken:
            return None

    def info(self, team_id: str) -> KeyInfo | None:
        with reading(self._sessions) as session:
            row = session.get(WorkspaceKey, team_id)
            return None if row is None else KeyInfo(row.set_by, row.set_at)

    def status(self, team_id: str) -> str:
        """What ``/banana key`` says is in use (never the key)."""
        info = self.info(team_id)
        return messages.key_status(info.set_by if info else None, info.set_at if info else None)

    def offer(self, team_id: str, key: str, *, set_by: str) -> str | None:
        """Try ``key`` with one free call to Gemini and save it if Gemini takes it; why not, or None."""
        key = key.strip()
        if not key:
            return messages.KEY_EMPTY
        problem = self._check(key)
        if problem is None:
            self.save(team_id, key, set_by=set_by)
        return problem

    def save(self, team_id: str, key: str, *, set_by: str) -> None:
        assert self._fernet is not None, "only in OAuth mode"
        sealed = self._fernet.encrypt(key.encode()).decode()
        with self._sessions.begin() as session:
            row = session.get(WorkspaceKey, team_id, with_for_update=True)
            if row is None:
                session.add(WorkspaceKey(team_id=team_id, gemini_key=sealed, set_by=set_by, set_at=utcnow()))
            else:
                row.gemini_key, row.set_by, row.set_at = sealed, set_by, utcnow()

    def remove(self, team_id: str) -> bool:
        """Back to the operator's key; False if there was no key of the workspace's own."""
        with self._sessions.begin() as session:
            result = session.execute(delete(WorkspaceKey).where(WorkspaceKey.team_id == team_id))
            return bool(getattr(result, "rowcount", 0))
