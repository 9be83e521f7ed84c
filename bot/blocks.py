"""Block Kit builders. Pure: dicts in, dicts out."""

from __future__ import annotations

from typing import Any

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
