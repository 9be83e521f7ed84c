"""The cost ledger: one ``Charge`` row per call sent to Gemini, priced from the price table.

A call that brought the answer is recorded in the transaction that stores the answer (``charge``), so an
answer is never stored without its charge, nor charged twice by a re-run that finds it stored. Calls that
brought no answer are recorded on their own, as they happen.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import (
    CompoundSelect,
    String,
    and_,
    bindparam,
    func,
    insert,
    literal,
    null,
    or_,
    select,
    union_all,
)
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from bot.answer import Billed, CallOutcome
from bot.limits import PERIODS, Period, Scope, Tally, period_start
from bot.models import Charge, Job, UsageTotal, utcnow
from bot.prices import PriceTable, Usage


@dataclass(frozen=True)
class Payer:
    """Whose request a call was made for, and where."""

    team_id: str
    user_id: str
    channel_id: str
    job_id: int | None
    model_id: str
    image_size: str | None
    key_owner: str = "operator"  # whose Gemini key paid: "operator", or "workspace" (its own)


def charge_row(
    prices: PriceTable,
    payer: Payer,
    *,
    outcome: CallOutcome,
    billed: Billed,
    usage: Mapping[str, Any],
    model_version: str | None,
) -> dict[str, Any]:
    """The ledger row of one call (pure). Priced by the model that answered; a call that may have been
    billed ("maybe": no answer was read) is counted at the estimate of one image, as are its images."""
    tokens = Usage.of(usage)
    priced_as, price = prices.lookup(model_version, payer.model_id)
    if billed == "maybe":
        cost = prices.estimate(priced_as, payer.image_size)
    elif billed == "no":
        cost = 0
    elif tokens.empty:  # an image without usageMetadata: the size's price
        cost = price.cost(Usage(image=price.tokens_per_image(payer.image_size)))
    else:
        cost = price.cost(tokens)
    return {
        "team_id": payer.team_id,
        "user_id": payer.user_id,
        "channel_id": payer.channel_id,
        "job_id": payer.job_id,
        "model_requested": payer.model_id,
        "model_version": model_version,
        "priced_as": priced_as,
        "image_size": payer.image_size,
        "outcome": outcome,
        "billed": billed,
        "images": 1 if outcome == "image" or billed == "maybe" else 0,
        "prompt_tokens": tokens.prompt,
        "image_tokens": tokens.image,
        "text_tokens": tokens.text,
        "thinking_tokens": tokens.thinking,
        "cost_micros": cost,
        "at": utcnow(),
        "key_owner": payer.key_owner,
    }


_NEW_CHARGE = insert(Charge)


def charge(session: Session, row: Mapping[str, Any]) -> None:
    session.connection().execute(_NEW_CHARGE, dict(row))


# The one statement ``used`` reads, built once (building it cost more than running it): the ledger's running
# totals for this workspace, person and channel, today and this month (``UsageTotal``: six rows by their
# key), and beside them the requests still without an answer counted by (this person, this channel, model,
# size). One round trip, not two: it runs on every ack (on PostgreSQL a /banana's runs inside the statement
# that queues it: ``store.start_at_once``). Summing the month's charges instead cost every ack 15-20 ms
# once a workspace had 20,000 of them; joining each queued request to its conversation for the channel,
# 1.1 ms on PostgreSQL with a thousand queued (0.4 ms with the job's own ``channel_id``).
_USER, _CHANNEL = bindparam("user_id", type_=String), bindparam("channel_id", type_=String)
_KEYS: dict[str, ColumnElement[Any]] = {"workspace": literal(""), "user": _USER, "channel": _CHANNEL}
_STARTS: dict[str, ColumnElement[Any]] = {"day": bindparam("day"), "month": bindparam("month")}
_TOTALS = select(
    literal(False).label("pending"),
    (UsageTotal.scope == "user").label("mine"),
    (UsageTotal.scope == "channel").label("here"),
    (UsageTotal.period == "day").label("today"),
    UsageTotal.images.label("images"),
    UsageTotal.micros.label("micros"),
    null().label("model_id"),
    null().label("image_size"),
).where(
    or_(
        *(
            and_(
                UsageTotal.team_id == bindparam("team_id"),
                UsageTotal.scope == scope,
                UsageTotal.key == key,
                UsageTotal.period == period,
                UsageTotal.start == start,
            )
            for scope, key in _KEYS.items()
            for period, start in _STARTS.items()
        )
    )
)
_ASKER, _PLACE = Job.requested_by == _USER, Job.channel_id == _CHANNEL  # the job's own copy: no join
_PENDING = (
    select(
        literal(True), _ASKER, _PLACE, literal(True), func.count(), literal(0), Job.model_id, Job.image_size
    )
    .where(
        Job.team_id == bindparam("team_id"),
        or_(Job.state == "queued", Job.state == "running"),  # not IN: that is rendered anew on each run
        Job.result_turn_id.is_(None),
    )
    .group_by(_ASKER, _PLACE, Job.model_id, Job.image_size)
)
USED: CompoundSelect[Any] = union_all(_TOTALS, _PENDING)


def used(
    session: Session, *, team_id: str, user_id: str, channel_id: str, now: datetime, prices: PriceTable
) -> dict[tuple[Scope, Period], Tally]:
    """What this person, this channel and this workspace have used today and this month: the ledger's
    rows, plus the estimate of every request queued or running that has no answer yet (it will be
    charged; two requests sent together must not both fit under the last image of a limit)."""
    values = usage_values(team_id=team_id, user_id=user_id, channel_id=channel_id, now=now)
    return tally(session.connection().execute(USED, values).all(), prices)  # grouped: a few rows


def usage_values(*, team_id: str, user_id: str, channel_id: str, now: datetime) -> dict[str, Any]:
    """The parameters of ``USED``."""
    return {
        "team_id": team_id,
        "user_id": user_id,
        "channel_id": channel_id,
        "day": period_start("day", now),
        "month": period_start("month", now),
    }


def tally(rows: Iterable[Sequence[Any]], prices: PriceTable) -> dict[tuple[Scope, Period], Tally]:
    """``USED``'s rows summed by scope and period (pure). A running total counts for its own scope and
    period; a group of requests without an answer, for the workspace and, if theirs, the person and the
    channel, today and this month. A row of nothing but NULLs (the statement that also queues a job
    returns one when nothing is used yet) counts for nothing."""
    tallies: dict[tuple[Scope, Period], Tally] = defaultdict(Tally)
    for pending, is_mine, is_here, is_today, images, micros, model_id, image_size in rows:
        if pending is None:
            continue
        if not pending:
            scope: Scope = "user" if is_mine else "channel" if is_here else "workspace"
            tallies[scope, "day" if is_today else "month"] += Tally(int(images), int(micros))
            continue
        tally = Tally(int(images), prices.estimate(model_id, image_size, images=int(images)))  # estimated
        for period in PERIODS:
            tallies["workspace", period] += tally
            if is_mine:
                tallies["user", period] += tally
            if is_here:
                tallies["channel", period] += tally
    return dict(tallies)


def spent(session: Session, *, team_id: str, since: datetime, user_id: str | None = None) -> Tally:
    """Images and micro-dollars charged in the workspace (or to one person) since ``since``."""
    query = select(func.coalesce(func.sum(Charge.images), 0), func.coalesce(func.sum(Charge.cost_micros), 0))
    query = query.where(Charge.team_id == team_id, Charge.at >= since)
    if user_id is not None:
        query = query.where(Charge.user_id == user_id)
    images, micros = session.execute(query).one()
    return Tally(int(images), int(micros))


TopBy = Literal["person", "channel", "model"]


def top(session: Session, *, team_id: str, since: datetime, by: TopBy, n: int = 5) -> list[tuple[str, Tally]]:
    """The ``n`` people, channels or models (the one that answered) that cost most since ``since``."""
    key = {
        "person": Charge.user_id,
        "channel": Charge.channel_id,
        "model": func.coalesce(Charge.model_version, Charge.model_requested),
    }[by]
    cost = func.sum(Charge.cost_micros)
    rows = session.execute(
        select(key, func.sum(Charge.images), cost)
        .where(Charge.team_id == team_id, Charge.at >= since)
        .group_by(key)
        .order_by(cost.desc(), key)
        .limit(n)
    ).all()
    return [(str(k), Tally(int(images or 0), int(micros or 0))) for k, images, micros in rows]


def charges(session: Session, *, team_id: str, since: datetime) -> list[Charge]:
    """The workspace's ledger rows since ``since``, oldest first."""
    return list(
        session.scalars(
            select(Charge).where(Charge.team_id == team_id, Charge.at >= since).order_by(Charge.at, Charge.id)
        )
    )
