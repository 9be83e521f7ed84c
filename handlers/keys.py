"""``/banana key`` (admins, OAuth mode): the workspace's own Gemini key, typed into a modal, tried with one
free call to Gemini and saved sealed (``bot.workspace_keys``); ``/banana key remove`` goes back to the
operator's key."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from slack_bolt import Ack, App, BoltContext, Respond
from slack_sdk import WebClient

from bot import blocks, messages
from bot.payloads import Command, is_slack_id
from bot.workspace_keys import KeyRequest

if TYPE_CHECKING:
    from handlers import Deps

log = logging.getLogger(__name__)


def key_command(
    deps: Deps, command: Command, request: KeyRequest, client: WebClient, respond: Respond, trigger_id: str
) -> None:
    """After the ack: only an admin gets the modal (or removes the key); everyone else is told why."""

    def privately(text: str) -> None:
        respond(text=text, response_type="ephemeral", replace_original=False)

    if not deps.reports.is_admin(command.user_id, client):
        privately(messages.KEY_ADMINS_ONLY)
    elif request == "remove":
        privately(messages.KEY_REMOVED if deps.keys.remove(command.team_id) else messages.KEY_NONE)
    else:
        client.views_open(
            trigger_id=trigger_id, view=blocks.key_modal(status=deps.keys.status(command.team_id))
        )


def register(app: App, deps: Deps) -> None:
    @app.view(blocks.KEY_MODAL)
    def submit(ack: Ack, body: dict[str, Any], context: BoltContext, client: WebClient) -> None:
        team, user = context.team_id, (body.get("user") or {}).get("id")
        if not (is_slack_id(team) and is_slack_id(user)):
            ack(response_action="errors", errors={blocks.KEY_BLOCK: messages.NOT_UNDERSTOOD})
            return
        values = body["view"]["state"]["values"]
        key = str((values.get(blocks.KEY_BLOCK) or {}).get(blocks.KEY_ACTION, {}).get("value") or "")
        if not deps.reports.is_admin(str(user), client):
            ack(
                response_action="errors",
                errors={blocks.KEY_BLOCK: messages.under_field(messages.KEY_ADMINS_ONLY)},
            )
            return
        problem = deps.keys.offer(str(team), key, set_by=str(user))
        if problem is not None:
            ack(response_action="errors", errors={blocks.KEY_BLOCK: messages.under_field(problem)})
            return
        log.info("workspace %s saved a Gemini key of its own", team)
        ack(response_action="update", view=blocks.notice_modal(messages.KEY_SAVED))
