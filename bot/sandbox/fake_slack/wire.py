"""Slack's wire details for the stand-in: ids, timestamps, API arguments and errors, the HTTP handler.

File types, Block Kit text for user messages and multipart bodies are read and written here too.
"""

from __future__ import annotations

import email.parser
import email.policy
import hashlib
import io
import json
import re
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from bot.sandbox._http import QuietHandler
from bot.sandbox.fake_slack.records import JSON

if TYPE_CHECKING:
    from bot.sandbox.fake_slack.state import SlackState


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

    def __init__(
        self,
        values: dict[str, Any],
        *,
        never_share: bool = False,
        team: str = "",
        basic_auth: tuple[str, str] | None = None,
    ) -> None:
        """``team``: the workspace of the call's token; ``basic_auth``: the client's id and secret, when
        sent as HTTP Basic credentials (``oauth.v2.access``)."""
        self.values = values
        self.never_share = never_share
        self.team = team
        self.basic_auth = basic_auth

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


DROP_CONNECTION = _Reply(0, b"", "")  # the sentinel: close the connection with no answer at all


def _make_handler(owner: SlackState, route: Callable[[_Request], _Reply]) -> type[QuietHandler]:
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
            if reply is DROP_CONNECTION:
                self.reset_connection()
                return
            self.send_bytes(reply.status, reply.body, reply.content_type, reply.headers)

        do_GET = _serve
        do_POST = _serve
        do_HEAD = _serve

    Handler.__name__ = f"FakeSlackHandler_{id(owner):x}"
    return Handler
