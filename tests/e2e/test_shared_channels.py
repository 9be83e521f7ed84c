"""Issue 18, shared channels: a conversation belongs to the workspace the app is installed in, so a member
of another workspace in a Slack Connect channel continues the same thread."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import CHANNEL, Stack

pytestmark = pytest.mark.e2e

PARTNER_TEAM = "T0PARTNER"


def test_an_external_users_reply_in_a_shared_channel_continues_the_thread(stack: Stack) -> None:
    stack.slack.send_command("a poster for our joint launch --ar 2:3")
    [first] = stack.uploads(1)
    root_ts = str(first.thread_ts)

    # Slack puts the partner's team in the envelope's team_id; only `authorizations` names this install.
    [delivery] = stack.slack.post_user_message(
        channel=CHANNEL, text="make the logo bigger", user="UPARTNER", thread_ts=root_ts, team_id=PARTNER_TEAM
    )
    assert delivery.status == 200
    assert delivery.event is not None and delivery.event["user_team"] == PARTNER_TEAM
    [_, second] = stack.uploads(2)
    assert second.thread_ts == root_ts
    reply = stack.gemini.requests[1]
    assert [c["role"] for c in reply.body["contents"]] == ["user", "model", "user"]  # the same conversation
    jobs = stack.jobs()
    assert [j.team_id for j in jobs] == [stack.slack.team_id] * 2
    assert jobs[1].requested_by == "UPARTNER" and jobs[1].conversation_id == jobs[0].conversation_id
