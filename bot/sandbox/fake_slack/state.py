"""The stand-in Slack's workspace: channels, users, messages, the records, and waiting for the app.

``SlackState`` is the base the other parts build on; ``Hold`` and the fault records live here too.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, TypeVar

import httpx

from bot.sandbox._http import ServerThread

if TYPE_CHECKING:
    from websockets.sync.server import Server, ServerConnection

from bot.sandbox.fake_slack.records import JSON, ApiCall, Delivery, Download, Response, Upload
from bot.sandbox.fake_slack.wire import (
    _CHANNEL_ID,
    _USER_ID,
    _ApiError,
    _default_channel_name,
    _Params,
    _TsClock,
)

T = TypeVar("T")


@dataclass
class _Fault:
    error: str
    http_status: int
    retry_after: float | None
    never_share: bool
    lose_answer: str | None = None  # "5xx" or "drop": the call takes effect, then the answer is lost


@dataclass
class _Channel:
    member: bool = True
    archived: bool = False
    name: str | None = None
    user: str | None = None  # the other party of an im
    team: str | None = None  # the workspace it belongs to (None: the fake's first workspace)


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


@dataclass
class _AckWaiter:
    event: threading.Event = field(default_factory=threading.Event)
    payload: Any = None
    has_payload: bool = False


class Hold:
    """Responses of one Web API method held back: see ``FakeSlack.hold``.

    The call is recorded and carried out (its effects are visible) as it arrives; only the HTTP response
    waits until ``release()`` (or the end of the ``with`` block, or ``FakeSlack.stop``)."""

    def __init__(self, owner: SlackState, method: str) -> None:
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


class SlackState:
    """The workspace, the records and the waiting; the other parts of ``FakeSlack`` build on it.

    ``FakeSlack`` puts the parts together: it starts the two servers and fills the Web API method table.
    """

    _server: ServerThread
    _external: ServerThread
    _methods: dict[str, Callable[[_Params], JSON]]

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
        client_id: str = "1111.2222",
        client_secret: str = "sandbox-client-secret",  # noqa: S107
    ) -> None:
        self.bot_token = bot_token
        self.client_id = client_id
        self.client_secret = client_secret
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
        #: Several web processes behind a load balancer: HTTP-mode deliveries go to each in turn (and to
        #: ``request_url`` while this is empty).
        self.request_urls: list[str] = []
        self._deliveries_sent = 0
        #: HTTP timeout for deliveries, and how long Socket Mode deliveries wait for the ack.
        self.delivery_timeout: float = 10.0
        #: Seconds before a completed upload's share shows in ``files.info`` (0 = at once).
        self.share_delay_s: float = 0.0
        #: Seconds each Web API call takes before Slack answers (a real round trip is 50-150 ms).
        self.api_latency_s: float = 0.0

        self.calls: list[ApiCall] = []
        self.messages: list[dict[str, Any]] = []
        self.ephemerals: list[dict[str, Any]] = []
        self.uploads: list[Upload] = []
        #: Files removed with ``files.delete`` (their ids), in order.
        self.deleted_files: list[str] = []
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
        # Workspaces (``installs``): each live bot token's workspace, tokens revoked, codes not yet used.
        self._tokens: dict[str, str] = {bot_token: team_id}
        self._revoked: set[str] = set()
        self._codes: dict[str, tuple[str, str]] = {}
        self._team_names: dict[str, str] = {team_id: "Sandbox"}

        self._http: httpx.Client | None = None

        self._ws_server: Server | None = None
        self._ws_thread: threading.Thread | None = None
        self._ws_url = ""
        self._ws_connections: list[ServerConnection] = []
        self._acks: dict[str, _AckWaiter] = {}

    def start(self) -> Self:
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

    def __enter__(self) -> Self:
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

    def set_channel(
        self,
        channel_id: str,
        *,
        member: bool = True,
        archived: bool = False,
        name: str | None = None,
        team: str | None = None,
    ) -> None:
        """Declare the bot's membership and the channel's state. Unknown channels: member, not archived,
        in the fake's first workspace (``team``: another one's; its messages and commands come from there)."""
        with self._cond:
            state = self._channels.setdefault(channel_id, _Channel())
            state.member, state.archived = member, archived
            if name is not None:
                state.name = name
            if team is not None:
                state.team = team

    def team_of(self, channel_id: str) -> str:
        """The workspace ``channel_id`` belongs to."""
        with self._cond:
            state = self._channels.get(channel_id)
        return (state.team if state is not None else None) or self.team_id

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

    def _find_message(self, channel: str, ts: str | None) -> dict[str, Any] | None:
        if ts is None:
            return None
        return next((m for m in reversed(self.messages) if m["channel"] == channel and m["ts"] == ts), None)

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

    def _public_message(self, record: JSON, *, include_metadata: bool = False) -> JSON:
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
        if include_metadata and record.get("metadata") is not None:
            message["metadata"] = record["metadata"]
        message["bot_profile"] = {"id": self.bot_id, "app_id": self.api_app_id, "name": "Nano Banana"}
        if record.get("reactions"):
            message["reactions"] = record["reactions"]
        return message
