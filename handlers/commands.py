"""``/banana``: validated and queued before the ack, which carries the private answer."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from slack_bolt import Ack, App, BoltContext, Respond
from slack_sdk import WebClient

from bot import messages
from bot.payloads import parse_command
from bot.reports import usage_request
from bot.workspace_keys import key_request
from handlers.keys import key_command

if TYPE_CHECKING:
    from handlers import Deps

log = logging.getLogger(__name__)


def register(app: App, deps: Deps) -> None:
    @app.command("/banana")
    def banana(
        ack: Ack, command: dict[str, Any], context: BoltContext, client: WebClient, respond: Respond
    ) -> None:
        parsed = parse_command(command, team_id=context.team_id)
        if parsed is None:
            log.warning("ignored a /banana whose ids don't look like Slack's")
            ack(response_type="ephemeral", text=messages.NOT_UNDERSTOOD)
            return
        key = key_request(parsed.text)
        if key is not None:  # /banana key [remove]: admins only, answered after the ack
            if not deps.keys.enabled:
                ack(response_type="ephemeral", text=messages.KEY_NEEDS_OAUTH)
                return
            ack()
            trigger = str(command.get("trigger_id") or "")
            deps.after_ack(lambda: key_command(deps, parsed, key, client, respond, trigger))
            return
        kind = usage_request(parsed.text)
        if kind is not None:  # /banana usage [csv]: yours in the ack; an admin's part after it
            try:
                reply = deps.reports.personal(parsed)
            except Exception as err:
                log.exception("could not report usage")
                reply = messages.for_error(err)
            ack(response_type="ephemeral", text=reply)

            def privately(text: str) -> object:
                return respond(text=text, response_type="ephemeral", replace_original=False)

            deps.after_ack(lambda: deps.reports.after_ack(parsed, kind, client, privately))
            return
        try:
            reply = deps.intake.command(parsed).reply or ""
        except Exception as err:  # the user must hear something within 3 s, whatever broke
            log.exception("could not queue /banana")
            reply = messages.for_error(err)
        ack(response_type="ephemeral", text=reply)
