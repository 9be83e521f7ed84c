"""Issue 20, end to end through the running app: every Gemini call is a ledger row, priced by the model
that answered; refusals, errors and timeouts are recorded too."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.models import Charge, Job
from bot.prices import dollars
from bot.sandbox.fake_gemini import Fault
from tests.e2e.conftest import CHANNEL, Stack, make_stack, module_stack, rows
from tests.e2e.conversation import Settled, command, new_user

pytestmark = pytest.mark.e2e

MODEL = "gemini-nano-banana-2.1"


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    yield from module_stack(tmp_path_factory, "cost")


@pytest.fixture
def app(shared: Stack) -> Iterator[Stack]:
    shared.gemini.clear_faults()
    yield shared
    assert not shared.gemini.clear_faults()


def charges(stack: Stack, outcome: Settled) -> list[Charge]:
    """The ledger rows of ``outcome``'s request, once its job has settled."""
    stack.wait_for_jobs(lambda jobs: all(j.state in ("done", "failed") for j in jobs))
    return [c for c in rows(stack.env["DATABASE_URL"], Charge) if c.user_id == outcome.user]


def job_of(stack: Stack, outcome: Settled) -> Job:
    return next(j for j in stack.jobs() if j.requested_by == outcome.user)


def test_a_made_image_is_one_charge_with_its_tokens_and_googles_price(app: Stack) -> None:
    outcome = command(app, "a red kite over the dunes --size 2K")
    assert outcome.upload is not None
    [row] = charges(app, outcome)
    usage = outcome.calls[0].payload["usageMetadata"]  # type: ignore[index]
    assert (row.team_id, row.channel_id, row.job_id) == (app.slack.team_id, CHANNEL, job_of(app, outcome).id)
    assert (row.model_requested, row.model_version, row.priced_as, row.image_size) == (
        MODEL,
        MODEL,
        MODEL,
        "2K",
    )
    assert (row.outcome, row.billed, row.images) == ("image", "yes", 1)
    assert row.prompt_tokens == usage["promptTokenCount"]
    assert row.image_tokens == 1680 == usage["candidatesTokensDetails"][0]["tokenCount"]
    assert row.thinking_tokens == usage["thoughtsTokenCount"]
    # Nano Banana 2.1: $1.50 per 1M input, $7.50 text and thinking, $30 image tokens (the built-in table).
    expected = row.prompt_tokens * 1.5 + (row.text_tokens + row.thinking_tokens) * 7.5 + row.image_tokens * 30
    assert row.cost_micros == round(expected)


def test_an_answer_from_another_model_is_priced_as_that_model(app: Stack) -> None:
    outcome = command(app, "a paper boat", Fault.answer(model_version="gemini-3-pro-image"))
    assert outcome.upload is not None
    [row] = charges(app, outcome)
    assert (row.model_requested, row.model_version, row.priced_as) == (
        MODEL,
        "gemini-3-pro-image",
        "gemini-3-pro-image",
    )
    expected = row.prompt_tokens * 2 + (row.text_tokens + row.thinking_tokens) * 12 + row.image_tokens * 120
    assert row.cost_micros == round(expected)


def test_refusals_and_errors_are_recorded_and_only_what_google_bills_costs(app: Stack) -> None:
    refused = command(app, "something it will not draw", Fault.prompt_blocked())
    [row] = charges(app, refused)
    assert (row.outcome, row.billed, row.images) == ("refused", "yes", 0)
    assert row.cost_micros == round(row.prompt_tokens * 1.5) > 0  # the prompt is billed, no image

    retried = command(app, "a lighthouse at dusk", Fault.overloaded())
    assert retried.upload is not None
    error, image = charges(app, retried)
    assert (error.outcome, error.billed, error.cost_micros) == ("error", "no", 0)
    assert (image.outcome, image.billed) == ("image", "yes")


def test_a_call_that_timed_out_after_it_was_sent_is_recorded_as_possibly_billed(tmp_path: Path) -> None:
    for stack in make_stack(tmp_path, "sqlite"):
        stack.start_app(BANANA_GEMINI_TIMEOUT_SECONDS="1")
        outcome = command(stack, "a quiet harbour", Fault.hang(5.0))
        [row] = charges(stack, outcome)
        assert (row.outcome, row.billed, row.images) == ("timeout", "maybe", 1)
        # Counted at the estimate of one 1K image with a long prompt and a long think: more than the image.
        assert row.cost_micros > 33_600


