"""Issue 20, end to end through the running app: limits checked before anything is queued or spent, each
kind hit and reset on a clock the test controls (the app's processes move theirs with ``moved_clock/``; the
test's own clock, which the stand-ins sign with, is moved to the same moment)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
import time_machine

from bot.models import Charge
from tests.e2e.conftest import CHANNEL, MOVED_CLOCK, Stack, make_stack, rows

pytestmark = pytest.mark.e2e

NEW_YEARS_EVE = datetime(2026, 12, 31, 23, 40, tzinfo=UTC)
NEW_YEAR = datetime(2027, 1, 1, 0, 5, tzinfo=UTC)


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    yield from make_stack(tmp_path, "sqlite")


@contextmanager
def app_at(stack: Stack, moment: datetime, limits: str, **env: str) -> Iterator[Stack]:
    """The app started with its clock (and the test's) at ``moment``; stopped at the end."""
    offset = str((moment - datetime.now(UTC)).total_seconds())
    with time_machine.travel(moment, tick=True):
        app = stack.start_app(
            PYTHONPATH=MOVED_CLOCK, CLOCK_OFFSET_SECONDS=offset, BANANA_LIMITS=limits, **env
        )
        try:
            yield stack
        finally:
            app.terminate(timeout=30)


def banana(stack: Stack, text: str, *, user: str = "UALICE", channel: str = CHANNEL) -> str:
    """``/banana text``: the private acknowledgement, once the job it queued (if any) has settled."""
    ack = stack.slack.send_command(text, user_id=user, channel_id=channel)
    assert ack.status == 200, ack.body
    stack.wait_for_jobs(lambda jobs: all(j.state in ("done", "failed") for j in jobs), timeout=30)
    return str(ack.json().get("text") if ack.json() else "")


def queued(reply: str) -> bool:
    return reply.startswith("🍌 Got it")


def test_a_persons_daily_images_are_capped_and_the_cap_resets_at_midnight_utc(stack: Stack) -> None:
    with app_at(stack, NEW_YEARS_EVE, "user/day=2"):
        assert queued(banana(stack, "a red kite"))
        assert queued(banana(stack, "a blue kite"))
        refused = banana(stack, "a green kite")
        assert "Not queued, nothing spent" in refused
        assert "your limit of 2 images a day (`user/day=2`); 2 images used today" in refused
        assert "resets Jan 1, 00:00 UTC, in 20 min" in refused
        assert "BANANA_LIMITS" in refused  # who can raise it: no admins are named here
        assert queued(banana(stack, "a kite for Bob", user="UBOB"))  # Bob's own day is untouched
    assert len(stack.jobs()) == 3  # the refused request queued nothing
    with app_at(stack, NEW_YEAR, "user/day=2"):
        assert queued(banana(stack, "a green kite"))


def test_a_channels_daily_images_are_capped_for_everyone_in_it(stack: Stack) -> None:
    with app_at(stack, NEW_YEARS_EVE, "channel/day=1", BANANA_ADMINS="U0ADMIN"):
        assert queued(banana(stack, "a red kite"))
        refused = banana(stack, "a blue kite", user="UBOB")
        assert "this channel's limit of 1 image a day (`channel/day=1`)" in refused
        assert "To raise it, ask <@U0ADMIN>" in refused
        assert queued(banana(stack, "a blue kite", user="UBOB", channel="C0RANDOM"))


def test_a_workspace_at_its_monthly_budget_is_refused_until_the_month_turns(stack: Stack) -> None:
    # A 1K image of Nano Banana 2.1 is $0.0336; a request is estimated at $0.0493 before it is made (with a
    # long prompt and a long think), and settles at what the ledger says afterwards.
    with app_at(stack, NEW_YEARS_EVE, "workspace/month=$0.10"):
        assert queued(banana(stack, "a red kite"))
        assert queued(banana(stack, "a blue kite", user="UBOB"))
        spent = sum(c.cost_micros for c in rows(stack.env["DATABASE_URL"], Charge))
        assert spent > 67_200 > 100_000 - 49_350  # two images settled: a third estimate no longer fits
        refused = banana(stack, "a green kite", user="UCAROL")
        assert "this workspace's limit of $0.10 a month (`workspace/month=$0.1`)" in refused
        assert "resets Jan 1, 00:00 UTC" in refused
    with app_at(stack, NEW_YEAR, "workspace/month=$0.10"):
        assert queued(banana(stack, "a green kite", user="UCAROL"))


def test_a_request_is_refused_when_only_part_of_its_cost_fits(stack: Stack) -> None:
    with app_at(stack, NEW_YEARS_EVE, "user/day=$0.06"):
        assert queued(banana(stack, "a red kite"))  # estimated $0.0493, settled at about $0.035
        refused = banana(stack, "a blue kite")  # $0.025 left, the estimate is $0.0493
        assert "this request (about $0.0493) would go over your limit of $0.06 a day" in refused


def test_requests_queued_but_not_yet_made_count_against_the_limit(stack: Stack) -> None:
    """Two requests sent before either is made can't both take the last image under a limit."""
    with app_at(stack, NEW_YEARS_EVE, "user/day=1"), stack.gemini.hold() as held:
        first = stack.slack.send_command("a red kite", user_id="UALICE")
        held.wait_for_call()
        second = stack.slack.send_command("a blue kite", user_id="UALICE")
        assert "Got it" in str(first.json()["text"])
        assert "your limit of 1 image a day" in str(second.json()["text"])
        assert "1 image used today" in str(second.json()["text"])


def test_a_mention_over_a_limit_is_told_privately(stack: Stack) -> None:
    with app_at(stack, NEW_YEARS_EVE, "user/day=1"):
        assert queued(banana(stack, "a red kite"))
        stack.slack.post_user_message(channel=CHANNEL, text=f"<@{stack.slack.bot_user_id}> a blue kite")
        note = stack.slack.wait_for(
            lambda: next((c for c in stack.slack.calls if c.method == "chat.postEphemeral"), None)
        )
        assert note.params["user"] == "UALICE"
        assert "your limit of 1 image a day" in str(note.params["text"])
    assert len(stack.jobs()) == 1


def test_one_persons_burst_does_not_hold_up_another_persons_request(stack: Stack) -> None:
    """Alice queues 20 requests in 20 threads; Bob then sends one. With one worker, Bob's request reaches
    Gemini before Alice's next-but-one, and his acknowledgement counts only what is really ahead."""
    stack.start_app(BANANA_WORKERS="1")
    with stack.gemini.hold() as held:
        for n in range(20):
            assert stack.slack.send_command(f"alice {n}", user_id="UALICE").status == 200
        held.wait_for_call()  # Alice's first is inside Gemini; 19 wait
        ack = stack.slack.send_command("bob's one", user_id="UBOB")
        assert "1 request is ahead of yours" in str(ack.json()["text"])  # not 19
    stack.wait_for_jobs(lambda jobs: len(jobs) == 21 and all(j.state == "done" for j in jobs), timeout=60)
    prompts = [call.body["contents"][-1]["parts"][0]["text"] for call in stack.gemini.requests]
    assert prompts.index("bob's one") <= 2, prompts  # after Alice's first, before her next-but-one


@pytest.mark.parametrize("scope", ["user", "channel", "workspace"])
@pytest.mark.parametrize("period", ["day", "month"])
def test_every_kind_of_limit_is_hit_and_resets_when_its_period_turns(
    stack: Stack, scope: str, period: str
) -> None:
    """One image per ``scope`` and ``period``: the second is refused, someone outside the scope is not, and
    the first request of the next period goes through (a day turns at 00:00 UTC, a month on the 1st)."""
    limit = f"{scope}/{period}=1"
    before = datetime(2026, 12, 15, 23, 50, tzinfo=UTC) if period == "day" else NEW_YEARS_EVE
    after = datetime(2026, 12, 16, 0, 5, tzinfo=UTC) if period == "day" else NEW_YEAR
    outside = {"user": {"user": "UBOB"}, "channel": {"channel": "C0RANDOM"}, "workspace": None}[scope]
    with app_at(stack, before, limit):
        assert queued(banana(stack, "a red kite"))
        refused = banana(stack, "a blue kite")
        assert f"`{limit}`" in refused and "1 image used" in refused
        if outside is not None:
            assert queued(banana(stack, "a kite elsewhere", **outside))
    with app_at(stack, after, limit):
        assert queued(banana(stack, "a blue kite"))
