"""Issue 21, part 1, end to end: a result card under every image, posted once the image shows in the
thread, with where the result came from and a "View settings" button that works after a restart."""

from __future__ import annotations

from typing import Any

import pytest

from bot.blocks import VIEW_SETTINGS
from bot.models import Charge
from bot.prices import dollars
from tests.e2e.conftest import CHANNEL, Stack, rows

pytestmark = pytest.mark.e2e


def cards(stack: Stack) -> list[dict[str, Any]]:
    """The bot's result cards, oldest first."""
    return [
        m
        for m in list(stack.slack.messages)
        if m.get("bot_id")
        and any(
            e.get("action_id") == VIEW_SETTINGS
            for b in m.get("blocks") or []
            for e in b.get("elements") or []
        )
    ]


def card_text(card: dict[str, Any]) -> str:
    return (
        " ".join(
            str(e.get("text") or "")
            for b in card["blocks"]
            for e in b.get("elements") or []
            if e.get("type") == "mrkdwn"
        )
        + " "
        + " ".join(str((b.get("text") or {}).get("text") or "") for b in card["blocks"])
    )


def test_a_card_follows_each_image_once_it_shows_with_where_the_result_came_from(stack: Stack) -> None:
    stack.slack.send_command("a poster for <!channel> launch --ar 16:9")
    [upload] = stack.uploads(1)
    [card] = stack.slack.wait_for(lambda: cards(stack) or None)
    assert card["thread_ts"] == upload.thread_ts
    assert float(card["ts"]) > float(str(upload.message_ts))  # below the image, never above it
    methods = [c.method for c in stack.slack.calls]
    card_post = max(
        i
        for i, c in enumerate(stack.slack.calls)
        if c.method == "chat.postMessage" and c.params.get("blocks")
    )
    last_share_check = max(i for i, m in enumerate(methods) if m == "files.info")
    assert card_post > last_share_check  # posted once files.info showed the share
    text = card_text(card)
    assert "*Result 1*" in text and "asked by alice" in text and "16:9" in text  # a name: no second ping
    assert "@channel launch" in text and "<!channel>" not in text  # the prompt can't ping anyone

    stack.slack.post_user_message(channel=CHANNEL, text="make it blue", thread_ts=str(upload.thread_ts))
    stack.uploads(2)
    second = stack.slack.wait_for(lambda: cards(stack)[1:] or None)[0]
    assert "*Result 2* · from result 1" in card_text(second)
    assert "make it blue" in card_text(second)
    assert len(cards(stack)) == 2  # one card per result


def test_view_settings_shows_the_request_privately_and_works_after_a_restart(stack: Stack) -> None:
    stack.slack.send_command("a lighthouse at dawn --size 2K")
    stack.uploads(1)
    [card] = stack.slack.wait_for(lambda: cards(stack) or None)
    stack.wait_for_jobs(lambda jobs: all(j.state == "done" for j in jobs))
    [charge] = rows(stack.env["DATABASE_URL"], Charge)

    def settings() -> str:
        before = len(stack.slack.responses)
        assert stack.slack.press(card, "View settings", user="UBOB").status == 200
        return str(stack.slack.wait_for(lambda: stack.slack.responses[before:])[0].body["text"])

    text = settings()
    assert "`gemini-nano-banana-2.1`" in text and "Size: 2K" in text
    assert "Sent: 1 turn of the thread" in text
    assert f"{charge.prompt_tokens} in; {charge.image_tokens} image" in text
    assert f"Cost: {dollars(charge.cost_micros)}" in text

    stack.app.terminate(timeout=30)
    stack.start_app()  # a deploy: the card's button carries the job's id only
    assert settings() == text
