"""What a result card's buttons do. Button values carry a job's id only: everything else is read from the
database when one is pressed, so a card works after a restart, a deploy, or weeks later, and a button
from one workspace finds nothing of another's."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot import messages
from bot.db import reading
from bot.models import Charge, Job
from bot.prices import Usage


class Cards:
    def __init__(self, *, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def settings(self, *, team_id: str, value: str) -> str:
        """ "View settings": the request behind a result, privately: model asked for and the one that
        answered, options, what was sent, tokens and cost from the ledger."""
        job_id = int(value) if value.isdigit() else None
        with reading(self._sessions) as session:
            job = session.get(Job, job_id) if job_id is not None else None
            if job is None or job.team_id != team_id:
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
