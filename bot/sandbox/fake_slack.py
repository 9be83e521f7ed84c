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

Slack quirks reproduced on purpose (see the reference fact sheet):

* API errors are HTTP 200 with ``{"ok": false, "error": ...}``; rate limits are HTTP 429 with an integer
  ``Retry-After``; ``fail(..., http_status=500)`` answers with an HTML page like Slack's edge.
* ``url_private`` without ``Authorization: Bearer <bot token>`` is a 302 to an HTML login page.
* ``files.completeUploadExternal`` answers with file objects whose ``shares`` are still empty; the share and
  the message ``ts`` show up in ``files.info`` (at once by default, after ``share_delay_s``, or never with
  ``fail(..., never_share=True)``).
* A channel message that mentions the bot arrives twice: ``app_mention`` first, then ``message``.
* Socket Mode ``events_api`` envelopes always carry ``retry_attempt`` (0 on first delivery) and
  ``retry_reason`` ("" on first delivery).

Nothing here logs; tokens are only compared, never printed.
"""

from __future__ import annotations

import email.parser
import email.policy
import hashlib
import io
import json
import math
import re
import threading
import time
import traceback
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import parse_qs, quote, urlencode, urlsplit

import httpx
from slack_sdk.signature import SignatureVerifier

from bot.sandbox._http import QuietHandler, ServerThread

if TYPE_CHECKING:
    from websockets.sync.server import Server, ServerConnection

__all__ = [
    "TINY_PNG",
    "ApiCall",
    "Delivery",
    "Download",
    "FakeSlack",
    "Hold",
    "Response",
    "Upload",
]

T = TypeVar("T")

JSON = dict[str, Any]

#: A valid 1x1 PNG, served by the external host for any path it does not know.
TINY_PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360f8cfc0f01f0005000201a5b5d2b9"
    "0000000049454e44ae426082"
)

_LOGIN_HTML = (
    b'<!DOCTYPE html><html lang="en-US"><head><meta charset="utf-8"><title>Slack</title></head>'
    b'<body><h1>Sign in to Sandbox</h1><form action="/signin" method="post">'
    b'<input type="email" name="email"><input type="password" name="password">'
    b'<button type="submit">Sign In</button></form></body></html>'
)

_EDGE_ERROR_HTML = (
    b"<html><head><title>500 Internal Server Error</title></head><body><center>"
    b"<h1>500 Internal Server Error</h1></center><hr><center>slack-edge</center></body></html>"
)

_MIME_TO_FILETYPE = {
    "image/png": "png",
    "image/jpeg": "jpg",
    "image/gif": "gif",
    "image/webp": "webp",
    "image/heic": "heic",
    "image/heif": "heif",
    "image/bmp": "bmp",
    "image/tiff": "tiff",
    "image/svg+xml": "svg",
    "application/pdf": "pdf",
    "text/plain": "text",
}
_EXT_TO_MIME = {
    "png": "image/png",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "gif": "image/gif",
    "webp": "image/webp",
    "heic": "image/heic",
    "txt": "text/plain",
    "pdf": "application/pdf",
}
_CHANNEL_ID = re.compile(r"[CGD][A-Z0-9]{2,}")
_USER_ID = re.compile(r"[UWB][A-Z0-9]{2,}")
_MENTION = re.compile(r"<@([A-Z0-9]+)(?:\|[^>]*)?>")
_FILE_PATH = re.compile(r"/files-pri/([A-Z0-9]+)-([A-Z0-9]+)/(?:download/)?[^/]+")
_SLACKBOT_UA = "Slackbot 1.0 (+https://api.slack.com/robots)"
_RESPONSE_URL_USES = 5
_RESPONSE_URL_TTL_S = 30 * 60


# ----------------------------------------------------------------------------------------------------
# Records


@dataclass(frozen=True)
class ApiCall:
    """One Web API call as received. ``params`` holds the values as sent (form values are strings, so JSON
    arguments such as ``files`` or ``blocks`` are JSON strings; use ``decoded``), without the token."""

    method: str
    params: dict[str, Any]
    token: str | None = field(repr=False)
    at: float

    def decoded(self, name: str) -> Any:
        """The parameter ``name`` with JSON strings decoded (``None`` when absent)."""
        return _maybe_json(self.params.get(name))


@dataclass(frozen=True)
class Upload:
    """A file the bot completed with ``files.completeUploadExternal``."""

    file_id: str
    filename: str
    title: str
    data: bytes
    channel: str | None
    thread_ts: str | None
    initial_comment: str | None
    shared: bool
    channels: tuple[str, ...] = ()
    message_ts: str | None = None
    alt_txt: str | None = None


@dataclass(frozen=True)
class Download:
    """A GET on a hosted file (``fake.downloads``) or on the external host (``fake.external_requests``).

    ``had_token``: an ``Authorization`` header was sent; ``authorized``: it was the right bot token."""

    path: str
    had_token: bool
    authorized: bool = False
    status: int = 200


@dataclass(frozen=True)
class Response:
    """A body POSTed to a ``response_url`` (only accepted uses are recorded)."""

    url_id: str
    body: dict[str, Any]


@dataclass(frozen=True)
class Delivery:
    """What the app answered to one request from Slack.

    Over HTTP: the HTTP status and body (status 0 and a Slack retry reason such as ``http_timeout`` or
    ``connection_failed`` when no answer came). Over Socket Mode: 200 and the JSON of the ack's ``payload``
    ("" when the ack had none) when acked in time, 504 otherwise."""

    status: int
    body: str
    headers: dict[str, str]
    elapsed_s: float
    event: dict[str, Any] | None = None
    event_id: str | None = None
    kind: str = ""
    via: str = ""

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


@dataclass
class _Fault:
    error: str
    http_status: int
    retry_after: float | None
    never_share: bool


@dataclass
class _Channel:
    member: bool = True
    archived: bool = False
    name: str | None = None
    user: str | None = None  # the other party of an im


@dataclass
class _Share:
    channel: str
    ts: str
    thread_ts: str | None
    visible_at: float


@dataclass
class _StoredFile:
    obj: JSON
    data: bytes
    external: bool = False
    shares: list[_Share] = field(default_factory=list)


@dataclass
class _PendingUpload:
    file_id: str
    filename: str
    length: int
    alt_txt: str | None
    data: bytes | None = None


@dataclass
class _ResponseUrl:
    channel_id: str | None
    user_id: str | None
    created: float
    uses: int = 0


class Hold:
    """Responses of one Web API method held back: see ``FakeSlack.hold``.

    The call is recorded and carried out (its effects are visible) as it arrives; only the HTTP response
    waits until ``release()`` (or the end of the ``with`` block, or ``FakeSlack.stop``)."""

    def __init__(self, owner: FakeSlack, method: str) -> None:
        self._owner = owner
        self.method = method
        self._released = threading.Event()
        self._held = 0

    @property
    def held(self) -> int:
        """How many calls have arrived (and been held) so far."""
        with self._owner._cond:
            return self._held

    @property
    def released(self) -> bool:
        return self._released.is_set()

    def wait_for_call(self, n: int = 1, timeout: float = 15.0) -> None:
        """Block until at least ``n`` calls are being held (their effects have happened)."""
        self._owner.wait_for(lambda: self.held >= n, timeout)

    def release(self) -> None:
        """Let the held responses (and every later call of the method) through."""
        with self._owner._cond:
            if self._owner._holds.get(self.method) is self:
                del self._owner._holds[self.method]
            self._owner._changed()
        self._released.set()

    def _block(self) -> None:
        with self._owner._cond:
            self._held += 1
            self._owner._changed()
        self._released.wait()

    def __enter__(self) -> Hold:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.release()


@dataclass
class _AckWaiter:
    event: threading.Event = field(default_factory=threading.Event)
    payload: Any = None
    has_payload: bool = False


@dataclass(frozen=True)
class _Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: Mapping[str, str]
    body: bytes


@dataclass(frozen=True)
class _Reply:
    status: int
    body: bytes
    content_type: str
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, payload: object, status: int = 200, headers: dict[str, str] | None = None) -> _Reply:
        body = json.dumps(payload, separators=(",", ":")).encode()
        return cls(status, body, "application/json; charset=utf-8", headers or {})

    @classmethod
    def text(cls, text: str, status: int = 200) -> _Reply:
        return cls(status, text.encode(), "text/plain; charset=utf-8")


class _ApiError(Exception):
    def __init__(self, error: str) -> None:
        super().__init__(error)
        self.error = error


# ----------------------------------------------------------------------------------------------------
# Small helpers


def _maybe_json(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in ("[", "{"):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _new_id(prefix: str, length: int = 10) -> str:
    return prefix + uuid.uuid4().hex[:length].upper()


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.lower() in ("1", "true", "yes")
    return bool(value)


def _image_size(data: bytes) -> tuple[int, int] | None:
    try:
        from PIL import Image

        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            return int(width), int(height)
    except Exception:  # any undecodable bytes: the file simply has no dimensions
        return None


def _guess_mimetype(name: str, data: bytes) -> str:
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    ext = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    return _EXT_TO_MIME.get(ext, "application/octet-stream")


def _filetype_for(name: str, mimetype: str) -> str:
    if mimetype in _MIME_TO_FILETYPE:
        return _MIME_TO_FILETYPE[mimetype]
    ext = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    return ext or "binary"


def _default_channel_name(channel_id: str) -> str:
    """C0GENERAL -> general."""
    return channel_id[1:].lstrip("0").lower() or channel_id.lower()


def live_markup(text: str) -> list[str]:
    """What Slack would render as live in a mrkdwn ``text``: each ``<…>`` entity (``@U123`` mentions,
    ``!channel``/``!here``/``!everyone`` broadcasts, ``#C123`` channels, ``https://…|label`` links).
    Escaped text (``&lt;!channel&gt;``) is shown as typed and is not in the list."""
    return re.findall(r"<([^<>]*)>", text)


def _channel_type(channel_id: str) -> str:
    return {"C": "channel", "G": "group", "D": "im"}.get(channel_id[:1], "channel")


def _rich_text(text: str) -> list[JSON]:
    if not text:
        return []
    elements: list[JSON] = []
    pos = 0
    for match in _MENTION.finditer(text):
        if match.start() > pos:
            elements.append({"type": "text", "text": text[pos : match.start()]})
        elements.append({"type": "user", "user_id": match.group(1)})
        pos = match.end()
    if pos < len(text):
        elements.append({"type": "text", "text": text[pos:]})
    block_id = hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()[:5]
    return [
        {
            "type": "rich_text",
            "block_id": block_id,
            "elements": [{"type": "rich_text_section", "elements": elements}],
        }
    ]


def _parse_multipart(content_type: str, body: bytes) -> bytes:
    """The first file part of a multipart/form-data body (or the first part when none has a filename)."""
    raw = b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(raw)
    parts = [part for part in message.iter_parts()]
    chosen = next((part for part in parts if part.get_filename()), parts[0] if parts else None)
    if chosen is None:
        return b""
    payload = chosen.get_payload(decode=True)
    return payload if isinstance(payload, bytes) else b""


class _TsClock:
    """Slack timestamps: "<unix seconds>.<6 digits>", unique and increasing."""

    def __init__(self) -> None:
        self._last = 0
        self._lock = threading.Lock()

    def next(self) -> str:
        with self._lock:
            micros = max(int(time.time() * 1_000_000), self._last + 1)
            self._last = micros
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"


class _Params:
    """Web API arguments with Slack-ish coercion."""

    def __init__(self, values: dict[str, Any], *, never_share: bool = False) -> None:
        self.values = values
        self.never_share = never_share

    def string(self, key: str) -> str | None:
        value = self.values.get(key)
        if value is None or value == "":
            return None
        if isinstance(value, str):
            return value
        return json.dumps(value) if isinstance(value, dict | list) else str(value)

    def need(self, key: str, error: str) -> str:
        value = self.string(key)
        if value is None:
            raise _ApiError(error)
        return value

    def parsed(self, key: str) -> Any:
        value = self.values.get(key)
        if value is None or value == "":
            return None
        if isinstance(value, str):
            try:
                return json.loads(value)
            except ValueError as exc:
                raise _ApiError("invalid_arguments") from exc
        return value


def _make_handler(owner: FakeSlack, route: Callable[[_Request], _Reply]) -> type[QuietHandler]:
    class Handler(QuietHandler):
        def _serve(self) -> None:
            split = urlsplit(self.path)
            body = self.read_body() if self.command in ("POST", "PUT") else b""
            request = _Request(
                method=self.command,
                path=split.path,
                query=parse_qs(split.query, keep_blank_values=True),
                headers={k.lower(): v for k, v in self.headers.items()},
                body=body,
            )
            try:
                reply = route(request)
            except Exception:  # a bug in the fake: answer like Slack's edge, keep the traceback for the test
                owner._record(owner.errors, traceback.format_exc())
                reply = _Reply(500, _EDGE_ERROR_HTML, "text/html")
            self.send_bytes(reply.status, reply.body, reply.content_type, reply.headers)

        do_GET = _serve
        do_POST = _serve
        do_HEAD = _serve

    Handler.__name__ = f"FakeSlackHandler_{id(owner):x}"
    return Handler


# ----------------------------------------------------------------------------------------------------
# The fake


class FakeSlack:
    """Slack on loopback. Use as a context manager or call ``start()``/``stop()``."""

    def __init__(
        self,
        *,
        bot_token: str = "xoxb-sandbox-token",  # noqa: S107 - the fake's own, not a real secret
        app_token: str = "xapp-sandbox-token",  # noqa: S107
        signing_secret: str = "sandbox-signing-secret",  # noqa: S107
        team_id: str = "T0SANDBOX",
        bot_user_id: str = "UBANANA",
        bot_id: str = "BBANANA",
        api_app_id: str = "A0BANANA",
    ) -> None:
        self.bot_token = bot_token
        self.app_token = app_token
        self.signing_secret = signing_secret
        self.team_id = team_id
        self.team_domain = "sandbox"
        self.bot_user_id = bot_user_id
        self.bot_id = bot_id
        self.api_app_id = api_app_id
        self.verification_token = "sandbox-verification-token"  # noqa: S105 - deprecated field, fake value

        #: Where HTTP-mode deliveries go (e.g. "http://127.0.0.1:3000/slack/events"); None = Socket Mode.
        self.request_url: str | None = None
        #: HTTP timeout for deliveries, and how long Socket Mode deliveries wait for the ack.
        self.delivery_timeout: float = 10.0
        #: Seconds before a completed upload's share shows in ``files.info`` (0 = at once).
        self.share_delay_s: float = 0.0

        self.calls: list[ApiCall] = []
        self.messages: list[dict[str, Any]] = []
        self.ephemerals: list[dict[str, Any]] = []
        self.uploads: list[Upload] = []
        self.downloads: list[Download] = []
        self.external_requests: list[Download] = []
        self.responses: list[Response] = []
        self.deliveries: list[Delivery] = []
        self.views: dict[str, dict[str, Any]] = {}
        #: Tracebacks of bugs in the fake itself (the client got a 500).
        self.errors: list[str] = []
        #: How many Socket Mode connections were accepted so far (reconnections included).
        self.socket_connects = 0

        self._cond = threading.Condition(threading.RLock())
        self._generation = 0
        self._clock = _TsClock()
        self._channels: dict[str, _Channel] = {}
        self._users: dict[str, JSON] = {}
        self._faults: dict[str, deque[_Fault]] = {}
        self._files: dict[str, _StoredFile] = {}
        self._pending_uploads: dict[str, _PendingUpload] = {}
        self._response_urls: dict[str, _ResponseUrl] = {}
        self._external_paths: dict[str, tuple[bytes, str]] = {}
        self._tickets: set[str] = set()
        self._holds: dict[str, Hold] = {}

        self._server = ServerThread(_make_handler(self, self._route), name="fake-slack")
        self._external = ServerThread(_make_handler(self, self._route_external), name="fake-slack-external")
        self._http: httpx.Client | None = None

        self._ws_server: Server | None = None
        self._ws_thread: threading.Thread | None = None
        self._ws_url = ""
        self._ws_connections: list[ServerConnection] = []
        self._acks: dict[str, _AckWaiter] = {}

        self._methods: dict[str, Callable[[_Params], JSON]] = {
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
            "reactions.add": self._reactions_add,
            "reactions.remove": self._reactions_remove,
            "users.info": self._users_info,
            "views.open": self._views_open,
            "views.push": self._views_open,
            "views.update": self._views_update,
            "views.publish": self._views_publish,
        }

    # --------------------------------------------------------------------------------------- lifecycle

    def start(self) -> FakeSlack:
        self._server.start()
        return self

    def stop(self) -> None:
        with self._cond:
            holds = list(self._holds.values())
        for hold in holds:
            hold.release()
        with self._cond:
            server, thread = self._ws_server, self._ws_thread
            connections = list(self._ws_connections)
            self._ws_server, self._ws_thread = None, None
            self._changed()
        for conn in connections:
            conn.close()
        if server is not None:
            server.shutdown()
        if thread is not None:
            thread.join(timeout=5)
        self._server.stop()
        self._external.stop()
        if self._http is not None:
            self._http.close()
            self._http = None

    def __enter__(self) -> FakeSlack:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT`` (the fake must be started)."""
        return self._server.url

    @property
    def api_url(self) -> str:
        """What ``SLACK_API_URL`` / ``WebClient(base_url=...)`` should be."""
        return self.base_url + "/api/"

    @property
    def external_host(self) -> str:
        """Base URL of a second, non-Slack host (started on first use) that records every request."""
        with self._cond:
            self._external.start()
            return self._external.url

    @property
    def socket_connections(self) -> int:
        """How many Socket Mode connections are open now."""
        with self._cond:
            return len(self._ws_connections)

    @property
    def socket_mode_url(self) -> str | None:
        """The ws:// URL of the Socket Mode server, once an app has called ``apps.connections.open``."""
        return self._ws_url or None

    # --------------------------------------------------------------------------------------- scripting

    def set_channel(
        self, channel_id: str, *, member: bool = True, archived: bool = False, name: str | None = None
    ) -> None:
        """Declare the bot's membership and the channel's state. Unknown channels: member, not archived."""
        with self._cond:
            state = self._channels.setdefault(channel_id, _Channel())
            state.member, state.archived = member, archived
            if name is not None:
                state.name = name

    def set_user(
        self, user_id: str, *, name: str | None = None, real_name: str | None = None, **fields: Any
    ) -> None:
        """Override what ``users.info`` says about ``user_id`` (other users are synthesised from the id)."""
        with self._cond:
            user = self._users.setdefault(user_id, {})
            if name is not None:
                user["name"] = name
            if real_name is not None:
                user["real_name"] = real_name
            user.update(fields)

    def hold(self, method: str) -> Hold:
        """Hold back the responses of ``method`` (e.g. ``"files.info"``) until released, to freeze the app
        at a precise point::

            with fake.hold("files.info") as held:
                held.wait_for_call()  # the app is now waiting for files.info
                app.kill()
            # released here; later calls are answered at once

        Each call is recorded and carried out when it arrives (scripted faults apply as usual); only its
        response waits. One hold per method at a time."""
        with self._cond:
            if method in self._holds:
                raise ValueError(f"{method} is already held")
            hold = Hold(self, method)
            self._holds[method] = hold
            return hold

    def fail(
        self,
        method: str,
        *,
        error: str = "ratelimited",
        http_status: int = 200,
        retry_after: float | None = None,
        times: int = 1,
        never_share: bool = False,
    ) -> None:
        """Make the next ``times`` calls of ``method`` fail (FIFO per method).

        ``retry_after`` (or ``http_status=429``) answers HTTP 429 with an integer ``Retry-After`` header, as
        Slack does (slack_sdk's ``RateLimitErrorRetryHandler`` does ``int()`` on it); ``http_status=500``
        answers Slack's edge HTML page. ``never_share`` (``files.completeUploadExternal`` only) answers ok
        but never shares the file: no message, no shares in ``files.info``.
        """
        if never_share and method != "files.completeUploadExternal":
            raise ValueError("never_share only applies to files.completeUploadExternal")
        status = 429 if retry_after is not None else http_status
        with self._cond:
            queue = self._faults.setdefault(method, deque())
            for _ in range(times):
                queue.append(_Fault(error, status, retry_after, never_share))

    def host_file(
        self,
        data: bytes,
        *,
        name: str,
        mimetype: str,
        filetype: str | None = None,
        declared_size: int | None = None,
        user: str = "UALICE",
    ) -> dict[str, Any]:
        """Host ``data`` like a file a user attached; returns its Slack file object (a copy)."""
        file_id = _new_id("F")
        obj = self._file_object(file_id, name=name, title=name, mimetype=mimetype, data=data, user=user)
        if filetype is not None:
            obj["filetype"] = filetype
            obj["pretty_type"] = filetype.upper()
        if declared_size is not None:
            obj["size"] = declared_size
        with self._cond:
            self._files[file_id] = _StoredFile(obj=obj, data=data)
        return json.loads(json.dumps(obj))  # type: ignore[no-any-return]

    def host_external_file(self, data: bytes, *, name: str, mimetype: str) -> dict[str, Any]:
        """A remote file (``is_external``): ``url_private`` points at ``external_host``, not at Slack."""
        file_id = _new_id("F")
        path = f"/ext/{file_id}/{quote(name)}"
        url = self.external_host + path
        obj = self._file_object(file_id, name=name, title=name, mimetype=mimetype, data=data, user="UALICE")
        obj.update(
            {
                "mode": "external",
                "is_external": True,
                "external_type": "app",
                "external_url": url,
                "url_private": url,
                "url_private_download": url,
            }
        )
        with self._cond:
            self._files[file_id] = _StoredFile(obj=obj, data=data, external=True)
            self._external_paths[path] = (data, mimetype)
        return json.loads(json.dumps(obj))  # type: ignore[no-any-return]

    def file_stub(self, file: dict[str, Any]) -> dict[str, Any]:
        """The stub Slack Connect events carry instead of a file object; ``files.info`` has the rest."""
        return {"id": file["id"], "file_access": "check_file_info"}

    def new_response_url(self, *, channel_id: str | None = None, user_id: str | None = None) -> str:
        """A fresh ``response_url`` (5 uses within 30 minutes, like Slack's)."""
        url_id = uuid.uuid4().hex
        with self._cond:
            self._response_urls[url_id] = _ResponseUrl(channel_id, user_id, time.time())
        return f"{self.base_url}/response/{url_id}"

    def calls_to(self, method: str) -> list[ApiCall]:
        with self._cond:
            return [call for call in self.calls if call.method == method]

    def bot_texts(self) -> list[str]:
        """Every mrkdwn text the app asked Slack to show: messages, updates, ephemerals, upload comments,
        ``response_url`` bodies and the text of its acknowledgements."""
        texts: list[str] = []
        with self._cond:
            for call in self.calls:
                if call.method in ("chat.postMessage", "chat.update", "chat.postEphemeral"):
                    texts.append(str(call.params.get("text") or ""))
                elif call.method == "files.completeUploadExternal":
                    texts.append(str(call.params.get("initial_comment") or ""))
            texts += [str(r.body.get("text") or "") for r in self.responses]
            for delivery in self.deliveries:
                try:
                    body = delivery.json()
                except ValueError:
                    continue
                if isinstance(body, dict) and isinstance(body.get("text"), str):
                    texts.append(body["text"])
        return [t for t in texts if t]

    def file_object(self, file_id: str) -> dict[str, Any] | None:
        """What ``files.info`` would return for ``file_id`` right now (None when unknown)."""
        with self._cond:
            stored = self._files.get(file_id)
            return None if stored is None else self._file_with_shares(stored, now=time.time())

    def message(self, channel: str, ts: str) -> dict[str, Any] | None:
        with self._cond:
            return self._find_message(channel, ts)

    def thread(self, channel: str, thread_ts: str) -> list[dict[str, Any]]:
        """The parent and the replies of a thread, in ts order."""
        with self._cond:
            return sorted(
                (
                    m
                    for m in self.messages
                    if m["channel"] == channel and (m["ts"] == thread_ts or m.get("thread_ts") == thread_ts)
                ),
                key=lambda m: float(m["ts"]),
            )

    # ----------------------------------------------------------------------------------------- waiting

    def wait_for(self, predicate: Callable[[], T | bool | None], timeout: float = 15.0) -> T:
        """Block until ``predicate()`` returns something truthy (re-checked whenever the fake records
        anything) and return it; ``TimeoutError`` with a summary of what was recorded otherwise."""
        deadline = time.monotonic() + timeout
        while True:
            with self._cond:
                generation = self._generation
            # outside the lock, so the predicate may itself call the fake (e.g. with a WebClient)
            result = predicate()
            if result:
                return result  # type: ignore[return-value]
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(
                    f"condition not met within {timeout:g}s; recorded so far:\n{self.summary()}"
                )
            with self._cond:
                if self._generation == generation:
                    # also wake now and then, for predicates on time (share_delay_s) or on the app's state
                    self._cond.wait(min(remaining, 0.05))

    def wait_for_uploads(self, n: int, timeout: float = 15.0) -> list[Upload]:
        """The shared uploads, once there are at least ``n``."""

        def shared() -> list[Upload] | None:
            uploads = [u for u in self.uploads if u.shared]
            return uploads if len(uploads) >= n else None

        return self.wait_for(shared, timeout)

    def wait_for_socket_connection(self, timeout: float = 10.0) -> None:
        """Until an app holds an open Socket Mode connection (and got its ``hello``)."""
        self.wait_for(lambda: bool(self._ws_connections), timeout)

    def summary(self) -> str:
        """A human-readable digest of the recorded state (no tokens, no bytes)."""
        with self._cond:
            lines = [f"calls ({len(self.calls)}):"]
            lines += [f"  {c.method} {sorted(c.params)}" for c in self.calls[-20:]]
            lines.append(f"messages ({len(self.messages)}):")
            lines += [
                f"  {m['channel']} ts={m['ts']} thread_ts={m.get('thread_ts')} user={m.get('user')} "
                f"files={len(m.get('files') or [])} text={str(m.get('text'))[:60]!r}"
                for m in self.messages[-20:]
            ]
            lines.append(f"uploads ({len(self.uploads)}):")
            lines += [
                f"  {u.file_id} {u.filename!r} {len(u.data)}B channel={u.channel} shared={u.shared}"
                for u in self.uploads
            ]
            lines.append(
                f"responses ({len(self.responses)}): " + ", ".join(str(r.body)[:60] for r in self.responses)
            )
            lines.append(f"downloads ({len(self.downloads)}): " + ", ".join(d.path for d in self.downloads))
            lines.append(
                f"deliveries ({len(self.deliveries)}): "
                + ", ".join(f"{d.kind}->{d.status}" for d in self.deliveries[-20:])
            )
            lines.append(f"socket connections: {len(self._ws_connections)}")
            if self.errors:
                lines.append(f"errors in the fake ({len(self.errors)}):\n" + self.errors[-1])
            return "\n".join(lines)

    def _changed(self) -> None:
        """Wake ``wait_for``; call with the lock held."""
        self._generation += 1
        self._cond.notify_all()

    def _record(self, target: list[Any], item: Any) -> None:
        with self._cond:
            target.append(item)
            self._changed()

    # -------------------------------------------------------------------------------------- to the app

    def signed_headers(self, body: bytes, timestamp: int | None = None) -> dict[str, str]:
        """``X-Slack-Request-Timestamp`` and ``X-Slack-Signature`` for ``body`` (pass an old ``timestamp`` to
        make a stale request)."""
        ts = str(int(time.time()) if timestamp is None else timestamp)
        signature = SignatureVerifier(self.signing_secret).generate_signature(timestamp=ts, body=body)
        return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": str(signature)}

    def send_command(
        self,
        text: str,
        *,
        channel_id: str = "C0GENERAL",
        user_id: str = "UALICE",
        command: str = "/banana",
        team_id: str | None = None,
    ) -> Delivery:
        """Deliver a slash command invocation (with a fresh ``response_url``)."""
        payload = {
            "token": self.verification_token,
            "team_id": team_id or self.team_id,
            "team_domain": self.team_domain,
            "channel_id": channel_id,
            "channel_name": self._channel_name(channel_id, in_command=True),
            "user_id": user_id,
            "user_name": self._user_name(user_id),
            "command": command,
            "text": text,
            "api_app_id": self.api_app_id,
            "is_enterprise_install": "false",
            "response_url": self.new_response_url(channel_id=channel_id, user_id=user_id),
            "trigger_id": self.new_trigger_id(),
        }
        body = urlencode(payload).encode()
        return self._deliver(
            "slash_commands",
            payload,
            body,
            "application/x-www-form-urlencoded",
            accepts_response_payload=True,
        )

    def send_event(
        self,
        event: dict[str, Any],
        *,
        event_id: str | None = None,
        team_id: str | None = None,
        retry_num: int | None = None,
        retry_reason: str | None = None,
    ) -> Delivery:
        """Deliver ``event`` in an Events API envelope (``event_callback``). Retries keep the ``event_id``."""
        event_id = event_id or _new_id("Ev", 10)
        envelope = {
            "token": self.verification_token,
            "team_id": team_id or self.team_id,
            "context_team_id": team_id or self.team_id,
            "context_enterprise_id": None,
            "api_app_id": self.api_app_id,
            "event": event,
            "type": "event_callback",
            "event_id": event_id,
            "event_time": int(time.time()),
            "authorizations": [
                {
                    "enterprise_id": None,
                    "team_id": team_id or self.team_id,
                    "user_id": self.bot_user_id,
                    "is_bot": True,
                    "is_enterprise_install": False,
                }
            ],
            "is_ext_shared_channel": False,
            "event_context": "4-" + uuid.uuid4().hex,
        }
        extra: dict[str, str] = {}
        if retry_num is not None:
            extra["X-Slack-Retry-Num"] = str(retry_num)
        if retry_reason is not None:
            extra["X-Slack-Retry-Reason"] = retry_reason
        body = json.dumps(envelope).encode()
        return self._deliver(
            "events_api",
            envelope,
            body,
            "application/json",
            extra_headers=extra,
            retry_attempt=retry_num or 0,
            retry_reason=retry_reason or "",
            event=event,
            event_id=event_id,
        )

    def send_interactive(self, payload: dict[str, Any]) -> Delivery:
        """Deliver an interaction payload (``block_actions``, ``view_submission``, shortcuts ...) as Slack
        does: form field ``payload=<json>``."""
        body = urlencode({"payload": json.dumps(payload)}).encode()
        return self._deliver(
            "interactive", payload, body, "application/x-www-form-urlencoded", accepts_response_payload=True
        )

    def send_raw(self, body: bytes, headers: dict[str, str]) -> Delivery:
        """POST ``body`` with exactly ``headers`` to ``request_url`` (HTTP mode only), e.g. bad signatures."""
        if self.request_url is None:
            raise RuntimeError("send_raw needs request_url (HTTP mode)")
        delivery = self._post_to_app(body, headers, kind="raw")
        self._record(self.deliveries, delivery)
        return delivery

    def new_trigger_id(self) -> str:
        return f"{int(time.time())}.{uuid.uuid4().int % 10**12}.{uuid.uuid4().hex}"

    def post_user_message(
        self,
        *,
        channel: str,
        text: str,
        user: str = "UALICE",
        thread_ts: str | None = None,
        files: list[dict[str, Any]] | None = None,
        channel_type: str | None = None,
        team_id: str | None = None,
    ) -> list[Delivery]:
        """A human posts in ``channel``: record the message and deliver what Slack would send to an app
        subscribed to ``app_mention`` and ``message.channels/groups/im``: an ``app_mention`` (not in DMs,
        only when the text mentions the bot) and then the ``message`` event. Nothing is delivered from a
        channel the bot is not in."""
        ts = self._clock.next()
        channel_type = channel_type or _channel_type(channel)
        team = team_id or self.team_id
        with self._cond:
            parent = self._find_message(channel, thread_ts) if thread_ts else None
            record: JSON = {
                "type": "message",
                "channel": channel,
                "ts": ts,
                "thread_ts": thread_ts,
                "text": text,
                "blocks": _rich_text(text) or None,
                "user": user,
                "bot_id": None,
                "files": files,
                "team": team,
                "via": "user",
            }
            self.messages.append(record)
            self._changed()
            member = self._channel(channel).member
        if not member:
            return []

        base: JSON = {"user": user, "text": text, "ts": ts, "team": team}
        if team != self.team_id:
            base["user_team"] = base["source_team"] = team
        if text:
            base["blocks"] = _rich_text(text)
        base["client_msg_id"] = str(uuid.uuid4())
        if files:
            base["files"] = files
            base["upload"] = False
            base["display_as_bot"] = False
        if thread_ts:
            base["thread_ts"] = thread_ts
            base["parent_user_id"] = (parent or {}).get("user") or user

        deliveries: list[Delivery] = []
        mentioned = any(m.group(1) == self.bot_user_id for m in _MENTION.finditer(text))
        if mentioned and channel_type != "im":
            mention = {"type": "app_mention", **base, "channel": channel, "event_ts": ts}
            deliveries.append(self.send_event(mention))
        subtype = {"subtype": "file_share"} if files else {}
        message = {"type": "message", **subtype, **base, "channel": channel, "event_ts": ts}
        message["channel_type"] = channel_type
        deliveries.append(self.send_event(message))
        return deliveries

    def edit_user_message(self, channel: str, ts: str, new_text: str) -> list[Delivery]:
        """A human edits their message: deliver a ``message_changed`` event."""
        with self._cond:
            original = self._find_message(channel, ts)
            if original is None:
                raise KeyError(f"no message {channel}/{ts}")
            previous = {"type": "message", "user": original["user"], "text": original["text"], "ts": ts}
            original["text"] = new_text
            original["blocks"] = _rich_text(new_text) or None
            edit_ts = self._clock.next()
            original["edited"] = {"user": original["user"], "ts": edit_ts}
            self._changed()
            member = self._channel(channel).member
        if not member:
            return []
        current = {**previous, "text": new_text, "blocks": _rich_text(new_text), "edited": original["edited"]}
        if original.get("thread_ts"):
            current["thread_ts"] = previous["thread_ts"] = original["thread_ts"]
        event = {
            "type": "message",
            "subtype": "message_changed",
            "hidden": True,
            "channel": channel,
            "channel_type": _channel_type(channel),
            "ts": edit_ts,
            "event_ts": edit_ts,
            "message": current,
            "previous_message": previous,
        }
        return [self.send_event(event)]

    def delete_user_message(self, channel: str, ts: str) -> list[Delivery]:
        """A human deletes their message: deliver a ``message_deleted`` event."""
        with self._cond:
            original = self._find_message(channel, ts)
            if original is None:
                raise KeyError(f"no message {channel}/{ts}")
            original["deleted"] = True
            self._changed()
            member = self._channel(channel).member
        if not member:
            return []
        event_ts = self._clock.next()
        previous = {"type": "message", "user": original["user"], "text": original["text"], "ts": ts}
        if original.get("thread_ts"):
            previous["thread_ts"] = original["thread_ts"]
        event = {
            "type": "message",
            "subtype": "message_deleted",
            "hidden": True,
            "channel": channel,
            "channel_type": _channel_type(channel),
            "ts": event_ts,
            "event_ts": event_ts,
            "deleted_ts": ts,
            "previous_message": previous,
        }
        return [self.send_event(event)]

    def send_socket_disconnect(self, reason: str = "refresh_requested") -> None:
        """Ask connected Socket Mode clients to reconnect, as Slack does every few hours."""
        with self._cond:
            connections = list(self._ws_connections)
        for conn in connections:
            conn.send(
                json.dumps(
                    {"type": "disconnect", "reason": reason, "debug_info": {"host": "applink-sandbox"}}
                )
            )

    # ---------------------------------------------------------------------------------------- delivery

    def _deliver(
        self,
        kind: str,
        payload: JSON,
        body: bytes,
        content_type: str,
        *,
        extra_headers: dict[str, str] | None = None,
        accepts_response_payload: bool = False,
        retry_attempt: int | None = None,
        retry_reason: str | None = None,
        event: JSON | None = None,
        event_id: str | None = None,
    ) -> Delivery:
        if self.request_url is not None:
            headers = {
                "Content-Type": content_type,
                "User-Agent": _SLACKBOT_UA,
                "Accept": "*/*",
                **self.signed_headers(body),
                **(extra_headers or {}),
            }
            delivery = self._post_to_app(body, headers, kind=kind, event=event, event_id=event_id)
        else:
            envelope: JSON = {
                "envelope_id": str(uuid.uuid4()),
                "payload": payload,
                "type": kind,
                "accepts_response_payload": accepts_response_payload,
            }
            if kind == "events_api":
                envelope["retry_attempt"] = retry_attempt or 0
                envelope["retry_reason"] = retry_reason or ""
            delivery = self._send_envelope(envelope, kind=kind, event=event, event_id=event_id)
        self._record(self.deliveries, delivery)
        return delivery

    def _post_to_app(
        self,
        body: bytes,
        headers: dict[str, str],
        *,
        kind: str,
        event: JSON | None = None,
        event_id: str | None = None,
    ) -> Delivery:
        assert self.request_url is not None
        with self._cond:
            if self._http is None:
                self._http = httpx.Client(follow_redirects=False)
            http = self._http
        start = time.perf_counter()
        try:
            answer = http.post(self.request_url, content=body, headers=headers, timeout=self.delivery_timeout)
        except httpx.TimeoutException:
            return Delivery(0, "http_timeout", {}, time.perf_counter() - start, event, event_id, kind, "http")
        except httpx.TransportError as exc:
            reason = f"connection_failed: {type(exc).__name__}"
            return Delivery(0, reason, {}, time.perf_counter() - start, event, event_id, kind, "http")
        return Delivery(
            answer.status_code,
            answer.text,
            dict(answer.headers),
            time.perf_counter() - start,
            event,
            event_id,
            kind,
            "http",
        )

    def _send_envelope(
        self, envelope: JSON, *, kind: str, event: JSON | None, event_id: str | None
    ) -> Delivery:
        with self._cond:
            started = self._ws_server is not None
        if not started:
            raise RuntimeError(
                "nowhere to deliver: set fake.request_url (HTTP mode) or connect the app over Socket Mode"
            )
        self.wait_for_socket_connection(self.delivery_timeout)
        with self._cond:
            conn = self._ws_connections[-1]
            waiter = _AckWaiter()
            self._acks[envelope["envelope_id"]] = waiter
        start = time.perf_counter()
        try:
            conn.send(json.dumps(envelope))
            acked = waiter.event.wait(self.delivery_timeout)
        except Exception:  # the connection went away under us: Slack would retry later
            acked = False
        finally:
            with self._cond:
                self._acks.pop(envelope["envelope_id"], None)
        elapsed = time.perf_counter() - start
        if not acked:
            return Delivery(504, "", {}, elapsed, event, event_id, kind, "socket")
        body = json.dumps(waiter.payload) if waiter.has_payload else ""
        return Delivery(200, body, {}, elapsed, event, event_id, kind, "socket")

    # ------------------------------------------------------------------------------------- socket mode

    def _ensure_socket_server(self) -> str:
        with self._cond:
            if self._ws_server is None:
                from websockets.sync.server import serve

                server = serve(self._ws_handler, "127.0.0.1", 0, compression=None, close_timeout=1)
                port = server.socket.getsockname()[1]
                thread = threading.Thread(target=server.serve_forever, name="fake-slack-socket", daemon=True)
                thread.start()
                self._ws_server, self._ws_thread = server, thread
                self._ws_url = f"ws://127.0.0.1:{port}/link/"
            ticket = str(uuid.uuid4())
            self._tickets.add(ticket)
            return f"{self._ws_url}?ticket={ticket}&app_id={self.api_app_id}"

    def _ws_handler(self, conn: ServerConnection) -> None:
        from websockets.exceptions import ConnectionClosed

        query = parse_qs(urlsplit(conn.request.path if conn.request else "").query)
        ticket = (query.get("ticket") or [""])[0]
        with self._cond:
            known = ticket in self._tickets
        if not known:
            conn.close(code=1008, reason="invalid ticket")
            return
        try:
            with self._cond:
                hello = {
                    "type": "hello",
                    "num_connections": len(self._ws_connections) + 1,
                    "debug_info": {
                        "host": "applink-sandbox",
                        "build_number": 1,
                        "approximate_connection_time": 18060,
                    },
                    "connection_info": {"app_id": self.api_app_id},
                }
            conn.send(json.dumps(hello))
            with self._cond:
                self._ws_connections.append(conn)
                self.socket_connects += 1
                self._changed()
            for raw in conn:
                try:
                    message = json.loads(raw)
                except ValueError:
                    continue
                if not isinstance(message, dict) or "envelope_id" not in message:
                    continue
                with self._cond:
                    waiter = self._acks.get(str(message["envelope_id"]))
                if waiter is not None:
                    waiter.has_payload = "payload" in message
                    waiter.payload = message.get("payload")
                    waiter.event.set()
        except ConnectionClosed:
            pass
        finally:
            with self._cond:
                if conn in self._ws_connections:
                    self._ws_connections.remove(conn)
                self._changed()

    # ----------------------------------------------------------------------------------------- routing

    def _route(self, req: _Request) -> _Reply:
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

    def _route_external(self, req: _Request) -> _Reply:
        auth = req.headers.get("authorization")
        with self._cond:
            data, mimetype = self._external_paths.get(req.path, (TINY_PNG, "image/png"))
        self._record(self.external_requests, Download(req.path, had_token=auth is not None))
        return _Reply(200, data, mimetype)

    def _handle_api(self, req: _Request, method: str) -> _Reply:
        params: dict[str, Any] = {k: v[-1] for k, v in req.query.items()}
        content_type = req.headers.get("content-type", "")
        if req.body:
            if content_type.startswith("application/json"):
                try:
                    parsed = json.loads(req.body)
                except ValueError:
                    return _Reply.json({"ok": False, "error": "invalid_json"})
                if isinstance(parsed, dict):
                    params.update(parsed)
            elif content_type.startswith("multipart/form-data"):
                return _Reply.json({"ok": False, "error": "invalid_form_data"})
            else:
                form = parse_qs(req.body.decode("utf-8", "replace"), keep_blank_values=True)
                params.update({k: v[-1] for k, v in form.items()})
        auth = req.headers.get("authorization", "")
        token: str | None = auth[len("Bearer ") :].strip() if auth.startswith("Bearer ") else None
        body_token = params.pop("token", None)
        if token is None and isinstance(body_token, str) and body_token:
            token = body_token

        with self._cond:
            self.calls.append(ApiCall(method, params, token, time.time()))
            queue = self._faults.get(method)
            fault = queue.popleft() if queue else None
            self._changed()

        if fault is not None and not fault.never_share:
            if fault.http_status >= 500:
                return _Reply(fault.http_status, _EDGE_ERROR_HTML, "text/html")
            headers = {}
            if fault.http_status == 429:
                retry_after = 1 if fault.retry_after is None else max(0, math.ceil(fault.retry_after))
                headers["Retry-After"] = str(retry_after)
            return _Reply.json({"ok": False, "error": fault.error}, fault.http_status, headers)

        handler = self._methods.get(method)
        if handler is None:
            return _Reply.json({"ok": False, "error": "unknown_method", "req_method": method})
        auth_error = self._auth_error(method, token)
        if auth_error is not None:
            return _Reply.json({"ok": False, "error": auth_error})
        with self._cond:
            try:
                result = handler(_Params(params, never_share=fault is not None and fault.never_share))
            except _ApiError as exc:
                result = {"ok": False, "error": exc.error}
            self._changed()
        return _Reply.json(result)

    def _auth_error(self, method: str, token: str | None) -> str | None:
        if not token:
            return "not_authed"
        if method == "apps.connections.open":
            if token == self.app_token:
                return None
            return "invalid_auth" if token.startswith("xapp-") else "not_allowed_token_type"
        if token == self.bot_token:
            return None
        return "not_allowed_token_type" if token == self.app_token else "invalid_auth"

    def _handle_upload(self, req: _Request, file_id: str) -> _Reply:
        content_type = req.headers.get("content-type", "")
        data = _parse_multipart(content_type, req.body) if content_type.startswith("multipart/") else req.body
        with self._cond:
            pending = self._pending_uploads.get(file_id)
            if pending is None:
                return _Reply.text("Not Found", 404)
            pending.data = data
            self._changed()
        return _Reply.text(f"OK - {len(data)}")

    def _handle_download(self, req: _Request) -> _Reply:
        match = _FILE_PATH.fullmatch(req.path)
        assert match is not None
        auth = req.headers.get("authorization")
        authorized = auth == f"Bearer {self.bot_token}"
        with self._cond:
            stored = self._files.get(match.group(2))
        if stored is None or stored.external:
            self._record(self.downloads, Download(req.path, auth is not None, authorized, 404))
            return _Reply.text("Not Found", 404)
        if not authorized:
            self._record(self.downloads, Download(req.path, auth is not None, False, 302))
            location = f"{self.base_url}/login?redir={quote(req.path, safe='')}"
            return _Reply(302, b"", "text/html; charset=utf-8", {"Location": location})
        self._record(self.downloads, Download(req.path, True, True, 200))
        name = str(stored.obj.get("name", "file"))
        headers = {"Content-Disposition": f'attachment; filename="{quote(name)}"', "Cache-Control": "private"}
        return _Reply(200, stored.data, str(stored.obj.get("mimetype", "application/octet-stream")), headers)

    def _handle_response_url(self, req: _Request, url_id: str) -> _Reply:
        try:
            body = json.loads(req.body) if req.body[:1] == b"{" else None
        except ValueError:
            body = None
        if body is None:
            form = parse_qs(req.body.decode("utf-8", "replace"))
            body = _maybe_json((form.get("payload") or [""])[-1])
        if not isinstance(body, dict):
            return _Reply.json({"ok": False, "error": "invalid_payload"}, 400)
        with self._cond:
            state = self._response_urls.get(url_id)
            if state is None:
                return _Reply.json({"ok": False, "error": "invalid_url"}, 404)
            if time.time() - state.created > _RESPONSE_URL_TTL_S:
                return _Reply.json({"ok": False, "error": "expired_url"}, 404)
            if state.uses >= _RESPONSE_URL_USES:
                return _Reply.json({"ok": False, "error": "used_url"}, 404)
            state.uses += 1
            self.responses.append(Response(url_id, body))
            if (
                body.get("response_type") == "in_channel"
                and state.channel_id
                and not body.get("replace_original")
            ):
                self.messages.append(
                    self._bot_message(
                        state.channel_id,
                        text=body.get("text"),
                        blocks=_maybe_json(body.get("blocks")),
                        thread_ts=body.get("thread_ts"),
                        via="response_url",
                    )
                )
            elif body.get("response_type", "ephemeral") == "ephemeral" and not body.get("replace_original"):
                self.ephemerals.append(
                    {
                        "channel": state.channel_id,
                        "user": state.user_id,
                        "text": body.get("text"),
                        "via": "response_url",
                    }
                )
            self._changed()
        return _Reply.json({"ok": True})

    # ----------------------------------------------------------------------------------- state helpers

    def _channel(self, channel_id: str) -> _Channel:
        return self._channels.get(channel_id) or _Channel()

    def _channel_name(self, channel_id: str, *, in_command: bool = False) -> str:
        with self._cond:
            name = self._channel(channel_id).name
        if in_command and channel_id[:1] in ("G", "D"):
            # slash command payloads name private conversations with these placeholders
            return "directmessage" if channel_id.startswith("D") else "privategroup"
        return name or _default_channel_name(channel_id)

    def _user_name(self, user_id: str) -> str:
        with self._cond:
            name = self._users.get(user_id, {}).get("name")
        if name:
            return str(name)
        if user_id == self.bot_user_id:
            return "nanobanana"
        return user_id[1:].lower() if len(user_id) > 1 else user_id.lower()

    def _check_writable(self, channel: str) -> None:
        if not _CHANNEL_ID.fullmatch(channel):
            raise _ApiError("channel_not_found")
        state = self._channel(channel)
        if not state.member and not channel.startswith("C"):
            raise _ApiError("channel_not_found")
        if state.archived:
            raise _ApiError("is_archived")
        if not state.member:
            raise _ApiError("not_in_channel")

    def _resolve_channel(self, channel: str) -> str:
        """chat.postMessage accepts a user id and posts in the DM with that user."""
        if _USER_ID.fullmatch(channel):
            return self._open_dm(channel)
        return channel

    def _open_dm(self, user: str) -> str:
        dm = "D0" + user[1:]
        state = self._channels.setdefault(dm, _Channel())
        state.user = user
        return dm

    def _find_message(self, channel: str, ts: str | None) -> dict[str, Any] | None:
        if ts is None:
            return None
        return next((m for m in reversed(self.messages) if m["channel"] == channel and m["ts"] == ts), None)

    def _bot_message(
        self,
        channel: str,
        *,
        text: Any,
        blocks: Any,
        thread_ts: str | None,
        via: str,
        files: list[JSON] | None = None,
    ) -> JSON:
        message: JSON = {
            "type": "message",
            "channel": channel,
            "ts": self._clock.next(),
            "thread_ts": thread_ts,
            "text": text if text is not None else "",
            "blocks": blocks,
            "user": self.bot_user_id,
            "bot_id": self.bot_id,
            "app_id": self.api_app_id,
            "team": self.team_id,
            "files": files,
            "via": via,
        }
        return message

    def _public_message(self, record: JSON) -> JSON:
        keys = (
            "type",
            "text",
            "blocks",
            "user",
            "bot_id",
            "app_id",
            "team",
            "ts",
            "thread_ts",
            "files",
            "edited",
        )
        message = {k: record[k] for k in keys if record.get(k) is not None}
        message["bot_profile"] = {"id": self.bot_id, "app_id": self.api_app_id, "name": "Nano Banana"}
        if record.get("reactions"):
            message["reactions"] = record["reactions"]
        return message

    def _file_object(
        self, file_id: str, *, name: str, title: str, mimetype: str, data: bytes, user: str
    ) -> JSON:
        now = int(time.time())
        filetype = _filetype_for(name, mimetype)
        quoted = quote(name)
        obj: JSON = {
            "id": file_id,
            "created": now,
            "timestamp": now,
            "name": name,
            "title": title,
            "mimetype": mimetype,
            "filetype": filetype,
            "pretty_type": filetype.upper(),
            "user": user,
            "user_team": self.team_id,
            "editable": False,
            "size": len(data),
            "mode": "hosted",
            "is_external": False,
            "external_type": "",
            "is_public": False,
            "public_url_shared": False,
            "display_as_bot": False,
            "username": "",
            "url_private": f"{self.base_url}/files-pri/{self.team_id}-{file_id}/{quoted}",
            "url_private_download": f"{self.base_url}/files-pri/{self.team_id}-{file_id}/download/{quoted}",
            "permalink": f"{self.base_url}/files/{user}/{file_id}/{quoted}",
            "permalink_public": f"{self.base_url}/{self.team_id}-{file_id}-{uuid.uuid4().hex[:10]}",
            "is_starred": False,
            "has_rich_preview": False,
            "file_access": "visible",
        }
        size = _image_size(data) if mimetype.startswith("image/") else None
        if size is not None:
            obj["original_w"], obj["original_h"] = size
        return obj

    def _file_with_shares(self, stored: _StoredFile, *, now: float) -> JSON:
        obj: JSON = json.loads(json.dumps(stored.obj))
        shares: dict[str, dict[str, list[JSON]]] = {}
        channels: list[str] = []
        groups: list[str] = []
        ims: list[str] = []
        for share in stored.shares:
            if share.visible_at > now:
                continue
            kind = "public" if share.channel.startswith("C") else "private"
            entry: JSON = {
                "reply_users": [],
                "reply_users_count": 0,
                "reply_count": 0,
                "ts": share.ts,
                "channel_name": self._channel_name(share.channel),
                "team_id": self.team_id,
                "share_user_id": stored.obj.get("user"),
                "source": "UNKNOWN",
            }
            if share.thread_ts:
                entry["thread_ts"] = share.thread_ts
            shares.setdefault(kind, {}).setdefault(share.channel, []).append(entry)
            bucket = (
                channels
                if share.channel.startswith("C")
                else ims
                if share.channel.startswith("D")
                else groups
            )
            if share.channel not in bucket:
                bucket.append(share.channel)
        obj["shares"] = shares
        obj["channels"], obj["groups"], obj["ims"] = channels, groups, ims
        obj["is_public"] = bool(channels)
        return obj

    # ----------------------------------------------------------------------------------------- Web API

    def _auth_test(self, p: _Params) -> JSON:
        return {
            "ok": True,
            "url": self.base_url + "/",
            "team": "Sandbox",
            "user": "nanobanana",
            "team_id": self.team_id,
            "user_id": self.bot_user_id,
            "bot_id": self.bot_id,
            "is_enterprise_install": False,
        }

    def _apps_connections_open(self, p: _Params) -> JSON:
        return {"ok": True, "url": self._ensure_socket_server()}

    def _chat_post_message(self, p: _Params) -> JSON:
        channel = self._resolve_channel(p.need("channel", "channel_not_found"))
        self._check_writable(channel)
        text, blocks = p.string("text"), p.parsed("blocks")
        if text is None and not blocks and not p.parsed("attachments"):
            raise _ApiError("no_text")
        record = self._bot_message(
            channel, text=text, blocks=blocks, thread_ts=p.string("thread_ts"), via="chat.postMessage"
        )
        if _truthy(p.values.get("reply_broadcast")):
            record["reply_broadcast"] = True
        if p.parsed("attachments"):
            record["attachments"] = p.parsed("attachments")
        if p.string("metadata"):
            record["metadata"] = p.parsed("metadata")
        self.messages.append(record)
        return {"ok": True, "channel": channel, "ts": record["ts"], "message": self._public_message(record)}

    def _chat_update(self, p: _Params) -> JSON:
        channel = p.need("channel", "channel_not_found")
        self._check_writable(channel)
        record = self._find_message(channel, p.need("ts", "message_not_found"))
        if record is None or record.get("deleted"):
            raise _ApiError("message_not_found")
        if record.get("user") != self.bot_user_id:
            raise _ApiError("cant_update_message")
        text, blocks = p.string("text"), p.parsed("blocks")
        if all(v is None for v in (text, blocks, p.parsed("attachments"), p.parsed("file_ids"))):
            raise _ApiError("no_text")
        if text is not None:
            record["text"] = text
        if blocks is not None:
            record["blocks"] = blocks
        if p.parsed("file_ids") is not None:
            record["file_ids"] = p.parsed("file_ids")
        record["edited"] = {"user": self.bot_user_id, "ts": self._clock.next()}
        record.setdefault("updates", 0)
        record["updates"] += 1
        return {
            "ok": True,
            "channel": channel,
            "ts": record["ts"],
            "text": record["text"],
            "message": self._public_message(record),
        }

    def _chat_delete(self, p: _Params) -> JSON:
        channel = p.need("channel", "channel_not_found")
        record = self._find_message(channel, p.need("ts", "message_not_found"))
        if record is None or record.get("deleted"):
            raise _ApiError("message_not_found")
        if record.get("user") != self.bot_user_id:
            raise _ApiError("cant_delete_message")
        record["deleted"] = True
        return {"ok": True, "channel": channel, "ts": record["ts"]}

    def _chat_post_ephemeral(self, p: _Params) -> JSON:
        channel = self._resolve_channel(p.need("channel", "channel_not_found"))
        user = p.need("user", "user_not_in_channel")
        self._check_writable(channel)
        if p.string("text") is None and not p.parsed("blocks"):
            raise _ApiError("no_text")
        ts = self._clock.next()
        self.ephemerals.append(
            {
                "channel": channel,
                "user": user,
                "text": p.string("text"),
                "blocks": p.parsed("blocks"),
                "thread_ts": p.string("thread_ts"),
                "ts": ts,
                "via": "chat.postEphemeral",
            }
        )
        return {"ok": True, "message_ts": ts}

    def _chat_get_permalink(self, p: _Params) -> JSON:
        channel = p.need("channel", "channel_not_found")
        record = self._find_message(channel, p.need("message_ts", "message_not_found"))
        if record is None:
            raise _ApiError("message_not_found")
        link = f"{self.base_url}/archives/{channel}/p{record['ts'].replace('.', '')}"
        if record.get("thread_ts") and record["thread_ts"] != record["ts"]:
            link += f"?thread_ts={record['thread_ts']}&cid={channel}"
        return {"ok": True, "channel": channel, "permalink": link}

    def _reactions_add(self, p: _Params) -> JSON:
        channel = p.need("channel", "no_item_specified")
        name = p.need("name", "invalid_name").strip(":")
        self._check_writable(channel)
        record = self._find_message(channel, p.need("timestamp", "no_item_specified"))
        if record is None:
            raise _ApiError("message_not_found")
        reactions: list[JSON] = record.setdefault("reactions", [])
        reaction = next((r for r in reactions if r["name"] == name), None)
        if reaction is not None and self.bot_user_id in reaction["users"]:
            raise _ApiError("already_reacted")
        if reaction is None:
            reaction = {"name": name, "users": [], "count": 0}
            reactions.append(reaction)
        reaction["users"].append(self.bot_user_id)
        reaction["count"] += 1
        return {"ok": True}

    def _reactions_remove(self, p: _Params) -> JSON:
        channel = p.need("channel", "no_item_specified")
        name = p.need("name", "invalid_name").strip(":")
        record = self._find_message(channel, p.need("timestamp", "no_item_specified"))
        if record is None:
            raise _ApiError("message_not_found")
        reactions: list[JSON] = record.get("reactions") or []
        reaction = next((r for r in reactions if r["name"] == name), None)
        if reaction is None or self.bot_user_id not in reaction["users"]:
            raise _ApiError("no_reaction")
        reaction["users"].remove(self.bot_user_id)
        reaction["count"] -= 1
        if not reaction["users"]:
            reactions.remove(reaction)
        return {"ok": True}

    def _conversations_info(self, p: _Params) -> JSON:
        channel = p.need("channel", "channel_not_found")
        if not _CHANNEL_ID.fullmatch(channel):
            raise _ApiError("channel_not_found")
        state = self._channel(channel)
        if not state.member and not channel.startswith("C"):
            raise _ApiError("channel_not_found")
        created = 1_700_000_000
        if channel.startswith("D"):
            info: JSON = {
                "id": channel,
                "created": created,
                "is_im": True,
                "is_org_shared": False,
                "user": state.user or "UALICE",
                "is_user_deleted": False,
                "priority": 0,
            }
        else:
            name = self._channel_name(channel)
            info = {
                "id": channel,
                "name": name,
                "name_normalized": name,
                "created": created,
                "creator": "UALICE",
                "is_channel": channel.startswith("C"),
                "is_group": channel.startswith("G"),
                "is_im": False,
                "is_mpim": False,
                "is_private": not channel.startswith("C"),
                "is_archived": state.archived,
                "is_general": name == "general",
                "is_shared": False,
                "is_ext_shared": False,
                "is_org_shared": False,
                "is_member": state.member,
                "topic": {"value": "", "creator": "", "last_set": 0},
                "purpose": {"value": "", "creator": "", "last_set": 0},
            }
        return {"ok": True, "channel": info}

    def _conversations_open(self, p: _Params) -> JSON:
        existing = p.string("channel")
        if existing:
            return {"ok": True, "channel": {"id": existing}}
        users = [u.strip() for u in (p.need("users", "users_list_not_supplied")).split(",") if u.strip()]
        if not all(_USER_ID.fullmatch(u) for u in users):
            raise _ApiError("user_not_found")
        if len(users) == 1:
            channel = self._open_dm(users[0])
        else:
            channel = (
                "G" + hashlib.sha1(",".join(sorted(users)).encode(), usedforsecurity=False).hexdigest()[:10]
            )
            channel = channel.upper()
            self._channels.setdefault(channel, _Channel(name="mpdm-" + "--".join(u.lower() for u in users)))
        return {"ok": True, "no_op": False, "already_open": False, "channel": {"id": channel}}

    def _conversations_history(self, p: _Params) -> JSON:
        channel = p.need("channel", "channel_not_found")
        items = [
            self._public_message(m)
            for m in self.messages
            if m["channel"] == channel
            and not m.get("deleted")
            and (not m.get("thread_ts") or m["thread_ts"] == m["ts"])
        ]
        items.reverse()
        return {"ok": True, "messages": items, "has_more": False}

    def _conversations_replies(self, p: _Params) -> JSON:
        channel = p.need("channel", "channel_not_found")
        ts = p.need("ts", "thread_not_found")
        items = [self._public_message(m) for m in self.thread(channel, ts) if not m.get("deleted")]
        if not items:
            raise _ApiError("thread_not_found")
        return {"ok": True, "messages": items, "has_more": False}

    def _users_info(self, p: _Params) -> JSON:
        user_id = p.need("user", "user_not_found")
        if not _USER_ID.fullmatch(user_id):
            raise _ApiError("user_not_found")
        name = self._user_name(user_id)
        overrides = dict(self._users.get(user_id, {}))
        real_name = str(overrides.pop("real_name", name.title()))
        user: JSON = {
            "id": user_id,
            "team_id": self.team_id,
            "name": name,
            "deleted": False,
            "real_name": real_name,
            "tz": "Europe/London",
            "tz_label": "Greenwich Mean Time",
            "tz_offset": 0,
            "is_admin": False,
            "is_owner": False,
            "is_bot": user_id == self.bot_user_id,
            "is_app_user": False,
            "profile": {
                "display_name": name,
                "real_name": real_name,
                "image_72": f"{self.base_url}/avatars/{user_id}_72.png",
            },
        }
        user.update(overrides)
        return {"ok": True, "user": user}

    def _new_view(self, view: Any, *, view_id: str | None = None) -> JSON:
        if not isinstance(view, dict) or "type" not in view:
            raise _ApiError("invalid_arguments")
        view_id = view_id or _new_id("V")
        stored: JSON = {
            "id": view_id,
            "team_id": self.team_id,
            "app_id": self.api_app_id,
            "bot_id": self.bot_id,
            "app_installed_team_id": self.team_id,
            "blocks": [],
            "private_metadata": "",
            "callback_id": "",
            "external_id": "",
            "state": {"values": {}},
            "hash": uuid.uuid4().hex[:16],
            "clear_on_close": False,
            "notify_on_close": False,
            "root_view_id": view_id,
            "previous_view_id": None,
            **view,
        }
        self.views[view_id] = stored
        return stored

    def _views_open(self, p: _Params) -> JSON:
        p.need("trigger_id", "invalid_trigger_id")
        return {"ok": True, "view": self._new_view(p.parsed("view"))}

    def _views_update(self, p: _Params) -> JSON:
        view_id = p.string("view_id")
        external_id = p.string("external_id")
        if view_id is None and external_id is not None:
            view_id = next((k for k, v in self.views.items() if v.get("external_id") == external_id), None)
        if view_id is None or view_id not in self.views:
            raise _ApiError("not_found")
        expected = p.string("hash")
        if expected is not None and expected != self.views[view_id]["hash"]:
            raise _ApiError("hash_conflict")
        return {"ok": True, "view": self._new_view(p.parsed("view"), view_id=view_id)}

    def _views_publish(self, p: _Params) -> JSON:
        user_id = p.need("user_id", "invalid_arguments")
        view = p.parsed("view")
        if isinstance(view, dict) and view.get("type") != "home":
            raise _ApiError("invalid_arguments")
        home_id = "VHOME" + user_id[1:]
        stored = self._new_view(view, view_id=home_id)
        stored["user_id"] = user_id
        return {"ok": True, "view": stored}

    def _files_get_upload_url(self, p: _Params) -> JSON:
        filename = p.need("filename", "invalid_arguments")
        length = p.need("length", "invalid_arguments")
        if not length.isdigit() or int(length) <= 0:
            raise _ApiError("invalid_arguments")
        alt_txt = p.string("alt_txt")
        if alt_txt is not None and len(alt_txt) > 1000:
            raise _ApiError("alt_txt_too_large")
        file_id = _new_id("F")
        self._pending_uploads[file_id] = _PendingUpload(file_id, filename, int(length), alt_txt)
        return {"ok": True, "upload_url": f"{self.base_url}/upload/{file_id}", "file_id": file_id}

    def _files_complete_upload(self, p: _Params) -> JSON:
        entries = p.parsed("files")
        if not isinstance(entries, list) or not entries:
            raise _ApiError("invalid_arguments")
        channels: list[str] = []
        if p.string("channel_id"):
            channels.append(str(p.string("channel_id")))
        for extra in (p.string("channels") or "").split(","):
            if extra.strip() and extra.strip() not in channels:
                channels.append(extra.strip())
        thread_ts = p.string("thread_ts")
        if thread_ts is not None and len(channels) != 1:
            raise _ApiError("invalid_arguments")
        for channel in channels:
            self._check_writable(channel)
        pendings: list[tuple[_PendingUpload, str]] = []
        for entry in entries:
            if not isinstance(entry, dict) or not entry.get("id"):
                raise _ApiError("invalid_arguments")
            pending = self._pending_uploads.get(str(entry["id"]))
            if pending is None or pending.data is None:
                raise _ApiError("file_not_found")
            pendings.append((pending, str(entry.get("title") or pending.filename)))

        initial_comment = p.string("initial_comment")
        share = bool(channels) and not p.never_share
        file_objects: list[JSON] = []
        stored_files: list[_StoredFile] = []
        for pending, title in pendings:
            del self._pending_uploads[pending.file_id]
            data = pending.data or b""
            mimetype = _guess_mimetype(pending.filename, data)
            obj = self._file_object(
                pending.file_id,
                name=pending.filename,
                title=title,
                mimetype=mimetype,
                data=data,
                user=self.bot_user_id,
            )
            if pending.alt_txt:
                obj["alt_txt"] = pending.alt_txt
            stored = _StoredFile(obj=obj, data=data)
            self._files[pending.file_id] = stored
            stored_files.append(stored)
            file_objects.append(self._file_with_shares(stored, now=time.time()))

        message_ts: dict[str, str] = {}
        if share:
            visible_at = time.time() + self.share_delay_s
            for channel in channels:
                blocks = None if initial_comment else p.parsed("blocks")
                record = self._bot_message(
                    channel,
                    text=initial_comment or "",
                    blocks=blocks,
                    thread_ts=thread_ts,
                    via="files.completeUploadExternal",
                    files=[json.loads(json.dumps(f)) for f in file_objects],
                )
                record["upload"] = True
                self.messages.append(record)
                message_ts[channel] = record["ts"]
                for stored in stored_files:
                    stored.shares.append(_Share(channel, record["ts"], thread_ts, visible_at))

        for (pending, title), _stored in zip(pendings, stored_files, strict=True):
            self.uploads.append(
                Upload(
                    file_id=pending.file_id,
                    filename=pending.filename,
                    title=title,
                    data=pending.data or b"",
                    channel=channels[0] if channels else None,
                    thread_ts=thread_ts,
                    initial_comment=initial_comment,
                    shared=share,
                    channels=tuple(channels),
                    message_ts=message_ts.get(channels[0]) if channels else None,
                    alt_txt=pending.alt_txt,
                )
            )
        return {"ok": True, "files": file_objects}

    def _files_info(self, p: _Params) -> JSON:
        file_id = p.need("file", "invalid_arguments")
        stored = self._files.get(file_id)
        if stored is None:
            raise _ApiError("file_not_found")
        return {
            "ok": True,
            "file": self._file_with_shares(stored, now=time.time()),
            "comments": [],
            "response_metadata": {"next_cursor": ""},
        }
