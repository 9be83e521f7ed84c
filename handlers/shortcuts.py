""" "Edit with Nano Banana" (message shortcut): a modal asks for the instruction; its submission queues a job
with the message's images as references, in that message's thread."""

from __future__ import annotations

import json
import logging
from typing import Any

from slack_bolt import Ack, App, Respond
from slack_sdk import WebClient

from bot import blocks, messages
from bot.intake import Intake, image_files

log = logging.getLogger(__name__)


def register(app: App, intake: Intake) -> None:
    @app.shortcut(blocks.EDIT_SHORTCUT)
    def open_modal(ack: Ack, shortcut: dict[str, Any], client: WebClient, respond: Respond) -> None:
        ack()
        message = shortcut.get("message") or {}
        images = image_files(message.get("files") or [])
        if not images:
            respond(response_type="ephemeral", replace_original=False, text=messages.NO_IMAGES_TO_EDIT)
            return
        # The trigger id lives 3 s: open the modal here, not in a worker. private_metadata holds ≤ 3000
        # characters, so only ids travel; the job looks the files up with files.info.
        metadata = {
            "channel": shortcut["channel"]["id"],
            "thread_ts": message.get("thread_ts") or message["ts"],
            "files": [f["id"] for f in images][:20],
            "response_url": shortcut.get("response_url"),
        }
        client.views_open(
            trigger_id=shortcut["trigger_id"],
            view=blocks.edit_modal(private_metadata=json.dumps(metadata), image_count=len(images)),
        )

    @app.view(blocks.EDIT_MODAL)
    def submit(ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        metadata = json.loads(view.get("private_metadata") or "{}")
        values = view["state"]["values"][blocks.INSTRUCTION_BLOCK][blocks.INSTRUCTION_ACTION]
        outcome = intake.shortcut(
            team_id=str(body["team"]["id"]),
            channel_id=str(metadata["channel"]),
            user_id=str(body["user"]["id"]),
            thread_ts=str(metadata["thread_ts"]),
            files=[{"id": file_id} for file_id in metadata.get("files", [])],
            text=str(values.get("value") or ""),
            response_url=metadata.get("response_url"),
        )
        if outcome.reply:
            ack(response_action="errors", errors={blocks.INSTRUCTION_BLOCK: outcome.reply[:150]})
            return
        ack()
