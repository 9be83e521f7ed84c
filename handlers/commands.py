"""``/banana``: validated and queued before the ack, which carries the private answer."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

from slack_bolt import Ack, App, BoltRequest, BoltResponse
from slack_bolt.request.internals import build_context

from bot import messages
from bot.intake import Intake

log = logging.getLogger(__name__)


def register(app: App, intake: Intake) -> None:
    @app.middleware
    def read_the_whole_form(req: BoltRequest, next: Callable[[], BoltResponse]) -> None:
        """Bolt 1.30 reads any form body that contains the text "payload" anywhere as an interaction
        (``payload=<json>``) and, finding no such field, as empty: ``/banana a rocket payload bay``, or any
        command from a channel named ``#payload-…``, would be dropped without a word. Read it again."""
        if req.mode == "http" and not req.body and "payload" in req.raw_body:
            form = dict(parse_qsl(req.raw_body, keep_blank_values=True))
            if "command" in form and "payload" not in form:
                req.body = form
                build_context(req.context, form)
        next()

    @app.command("/banana")
    def banana(ack: Ack, command: dict[str, Any]) -> None:
        try:
            reply = intake.command(
                team_id=str(command["team_id"]),
                channel_id=str(command["channel_id"]),
                user_id=str(command["user_id"]),
                text=str(command.get("text") or ""),
                response_url=command.get("response_url"),
            )
        except Exception as err:  # the user must hear something within 3 s, whatever broke
            log.exception("could not queue /banana")
            reply = messages.for_error(err)
        ack(response_type="ephemeral", text=reply)
