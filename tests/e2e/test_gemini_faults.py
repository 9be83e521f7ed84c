"""Issue 3, Gemini side, end to end: every fault ends in an image or a specific message in the thread,
with bounded retries and no retry of refusals.

Most cases share one app process (``shared``): each starts its own conversation as its own user, waits
until that conversation settles, and leaves no scripted fault behind. Faults that need the app started
differently (a short client timeout, a wrong API key) get their own process.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.images import sniff_mime
from bot.sandbox.fake_gemini import Fault
from tests.e2e.conftest import Stack, make_stack, module_stack
from tests.e2e.conversation import command, new_user, reply

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """One app on SQLite for the independent cases of this module (each app start costs about a second)."""
    yield from module_stack(tmp_path_factory, "gemini-faults")


@pytest.fixture
def app(shared: Stack) -> Iterator[Stack]:
    shared.gemini.clear_faults()
    yield shared
    leftover = shared.gemini.clear_faults()
    assert not leftover, f"faults the case scripted but Gemini was never asked for: {leftover}"
    assert " crashed" not in shared.logs(), shared.logs()[-4000:]


# --- transient trouble: retried, and the image arrives -------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "notice"),
    [
        (Fault.internal(), "500"),
        (Fault.overloaded(), "overloaded"),
        (Fault.deadline(), "504"),
        (Fault.reset(), "connection"),
        (Fault.malformed_json(), "couldn't read"),
    ],
    ids=["500", "503-overloaded", "504", "connection-reset", "malformed-json"],
)
def test_transient_fault_is_retried_and_the_image_arrives(app: Stack, fault: Fault, notice: str) -> None:
    outcome = command(app, "a lighthouse at dawn", fault)
    assert outcome.upload is not None, outcome.message
    assert [c.fault for c in outcome.calls] == [fault.name, None]
    # While it waited, the status message said why and for how long.
    assert any(notice in text and "trying again" in text for text in outcome.updates), outcome.updates


def test_rate_limit_waits_at_least_the_retry_delay(app: Stack) -> None:
    outcome = command(app, "a lighthouse at dusk", Fault.rate_limited(retry_delay_s=1.0))
    assert outcome.upload is not None, outcome.message
    first, second = outcome.calls
    assert first.status == 429 and second.status == 200
    assert second.at - first.at >= 1.0
    assert any("rate limit" in text.lower() for text in outcome.updates), outcome.updates


def test_exhausted_retries_end_in_a_message_after_the_budget(app: Stack) -> None:
    outcome = command(app, "a lighthouse in a storm", *[Fault.overloaded() for _ in range(10)])
    assert outcome.upload is None
    assert "having trouble" in outcome.text and "try again" in outcome.text
    assert len(outcome.calls) == 4  # the retry budget: four attempts in all
    assert app.app.process is not None and app.app.process.poll() is None
    app.gemini.clear_faults()  # the six the budget never reached


# --- refusals: never retried, explained --------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "needles"),
    [
        (Fault.finish("IMAGE_SAFETY"), ["safety"]),
        (Fault.finish("PROHIBITED_CONTENT"), ["prohibited"]),
        (Fault.finish("NO_IMAGE"), ["without making an image"]),
        (Fault.finish("RECITATION"), ["copyrighted"]),
        (Fault.prompt_blocked("SAFETY"), ["blocked", "safety"]),
        (Fault.prompt_blocked("OTHER"), ["blocked"]),
        (Fault.no_candidates(), ["empty answer"]),
        (
            Fault.text_only("I can't draw real people, but here is a description of the scene."),
            ["text instead of an image", "I can't draw real people, but here is a description"],
        ),
    ],
    ids=[
        "image-safety",
        "prohibited-content",
        "no-image",
        "recitation",
        "prompt-blocked-safety",
        "prompt-blocked-other",
        "no-candidates",
        "text-only",
    ],
)
def test_refusal_is_explained_and_not_retried(app: Stack, fault: Fault, needles: list[str]) -> None:
    outcome = command(app, "a portrait of a famous person", fault)
    assert outcome.upload is None
    assert len(outcome.calls) == 1  # a refusal is never retried: one charge at most
    text = outcome.text
    assert "Try rephrasing" in text
    for needle in needles:
        assert needle.lower() in text.lower(), text
    assert not any("trying again" in u for u in outcome.updates)


def test_after_a_refusal_the_next_reply_works_and_skips_the_refused_turn(app: Stack) -> None:
    user = new_user()
    first = command(app, "a red bicycle", user=user)
    assert first.upload is not None and first.upload.thread_ts
    thread_ts = first.upload.thread_ts
    refused = reply(app, thread_ts, "put a famous person on it", Fault.finish("IMAGE_SAFETY"))
    assert "safety" in refused.text
    after = reply(app, thread_ts, "make it matte blue")
    assert after.upload is not None and after.upload.thread_ts == thread_ts
    [call] = after.calls
    contents = call.body["contents"]
    assert [c["role"] for c in contents] == ["user", "model", "user"]
    assert "famous person" not in str(contents)
    assert contents[-1]["parts"] == [{"text": "make it matte blue"}]


# --- a mislabelled image, a retired model ------------------------------------------------------------


def test_jpeg_labelled_png_is_uploaded_as_jpeg_and_replayed_as_jpeg(app: Stack) -> None:
    first = command(app, "a teapot", Fault.jpeg_labelled_png())
    assert first.upload is not None and first.upload.thread_ts
    assert sniff_mime(first.upload.data) == "image/jpeg" and first.upload.filename.endswith(".jpg")
    [call] = first.calls
    assert call.payload is not None
    labels = [
        p["inlineData"]["mimeType"]
        for p in call.payload["candidates"][0]["content"]["parts"]
        if "inlineData" in p and not p.get("thought")
    ]
    assert labels == ["image/png"]  # what Gemini claimed

    second = reply(app, first.upload.thread_ts, "make it green")
    assert second.upload is not None, second.message
    [again] = second.calls
    assert again.status == 200
    replayed = [
        p["inlineData"]["mimeType"]
        for c in again.body["contents"]
        if c["role"] == "model"
        for p in c["parts"]
        if "inlineData" in p
    ]
    assert replayed == ["image/jpeg"]


def test_retired_model_names_the_model_and_how_to_pick_another(app: Stack) -> None:
    app.gemini.retire("gemini-3-pro-image")
    outcome = command(app, "a chess set --model pro")
    assert len(outcome.calls) == 1 and outcome.calls[0].status == 404
    for needle in ("gemini-3-pro-image", "--model", "BANANA_DEFAULT_MODEL"):
        assert needle in outcome.text


# --- faults that need the app started differently ----------------------------------------------------


def test_a_response_that_never_comes_is_not_sent_twice(any_db_stack: Stack) -> None:
    """Gemini got the request and may still finish and bill it: no second request, a clear message."""
    stack = any_db_stack
    stack.start_app(BANANA_GEMINI_TIMEOUT_SECONDS="1")
    outcome = command(stack, "a quiet harbour", Fault.hang(5.0))
    assert outcome.upload is None
    [call] = outcome.calls
    assert call.fault == "hang"
    assert "didn't answer in time" in outcome.text
    assert "charged twice" in outcome.text


def test_a_rejected_api_key_tells_an_admin_what_to_check(tmp_path: Path) -> None:
    stacks = make_stack(tmp_path, "sqlite")
    stack = next(stacks)
    try:
        stack.start_app(GEMINI_API_KEY="not-the-right-key")
        outcome = command(stack, "a paper crane")
        [call] = outcome.calls
        assert call.status == 400 and call.headers["x-goog-api-key"] == "REDACTED"
        assert "GEMINI_API_KEY" in outcome.text and "admin" in outcome.text
        assert "not-the-right-key" not in stack.logs()
    finally:
        next(stacks, None)
