"""Issue 21, end to end: a result card under every image, posted once the image shows in the thread, with
where the result came from, and buttons that work through the running app and after a restart:
View settings, Regenerate, Variations (side by side), Finalize (in Pro), Delete (the requester or an
admin)."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.blocks import VIEW_SETTINGS
from bot.models import Blob, Charge
from bot.prices import dollars
from tests.conftest import BACKENDS
from tests.e2e.conftest import CHANNEL, Stack, make_stack, refuse_writes, rows

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


@pytest.fixture(params=BACKENDS)
def wide_stack(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stack]:
    """The app, on each database, with enough workers for a Variations press to run all at once."""
    stacks = make_stack(tmp_path, request.param, BANANA_WORKERS="6")
    stack = next(stacks)
    stack.start_app()
    yield stack
    next(stacks, None)


def first_result(stack: Stack, prompt: str = "a red kite over the sea") -> dict[str, Any]:
    """A /banana, its image and its card (once the job has ended)."""
    stack.slack.send_command(prompt)
    stack.uploads(1)
    [card] = stack.slack.wait_for(lambda: cards(stack) or None)
    stack.settled()
    return card


def button_texts(card: dict[str, Any]) -> list[str]:
    return [
        e["text"]["text"] for b in card["blocks"] for e in b.get("elements") or [] if e["type"] == "button"
    ]


def press(stack: Stack, card: dict[str, Any], button: str, *, user: str = "UALICE") -> None:
    delivery = stack.slack.press(card, button, user=user)
    assert delivery.status == 200, delivery


def told(stack: Stack, card: dict[str, Any], button: str, *, user: str = "UALICE") -> str:
    """Press ``button`` on ``card``: what the presser is told privately (after the ack)."""
    before = len(stack.slack.responses)
    press(stack, card, button, user=user)
    return str(stack.slack.wait_for(lambda: stack.slack.responses[before:])[0].body["text"])


def test_regenerate_makes_one_new_result_from_the_same_parent_and_a_double_press_makes_one(
    stack: Stack,
) -> None:
    card = first_result(stack)
    stack.slack.post_user_message(
        channel=CHANNEL, text="make it blue", thread_ts=str(stack.slack.uploads[0].thread_ts)
    )
    stack.uploads(2)
    second = stack.slack.wait_for(lambda: cards(stack)[1:] or None)[0]
    stack.settled()
    assert button_texts(second)[0].startswith("Regenerate ×1 · ~$0.")  # what a press costs, on the button

    stack.app.terminate(timeout=30)
    stack.start_app()  # weeks later, after a deploy: the button carries the job's id only
    press(stack, second, "Regenerate")
    press(stack, second, "Regenerate")  # within 3 seconds: the work is done once
    stack.uploads(3)
    stack.settled()
    assert len(stack.slack.uploads) == 3 and len(stack.gemini.requests) == 3
    assert not stack.slack.responses  # nothing to say: the result in the thread is the answer
    original, regenerated = stack.gemini.requests[1], stack.gemini.requests[2]
    assert original.body["contents"] == regenerated.body["contents"]  # the same turn, from the same parent
    third = cards(stack)[2]
    assert "*Result 3* · regenerated from result 2" in card_text(third)
    assert card_text(card).count("Result") == 1


def test_variations_run_side_by_side_as_one_request(wide_stack: Stack) -> None:
    stack = wide_stack
    card = first_result(stack)
    assert any(t.startswith("Variations ×4 · ~$") for t in button_texts(card))
    with stack.gemini.hold() as held:
        press(stack, card, "Variations")
        # All four are inside Gemini at once, though a person runs two requests at a time
        # (BANANA_USER_CONCURRENCY): the press is one request.
        held.wait_for_call(4)
    stack.uploads(5)
    stack.settled()
    variations = stack.gemini.requests[1:]
    assert len(variations) == 4
    assert max(c.at for c in variations) < min(c.answered_at or 0 for c in variations)  # they overlapped
    assert all(c.body["contents"] == stack.gemini.requests[0].body["contents"] for c in variations)
    made = sorted(card_text(c).split("*Result ")[1].split("*")[0] for c in cards(stack)[1:])
    assert made == ["2", "3", "4", "5"]  # numbered one by one, though stored side by side
    assert all("a variation of result 1" in card_text(c) for c in cards(stack)[1:])


def test_finalize_sends_the_result_to_the_pro_model_at_the_chosen_size(stack: Stack) -> None:
    card = first_result(stack, "a tiny robot --model nb2")
    image = stack.slack.uploads[0].data
    press(stack, card, "Finalize 4K")
    stack.uploads(2)
    stack.settled()
    call = stack.gemini.requests[1]
    assert call.model == "gemini-3-pro-image"
    assert call.body["generationConfig"]["imageConfig"]["imageSize"] == "4K"
    [content] = call.body["contents"]
    sent = [base64.b64decode(p["inlineData"]["data"]) for p in content["parts"] if "inlineData" in p]
    assert sent == [image]  # the result's own image, re-rendered
    assert "result 1 in Pro" in card_text(cards(stack)[1])


def test_delete_by_the_requester_removes_the_image_the_card_and_the_stored_copy(stack: Stack) -> None:
    card = first_result(stack)
    [upload] = stack.slack.uploads
    blobs = len(rows(stack.env["DATABASE_URL"], Blob))

    assert "Only <@UALICE> or a workspace admin" in told(stack, card, "Delete", user="UBOB")
    assert stack.slack.deleted_files == [] and not card.get("deleted")

    assert "Deleted" in told(stack, card, "Delete")
    assert stack.slack.deleted_files == [upload.file_id]
    shown = [m for m in stack.slack.messages if m["ts"] in (card["ts"], upload.message_ts)]
    assert shown and all(m.get("deleted") for m in shown)  # the image's message and the card
    assert len(rows(stack.env["DATABASE_URL"], Blob)) == blobs - 1
    [job] = stack.jobs()
    assert job.deleted_at is not None
    assert "no longer here" in told(stack, card, "Regenerate")  # its buttons say it is gone


def test_a_press_over_a_limit_is_refused_before_anything_is_spent(tmp_path: Path) -> None:
    stacks = make_stack(tmp_path, "sqlite", BANANA_LIMITS="user/day=3")
    stack = next(stacks)
    try:
        stack.start_app()
        card = first_result(stack)
        assert "limit" in told(stack, card, "Variations")
        assert len(stack.gemini.requests) == 1
        press(stack, card, "Regenerate")  # one more fits
        stack.uploads(2)
    finally:
        next(stacks, None)


def test_a_press_the_database_refuses_gets_a_private_message_and_spends_nothing(pg_stack: Stack) -> None:
    """PostgreSQL refuses writes (a full disk, a read-only failover): the presser hears so, privately,
    instead of Slack's bare error on the button, and nothing reaches Gemini."""
    stack = pg_stack
    stack.start_app()
    card = first_result(stack)
    refuse_writes(stack.env["DATABASE_URL"])
    assert "Something went wrong on my side" in told(stack, card, "Regenerate")
    assert len(stack.gemini.requests) == 1
