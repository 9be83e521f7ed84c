"""Issue 23, end to end: the app installed in many workspaces through Slack's OAuth flow (OAuth mode:
SLACK_CLIENT_ID and SLACK_CLIENT_SECRET, no SLACK_BOT_TOKEN), against the stand-in Slack's
``oauth.v2.access`` and its token per workspace."""

from __future__ import annotations

import hashlib
import hmac
import html
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from cryptography.fernet import Fernet

from bot.installations import BOT_SCOPES
from bot.sandbox.fake_slack import FakeSlack
from bot.sandbox.process import AppProcess
from tests.conftest import BACKENDS
from tests.e2e.conftest import Stack, make_stack, sql

pytestmark = pytest.mark.e2e

BLUE, GREEN = "T0BLUE", "T0GREEN"
CHANNELS = {BLUE: "C0BLUE", GREEN: "C0GREEN"}


def oauth_env(slack: FakeSlack, **more: str) -> dict[str, str]:
    return {
        "SLACK_BOT_TOKEN": "",
        "SLACK_CLIENT_ID": slack.client_id,
        "SLACK_CLIENT_SECRET": slack.client_secret,
        "BANANA_ENCRYPTION_KEY": Fernet.generate_key().decode(),
        "BANANA_LIMITS": "off",
        **more,
    }


@pytest.fixture(params=BACKENDS)
def workspaces(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stack]:
    """The app in OAuth mode, not started yet, with a channel in each of two workspaces."""
    for stack in make_stack(tmp_path, request.param):
        for team, channel in CHANNELS.items():
            stack.slack.set_channel(channel, team=team)
        yield stack


def install(stack: Stack, team: str, app: AppProcess | None = None) -> httpx.Response:
    """A person of ``team`` opens /slack/install (of ``app``, else the newest), clicks Add to Slack and
    allows the app; Slack sends their browser back to /slack/oauth_redirect with a code."""
    with httpx.Client(base_url=(app or stack.app).url) as browser:
        page = browser.get("/slack/install")
        assert page.status_code == 200
        found = re.search(r'<a href="([^"]+)"', page.text)
        assert found is not None
        link = urlsplit(html.unescape(found.group(1)))
        query = parse_qs(link.query)
        assert link.netloc == "slack.com" and link.path == "/oauth/v2/authorize"
        assert query["client_id"] == [stack.slack.client_id]
        assert set(query["scope"][0].split(",")) == set(BOT_SCOPES)
        state = query["state"][0]
        # Bolt's state cookie is Secure (https in production); this browser sends it over loopback http.
        cookie = page.headers["set-cookie"].split(";")[0]
        code = stack.slack.approve_install(team)
        return browser.get(
            "/slack/oauth_redirect", params={"code": code, "state": state}, headers={"Cookie": cookie}
        )


def tokens_used(slack: FakeSlack, channel: str) -> set[str | None]:
    return {c.token for c in slack.calls if c.params.get("channel") == channel}


def test_two_workspaces_install_and_each_is_served_with_its_own_token_and_sees_only_its_own(
    workspaces: Stack,
) -> None:
    stack, slack = workspaces, workspaces.slack
    stack.start_app(**oauth_env(slack))
    for team in (BLUE, GREEN):
        done = install(stack, team)
        assert done.status_code == 200 and "Thank you" in done.text
    blue, green = slack.token_for(BLUE), slack.token_for(GREEN)
    assert blue and green and blue != green != slack.bot_token

    for prompt in ("a blue kite", "a blue boat"):
        assert slack.send_command(prompt, channel_id=CHANNELS[BLUE]).status == 200
    assert slack.send_command("a green kite", channel_id=CHANNELS[GREEN]).status == 200
    uploads = stack.uploads(3)
    stack.settled()
    assert sorted(u.channel or "" for u in uploads) == ["C0BLUE", "C0BLUE", "C0GREEN"]
    # Every call about a workspace's channel carried that workspace's token, and no other.
    assert tokens_used(slack, CHANNELS[BLUE]) == {blue}
    assert tokens_used(slack, CHANNELS[GREEN]) == {green}

    # The same person id in both: each workspace's usage counts its own images only.
    blue_usage = str(slack.send_command("usage", channel_id=CHANNELS[BLUE]).json()["text"])
    green_usage = str(slack.send_command("usage", channel_id=CHANNELS[GREEN]).json()["text"])
    assert "• Today: 2 images" in blue_usage and "• Today: 1 image," in green_usage

    # A reply in the green channel can't continue a blue thread (another workspace's conversation).
    blue_root = stack.root_message(CHANNELS[BLUE])
    slack.post_user_message(channel=CHANNELS[GREEN], text="make it red", thread_ts=str(blue_root["ts"]))
    assert len(stack.jobs()) == 3

    # No token is readable in the database.
    database = stack.env["DATABASE_URL"]
    stored = [
        str(row)
        for row in sql(database, "SELECT * FROM slack_bots")
        + sql(database, "SELECT * FROM slack_installations")
    ]
    assert len(stored) == 4 and not any("xoxb-" in row for row in stored)
    assert not any(blue in row or green in row for row in stored)


