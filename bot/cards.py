"""What a result card's buttons do, beyond queueing a job (``Intake.press``): what the paid ones cost
(their text says), "View settings" and "Delete". Button values carry a job's id only: everything else is
read from the database when one is pressed, so a card works after a restart, a deploy, or weeks later, and
a button from one workspace finds nothing of another's."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from slack_sdk import WebClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot import messages, store
from bot.blocks import FINALIZE, CardCosts
from bot.catalog import Catalog
from bot.db import reading
from bot.errors import SlackError
from bot.models import Charge, Job
from bot.mrkdwn import mention
from bot.prices import PriceTable, Usage
from bot.reports import is_admin
from bot.slack import SlackGateway

log = logging.getLogger(__name__)

DEFAULT_VARIATIONS = 4
FINALIZE_MODEL = "nano-banana-pro"  # the alias Finalize renders with (``BANANA_MODEL_ALIASES`` may remap it)
GONE_ALREADY = {"file_not_found", "file_deleted", "message_not_found"}  # a Delete that ran before


@dataclass(frozen=True)
class ButtonPrices:
    """What each paid button of a card makes and costs, for its text (``blocks.CardCosts``)."""

    prices: PriceTable
    catalog: Catalog = field(default_factory=Catalog)
    variations: int = DEFAULT_VARIATIONS

    @property
    def finalize_model(self) -> str:
        return self.catalog.resolve(FINALIZE_MODEL).model_id

    def for_result(self, model_id: str, image_size: str | None) -> CardCosts:
        def each(model: str, size: str | None) -> int | None:
            return self.prices.estimate(model, size) if self.prices.knows(model) else None

        return CardCosts(
            variations=self.variations,
            regenerate=each(model_id, image_size),
            variation_each=each(model_id, image_size),
            finalize={size: each(self.finalize_model, size) for size in FINALIZE.values()},
        )


class Cards:
    def __init__(
        self,
        *,
        sessions: sessionmaker[Session],
        slack: Callable[[str], SlackGateway],
        admins: tuple[str, ...] = (),
    ) -> None:
        self._sessions = sessions
        self._slack = slack
        self._admins = admins

    def settings(self, *, team_id: str, value: str) -> str:
        """ "View settings": the request behind a result, privately: model asked for and the one that
        answered, options, what was sent, tokens and cost from the ledger."""
        with reading(self._sessions) as session:
            job = _job_named(session, team_id, value)
            if job is None:
                return messages.RESULT_GONE
            charges = list(session.scalars(select(Charge).where(Charge.job_id == job.id).order_by(Charge.id)))
        answered = next((c for c in charges if c.outcome == "image"), None)
        return messages.result_settings(
            model_id=job.model_id,
            model_version=job.model_version,
            aspect_ratio=job.aspect_ratio,
            image_size=job.image_size,
            sent_turns=job.sent_turns,
            sent_images=job.sent_images,
            usage=Usage(
                prompt=answered.prompt_tokens,
                image=answered.image_tokens,
                text=answered.text_tokens,
                thinking=answered.thinking_tokens,
            )
            if answered
            else None,
            cost_micros=sum(c.cost_micros for c in charges) if charges else None,
            calls=len(charges),
        )

    def delete(self, *, team_id: str, user_id: str, value: str, client: WebClient) -> str:
        """ "Delete", by the person who asked for the result or an admin: its image (the file, and with it
        the message that shows it), its card, and the stored copy. Slack first: if Slack refuses, nothing
        is marked deleted and the button can be pressed again. What to tell the presser privately."""
        with reading(self._sessions) as session:
            job = result_named(session, team_id, value)
            if job is None:
                return messages.RESULT_GONE
            requester, card_ts, file_id = job.requested_by, job.card_ts, job.upload_file_id
            channel_id = store.channel_of(session, job.conversation_id)
        if user_id != requester and not is_admin(user_id, client, self._admins):
            return messages.ONLY_REQUESTER_DELETES.format(requester=mention(requester))
        slack = self._slack(team_id)
        try:
            if file_id:
                _unless_gone(lambda: slack.delete_file(file_id))
            if card_ts:
                _unless_gone(lambda: slack.delete(channel_id, card_ts))
        except SlackError as err:
            log.warning("deleting result %s in Slack failed: %s", value, err.code)
            return messages.result_not_deleted(err.code)
        with self._sessions.begin() as session:
            store.delete_result(session, team_id=team_id, job_id=int(value))
        log.info("result %s deleted by %s", value, user_id)
        return messages.RESULT_DELETED


def result_named(session: Session, team_id: str, value: str) -> Job | None:
    """The result a button names: a job of this workspace with a stored answer, not deleted."""
    job = _job_named(session, team_id, value)
    return job if job is not None and job.result_turn_id is not None else None


def _job_named(session: Session, team_id: str, value: str) -> Job | None:
    """The job a button's value names, if it is this workspace's and not deleted. The value came back
    from Slack: anything but a job id finds nothing."""
    job = session.get(Job, int(value)) if value.isdigit() and len(value) < 19 else None
    return job if job is not None and job.team_id == team_id and job.deleted_at is None else None


def _unless_gone(call: Callable[[], None]) -> None:
    try:
        call()
    except SlackError as err:
        if err.code not in GONE_ALREADY:
            raise
