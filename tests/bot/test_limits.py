"""BANANA_LIMITS: parsing, periods and the check (pure)."""

from __future__ import annotations

from datetime import datetime

import pytest

from bot.errors import ConfigError
from bot.limits import (
    DEFAULT_LIMITS,
    Limit,
    Tally,
    first_exceeded,
    parse_limits,
    period_end,
    period_start,
    until,
)
from bot.messages import over_limit


def test_the_issues_example_parses_into_images_and_micro_dollars() -> None:
    limits = parse_limits("user/day=20,user/month=$30,channel/day=200,workspace/month=$500")
    assert limits == (
        Limit("user", "day", 20, money=False),
        Limit("user", "month", 30_000_000, money=True),
        Limit("channel", "day", 200, money=False),
        Limit("workspace", "month", 500_000_000, money=True),
    )
    assert [str(limit) for limit in limits] == [
        "user/day=20",
        "user/month=$30",
        "channel/day=200",
        "workspace/month=$500",
    ]


def test_unset_means_the_documented_default_and_off_means_none() -> None:
    assert parse_limits(None) == parse_limits(DEFAULT_LIMITS) == parse_limits("  ")
    assert parse_limits(None)
    assert parse_limits("off") == parse_limits("none") == ()
    assert parse_limits(" User/Day = 5 , workspace/month=$0.50".replace(" = ", "=")) == (
        Limit("user", "day", 5, money=False),
        Limit("workspace", "month", 500_000, money=True),
    )


@pytest.mark.parametrize(
    "raw",
    [
        "user/day",
        "user/week=5",
        "team/day=5",
        "user/day=five",
        "user/day=2.5",
        "user/day=$1.234",
        "user/day=5,user/day=6",
        "user/day=-1",
    ],
)
def test_a_malformed_value_is_a_clear_error_at_start(raw: str) -> None:
    with pytest.raises(ConfigError, match="BANANA_LIMITS"):
        parse_limits(raw)


def test_a_day_and_a_month_are_utc_calendar_periods() -> None:
    now = datetime(2026, 12, 31, 23, 50)
    assert period_start("day", now) == datetime(2026, 12, 31)
    assert period_end("day", now) == datetime(2027, 1, 1)
    assert period_start("month", now) == datetime(2026, 12, 1)
    assert period_end("month", now) == datetime(2027, 1, 1)
    assert period_end("month", datetime(2027, 2, 3)) == datetime(2027, 3, 1)
    assert until(datetime(2027, 1, 1), now) == "10 min"
    assert until(datetime(2027, 1, 1, 3, 10), now) == "3 h 20 min"
    assert until(datetime(2027, 1, 20), now) == "19 days"


def test_the_first_limit_a_request_would_go_over_is_the_one_named() -> None:
    limits = parse_limits("user/day=3,user/month=$1")
    used = {("user", "day"): Tally(2, 600_000), ("user", "month"): Tally(2, 950_000)}
    assert first_exceeded(limits, used, Tally(1, 40_000)) is None  # 3 images, $0.99
    limit, have = first_exceeded(limits, used, Tally(1, 60_000)) or (None, None)
    assert (str(limit), have) == ("user/month=$1", Tally(2, 950_000))  # only part of the request fits
    assert first_exceeded(limits, {("user", "day"): Tally(3, 0)}, Tally(1, 1))[0] == limits[0]  # type: ignore[index]


def test_the_refusal_says_which_limit_when_it_resets_and_who_can_raise_it() -> None:
    limit = Limit("channel", "month", 200_000_000, money=True)
    text = over_limit(
        limit,
        used=Tally(90, 199_990_000),
        asked=Tally(1, 49_350),
        resets_at="Jan 1, 00:00",
        resets_in="3 days",
        admins=("U0ADMIN", "U0BOSS"),
    )
    assert "nothing spent" in text
    assert "this channel's limit of $200.00 a month (`channel/month=$200`)" in text
    assert "$199.99 used this month" in text
    assert "(about $0.0493)" in text
    assert "resets Jan 1, 00:00 UTC, in 3 days" in text
    assert "<@U0ADMIN> or <@U0BOSS>" in text
    assert "BANANA_LIMITS" in over_limit(
        limit, used=Tally(), asked=Tally(1, 1), resets_at="x", resets_in="y", admins=()
    )
