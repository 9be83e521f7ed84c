"""``/banana``: validated and queued before the ack, which carries the private answer."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from slack_bolt import Ack, App

from bot import messages

if TYPE_CHECKING:
    from handlers import Deps

log = logging.getLogger(__name__)


def register(app: App, deps: Deps) -> None:
    @app.command("/banana")
    def banana(ack: Ack, command: dict[str, Any]) -> None:
        try:
            reply = (
                deps.intake.command(
                    team_id=str(command["team_id"]),
                    channel_id=str(command["channel_id"]),
                    user_id=str(command["user_id"]),
                    text=str(command.get("text") or ""),
                    response_url=command.get("response_url"),
                ).reply
                or ""
            )
        except Exception as err:  # the user must hear something within 3 s, whatever broke
            log.exception("could not queue /banana")
            reply = messages.for_error(err)
        ack(response_type="ephemeral", text=reply)
