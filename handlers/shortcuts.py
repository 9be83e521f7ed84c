""" "Edit with Nano Banana" (message shortcut): a modal asks for the instruction; its submission queues a job
with the message's images as references, in that message's thread."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from slack_bolt import Ack, App, BoltContext, Respond
from slack_sdk import WebClient

from bot import blocks, messages
from bot.payloads import parse_edit_submission, parse_shortcut

if TYPE_CHECKING:
    from handlers import Deps

log = logging.getLogger(__name__)


def register(app: App, deps: Deps) -> None:
    @app.shortcut(blocks.EDIT_SHORTCUT)
    def open_modal(ack: Ack, shortcut: dict[str, Any], client: WebClient, respond: Respond) -> None:
        ack()
        target = parse_shortcut(shortcut)
        if target is None:
            deps.after_ack(
                lambda: respond(
                    response_type="ephemeral", replace_original=False, text=messages.NO_IMAGES_TO_EDIT
                )
            )
            return
        # The trigger id lives 3 s: the modal opens right after the ack, not in a worker. Only file ids
        # travel in private_metadata; the job looks the files up with files.info.
        view = blocks.edit_modal(private_metadata=target.to_metadata(), image_count=len(target.file_ids))
        deps.after_ack(lambda: client.views_open(trigger_id=shortcut["trigger_id"], view=view))

    @app.view(blocks.EDIT_MODAL)
    def submit(ack: Ack, body: dict[str, Any], context: BoltContext) -> None:
        submission = parse_edit_submission(
            body,
            block_id=blocks.INSTRUCTION_BLOCK,
            action_id=blocks.INSTRUCTION_ACTION,
            team_id=context.team_id,  # view.app_installed_team_id when the modal came from a shared channel
        )
        if submission is None:
            ack(response_action="errors", errors={blocks.INSTRUCTION_BLOCK: messages.NOT_UNDERSTOOD})
            return
        outcome = deps.intake.edit(submission)
        if outcome.reply:
            ack(response_action="errors", errors={blocks.INSTRUCTION_BLOCK: outcome.reply})
            return
        ack()
