"""The result card's buttons (``block_actions``). Each is acknowledged at once; a paid one's job is queued
before the acknowledgement (like every request), and whatever the presser is told comes privately after."""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any

from slack_bolt import Ack, App, BoltContext, Respond
from slack_sdk import WebClient

from bot import messages
from bot.blocks import DELETE, FINALIZE, REGENERATE, VARIATIONS, VIEW_SETTINGS
from bot.intake import Press, PressKind

if TYPE_CHECKING:
    from collections.abc import Callable

    from handlers import Deps

log = logging.getLogger(__name__)

PAID: dict[str, PressKind] = {
    REGENERATE: "regenerate",
    VARIATIONS: "variation",
    **dict.fromkeys(FINALIZE, "finalize"),
}


def register(app: App, deps: Deps) -> None:
    def privately(respond: Respond, text: Callable[[], str]) -> None:
        """After the ack: ``text()`` as a private note to the presser, under the card."""
        deps.after_ack(lambda: respond(text=text(), response_type="ephemeral", replace_original=False))

    # The installing workspace (``context.team_id``, from ``authorizations``), as for every entry point:
    # a card of another workspace's finds nothing here.

    @app.action(VIEW_SETTINGS)
    def view_settings(ack: Ack, action: dict[str, Any], context: BoltContext, respond: Respond) -> None:
        ack()
        team_id, value = str(context.team_id or ""), str(action.get("value") or "")
        privately(respond, lambda: deps.cards.settings(team_id=team_id, value=value))

    @app.action(re.compile(f"^(?:{'|'.join(map(re.escape, PAID))})$"))
    def paid(ack: Ack, action: dict[str, Any], context: BoltContext, respond: Respond) -> None:
        action_id = str(action["action_id"])
        press = Press(
            team_id=str(context.team_id or ""),
            user_id=str(context.user_id or ""),
            kind=PAID[action_id],
            value=str(action.get("value") or ""),
            size=FINALIZE.get(action_id),
        )
        try:
            reply = deps.intake.press(press).reply
        except Exception as err:  # the presser must hear something, whatever broke (as for /banana)
            log.exception("could not queue a press of %s", action_id)
            reply = messages.for_error(err)
        ack()
        if reply:
            said = reply
            privately(respond, lambda: said)

    @app.action(DELETE)
    def delete(
        ack: Ack, action: dict[str, Any], context: BoltContext, respond: Respond, client: WebClient
    ) -> None:
        ack()
        team_id, user_id = str(context.team_id or ""), str(context.user_id or "")
        value = str(action.get("value") or "")
        privately(
            respond, lambda: deps.cards.delete(team_id=team_id, user_id=user_id, value=value, client=client)
        )
