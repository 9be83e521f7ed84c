"""What the stand-in Slack recorded of the app, as tests read it: calls, uploads, downloads, deliveries."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    pass


JSON = dict[str, Any]


def _maybe_json(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in ("[", "{"):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


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


def live_markup(text: str) -> list[str]:
    """What Slack would render as live in a mrkdwn ``text``: each ``<…>`` entity (``@U123`` mentions,
    ``!channel``/``!here``/``!everyone`` broadcasts, ``#C123`` channels, ``https://…|label`` links).
    Escaped text (``&lt;!channel&gt;``) is shown as typed and is not in the list."""
    return re.findall(r"<([^<>]*)>", text)
