"""Socket Mode: the same flow over a loopback Socket Mode server instead of signed HTTP."""

from __future__ import annotations

import httpx
import pytest

from bot.sandbox.process import free_port
from tests.e2e.conftest import CHANNEL, Stack

pytestmark = pytest.mark.e2e


def test_socket_mode_command_reply_and_mention(any_db_stack: Stack) -> None:
    stack = any_db_stack
    stack.slack.request_url = None
    env = {k: v for k, v in stack.env.items() if k != "SLACK_SIGNING_SECRET"}
    metrics_port = free_port()  # Socket Mode serves no HTTP: metrics and health on a port of their own
    stack.env = {**env, "SLACK_APP_TOKEN": stack.slack.app_token, "METRICS_PORT": str(metrics_port)}
    app = stack.start_app(command="serve", wait=False)
    stack.slack.request_url = None  # deliveries go over the WebSocket
    stack.slack.wait_for_socket_connection(timeout=30)
    app.wait_for_log("connected to Slack in Socket Mode")

    ack = stack.slack.send_command("a paper boat --ar 16:9")
    assert ack.status == 200
    assert "Got it" in ack.json()["text"]
    [first] = stack.uploads(1)
    root_ts = str(stack.root_message()["ts"])
    assert first.thread_ts == root_ts
    ops = f"http://127.0.0.1:{metrics_port}"
    assert httpx.get(f"{ops}/healthz", timeout=10).json() == {"ok": True}
    assert "banana_claims_total 1.0" in httpx.get(f"{ops}/metrics", timeout=10).text

    [reply] = stack.slack.post_user_message(channel=CHANNEL, text="make it red", thread_ts=root_ts)
    deliveries = stack.slack.post_user_message(
        channel=CHANNEL, text=f"<@{stack.slack.bot_user_id}> a kite", user="UBOB"
    )
    assert [d.status for d in deliveries] == [200, 200]  # app_mention and message both acked
    uploads = stack.uploads(3)
    mention_ts = deliveries[0].event["ts"] if deliveries[0].event else None
    assert sorted(str(u.thread_ts) for u in uploads) == sorted([root_ts, root_ts, str(mention_ts)])
    assert len(stack.gemini.requests) == 3  # the double-delivered mention made one job
    edit = next(
        c for c in stack.gemini.requests if c.body["contents"][-1]["parts"] == [{"text": "make it red"}]
    )
    assert [c["role"] for c in edit.body["contents"]] == ["user", "model", "user"]
    # Edits are acknowledged too (no 404 left unacknowledged), so Slack does not redeliver them.
    assert reply.event is not None
    assert [
        d.status for d in stack.slack.edit_user_message(CHANNEL, reply.event["ts"], "make it crimson")
    ] == [200]
