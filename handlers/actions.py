"""The result card's buttons (``block_actions``): acknowledged at once, answered privately after."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from slack_bolt import Ack, App, BoltContext, Respond

from bot.blocks import VIEW_SETTINGS

if TYPE_CHECKING:
    from handlers import Deps


def register(app: App, deps: Deps) -> None:
    @app.action(VIEW_SETTINGS)
    def view_settings(ack: Ack, action: dict[str, Any], context: BoltContext, respond: Respond) -> None:
        ack()
        # The installing workspace (``authorizations``), as for every entry point: a card of another
        # workspace's finds nothing here.
        team_id = str(context.team_id or "")
        value = str(action.get("value") or "")

        def answer() -> None:
            text = deps.cards.settings(team_id=team_id, value=value)
            respond(text=text, response_type="ephemeral", replace_original=False)

        deps.after_ack(answer)
