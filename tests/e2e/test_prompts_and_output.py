"""Issue 24, end to end: prompts reach Gemini exactly as typed, nothing the bot posts can ping or deceive,
the default model is the current one and retired ones name their successor.

The cases share one app on SQLite; each starts its own conversation as its own user.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from bot.models import Job
from bot.sandbox.fake_gemini import Fault
from bot.sandbox.fake_slack import live_markup
from tests.e2e.conftest import CHANNEL, Stack, module_stack
from tests.e2e.conversation import Settled, command, new_user, settle

pytestmark = pytest.mark.e2e

# Each hostile form as a person would type it (Slack delivers it escaped) and as Gemini might answer it.
HOSTILE = "<!channel> <!here> <!everyone> <@UEVE> <https://evil.example/login|click here>"
HOSTILE_TYPED = HOSTILE.replace("<", "&lt;").replace(">", "&gt;")


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    yield from module_stack(tmp_path_factory, "prompts")


@pytest.fixture
def app(shared: Stack) -> Iterator[Stack]:
    shared.gemini.clear_faults()
    yield shared
    assert not shared.gemini.clear_faults()


def gemini_text(outcome: Settled) -> str:
    """The text of the last user turn Gemini was sent for this request."""
    body = outcome.calls[-1].body
    return "".join(p.get("text", "") for p in body["contents"][-1]["parts"])


def job_of(stack: Stack, user: str) -> Job:
    return next(j for j in reversed(stack.jobs()) if j.requested_by == user)


def assert_inert(stack: Stack) -> None:
    """Nothing the bot showed anyone can ping, broadcast or hide a link: the only live markup is the
    mention of each case's requester (``new_user``) and channel links the bot writes itself."""
    for text in stack.slack.bot_texts():
        for entity in live_markup(text):
            assert re.fullmatch(r"@UF\d{4}|#C[A-Z0-9]+", entity), (entity, text)


# --- what people type reaches Gemini as they wrote it ----------------------------------------------------


def test_a_slash_command_reaches_gemini_as_the_text_a_person_reads(app: Stack) -> None:
    app.slack.set_user("UBOB", profile={"display_name": "Bob", "real_name": "Bob Stone"})
    typed = (
        'a poster with the headline "GRAND OPENING" --ar 16:9 for <@UBOB>\'s café &amp; bar\n'
        "second line: C:\\path\\to\\menu!!! ... ?!\n"
        "see <https://example.com/menu|our menu> in <#C0DESIGN|design> — it's 'great'"
    )
    outcome = command(app, typed)
    assert outcome.upload is not None, outcome.message
    expected = (
        'a poster with the headline "GRAND OPENING" for Bob\'s café & bar\n'
        "second line: C:\\path\\to\\menu!!! ... ?!\n"
        "see our menu in #design — it's 'great'"
    )
    assert gemini_text(outcome) == expected
    assert outcome.calls[-1].body["generationConfig"]["imageConfig"] == {"aspectRatio": "16:9"}
    # The root message shows the same words (escaped for Slack, so "&" reads as "&").
    root = app.slack.message(CHANNEL, str(outcome.upload.thread_ts))
    assert root is not None
    assert "Bob's café &amp; bar" in root["text"] and "#design" in root["text"]
    assert "<@UBOB>" not in root["text"]  # Bob is named, not pinged
    assert app.slack.calls_to("users.info")


def test_a_mention_keeps_other_peoples_names_and_drops_only_the_bot(app: Stack) -> None:
    app.slack.set_user("UDANA", profile={"display_name": "Dana", "real_name": "Dana Reyes"})
    user = new_user()
    calls_before, slack_before = len(app.gemini.requests), len(app.slack.calls)
    app.slack.post_user_message(
        channel=CHANNEL,
        user=user,
        text=f'<@{app.slack.bot_user_id}> a birthday card for <@UDANA> from the team, with "HAPPY 30"',
    )
    outcome = settle(app, user, calls_before=calls_before, slack_calls_before=slack_before)
    assert outcome.upload is not None, outcome.message
    assert gemini_text(outcome) == 'a birthday card for Dana from the team, with "HAPPY 30"'


# --- nothing the bot posts can ping or deceive -------------------------------------------------------


