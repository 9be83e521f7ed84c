"""Stands in for Slack's side of installing the app in many workspaces: the OAuth v2 flow
(``oauth.v2.access``), a bot token per workspace, and uninstalling (``tokens_revoked``, ``app_uninstalled``).

The workspace the fake starts with (``team_id``, ``bot_token``) is installed already, as a single-workspace
app is. ``approve_install(team)`` is a person clicking Allow on Slack's authorize page: it returns the
``code`` Slack would send to the app's redirect URL, which ``oauth.v2.access`` exchanges (once, with the
app's client id and secret) for a new bot token of that workspace. Every Web API call is answered as the
workspace its token belongs to; a revoked token gets ``token_revoked``.
"""

from __future__ import annotations

import base64
import secrets

from bot.sandbox.fake_slack.delivery import Deliveries
from bot.sandbox.fake_slack.records import JSON, Delivery
from bot.sandbox.fake_slack.wire import _ApiError, _Params

# What the stand-in says it granted (Slack grants what the authorize link asked for).
SCOPES = "commands,chat:write,files:write,files:read,app_mentions:read,users:read,im:write,channels:history"


class Installs(Deliveries):
    """The part of ``FakeSlack`` that installs the app in workspaces and takes it out again."""

    def approve_install(self, team_id: str, *, user: str = "UADMIN", name: str | None = None) -> str:
        """A person of ``team_id`` allows the install: the one-use code Slack redirects them with."""
        code = f"{team_id}.{secrets.token_hex(8)}"
        with self._cond:
            self._codes[code] = (team_id, user)
            self._team_names.setdefault(team_id, name or team_id.title())
        return code

    def token_for(self, team_id: str) -> str | None:
        """The live bot token the app holds for ``team_id`` (the newest, if it was installed again)."""
        with self._cond:
            live = [token for token, team in self._tokens.items() if team == team_id]
        return live[-1] if live else None

    def uninstall(self, team_id: str) -> list[Delivery]:
        """An admin removes the app from ``team_id``: its tokens stop working, and the app hears
        ``tokens_revoked`` and then ``app_uninstalled``, as Slack sends them."""
        with self._cond:
            revoked = [token for token, team in self._tokens.items() if team == team_id]
            for token in revoked:
                del self._tokens[token]
                self._revoked.add(token)
            self._changed()
        tokens = {"oauth": [], "bot": [self.bot_user_id]}
        return [
            self.send_event({"type": "tokens_revoked", "tokens": tokens}, team_id=team_id),
            self.send_event({"type": "app_uninstalled"}, team_id=team_id),
        ]

    def _oauth_v2_access(self, p: _Params) -> JSON:
        client_id, client_secret = p.string("client_id"), p.string("client_secret")
        if p.basic_auth is not None:
            client_id, client_secret = p.basic_auth
        if client_id != self.client_id:
            raise _ApiError("invalid_client_id")
        if client_secret != self.client_secret:
            raise _ApiError("bad_client_secret")
        with self._cond:
            grant = self._codes.pop(p.need("code", "invalid_code"), None)
        if grant is None:
            raise _ApiError("invalid_code")  # unknown, or used already
        team_id, user = grant
        token = f"xoxb-{team_id.lower()}-{secrets.token_hex(12)}"
        with self._cond:
            self._tokens[token] = team_id
        return {
            "ok": True,
            "app_id": self.api_app_id,
            "authed_user": {"id": user},
            "scope": SCOPES,
            "token_type": "bot",
            "access_token": token,
            "bot_user_id": self.bot_user_id,
            "team": {"id": team_id, "name": self._team_names.get(team_id, team_id)},
            "enterprise": None,
            "is_enterprise_install": False,
        }


def basic_credentials(header: str) -> tuple[str, str] | None:
    """``Authorization: Basic base64(id:secret)`` (how slack_sdk sends the client's credentials)."""
    if not header.startswith("Basic "):
        return None
    try:
        decoded = base64.b64decode(header[len("Basic ") :]).decode()
    except (ValueError, UnicodeDecodeError):
        return None
    client_id, sep, secret = decoded.partition(":")
    return (client_id, secret) if sep else None
