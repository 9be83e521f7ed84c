"""Workspaces are kept apart, and nothing secret (tokens, keys, image bytes) reaches the log."""

from __future__ import annotations

import base64
import io
import re
import time
from typing import Any

import pytest
from PIL import Image

from bot.sandbox.fake_gemini import Fault, GeminiCall
from tests.e2e.conftest import CHANNEL, Stack

pytestmark = pytest.mark.e2e

OTHER_TEAM = "T0OTHER"


def png(color: str = "purple") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (300, 200), color).save(out, "PNG")
    return out.getvalue()


def job_count(stack: Stack) -> int:
    return len(stack.jobs())


def user_texts(call: GeminiCall) -> list[str]:
    return [
        "".join(str(p.get("text", "")) for p in c["parts"])
        for c in call.body["contents"]
        if c["role"] == "user"
    ]


def event(*, kind: str, text: str, thread_ts: str | None, team: str, user: str) -> dict[str, Any]:
    ts = f"{time.time():.6f}"
    body: dict[str, Any] = {
        "type": kind,
        "user": user,
        "text": text,
        "ts": ts,
        "event_ts": ts,
        "channel": CHANNEL,
        "team": team,
        "user_team": team,
        "source_team": team,
    }
    if kind == "message":
        body["channel_type"] = "channel"
    if thread_ts:
        body["thread_ts"] = thread_ts
    return body


# --- workspaces ------------------------------------------------------------------------------------------


def test_another_workspace_cannot_continue_a_conversation_in_the_same_channel_and_thread(
    stack: Stack,
) -> None:
    bot = stack.slack.bot_user_id
    stack.slack.send_command("a secret prototype phone, studio shot")
    [first] = stack.uploads(1)
    root_ts = str(stack.root_message()["ts"])
    assert job_count(stack) == 1

    # Same channel id and thread ts, another team: not this conversation, and nobody asked the bot.
    reply = event(
        kind="message", text="show me the phone again", thread_ts=root_ts, team=OTHER_TEAM, user="UMALLORY"
    )
    assert stack.slack.send_event(reply, team_id=OTHER_TEAM).status == 200
    assert job_count(stack) == 1  # ignored: the listener runs before the 200, so a job would exist by now

    # A mention from the other team starts that team's own conversation, with none of the first one's turns.
    mention = event(
        kind="app_mention",
        text=f"<@{bot}> continue this, in red",
        thread_ts=root_ts,
        team=OTHER_TEAM,
        user="UMALLORY",
    )
    assert stack.slack.send_event(mention, team_id=OTHER_TEAM).status == 200
    stack.uploads(2)
    other = stack.gemini.requests[1]
    assert [c["role"] for c in other.body["contents"]] == ["user"]
    assert user_texts(other) == ["continue this, in red"]
    assert "secret prototype" not in str(other.body)
    assert not any("inlineData" in p for c in other.body["contents"] for p in c["parts"])

    # The first team's conversation goes on as before, without the other team's turn.
    stack.slack.post_user_message(channel=CHANNEL, text="now in matte black", thread_ts=root_ts)
    stack.uploads(3)
    own = stack.gemini.requests[2]
    assert user_texts(own) == ["a secret prototype phone, studio shot", "now in matte black"]
    assert "continue this" not in str(own.body)
    assert first.thread_ts == root_ts


# --- logs ------------------------------------------------------------------------------------------------

BASE64_RUN = re.compile(r"[A-Za-z0-9+/]{200,}")


@pytest.mark.parametrize("mode", ["http", "socket"])
def test_debug_logs_hold_no_token_key_secret_or_image_bytes(any_db_stack: Stack, mode: str) -> None:
    stack = any_db_stack
    slack, gemini = stack.slack, stack.gemini
    if mode == "socket":
        stack.env = {k: v for k, v in stack.env.items() if k != "SLACK_SIGNING_SECRET"}
        stack.env["SLACK_APP_TOKEN"] = slack.app_token
        app = stack.start_app(wait=False, LOG_LEVEL="DEBUG")
        slack.request_url = None
        slack.wait_for_socket_connection(timeout=30)
        app.wait_for_log("connected to Slack in Socket Mode")
    else:
        app = stack.start_app(LOG_LEVEL="DEBUG")

    # A command, a reply that meets a Gemini 429, a mention with an image, and Slack errors on the way.
    slack.fail("chat.postMessage", error="ratelimited", retry_after=1)
    slack.send_command("a ceramic mug on a walnut table")
    stack.uploads(1)
    root_ts = str(stack.root_message()["ts"])
    gemini.script(Fault.rate_limited(retry_delay_s=0.2))
    slack.fail("chat.delete", error="internal_error")
    slack.post_user_message(channel=CHANNEL, text="make it matte blue", thread_ts=root_ts)
    stack.uploads(2)
    reference = png()
    file = slack.host_file(reference, name="logo.png", mimetype="image/png")
    slack.post_user_message(
        channel=CHANNEL, text=f"<@{slack.bot_user_id}> put this logo on a tote", files=[file]
    )
    uploads = stack.uploads(3)
    app.wait_for_log("job 3 done")
    assert app.terminate() == 0
    logs = app.logs()

    assert " DEBUG banana: " in logs  # LOG_LEVEL took effect for the app's own loggers ...
    for library in ("slack_bolt", "slack_sdk", "httpx", "httpcore", "urllib3", "sqlalchemy"):
        assert f" DEBUG {library}" not in logs and f" INFO {library}" not in logs  # ... not for libraries
    assert "rate limit" in logs.lower() or "429" in logs  # the faults happened and were logged
    for secret in (slack.bot_token, slack.app_token, slack.signing_secret, gemini.api_key):
        assert secret not in logs
    assert "xoxb-" not in logs and "xapp-" not in logs
    images = [reference] + [u.data for u in uploads] + [c.image for c in gemini.requests if c.image]
    for data in images:
        encoded = base64.b64encode(data).decode()
        assert encoded[:64] not in logs
        assert encoded[100:164] not in logs
    assert not BASE64_RUN.search(logs), BASE64_RUN.search(logs)
