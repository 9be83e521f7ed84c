"""What a run of a job knows: a frozen snapshot read once, replaced (never changed) as side effects are
recorded. Plain values only; the runner (``bot.jobs``) reads and records them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from bot import ledger, notify
from bot.catalog import family_of
from bot.models import Conversation, Job, Turn
from bot.queue import Lease


@dataclass(frozen=True)
class JobView:
    """What a run knows of its job, read once at the start; each recorded side effect gives a new one."""

    lease: Lease
    team_id: str
    requested_by: str
    conversation_id: int
    channel_id: str
    thread_ts: str | None
    response_url: str | None
    turn_id: int
    turn_seq: int
    parts: list[dict[str, Any]]
    model_id: str
    model_label: str
    aspect_ratio: str | None
    image_size: str | None
    status_ts: str | None
    result_turn_id: int | None
    upload_file_id: str | None
    card_ts: str | None
    kind: str  # "turn", or the button that made it (``Job.kind``)
    queued_at: float  # epoch seconds: earlier runs' posts can only be newer than this
    key_owner: str = "operator"  # whose Gemini key its calls use: "operator", or "workspace" (its own)

    @property
    def job_id(self) -> int:
        return self.lease.job_id

    @property
    def summary(self) -> str:
        return " · ".join(x for x in (self.model_label, self.aspect_ratio, self.image_size) if x)

    @property
    def payer(self) -> ledger.Payer:
        """Whose request the job's Gemini calls are charged to, and where."""
        return ledger.Payer(
            team_id=self.team_id,
            user_id=self.requested_by,
            channel_id=self.channel_id,
            job_id=self.job_id,
            model_id=self.model_id,
            image_size=self.image_size,
            key_owner=self.key_owner,
        )

    @property
    def audience(self) -> notify.Audience:
        return notify.Audience(
            requester=self.requested_by,
            channel_id=self.channel_id,
            thread_ts=self.thread_ts,
            status_ts=self.status_ts,
            response_url=self.response_url,
        )

    @classmethod
    def read(cls, session: Session, lease: Lease) -> JobView:
        """The job, its conversation and its turn, in one statement of the columns a run needs."""
        job = session.connection().execute(_VIEW, {"job_id": lease.job_id}).one()
        # Without --ar the job follows the shape the conversation's first result fixed, if the model has it.
        ratio = job.aspect_ratio or job.conversation_ratio
        return cls(
            lease=lease,
            team_id=job.team_id,
            requested_by=job.requested_by,
            conversation_id=job.conversation_id,
            channel_id=job.channel_id,
            thread_ts=job.thread_ts,
            response_url=job.response_url,
            turn_id=job.turn_id,
            turn_seq=job.seq,
            parts=list(job.parts),
            model_id=job.model_id,
            model_label=job.model_label,
            aspect_ratio=ratio if ratio in family_of(job.model_id).aspect_ratios else None,
            image_size=job.image_size,
            status_ts=job.status_ts,
            result_turn_id=job.result_turn_id,
            upload_file_id=job.upload_file_id,
            card_ts=job.card_ts,
            kind=job.kind,
            queued_at=job.created_at.replace(tzinfo=UTC).timestamp(),
        )


# Built once (building a statement costs about as much as running it), and Core columns, not ORM objects.
_VIEW = (
    select(
        Job.team_id,
        Job.requested_by,
        Job.conversation_id,
        Job.turn_id,
        Job.model_id,
        Job.model_label,
        Job.aspect_ratio,
        Job.image_size,
        Job.status_ts,
        Job.result_turn_id,
        Job.upload_file_id,
        Job.card_ts,
        Job.kind,
        Job.created_at,
        Conversation.aspect_ratio.label("conversation_ratio"),
        Conversation.channel_id,
        Conversation.thread_ts,
        Conversation.response_url,
        Turn.seq,
        Turn.parts,
    )
    .join(Conversation, Conversation.id == Job.conversation_id)
    .join(Turn, Turn.id == Job.turn_id)
    .where(Job.id == bindparam("job_id"))
)
