"""The Bolt listeners in-process: the real Bolt app (``app.build_bolt``) behind the real WSGI router,
served by waitress on loopback in this process, driven by the stand-in Slack with signed requests."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
import waitress
from sqlalchemy import func, select

from app import _after_ack, build_bolt
from bot.models import Job
from bot.reports import Reports
from bot.settings import Settings
from bot.workspace_keys import WorkspaceKeys
from handlers import Deps
from handlers.web import wsgi_app
from tests.bot.stack import CHANNEL, InProcess


@pytest.fixture
def served(stand_ins: InProcess) -> Iterator[InProcess]:
    slack = stand_ins.slack
    settings = Settings(
        slack_bot_token=slack.bot_token,
        gemini_api_key=stand_ins.gemini.api_key,
        slack_signing_secret=slack.signing_secret,
        slack_api_url=slack.api_url,
    )
    reports = Reports(sessions=stand_ins.sessions, limits=settings.limits, prices=settings.prices)
    deps = Deps(
        intake=stand_ins.intake(),
        reports=reports,
        cards=stand_ins.cards(),
        workspaces=stand_ins.workspaces(),
        keys=WorkspaceKeys(sessions=stand_ins.sessions, encryption_key=None),
        after_ack=_after_ack,
    )
    bolt = build_bolt(settings, deps)
    app = wsgi_app(bolt, healthy=lambda: True, signing_secret=slack.signing_secret)
    server = waitress.create_server(app, host="127.0.0.1", port=0, threads=4)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    slack.request_url = f"http://127.0.0.1:{server.effective_port}/slack/events"  # type: ignore[union-attr]
    yield stand_ins
    # Closed from its own loop's thread: closed from this one, the loop could be inside select() on the
    # socket being closed (EBADF in that thread). The daemon loop idles on; nothing reaches it any more.
    server.trigger.pull_trigger(server.close)  # type: ignore[union-attr]


def jobs(world: InProcess) -> int:
    with world.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(Job)) or 0)


def test_a_command_is_queued_before_its_ack(served: InProcess) -> None:
    ack = served.slack.send_command("a rocket payload bay --ar 16:9")  # "payload": Bolt 1.30's bug
    assert ack.status == 200 and ack.json()["text"] == "🍌 Got it — working on your image."
    assert jobs(served) == 1


def test_a_private_answer_to_an_event_is_sent_after_the_ack(served: InProcess) -> None:
    bot = served.slack.bot_user_id
    with served.slack.hold("chat.postEphemeral") as held:
        [mention, message] = served.slack.post_user_message(channel=CHANNEL, text=f"<@{bot}> a fox --ar 7:3")
        # Both deliveries were answered while the ephemeral call is still held: it came after the ack.
        assert (mention.status, message.status) == (200, 200)
        held.wait_for_call()
    [call] = served.slack.calls_to("chat.postEphemeral")
    assert "7:3" in str(call.params["text"]) and call.params["user"] == "UALICE"
    assert jobs(served) == 0


def test_the_shortcut_opens_its_modal_after_the_ack(served: InProcess) -> None:
    slack = served.slack
    file = slack.host_file(b"\x89PNG\r\n\x1a\n", name="shot.png", mimetype="image/png")
    [posted] = slack.post_user_message(channel=CHANNEL, text="our product shot", files=[file])
    assert posted.event is not None
    payload = {
        "type": "message_action",
        "callback_id": "edit_with_banana",
        "trigger_id": slack.new_trigger_id(),
        "response_url": slack.new_response_url(channel_id=CHANNEL, user_id="UBOB"),
        "team": {"id": slack.team_id},
        "channel": {"id": CHANNEL},
        "user": {"id": "UBOB"},
        "message": slack.message(CHANNEL, posted.event["ts"]),
    }
    with slack.hold("views.open") as held:
        assert slack.send_interactive(payload).status == 200
        held.wait_for_call()
    [opened] = slack.calls_to("views.open")
    assert opened.decoded("view")["callback_id"] == "banana_edit_modal"


def test_an_event_nobody_handles_gets_a_200(served: InProcess) -> None:
    delivery = served.slack.send_event({"type": "reaction_added", "user": "UALICE", "reaction": "banana"})
    assert delivery.status == 200 and jobs(served) == 0