def test_a_hostile_prompt_and_answer_are_posted_as_inert_text(app: Stack) -> None:
    user = new_user()
    answer = f"Done {HOSTILE}"
    outcome = command(app, f"a sign that says {HOSTILE_TYPED}", Fault.answer(text=answer), user=user)
    assert outcome.upload is not None, outcome.message
    assert gemini_text(outcome) == f"a sign that says {HOSTILE}"  # Gemini gets what was typed
    root = app.slack.message(CHANNEL, str(outcome.upload.thread_ts))
    assert root is not None and "&lt;!channel&gt;" in root["text"]
    comment = str(outcome.upload.initial_comment)
    assert comment.startswith(f"<@{user}> ") and "&lt;!here&gt;" in comment
    assert live_markup(comment) == [f"@{user}"]
    assert_inert(app)


def test_a_hostile_refusal_text_is_quoted_as_inert_text(app: Stack) -> None:
    user = new_user()
    outcome = command(app, "a portrait", Fault.text_only(f"I won't.\n{HOSTILE}"), user=user)
    assert outcome.upload is None
    assert (
        "&lt;!everyone&gt;" in outcome.text
        and "&lt;https://evil.example/login|click here&gt;" in outcome.text
    )
    assert live_markup(outcome.text) == [f"@{user}"]
    assert_inert(app)


@pytest.mark.parametrize(
    ("value", "shown"), [("&lt;!channel&gt;", "&lt;!channel&gt;"), ("<!channel>", "@channel")]
)
def test_a_hostile_option_value_is_echoed_as_inert_text(app: Stack, value: str, shown: str) -> None:
    ack = app.slack.send_command(f"a fox --ar {value}", user_id=new_user())
    text = ack.json()["text"]
    assert f"`{shown}`" in text and live_markup(text) == []


# --- current models ----------------------------------------------------------------------------------


def test_the_default_model_is_nano_banana_2_1_and_its_version_is_stored(app: Stack) -> None:
    outcome = command(app, "a lighthouse at dawn")
    assert outcome.upload is not None, outcome.message
    assert [c.model for c in outcome.calls] == ["gemini-nano-banana-2.1"]
    assert job_of(app, outcome.user).model_version == "gemini-nano-banana-2.1"


def test_the_model_version_gemini_reports_is_stored_even_when_another_model_answers(app: Stack) -> None:
    routed = Fault.answer(model_version="gemini-nano-banana-2.1-routed")
    outcome = command(app, "a tram in the rain --model nano-banana-2 --size 512", routed)
    assert outcome.upload is not None, outcome.message
    assert outcome.calls[0].model == "gemini-3.1-flash-image"
    job = job_of(app, outcome.user)
    assert (job.model_id, job.model_version) == ("gemini-3.1-flash-image", "gemini-nano-banana-2.1-routed")


@pytest.mark.parametrize("no_longer_available", [True, False], ids=["no-longer-available", "not-found"])
def test_a_retired_model_names_its_successor_and_how_to_ask_for_it(
    app: Stack, no_longer_available: bool
) -> None:
    app.gemini.retire("gemini-3.1-flash-image", no_longer_available=no_longer_available)
    try:
        outcome = command(app, "a quick sketch of a cat --model nano-banana-2")
    finally:
        app.gemini.unretire("gemini-3.1-flash-image")
    assert [c.status for c in outcome.calls] == [404]
    assert "`gemini-3.1-flash-image`" in outcome.text
    assert "successor is *nano-banana-2.1*" in outcome.text and "`--model nano-banana-2.1`" in outcome.text
    assert ("no longer available" in outcome.text) is no_longer_available


# --- finish reasons ----------------------------------------------------------------------------------


@pytest.mark.parametrize("reason", ["PUP_LIMITED_DISABLED", "ESCALATION"])
def test_an_alarm_finish_reason_tells_the_person_an_admin_must_act_and_logs_an_error(
    app: Stack, reason: str
) -> None:
    outcome = command(app, "a cat in a hat", Fault.finish(reason))
    assert outcome.upload is None
    assert len(outcome.calls) == 1  # never retried
    assert "admin" in outcome.text and reason in outcome.text
    assert job_of(app, outcome.user).state == "failed"
    errors = [line for line in app.logs().splitlines() if " ERROR " in line and reason in line]
    assert errors, app.logs()[-3000:]


def test_a_continuation_with_an_image_delivers_the_image(app: Stack) -> None:
    outcome = command(app, "a very detailed city map", Fault.answer(finish_reason="CONTINUATION"))
    assert outcome.upload is not None, outcome.message
    assert len(outcome.calls) == 1


def test_a_continuation_without_an_image_says_it_was_cut_short(app: Stack) -> None:
    outcome = command(app, "an even more detailed city map", Fault.finish("CONTINUATION"))
    assert outcome.upload is None
    assert len(outcome.calls) == 1  # not retried blindly
    assert "cut short" in outcome.text
