"""Every Block Kit payload the bot builds stays inside Slack's limits, whatever the person typed
(reference/slack-platform.md: 50 blocks a message, 3,000 characters a text field, 75 a button's text,
2,000 a button's value, 255 an action id)."""

from __future__ import annotations

from typing import Any

import pytest

from bot.blocks import CardCosts, cents_up, edit_modal, key_modal, notice_modal, priced, result_card
from bot.messages import KEY_SAVED, key_status, result_origin
from bot.models import utcnow

LONGEST_PROMPT = ("a very long line of a prompt " * 200)[:4000]
HOSTILE = "<!channel> <@U123> <https://evil.example|click> *bold* `code`\n" * 60


def check_limits(blocks: list[dict[str, Any]]) -> None:
    assert len(blocks) <= 50
    for block in blocks:
        assert len(str(block.get("block_id", ""))) <= 255
        texts = [block.get("text")] + [
            e for e in block.get("elements") or [] if e.get("type") in ("mrkdwn", "plain_text")
        ]
        for text in texts:
            if isinstance(text, dict):
                assert len(str(text["text"])) <= 3000, block
        for element in block.get("elements") or []:
            if element.get("type") == "button":
                assert 0 < len(element["text"]["text"]) <= 75
                assert len(str(element.get("value", ""))) <= 2000
                assert 0 < len(element["action_id"]) <= 255


@pytest.mark.parametrize("instruction", ["", "make it blue", LONGEST_PROMPT, HOSTILE])
def test_a_result_card_stays_inside_slacks_limits(instruction: str) -> None:
    text, blocks = result_card(
        job_id=2**62,
        number=10_000,
        origin=result_origin("variation", parent=9_998, source=9_999),
        asked_by="x" * 200,
        instruction=instruction,
        summary="gemini-3-pro-image-preview-0000 · 21:9 · 4K",
        costs=CardCosts(
            variations=8, regenerate=10**12, variation_each=10**12, finalize={"2K": None, "4K": 10**12}
        ),
    )
    check_limits(blocks)
    buttons = [
        e["text"]["text"] for b in blocks for e in b.get("elements") or [] if e.get("type") == "button"
    ]
    assert buttons[1] == "Variations ×8 · ~$8,000,000.00"
    assert len(text) <= 4000
    assert "<!channel>" not in text and all("<!channel>" not in str(b) for b in blocks)


def test_the_edit_modal_stays_inside_slacks_limits() -> None:
    check_limits(edit_modal(private_metadata="x" * 3000, image_count=10)["blocks"])


def test_the_key_modals_stay_inside_slacks_limits() -> None:
    """A modal's title is at most 24 characters, its buttons' 24."""
    for modal in (key_modal(status=key_status("U" + "X" * 30, utcnow())), notice_modal(KEY_SAVED)):
        check_limits(modal["blocks"])
        assert all(len(modal[k]["text"]) <= 24 for k in ("title", "submit", "close") if k in modal)


def test_paid_buttons_say_how_many_images_and_about_what_they_cost() -> None:
    assert priced("Variations", 4, 50_000) == "Variations ×4 · ~$0.20"
    assert priced("Regenerate", 1, 39_001) == "Regenerate ×1 · ~$0.04"  # rounded up: never less than it costs
    assert priced("Finalize 4K", 1, None) == "Finalize 4K ×1"  # a model the price table doesn't know
    assert cents_up(1) == "$0.01"
