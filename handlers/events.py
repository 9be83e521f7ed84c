"""Mentions, DMs and thread replies. ``app_mention`` and ``message`` share one listener: the same message
often arrives as both, and the store keeps only the first."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from slack_bolt import App, BoltContext
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.payloads import Message, event_id_of, parse_message

if TYPE_CHECKING:
    from handlers import Deps

log = logging.getLogger(__name__)


def register(app: App, deps: Deps) -> None:
    def on_message(
        body: dict[str, Any], event: dict[str, Any], context: BoltContext, client: WebClient
    ) -> None:
        # The workspace the app is installed in (Bolt reads it from ``authorizations``), not the envelope's
        # team_id: in a Slack Connect channel that is the other workspace when one of its members writes.
        team_id = str(context.team_id or body.get("team_id") or "")
        message = parse_message(event, team_id=team_id, bot_user_id=context.bot_user_id)
        if message is None:
            return  # edits, deletions, other bots: acknowledged (no 404, so no Slack retries) and ignored
        outcome = deps.intake.message(message, event_id=event_id_of(body))
        if outcome.reply:
            reply = outcome.reply
            deps.after_ack(lambda: _tell_privately(client, message, reply))

    app.event("app_mention")(on_message)
    app.event("message")(on_message)

    # The workspace removed the app, or revoked its bot token: Slack sends these without a usable token
    # (Bolt skips its auth.test for them). Its tokens go, and its queued jobs end.
    def on_uninstalled(context: BoltContext) -> None:
        deps.workspaces.removed(str(context.team_id or ""))

    def on_tokens_revoked(event: dict[str, Any], context: BoltContext) -> None:
        if (event.get("tokens") or {}).get("bot"):
            deps.workspaces.removed(str(context.team_id or ""))

    app.event("app_uninstalled")(on_uninstalled)
    app.event("tokens_revoked")(on_tokens_revoked)


def _tell_privately(client: WebClient, message: Message, text: str) -> None:
    try:
        client.chat_postEphemeral(
            channel=message.channel_id, user=message.user_id, text=text, thread_ts=message.thread_ts
        )
    except SlackApiError as err:
        log.warning("could not tell %s: %s", message.user_id, err.response.get("error"))
