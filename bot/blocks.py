"""Block Kit builders. Pure: dicts in, dicts out."""

from __future__ import annotations

from typing import Any

from bot.mrkdwn import escape, quote

EDIT_SHORTCUT = "edit_with_banana"
EDIT_MODAL = "banana_edit_modal"
INSTRUCTION_BLOCK = "instruction"
INSTRUCTION_ACTION = "text"


def _text(text: str) -> dict[str, str]:
    return {"type": "plain_text", "text": text}


def edit_modal(*, private_metadata: str, image_count: int) -> dict[str, Any]:
    """The modal that "Edit with Nano Banana" opens: one instruction box; options can be typed inline."""
    images = "this image" if image_count == 1 else f"these {image_count} images"
    return {
        "type": "modal",
        "callback_id": EDIT_MODAL,
        "title": _text("Nano Banana"),
        "submit": _text("Make it"),
        "close": _text("Cancel"),
        "private_metadata": private_metadata,
        "blocks": [
            {
                "type": "input",
                "block_id": INSTRUCTION_BLOCK,
                "label": _text(f"What should I do with {images}?"),
                "element": {
                    "type": "plain_text_input",
                    "action_id": INSTRUCTION_ACTION,
                    "multiline": True,
                    "max_length": 3000,
                    "placeholder": _text("put it on a billboard at night --ar 16:9"),
                },
            },
            {
                "type": "context",
                "elements": [
                    {
                        "type": "mrkdwn",
                        "text": "The result is posted in the message's thread; replies there refine it. "
                        "Options: `--model`, `--ar`, `--size`.",
                    }
                ],
            },
        ],
    }


VIEW_SETTINGS = "banana_view_settings"
CARD_INSTRUCTION_CHARS = 280  # the instruction on a card is shortened to this; "View settings" has it whole


def button(text: str, action_id: str, value: str) -> dict[str, Any]:
    return {"type": "button", "text": _text(text), "action_id": action_id, "value": value}


def result_card(
    *, job_id: int, number: int, parent: int | None, asked_by: str, instruction: str, summary: str
) -> tuple[str, list[dict[str, Any]]]:
    """The card posted under a result once its image shows in the thread: where it came from (who asked,
    the instruction, model, shape and size, the result it was made from) and its buttons, whose values
    carry the job's id only (everything else is read from the database when one is pressed). Returns the
    notification text and the blocks; every text that came from a person is escaped."""
    short = (
        instruction
        if len(instruction) <= CARD_INSTRUCTION_CHARS
        else instruction[: CARD_INSTRUCTION_CHARS - 1] + "…"
    )
    origin = f" · from result {parent}" if parent else ""
    context = f"🍌 *Result {number}*{origin} · asked by {escape(asked_by)} · {escape(summary)}"
    blocks: list[dict[str, Any]] = [{"type": "context", "elements": [{"type": "mrkdwn", "text": context}]}]
    if short.strip():
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": quote(short)}})
    blocks.append(
        {
            "type": "actions",
            "block_id": f"banana_result_{job_id}",
            "elements": [button("View settings", VIEW_SETTINGS, str(job_id))],
        }
    )
    return f"Result {number}: {escape(short)}" if short.strip() else f"Result {number}", blocks