def test_uninstall_deletes_the_workspaces_tokens_and_ends_its_queued_jobs(workspaces: Stack) -> None:
    stack, slack = workspaces, workspaces.slack
    stack.start_app(**oauth_env(slack, BANANA_WORKERS="1"))
    for team in (BLUE, GREEN):
        assert install(stack, team).status_code == 200
    with stack.gemini.hold() as held:
        slack.send_command("a green kite", channel_id=CHANNELS[GREEN])
        held.wait_for_call()  # the first is at Gemini; the second waits for the one worker
        slack.send_command("a green boat", channel_id=CHANNELS[GREEN], user_id="UBOB")
        assert [d.status for d in slack.uninstall(GREEN)] == [200, 200]
        queued = stack.wait_for_jobs(lambda jobs: len(jobs) == 2 and jobs[1].state == "failed")[1]
        assert queued.error_code == "app_uninstalled"
    # The job already at Gemini can post nothing: the token is revoked.
    stack.wait_for_jobs(lambda jobs: all(j.state == "failed" for j in jobs))
    assert not [u for u in slack.uploads if u.channel == CHANNELS[GREEN]]
    bots = {row[0] for row in sql(stack.env["DATABASE_URL"], "SELECT team_id FROM slack_bots")}
    installs = {row[0] for row in sql(stack.env["DATABASE_URL"], "SELECT team_id FROM slack_installations")}
    assert bots == installs == {BLUE}  # the green workspace's tokens are gone, everywhere they were
    # The other workspace goes on as before.
    slack.send_command("a blue kite", channel_id=CHANNELS[BLUE])
    [upload] = stack.uploads(1)
    assert upload.channel == CHANNELS[BLUE] and tokens_used(slack, CHANNELS[BLUE]) == {slack.token_for(BLUE)}


def test_socket_mode_serves_the_installed_workspaces_and_the_install_page_on_port(workspaces: Stack) -> None:
    stack, slack = workspaces, workspaces.slack
    stack.env = {k: v for k, v in stack.env.items() if k != "SLACK_SIGNING_SECRET"}
    app = stack.start_app(wait=False, SLACK_APP_TOKEN=slack.app_token, **oauth_env(slack))
    slack.request_url = None  # deliveries go over the WebSocket
    slack.wait_for_socket_connection(timeout=30)
    app.wait_for_log("install page on")
    assert install(stack, BLUE).status_code == 200
    # That port is a browser's: it takes no events, however they are signed (Socket Mode has no secret).
    body, _headers = slack.command_request("a forged kite", channel_id=CHANNELS[BLUE])
    stamp = str(int(time.time()))
    for secret in ("None", "", "unused-in-socket-mode"):
        signature = (
            "v0=" + hmac.new(secret.encode(), f"v0:{stamp}:".encode() + body, hashlib.sha256).hexdigest()
        )
        forged = httpx.post(
            f"{app.url}/slack/events",
            content=body,
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "X-Slack-Request-Timestamp": stamp,
                "X-Slack-Signature": signature,
            },
        )
        assert forged.status_code == 404
    assert stack.jobs() == []
    ack = slack.send_command("a blue kite", channel_id=CHANNELS[BLUE])
    assert "Got it" in ack.json()["text"]
    [upload] = stack.uploads(1)
    assert upload.channel == CHANNELS[BLUE] and tokens_used(slack, CHANNELS[BLUE]) == {slack.token_for(BLUE)}


def test_a_worker_process_posts_each_job_with_its_workspaces_token(workspaces: Stack) -> None:
    """A web process that only queues, and a worker process (client id and key, no secret) that reads
    each workspace's token from the installations."""
    stack, slack = workspaces, workspaces.slack
    env = oauth_env(slack)
    web = stack.start_app(BANANA_WORKERS="0", **env)
    worker_env = {**env, "SLACK_CLIENT_SECRET": "", "BANANA_WORKERS": "2"}
    stack.start_app(command="worker", **worker_env).wait_for_log("2 workers started")
    slack.request_url = f"{web.url}/slack/events"
    for team in (BLUE, GREEN):
        assert install(stack, team, web).status_code == 200
    for team, channel in CHANNELS.items():
        slack.send_command(f"a kite for {team}", channel_id=channel)
    stack.uploads(2)
    for team, channel in CHANNELS.items():
        assert tokens_used(slack, channel) == {slack.token_for(team)}


OWN_KEY = "AIzaSyBlue-workspace-own-key-0123456789"  # the stand-in's, not a real key


def key_submission(slack: FakeSlack, team: str, user: str, view: dict[str, Any], key: str) -> dict[str, Any]:
    values = {"gemini_key": {"key": {"type": "plain_text_input", "value": key}}}
    return {
        "type": "view_submission",
        "team": {"id": team},
        "user": {"id": user, "team_id": team},
        "api_app_id": slack.api_app_id,
        "trigger_id": slack.new_trigger_id(),
        "view": {
            **view,
            "id": "V0KEY",
            "team_id": team,
            "app_installed_team_id": team,
            "state": {"values": values},
        },
    }


