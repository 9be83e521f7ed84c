"""Driving one person's request through the running app and waiting for how it ended (an image, or the
status message turned into a message for them)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

from bot.sandbox.fake_gemini import Fault, GeminiCall
from bot.sandbox.fake_slack import Upload
from tests.e2e.conftest import CHANNEL, Stack

_users = itertools.count(1)


@dataclass
class Settled:
    """How one person's request ended: an image in the thread, or the status message turned into text."""

    user: str
    upload: Upload | None
    message: dict[str, Any] | None
    calls: list[GeminiCall]  # the Gemini requests made for it
    updates: list[str]  # every text the status message was updated to (retry notices included)

    @property
    def text(self) -> str:
        assert self.message is not None, f"expected a message, got an image: {self.upload}"
        return str(self.message["text"])


def new_user() -> str:
    return f"UF{next(_users):04d}"


def settle(stack: Stack, user: str, *, calls_before: int, slack_calls_before: int) -> Settled:
    """Wait until ``user``'s latest request has an image or a failure message in its thread."""
    slack = stack.slack

    def done() -> tuple[Upload | None, dict[str, Any] | None] | None:
        for upload in list(slack.uploads):
            if upload.shared and (upload.initial_comment or "").startswith(f"<@{user}>"):
                return upload, None
        for message in list(slack.messages):
            text = str(message.get("text") or "")
            if message.get("bot_id") and message.get("thread_ts") and text.startswith(f"<@{user}> "):
                return None, message
        return None

    upload, message = slack.wait_for(done, timeout=30)
    updates = [
        str(call.params.get("text"))
        for call in slack.calls[slack_calls_before:]
        if call.method == "chat.update"
    ]
    return Settled(user, upload, message, stack.gemini.requests[calls_before:], updates)


def command(stack: Stack, text: str, *faults: Fault, user: str | None = None) -> Settled:
    """``/banana text`` with ``faults`` scripted for its Gemini requests; returns how it ended."""
    user = user or new_user()
    calls_before, slack_calls_before = len(stack.gemini.requests), len(stack.slack.calls)
    stack.gemini.script(*faults)
    ack = stack.slack.send_command(text, user_id=user)
    assert ack.status == 200, ack.body
    return settle(stack, user, calls_before=calls_before, slack_calls_before=slack_calls_before)


def reply(stack: Stack, thread_ts: str, text: str, *faults: Fault) -> Settled:
    user = new_user()
    calls_before, slack_calls_before = len(stack.gemini.requests), len(stack.slack.calls)
    stack.gemini.script(*faults)
    stack.slack.post_user_message(channel=CHANNEL, text=text, user=user, thread_ts=thread_ts)
    return settle(stack, user, calls_before=calls_before, slack_calls_before=slack_calls_before)