def test_an_operators_price_file_replaces_the_built_in_table(tmp_path: Path) -> None:
    table = {
        "checked": "2027-01-15",
        "models": {
            MODEL: {"input": 0, "text_output": 0, "image_output": 100.0, "image_tokens": {"1K": 1120}}
        },
    }
    path = tmp_path / "prices.json"
    path.write_text(json.dumps(table))
    for stack in make_stack(tmp_path, "sqlite"):
        stack.start_app(BANANA_PRICES_FILE=str(path))
        outcome = command(stack, "a green kite")
        [row] = charges(stack, outcome)
        assert row.cost_micros == row.image_tokens * 100 == 112_000


def ledger_of(stack: Stack, user: str | None = None) -> list[Charge]:
    return [c for c in rows(stack.env["DATABASE_URL"], Charge) if user is None or c.user_id == user]


def test_usage_shows_your_images_and_spend_and_what_is_left_equal_to_the_ledger(app: Stack) -> None:
    user = new_user()
    for prompt in ("a red kite", "a blue kite --size 2K"):
        assert app.slack.send_command(prompt, user_id=user).status == 200
    app.wait_for_jobs(lambda jobs: all(j.state in ("done", "failed") for j in jobs))
    mine = ledger_of(app, user)
    assert len(mine) == 2
    images, micros = sum(c.images for c in mine), sum(c.cost_micros for c in mine)
    ack = app.slack.send_command("usage", user_id=user)
    text = str(ack.json()["text"])
    assert f"• Today: {images} images, {dollars(micros)}" in text
    assert f"• This month: {images} images, {dollars(micros)}" in text
    # The default limits apply: 50 images a day and $50 a month for each person, $500 for the workspace.
    assert f"your 50 images a day (`user/day=50`): {50 - images} images left" in text
    assert f"your $50.00 a month (`user/month=$50`): {dollars(50_000_000 - micros)} left" in text
    workspace = sum(c.cost_micros for c in ledger_of(app))
    assert (
        f"this workspace's $500.00 a month (`workspace/month=$500`): {dollars(500_000_000 - workspace)}"
        in text
    )
    assert not app.slack.responses or all("This workspace in" not in str(r.body) for r in app.slack.responses)


def test_an_admin_sees_the_workspace_and_gets_the_months_ledger_as_a_csv_in_a_dm(app: Stack) -> None:
    user = new_user()
    assert command(app, "a green kite", user=user).upload is not None
    app.slack.set_user("UADMIN01", is_admin=True)  # a workspace admin, by users.info
    responses = len(app.slack.responses)
    app.slack.send_command("usage csv", user_id="UADMIN01")
    upload = app.slack.wait_for(
        lambda: next((u for u in app.slack.uploads if u.filename.startswith("banana-usage-")), None)
    )
    ledger = ledger_of(app)
    report = str(app.slack.responses[responses].body["text"])
    assert f"{sum(c.images for c in ledger)} images, {dollars(sum(c.cost_micros for c in ledger))}" in report
    assert f"<@{user}>" in report or "Top people" in report
    assert upload.channel is not None and upload.channel.startswith("D")  # a DM with the admin
    lines = list(csv.DictReader(io.StringIO(upload.data.decode())))
    assert [(int(r["job_id"] or 0), r["user_id"], r["outcome"], r["billed"]) for r in lines] == [
        (c.job_id or 0, c.user_id, c.outcome, c.billed) for c in ledger
    ]
    assert [round(float(r["cost_usd"]) * 1_000_000) for r in lines] == [c.cost_micros for c in ledger]


def test_someone_who_is_not_an_admin_is_told_so_and_gets_no_file(app: Stack) -> None:
    user = new_user()
    uploads, responses = len(app.slack.uploads), len(app.slack.responses)
    app.slack.send_command("usage csv", user_id=user)
    reply = app.slack.wait_for(lambda: app.slack.responses[responses:])
    assert "Only admins can get the workspace's usage" in str(reply[0].body["text"])
    assert len(app.slack.uploads) == uploads


def test_an_admin_is_told_when_the_csv_cant_be_sent(app: Stack) -> None:
    """An app upgraded without reinstalling lacks ``im:write``: the admin hears why, privately."""
    app.slack.set_user("UADMIN02", is_owner=True)
    app.slack.fail("conversations.open", error="missing_scope")
    before = len(app.slack.responses)
    app.slack.send_command("usage csv", user_id="UADMIN02")
    told = app.slack.wait_for(
        lambda: [r for r in app.slack.responses[before:] if "couldn't send" in str(r.body["text"])]
    )
    assert "`missing_scope`" in str(told[0].body["text"]) and "im:write" in str(told[0].body["text"])
