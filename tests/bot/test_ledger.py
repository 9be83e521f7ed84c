"""The ledger's running totals (``usage_total``), kept by the database, against the ledger itself."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session, sessionmaker

from bot import ledger
from bot.limits import PERIODS, Period, Scope, Tally, period_start
from bot.models import Charge, UsageTotal, utcnow
from bot.prices import load_prices


def charge(
    team: str, user: str, channel: str, at: datetime, *, images: int = 1, micros: int = 39_000
) -> dict[str, Any]:
    """A ledger row as the app writes it (``ledger.charge_row``), at ``at``, for ``images`` and ``micros``."""
    payer = ledger.Payer(team, user, channel, None, "gemini-3.1-flash-image-preview", "1K")
    row = ledger.charge_row(load_prices(), payer, outcome="image", billed="yes", usage={}, model_version=None)
    return {**row, "at": at, "images": images, "cost_micros": micros}


def summed(
    charges: list[dict[str, Any]], *, team: str, user: str, channel: str, now: datetime
) -> dict[tuple[Scope, Period], Tally]:
    """What the limits count, summed from the ledger's rows one by one (the reference)."""
    totals: dict[tuple[Scope, Period], Tally] = defaultdict(Tally)
    for row in charges:
        if row["team_id"] != team:
            continue
        for period in PERIODS:
            if row["at"] < period_start(period, now):
                continue
            tally = Tally(row["images"], row["cost_micros"])
            totals["workspace", period] += tally
            if row["user_id"] == user:
                totals["user", period] += tally
            if row["channel_id"] == channel:
                totals["channel", period] += tally
    return dict(totals)


def test_the_running_totals_count_each_charge_for_its_workspace_person_and_channel_day_and_month(
    sessions: sessionmaker[Session],
) -> None:
    """Charges on both sides of midnight and of the month's first instant, of other people, channels and
    workspaces, and one written by plain SQL as a process that knows nothing of the totals would: what
    an ack reads is what the ledger's rows sum to."""
    now = utcnow()
    today, month = period_start("day", now), period_start("month", now)
    tiny = timedelta(microseconds=1)
    charges = [
        charge("T1", "UALICE", "C1", now),
        charge("T1", "UALICE", "C1", today, images=2, micros=80_000),  # midnight: today
        charge("T1", "UALICE", "C1", today - tiny),  # the instant before: yesterday
        charge("T1", "UALICE", "C2", month),  # the month's first instant
        charge("T1", "UALICE", "C1", month - tiny),  # last month
        charge("T1", "UBOB", "C1", now, micros=134_000),
        charge("T1", "UBOB", "C3", now - timedelta(hours=30)),
        charge("T2", "UALICE", "C1", now),  # another workspace
    ]
    with sessions.begin() as session:
        for row in charges[:-1]:
            ledger.charge(session, row)
        session.execute(insert(Charge).values(**charges[-1]))
    with sessions() as session:
        for user, channel in [("UALICE", "C1"), ("UBOB", "C3"), ("UCAROL", "C9")]:
            used = ledger.used(
                session, team_id="T1", user_id=user, channel_id=channel, now=now, prices=load_prices()
            )
            assert used == summed(charges, team="T1", user=user, channel=channel, now=now), (user, channel)
        rows = session.scalars(select(UsageTotal).where(UsageTotal.team_id == "T2")).all()
    assert sorted((row.scope, row.key, row.period, row.images) for row in rows) == [
        ("channel", "C1", "day", 1),
        ("channel", "C1", "month", 1),
        ("user", "UALICE", "day", 1),
        ("user", "UALICE", "month", 1),
        ("workspace", "", "day", 1),
        ("workspace", "", "month", 1),
    ]
