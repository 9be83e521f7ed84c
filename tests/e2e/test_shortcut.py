""" "Edit with Nano Banana": message shortcut → modal → job with the message's images, in its thread."""

from __future__ import annotations

import base64
import io
import json
from typing import Any

import pytest
from PIL import Image

from tests.e2e.conftest import CHANNEL, Stack

pytestmark = pytest.mark.e2e


def png(color: str) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), color).save(out, "PNG")
    return out.getvalue()


def shortcut_payload(stack: Stack, message: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "message_action",
        "callback_id": "edit_with_banana",
        "trigger_id": stack.slack.new_trigger_id(),
        "response_url": stack.slack.new_response_url(channel_id=CHANNEL, user_id="UBOB"),
        "team": {"id": stack.slack.team_id, "domain": "sandbox"},
        "channel": {"id": CHANNEL, "name": "general"},
        "user": {"id": "UBOB", "name": "bob"},
        "message_ts": message["ts"],
        "message": message,
    }


def submission(stack: Stack, view: dict[str, Any], text: str) -> dict[str, Any]:
    return {
        "type": "view_submission",
        "team": {"id": stack.slack.team_id},
        "user": {"id": "UBOB"},
        "trigger_id": stack.slack.new_trigger_id(),
        "view": {
            **view,
            "state": {"values": {"instruction": {"text": {"type": "plain_text_input", "value": text}}}},
        },
    }


def test_edit_with_nano_banana_uses_the_message_images_and_answers_in_its_thread(stack: Stack) -> None:
    slack = stack.slack
    photo = png("purple")
    file = slack.host_file(photo, name="product.png", mimetype="image/png")
    [posted] = slack.post_user_message(channel=CHANNEL, text="our new product shot", files=[file])
    assert posted.event is not None
    message = slack.message(CHANNEL, posted.event["ts"])
    assert message is not None

    assert slack.send_interactive(shortcut_payload(stack, dict(message))).status == 200
    opened = slack.wait_for(lambda: slack.calls_to("views.open"))[0]
    view = (
        json.loads(opened.params["view"]) if isinstance(opened.params["view"], str) else opened.params["view"]
    )
    assert view["callback_id"] == "banana_edit_modal"
    assert len(view["private_metadata"]) <= 3000

    bad = slack.send_interactive(submission(stack, view, "on a billboard --ar 7:3"))
    assert bad.status == 200
    assert bad.json()["response_action"] == "errors"
    assert "Aspect ratios it has" in bad.json()["errors"]["instruction"]
    assert stack.gemini.requests == []

    assert (
        slack.send_interactive(submission(stack, view, "put it on a billboard at night --ar 16:9")).status
        == 200
    )
    [upload] = stack.uploads(1)
    assert upload.thread_ts == posted.event["ts"]
    [call] = stack.gemini.requests
    parts = call.body["contents"][0]["parts"]
    assert parts[0] == {"text": "put it on a billboard at night"}
    assert base64.b64decode(parts[1]["inlineData"]["data"]) == photo
    assert call.body["generationConfig"]["imageConfig"] == {"aspectRatio": "16:9"}


def test_shortcut_on_a_message_without_images_says_so_privately(stack: Stack) -> None:
    [posted] = stack.slack.post_user_message(channel=CHANNEL, text="no pictures here")
    assert posted.event is not None
    message = stack.slack.message(CHANNEL, posted.event["ts"])
    assert message is not None
    stack.slack.send_interactive(shortcut_payload(stack, dict(message)))
    response = stack.slack.wait_for(lambda: next(iter(stack.slack.responses), None))
    assert "no images" in response.body["text"]
    assert stack.slack.calls_to("views.open") == []
