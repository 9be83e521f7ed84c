"""``/banana usage``: what a person has used and has left under each limit that applies to them, and, for
admins, the workspace's month and its ledger as a CSV file in a DM.

The person's part is answered in the acknowledgement (the database only). Whether someone is an admin may
take a Web API call (``users.info``), so the admin's part runs after the acknowledgement (``after_ack``).
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Literal

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from sqlalchemy.orm import Session, sessionmaker

from bot import ledger, messages
from bot.db import reading
from bot.limits import Limit, Tally, period_end, period_start, until
from bot.models import Charge, utcnow
from bot.payloads import Command
from bot.prices import PriceTable

log = logging.getLogger(__name__)

UsageKind = Literal["usage", "csv"]
_WORDS: dict[str, UsageKind] = {"usage": "usage", "usage csv": "csv"}
CSV_COLUMNS = (
    "at",
    "user_id",
    "channel_id",
    "job_id",
    "model_requested",
    "model_version",
    "priced_as",
    "image_size",
    "outcome",
    "billed",
    "images",
    "prompt_tokens",
    "image_tokens",
    "text_tokens",
    "thinking_tokens",
    "cost_usd",
    "key_owner",
)


def usage_request(text: str) -> UsageKind | None:
    """``/banana usage`` or ``/banana usage csv`` (the whole text: "usage of colour" is a prompt)."""
    return _WORDS.get(" ".join(text.lower().split()))


class Reports:
    def __init__(
        self,
        *,
        sessions: sessionmaker[Session],
        limits: tuple[Limit, ...],
        prices: PriceTable,
        admins: tuple[str, ...] = (),
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._sessions = sessions
        self._limits = limits
        self._prices = prices
        self._admins = admins
        self._clock = clock

    def personal(self, command: Command) -> str:
        """Your images and spend today and this month, and what is left under each limit that applies to
        you here (yours, this channel's, the workspace's), counted as the limit check counts."""
        now = self._clock()
        team, user = command.team_id, command.user_id
        with reading(self._sessions) as session:
            today = ledger.spent(session, team_id=team, user_id=user, since=period_start("day", now))
            month = ledger.spent(session, team_id=team, user_id=user, since=period_start("month", now))
            used = ledger.used(
                session,
                team_id=team,
                user_id=user,
                channel_id=command.channel_id,
                now=now,
                prices=self._prices,
            )
        standings = [
            (limit, used.get((limit.scope, limit.period), Tally()), until(period_end(limit.period, now), now))
            for limit in self._limits
        ]
        return messages.usage_report(today=today, month=month, standings=standings)

    def after_ack(
        self, command: Command, kind: UsageKind, client: WebClient, respond: Callable[[str], object]
    ) -> None:
        """An admin also gets the workspace's month (``respond``: privately, under the command) and, for
        ``usage csv``, the month's ledger as a CSV file in a DM from the bot."""
        if not self.is_admin(command.user_id, client):
            if kind == "csv":
                respond(messages.ADMINS_ONLY)
            return
        now = self._clock()
        since = period_start("month", now)
        with reading(self._sessions) as session:
            total = ledger.spent(session, team_id=command.team_id, since=since)
            people, channels, models = (
                ledger.top(session, team_id=command.team_id, since=since, by=by)
                for by in ("person", "channel", "model")
            )
            rows = ledger.charges(session, team_id=command.team_id, since=since) if kind == "csv" else []
        month = f"{now:%B %Y}"
        respond(
            messages.workspace_report(month, total=total, people=people, channels=channels, models=models)
        )
        if kind == "csv":
            try:
                dm = client.conversations_open(users=command.user_id)["channel"]["id"]
                client.files_upload_v2(
                    channel=dm,
                    content=month_csv(rows),
                    filename=f"banana-usage-{now:%Y-%m}.csv",
                    title=f"Nano Banana usage, {month}",
                    initial_comment=messages.csv_comment(month, len(rows)),
                )
            except SlackApiError as err:
                error = str(err.response.get("error") or "unknown")
                log.warning("could not send the usage CSV to %s: %s", command.user_id, error)
                respond(messages.csv_not_sent(error))

    def is_admin(self, user_id: str, client: WebClient) -> bool:
        return is_admin(user_id, client, self._admins)


def is_admin(user_id: str, client: WebClient, admins: tuple[str, ...]) -> bool:
    """In ``admins`` (``BANANA_ADMINS``), or an owner or admin of the workspace (``users.info``)."""
    if user_id in admins:
        return True
    try:
        user = client.users_info(user=user_id)["user"]
    except SlackApiError as err:
        log.warning("users.info for %s failed: %s", user_id, err.response.get("error"))
        return False
    return any(bool(user.get(flag)) for flag in ("is_admin", "is_owner", "is_primary_owner"))


def month_csv(rows: list[Charge]) -> bytes:
    """The ledger rows as CSV (UTF-8), one line each, dollars to the micro-dollar."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        values = {column: getattr(row, column, None) for column in CSV_COLUMNS}
        values["at"] = f"{row.at:%Y-%m-%dT%H:%M:%SZ}"
        values["cost_usd"] = f"{row.cost_micros / 1_000_000:.6f}"
        writer.writerow(_cell(values[column]) for column in CSV_COLUMNS)
    return out.getvalue().encode()


def _cell(value: object) -> str:
    """A spreadsheet runs a cell that starts with = + - @ as a formula: such text is quoted as text. (Every
    value here comes from Slack ids, Gemini's model names or numbers; the guard is for the unexpected.)"""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "@") or (text[:1] == "-" and not _number(text)) else text


def _number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
