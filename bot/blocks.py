"""Block Kit builders. Pure: dicts in, dicts out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bot.mrkdwn import escape

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


KEY_MODAL = "banana_key_modal"
KEY_BLOCK = "gemini_key"
KEY_ACTION = "key"


def key_modal(*, status: str) -> dict[str, Any]:
    """``/banana key`` (admins): the workspace's own Gemini key, typed once and never shown again.
    ``status``: what is in use now (mrkdwn)."""
    return {
        "type": "modal",
        "callback_id": KEY_MODAL,
        "title": _text("Workspace Gemini key"),
        "submit": _text("Check and save"),
        "close": _text("Cancel"),
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": status}},
            {
                "type": "input",
                "block_id": KEY_BLOCK,
                "label": _text("Gemini API key"),
                "element": {
                    "type": "plain_text_input",
                    "action_id": KEY_ACTION,
                    "max_length": 200,
                    "placeholder": _text("AIza…"),
                },
            },
            {
                "type": "context",
                "elements": [
                    {
                        "type": "mrkdwn",
                        "text": "It is tried with one free call to Gemini first, then stored encrypted and "
                        "never shown again. This workspace's images are then paid with it.",
                    }
                ],
            },
        ],
    }


def notice_modal(text: str) -> dict[str, Any]:
    """A modal that only says ``text`` (mrkdwn), e.g. once a key is saved."""
    return {
        "type": "modal",
        "title": _text("Workspace Gemini key"),
        "close": _text("Done"),
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text}}],
    }


VIEW_SETTINGS = "banana_view_settings"
REGENERATE = "banana_regenerate"
VARIATIONS = "banana_variations"
FINALIZE = {"banana_finalize_2k": "2K", "banana_finalize_4k": "4K"}  # action id → the size it renders
DELETE = "banana_delete"
CARD_INSTRUCTION_CHARS = 280  # the instruction on a card is shortened to this; "View settings" has it whole


@dataclass(frozen=True)
class CardCosts:
    """What a card's paid buttons make and cost (estimated micro-dollars; None: the price table doesn't
    know the model). ``finalize``: size → cost."""

    variations: int
    regenerate: int | None
    variation_each: int | None
    finalize: dict[str, int | None]


def button(text: str, action_id: str, value: str, *, style: str | None = None) -> dict[str, Any]:
    element: dict[str, Any] = {"type": "button", "text": _text(text), "action_id": action_id, "value": value}
    if style:
        element["style"] = style
    return element


def priced(label: str, images: int, micros: int | None) -> str:
    """A paid button's text: what it is, how many images, and roughly what they cost."""
    cost = f" · ~{cents_up(micros * images)}" if micros is not None else ""
    return f"{label} ×{images}{cost}"


def cents_up(micros: int) -> str:
    """Dollars rounded up to the cent, never below one: a button promises no less than it costs."""
    cents = max(1, -(-micros // 10_000))
    return f"${cents // 100:,}.{cents % 100:02d}"


def _buttons(job_id: int, costs: CardCosts) -> list[dict[str, Any]]:
    value = str(job_id)
    confirm = {
        "title": _text("Delete this result?"),
        "text": _text("Its image, this card and the stored copy are removed for everyone."),
        "confirm": _text("Delete"),
        "deny": _text("Keep it"),
        "style": "danger",
    }
    return [
        button(priced("Regenerate", 1, costs.regenerate), REGENERATE, value),
        button(priced("Variations", costs.variations, costs.variation_each), VARIATIONS, value),
        *(
            button(priced(f"Finalize {size}", 1, costs.finalize.get(size)), action, value)
            for action, size in FINALIZE.items()
        ),
        button("View settings", VIEW_SETTINGS, value),
        {**button("Delete", DELETE, value, style="danger"), "confirm": confirm},
    ]


def result_card(
    *,
    job_id: int,
    number: int,
    origin: str | None,
    asked_by: str,
    instruction: str,
    summary: str,
    costs: CardCosts,
) -> tuple[str, list[dict[str, Any]]]:
    """The card posted under a result once its image shows in the thread: where it came from (who asked,
    the instruction, model, shape and size, the result it was made from: ``origin``) and its buttons,
    whose values carry the job's id only (everything else is read from the database when one is
    pressed); the paid ones say what they make and cost (``costs``). Returns the notification text and
    the blocks; every text that came from a person is escaped."""
    short = (
        instruction
        if len(instruction) <= CARD_INSTRUCTION_CHARS
        else instruction[: CARD_INSTRUCTION_CHARS - 1] + "…"
    )
    made = f" · {origin}" if origin else ""
    context = f"🍌 *Result {number}*{made} · asked by {escape(asked_by)} · {escape(summary)}"
    provenance = [{"type": "mrkdwn", "text": context}]
    if short.strip():
        provenance.append({"type": "mrkdwn", "text": f"“{escape(short)}”"})
    blocks: list[dict[str, Any]] = [{"type": "context", "elements": provenance}]
    blocks.append(
        {"type": "actions", "block_id": f"banana_result_{job_id}", "elements": _buttons(job_id, costs)}
    )
    return f"Result {number}: {escape(short)}" if short.strip() else f"Result {number}", blocks
