"""Spending limits (``BANANA_LIMITS``), checked before anything is queued. Pure: parsing, periods, and the
check of what has been used against what is asked; the ledger's sums come from ``bot.ledger``.

``scope/period=amount``, comma-separated: scope ``user``, ``channel`` or ``workspace``; period ``day`` or
``month`` (UTC); amount a whole number of images, or dollars with a leading ``$``. ``off`` turns limits off.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, get_args

from bot.errors import ConfigError
from bot.prices import dollars

Scope = Literal["user", "channel", "workspace"]
Period = Literal["day", "month"]
SCOPES: tuple[Scope, ...] = get_args(Scope)
PERIODS: tuple[Period, ...] = get_args(Period)

# When BANANA_LIMITS is unset: enough for anyone's day of real work, and a ceiling on what a forgotten bot
# in a busy channel can spend in a month.
DEFAULT_LIMITS = "user/day=50,user/month=$50,workspace/month=$500"
OFF = ("off", "none")

_ITEM = re.compile(
    r"^(?P<scope>[a-z]+)/(?P<period>[a-z]+)=(?P<dollar>\$)?(?P<amount>[0-9]+(?:\.[0-9]{1,2})?)$"
)


@dataclass(frozen=True)
class Tally:
    """Images and micro-dollars, used or asked for."""

    images: int = 0
    micros: int = 0

    def __add__(self, other: Tally) -> Tally:
        return Tally(self.images + other.images, self.micros + other.micros)


@dataclass(frozen=True)
class Limit:
    scope: Scope
    period: Period
    amount: int  # images, or micro-dollars when ``money``
    money: bool

    def __str__(self) -> str:
        amount = f"${self.amount / 1_000_000:g}" if self.money else str(self.amount)
        return f"{self.scope}/{self.period}={amount}"

    def measure(self, tally: Tally) -> int:
        return tally.micros if self.money else tally.images

    def show(self, amount: int) -> str:
        """``$12.50`` or ``20 images``."""
        if self.money:
            return dollars(amount)
        return "1 image" if amount == 1 else f"{amount} images"

    def whose(self) -> str:
        return {"user": "your", "channel": "this channel's", "workspace": "this workspace's"}[self.scope]


def parse_limits(raw: str | None) -> tuple[Limit, ...]:
    """``BANANA_LIMITS`` (unset: ``DEFAULT_LIMITS``; ``off``: none). A malformed value is a
    ``ConfigError`` naming the item and the form it should have."""
    text = DEFAULT_LIMITS if raw is None or not raw.strip() else raw.strip()
    if text.lower() in OFF:
        return ()
    limits: list[Limit] = []
    problems: list[str] = []
    for item in (part.strip() for part in text.split(",")):
        match = _ITEM.match(item.lower())
        if not match or match["scope"] not in SCOPES or match["period"] not in PERIODS:
            problems.append(
                f"BANANA_LIMITS: {item!r} is not scope/period=amount (scope user, channel or workspace; "
                "period day or month; amount a whole number of images or $dollars), e.g. user/day=20"
            )
            continue
        money = bool(match["dollar"])
        if not money and "." in match["amount"]:
            problems.append(f"BANANA_LIMITS: {item!r}: a number of images is a whole number")
            continue
        amount = round(float(match["amount"]) * 1_000_000) if money else int(match["amount"])
        limit = Limit(match["scope"], match["period"], amount, money)
        if any((x.scope, x.period, x.money) == (limit.scope, limit.period, limit.money) for x in limits):
            problems.append(f"BANANA_LIMITS: {limit.scope}/{limit.period} is given twice")
            continue
        limits.append(limit)
    if problems:
        raise ConfigError(problems)
    return tuple(limits)


def period_start(period: Period, now: datetime) -> datetime:
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    return day if period == "day" else day.replace(day=1)


def period_end(period: Period, now: datetime) -> datetime:
    """When the period that holds ``now`` ends (its limit resets)."""
    start = period_start(period, now)
    if period == "day":
        return start + timedelta(days=1)
    return (start + timedelta(days=32)).replace(day=1)


def first_exceeded(
    limits: Iterable[Limit], used: Mapping[tuple[Scope, Period], Tally], asked: Tally
) -> tuple[Limit, Tally] | None:
    """The first limit that ``asked`` on top of ``used`` would go over, with what was used under it."""
    for limit in limits:
        have = used.get((limit.scope, limit.period), Tally())
        if limit.measure(have + asked) > limit.amount:
            return limit, have
    return None


def until(moment: datetime, now: datetime) -> str:
    """``3 h 10 min``, ``12 min``, ``4 days``."""
    seconds = max(0, int((moment - now).total_seconds()))
    if seconds >= 2 * 86_400:
        return f"{round(seconds / 86_400)} days"
    hours, minutes = divmod(-(-seconds // 60), 60)
    return f"{hours} h {minutes} min" if hours else f"{minutes} min"
