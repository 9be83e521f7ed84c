"""A loopback stand-in for Slack: Web API, file hosting, ``response_url`` and deliveries to the app.

``FakeSlack`` runs a threaded HTTP server on 127.0.0.1 that the *real* ``slack_sdk.WebClient`` talks to
(``WebClient(token=..., base_url=fake.api_url)``), a Socket Mode WebSocket server that the real Bolt
``SocketModeHandler`` connects to (started when the app calls ``apps.connections.open``), and a second
"external" host used to prove that the bot never sends its token to non-Slack hosts.

It also plays Slack's side towards the app: ``send_command``/``send_event``/``send_interactive`` and
``post_user_message`` build the payloads Slack sends and deliver them, signed, to ``request_url`` (HTTP mode)
or as envelopes over the WebSocket (Socket Mode), and return what the app answered.

Everything the bot does is recorded (``calls``, ``messages``, ``uploads``, ``downloads``, ``responses`` ...)
and ``wait_for`` blocks on a condition variable until a predicate holds, so tests never sleep. ``fail``
scripts errors; ``hold`` keeps a method's responses back until released, to freeze the app at an exact
point (e.g. to kill it after an upload and before it hears about it).

Slack quirks reproduced on purpose (from Slack's API docs and what its SDKs expect):

* API errors are HTTP 200 with ``{"ok": false, "error": ...}``; rate limits are HTTP 429 with an integer
  ``Retry-After``; ``fail(..., http_status=500)`` answers with an HTML page like Slack's edge.
* ``url_private`` without ``Authorization: Bearer <bot token>`` is a 302 to an HTML login page.
* ``files.completeUploadExternal`` answers with file objects whose ``shares`` are still empty; the share and
  the message ``ts`` show up in ``files.info`` (at once by default, after ``share_delay_s``, or never with
  ``fail(..., never_share=True)``).
* A channel message that mentions the bot arrives twice: ``app_mention`` first, then ``message``.
* Socket Mode ``events_api`` envelopes always carry ``retry_attempt`` (0 on first delivery) and
  ``retry_reason`` ("" on first delivery).

The package is split by concern: ``state`` (the workspace, the records, waiting), ``web_api`` (the Web API
methods), ``files`` (file hosting and the v2 upload), ``delivery`` (signed deliveries to the app and
``response_url``), ``installs`` (OAuth installs in many workspaces, uninstalls), ``socket_mode`` (the
WebSocket), ``script`` (faults and holds), ``records`` (what the tests read) and ``wire`` (Slack's wire
details). ``FakeSlack`` puts them together.

Nothing here logs; tokens are only compared, never printed.
"""

from __future__ import annotations

from bot.sandbox._http import ServerThread
from bot.sandbox.fake_slack.files import Files
from bot.sandbox.fake_slack.installs import Installs
from bot.sandbox.fake_slack.records import ApiCall, Delivery, Download, Response, Upload, live_markup
from bot.sandbox.fake_slack.script import Script
from bot.sandbox.fake_slack.state import Hold
from bot.sandbox.fake_slack.web_api import WebApi
from bot.sandbox.fake_slack.wire import (
    _FILE_PATH,
    _LOGIN_HTML,
    TINY_PNG,
    _make_handler,
    _Reply,
    _Request,
)

__all__ = [
    "TINY_PNG",
    "ApiCall",
    "Delivery",
    "Download",
    "FakeSlack",
    "Hold",
    "Response",
    "Upload",
    "live_markup",
]


class FakeSlack(WebApi, Files, Installs, Script):
    """Slack on loopback. Use as a context manager or call ``start()``/``stop()``."""

    def __init__(self, **identity: str) -> None:
        """``identity``: ``bot_token``, ``app_token``, ``signing_secret``, ``team_id``, ``bot_user_id``,
        ``bot_id``, ``api_app_id``, ``client_id``, ``client_secret`` (sandbox values by default)."""
        super().__init__(**identity)
        self._server = ServerThread(_make_handler(self, self._route), name="fake-slack")
        self._external = ServerThread(_make_handler(self, self._route_external), name="fake-slack-external")
        self._methods = {
            "api.test": lambda p: {"ok": True, "args": dict(p.values)},
            "auth.test": self._auth_test,
            "apps.connections.open": self._apps_connections_open,
            "assistant.threads.setStatus": lambda p: {"ok": True},
            "chat.postMessage": self._chat_post_message,
            "chat.update": self._chat_update,
            "chat.delete": self._chat_delete,
            "chat.postEphemeral": self._chat_post_ephemeral,
            "chat.getPermalink": self._chat_get_permalink,
            "conversations.info": self._conversations_info,
            "conversations.open": self._conversations_open,
            "conversations.history": self._conversations_history,
            "conversations.replies": self._conversations_replies,
            "files.getUploadURLExternal": self._files_get_upload_url,
            "files.completeUploadExternal": self._files_complete_upload,
            "files.info": self._files_info,
            "files.delete": self._files_delete,
            "oauth.v2.access": self._oauth_v2_access,
            "reactions.add": self._reactions_add,
            "reactions.remove": self._reactions_remove,
            "users.info": self._users_info,
            "views.open": self._views_open,
            "views.push": self._views_open,
            "views.update": self._views_update,
            "views.publish": self._views_publish,
        }

    def _route(self, req: _Request) -> _Reply:
        """Slack's main host: the Web API, upload URLs, ``response_url``s, hosted files and web pages."""
        path = req.path
        if path.startswith("/api/"):
            method = path[len("/api/") :]
            with self._cond:
                hold = self._holds.get(method)
            reply = self._handle_api(req, method)
            if hold is not None:
                hold._block()
            return reply
        if path.startswith("/upload/") and req.method == "POST":
            return self._handle_upload(req, path[len("/upload/") :])
        if path.startswith("/response/") and req.method == "POST":
            return self._handle_response_url(req, path[len("/response/") :])
        if _FILE_PATH.fullmatch(path) and req.method in ("GET", "HEAD"):
            return self._handle_download(req)
        if path == "/login":
            return _Reply(200, _LOGIN_HTML, "text/html; charset=utf-8")
        if path.startswith(("/archives/", "/files/")):
            return _Reply(200, b"<!DOCTYPE html><html><body>Slack</body></html>", "text/html; charset=utf-8")
        return _Reply.text("Not Found", 404)
