"""The stand-in Slack installs the app in many workspaces: OAuth v2 against the real slack_sdk client, a
token per workspace, and uninstalls."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.sandbox._http import QuietHandler, ServerThread
from bot.sandbox.fake_slack import FakeSlack


@pytest.fixture
def received(fake: FakeSlack) -> Iterator[list[dict[str, Any]]]:
    """What an app at ``request_url`` receives: each body as JSON (or the form's fields)."""
    bodies: list[dict[str, Any]] = []

    class Handler(QuietHandler):
        def do_POST(self) -> None:
            body = self.read_body().decode()
            if body.startswith("{"):
                bodies.append(json.loads(body))
            else:
                bodies.append(dict(parse_qsl(body)))
            self.send_bytes(200, b"", "text/plain")

    server = ServerThread(Handler, name="app-stand-in")
    server.start()
    fake.request_url = server.url + "/slack/events"
    yield bodies
    server.stop()


def test_a_code_is_exchanged_once_for_a_token_of_its_workspace(fake: FakeSlack) -> None:
    client = WebClient(base_url=fake.api_url)
    code = fake.approve_install("T0BLUE")
    access = client.oauth_v2_access(client_id=fake.client_id, client_secret=fake.client_secret, code=code)
    token = str(access["access_token"])
    assert token.startswith("xoxb-") and token == fake.token_for("T0BLUE") and token != fake.bot_token
    assert access["team"]["id"] == "T0BLUE" and access["bot_user_id"] == fake.bot_user_id
    with pytest.raises(SlackApiError) as again:
        client.oauth_v2_access(client_id=fake.client_id, client_secret=fake.client_secret, code=code)
    assert again.value.response["error"] == "invalid_code"
    with pytest.raises(SlackApiError) as wrong_secret:
        client.oauth_v2_access(
            client_id=fake.client_id, client_secret="nope", code=fake.approve_install("T0BLUE")
        )
    assert wrong_secret.value.response["error"] == "bad_client_secret"
    # Each token answers as its own workspace.
    assert WebClient(token=token, base_url=fake.api_url).auth_test()["team_id"] == "T0BLUE"
    assert WebClient(token=fake.bot_token, base_url=fake.api_url).auth_test()["team_id"] == fake.team_id


def test_uninstall_revokes_the_workspaces_tokens_and_tells_the_app(
    fake: FakeSlack, received: list[dict[str, Any]]
) -> None:
    code = fake.approve_install("T0BLUE")
    token = str(
        WebClient(base_url=fake.api_url).oauth_v2_access(
            client_id=fake.client_id, client_secret=fake.client_secret, code=code
        )["access_token"]
    )
    assert [d.status for d in fake.uninstall("T0BLUE")] == [200, 200]
    assert [p["event"]["type"] for p in received] == ["tokens_revoked", "app_uninstalled"]
    assert all(p["team_id"] == "T0BLUE" for p in received)
    with pytest.raises(SlackApiError) as revoked:
        WebClient(token=token, base_url=fake.api_url).auth_test()
    assert revoked.value.response["error"] == "token_revoked"
    assert fake.token_for("T0BLUE") is None
    WebClient(token=fake.bot_token, base_url=fake.api_url).auth_test()  # the other workspace is untouched


def test_a_channel_of_another_workspace_delivers_as_that_workspace(
    fake: FakeSlack, received: list[dict[str, Any]]
) -> None:
    fake.set_channel("C0BLUE", team="T0BLUE")
    fake.send_command("a cat", channel_id="C0BLUE")
    fake.post_user_message(channel="C0BLUE", text=f"<@{fake.bot_user_id}> a dog")
    fake.send_command("a cat")  # the fake's first workspace
    command, mention, message, first = received
    assert command["team_id"] == "T0BLUE" and first["team_id"] == fake.team_id
    for event in (mention, message):
        assert event["team_id"] == "T0BLUE" and event["authorizations"][0]["team_id"] == "T0BLUE"
        assert not event["is_ext_shared_channel"] and "user_team" not in event["event"]
