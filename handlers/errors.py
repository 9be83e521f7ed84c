"""The one Bolt error handler.

Unknown commands, actions and events get a 200 (not Bolt's 404, which makes Slack retry events and leaves
Socket Mode envelopes unacknowledged); a listener that raised gets a 500 and an ERROR line.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import App, BoltResponse
from slack_bolt.error import BoltUnhandledRequestError

log = logging.getLogger(__name__)


def register(app: App) -> None:
    @app.error
    def on_error(error: Exception, body: dict[str, Any]) -> BoltResponse:
        if isinstance(error, BoltUnhandledRequestError):
            log.info(
                "ignored an unhandled request (%s)", body.get("type") or body.get("command") or "unknown"
            )
            return BoltResponse(status=200, body="")
        log.error("listener failed: %s", type(error).__name__, exc_info=error)
        return BoltResponse(status=500, body="")
