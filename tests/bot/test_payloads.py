"""The payload readers, on dicts alone: no database, no Slack."""

from __future__ import annotations

from bot.payloads import (
    EditTarget,
    Route,
    event_id_of,
    image_files,
    parse_command,
    parse_edit_submission,
    parse_message,
    parse_shortcut,
    route,
)
from tests.bot.helpers import BOT, event, parsed


def test_bots_edits_and_deletions_are_not_messages() -> None:
    assert parse_message(event(bot_id="B2"), team_id="T1", bot_user_id=BOT) is None
    assert parse_message(event(user=BOT), team_id="T1", bot_user_id=BOT) is None
    assert parse_message(event(subtype="bot_message"), team_id="T1", bot_user_id=BOT) is None
    assert parse_message(event(subtype="message_changed"), team_id="T1", bot_user_id=BOT) is None
    assert parse_message(event(subtype="message_deleted"), team_id="T1", bot_user_id=BOT) is None
    assert parse_message(event(subtype="file_share", files=[{"id": "F1"}]), team_id="T1", bot_user_id=BOT)


def test_routes() -> None:
    assert route(parsed(text=f"<@{BOT}> a fox")) is Route.START
    assert route(parsed(channel="D1", channel_type="im")) is Route.START
    assert route(parsed(text="chatter")) is Route.IGNORE
    assert route(parsed(thread_ts="5.0")) is Route.CONTINUE


def test_team_comes_from_the_signed_envelope() -> None:
    message = parse_message(event(team="TEVIL"), team_id="T1", bot_user_id=BOT)
    assert message is not None and message.team_id == "T1"


def test_only_the_bots_own_mention_is_taken_out() -> None:
    message = parsed(text=f"<@{BOT}> a card for <@UBOB> from <@{BOT}|banana> the team")
    assert message.mentions_bot and message.text == "a card for <@UBOB> from  the team"
    assert not parsed(text="a card for <@UBOB>").mentions_bot


def test_only_images_and_connect_stubs_are_references() -> None:
    files = [
        {"id": "F1", "mimetype": "image/png"},
        {"id": "F2", "mimetype": "application/pdf"},
        {"id": "F3", "file_access": "check_file_info"},
    ]
    assert [f["id"] for f in image_files(files)] == ["F1", "F3"]


def test_the_shortcut_target_travels_through_the_modal_and_back() -> None:
    shortcut = {
        "channel": {"id": "C1"},
        "message": {"ts": "11.0", "thread_ts": "10.0", "files": [{"id": "F1", "mimetype": "image/jpeg"}]},
        "response_url": "https://hooks.example/r",
        "trigger_id": "t",
    }
    target = parse_shortcut(shortcut)
    assert target == EditTarget(
        channel_id="C1", thread_ts="10.0", file_ids=["F1"], response_url="https://hooks.example/r"
    )
    assert EditTarget.from_metadata(target.to_metadata()) == target
    body = {
        "team": {"id": "T1"},
        "user": {"id": "U1"},
        "view": {"private_metadata": target.to_metadata(), "state": {"values": {"b": {"a": {"value": "x"}}}}},
    }
    submission = parse_edit_submission(body, block_id="b", action_id="a")
    assert submission is not None
    assert (submission.team_id, submission.user_id, submission.text, submission.target) == (
        "T1",
        "U1",
        "x",
        target,
    )


def test_a_shortcut_on_a_message_without_images_has_no_target() -> None:
    no_images = {
        "channel": {"id": "C1"},
        "message": {"ts": "1.0", "files": [{"id": "F", "mimetype": "text/plain"}]},
    }
    assert parse_shortcut(no_images) is None
    assert route(parsed(thread_ts="10.0", ts="10.0")) is Route.IGNORE  # a parent is not a reply


def test_ids_and_timestamps_that_dont_look_like_slacks_are_refused() -> None:
    assert parse_message(event(channel="C" * 40), team_id="T1", bot_user_id=BOT) is None
    assert parse_message(event(user="alice; DROP TABLE"), team_id="T1", bot_user_id=BOT) is None
    assert parse_message(event(ts="1" * 40), team_id="T1", bot_user_id=BOT) is None
    assert parse_message(event(thread_ts="tomorrow"), team_id="T1", bot_user_id=BOT) is None
    assert parse_message(event(), team_id="T" * 33, bot_user_id=BOT) is None
    assert parse_command({"team_id": "T1", "channel_id": "C1", "user_id": "U" * 99, "text": "x"}) is None
    ok = parse_command({"team_id": "T1", "channel_id": "C1", "user_id": "U1", "text": "x", "response_url": 5})
    assert ok is not None and ok.response_url is None
    assert event_id_of({"event_id": "Ev0123ABC"}) == "Ev0123ABC"
    assert event_id_of({"event_id": "Ev" + "x" * 300}) is None
