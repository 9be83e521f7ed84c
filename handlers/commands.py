"""``/banana``: validated and queued before the ack, which carries the private answer."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from slack_bolt import Ack, App, BoltContext

from bot import messages
from bot.payloads import parse_command

if TYPE_CHECKING:
    from handlers import Deps

log = logging.getLogger(__name__)


def register(app: App, deps: Deps) -> None:
    @app.command("/banana")
    def banana(ack: Ack, command: dict[str, Any], context: BoltContext) -> None:
        parsed = parse_command(command, team_id=context.team_id)
        if parsed is None:
            log.warning("ignored a /banana whose ids don't look like Slack's")
            ack(response_type="ephemeral", text=messages.NOT_UNDERSTOOD)
            return
        try:
            reply = deps.intake.command(parsed).reply or ""
        except Exception as err:  # the user must hear something within 3 s, whatever broke
            log.exception("could not queue /banana")
            reply = messages.for_error(err)
        ack(response_type="ephemeral", text=reply)