def test_an_admin_sets_the_workspaces_own_gemini_key_and_its_images_are_paid_with_it(
    workspaces: Stack,
) -> None:
    stack, slack = workspaces, workspaces.slack
    stack.gemini.add_key(OWN_KEY, name="blue")
    stack.start_app(**oauth_env(slack))
    for team in (BLUE, GREEN):
        assert install(stack, team).status_code == 200
    slack.set_user("UADMIN01", is_admin=True)

    # Someone who is not an admin is told so, and no modal opens.
    slack.send_command("key", channel_id=CHANNELS[BLUE], user_id="UBOB")
    told = slack.wait_for(lambda: slack.responses)
    assert "Only admins can set the workspace's Gemini key" in str(told[-1].body["text"])
    assert not slack.calls_to("views.open")

    slack.send_command("key", channel_id=CHANNELS[BLUE], user_id="UADMIN01")
    opened = slack.wait_for(lambda: slack.calls_to("views.open"))[0]
    view = opened.decoded("view")
    assert view["callback_id"] == "banana_key_modal" and "operator's key" in json.dumps(view)
    # A key Gemini refuses is not saved: the modal says why.
    refused = slack.send_interactive(key_submission(slack, BLUE, "UADMIN01", view, "AIzaSy-not-a-key"))
    errors = refused.json()["errors"]
    assert refused.status == 200 and "Gemini refused this key" in errors["gemini_key"]
    saved = slack.send_interactive(key_submission(slack, BLUE, "UADMIN01", view, f"  {OWN_KEY} "))
    assert saved.json()["response_action"] == "update" and "Saved" in json.dumps(saved.json()["view"])

    # Green's settings are its own: its admin sees the operator's key in use, not blue's.
    slack.send_command("key", channel_id=CHANNELS[GREEN], user_id="UADMIN01")
    green_view = slack.wait_for(lambda: slack.calls_to("views.open")[1:])[0].decoded("view")
    assert "paid with the operator's key" in json.dumps(green_view) and "UADMIN01" not in json.dumps(
        green_view
    )
    blue_again = slack.send_command("key", channel_id=CHANNELS[BLUE], user_id="UADMIN01")
    assert blue_again.status == 200
    blue_view = slack.wait_for(lambda: slack.calls_to("views.open")[2:])[0].decoded("view")
    assert "its own Gemini key, saved by <@UADMIN01>" in json.dumps(blue_view)

    # Blue's image is made with its own key, green's with the operator's, and the ledger says whose paid.
    slack.send_command("a blue kite", channel_id=CHANNELS[BLUE])
    slack.send_command("a green kite", channel_id=CHANNELS[GREEN])
    stack.uploads(2)
    stack.settled()
    assert sorted(str(c.key_name) for c in stack.gemini.requests) == ["blue", "operator"]
    owners = dict(sql(stack.env["DATABASE_URL"], "SELECT team_id, key_owner FROM charge"))
    stored = [str(row) for row in sql(stack.env["DATABASE_URL"], "SELECT * FROM workspace_key")]
    assert owners == {BLUE: "workspace", GREEN: "operator"}
    assert len(stored) == 1 and OWN_KEY not in stored[0] and "AIza" not in stored[0]  # sealed

    # Removed: the operator's key pays again.
    slack.send_command("key remove", channel_id=CHANNELS[BLUE], user_id="UADMIN01")
    slack.wait_for(lambda: any("is removed" in str(r.body.get("text")) for r in slack.responses))
    slack.send_command("a blue boat", channel_id=CHANNELS[BLUE])
    stack.uploads(3)
    assert stack.gemini.requests[-1].key_name == "operator"


def test_key_is_for_oauth_mode_only(stack: Stack) -> None:
    ack = stack.slack.send_command("key", user_id="UADMIN01")
    assert "is for the app installed in many workspaces" in str(ack.json()["text"])


def test_an_install_with_a_forged_state_is_refused_and_stores_nothing(workspaces: Stack) -> None:
    """A redirect whose state this app never issued is not exchanged for a token: Bolt's failure page, no
    oauth.v2.access, no installation (a state is used once: tests/bot/test_installations.py)."""
    stack, slack = workspaces, workspaces.slack
    stack.start_app(**oauth_env(slack))
    with httpx.Client(base_url=stack.app.url) as browser:
        forged = browser.get(
            "/slack/oauth_redirect", params={"code": slack.approve_install(BLUE), "state": "forged"}
        )
    assert forged.status_code == 400
    assert not slack.calls_to("oauth.v2.access")
    assert install(stack, GREEN).status_code == 200
    assert sql(stack.env["DATABASE_URL"], "SELECT team_id FROM slack_bots") == [(GREEN,)]
