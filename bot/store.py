"""The conversation store: conversations, turns, blobs and the dedupe ledger. Every function takes the
session it works in; the caller owns the transaction."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import Select, String, bindparam, delete, insert, literal, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from bot import history, mrkdwn, queue
from bot.answer import Answer
from bot.catalog import closest_ratio, family_of
from bot.db import carried_image, on_postgresql
from bot.images import ImageInfo, inspect
from bot.models import Blob, Conversation, Job, SlackEvent, Turn, utcnow
from bot.options import Request


def claim_delivery(session: Session, *, team_id: str, keys: list[str]) -> bool:
    """Record that Slack delivered something under these keys. False if any key was already recorded.

    Call it in the transaction that creates the job: if that transaction never commits, the keys are not
    recorded either, and Slack's retry is processed instead of dropped.

    One statement (it is on the ack path): the keys not yet recorded are inserted, and if any was
    recorded before, this is a duplicate. A new key recorded with a duplicate is still right: it names
    the same delivery, whose later copies it then recognises too. Of two transactions recording the same
    key at once, the second waits for the first and finds it recorded.
    """
    insert = postgresql.insert if on_postgresql(session) else sqlite.insert
    statement = (
        insert(SlackEvent)
        .values([{"team_id": team_id, "dedupe_key": key, "received_at": utcnow()} for key in keys])
        .on_conflict_do_nothing(index_elements=[SlackEvent.dedupe_key])
        .returning(SlackEvent.id)
    )
    return len(session.execute(statement).all()) == len(keys)


DELIVERY_KEYS_KEPT = timedelta(days=1)  # Slack retries for 5 minutes; its delayed events, for hours


def prune_deliveries(session: Session, *, older_than: timedelta = DELIVERY_KEYS_KEPT) -> int:
    """Forget dedupe keys older than ``older_than`` (by the database's clock); how many went."""
    cutoff = queue.db_now(session) - older_than
    result = session.execute(delete(SlackEvent).where(SlackEvent.received_at < cutoff))
    return int(getattr(result, "rowcount", 0) or 0)


def link_delivery(session: Session, *, keys: list[str], job_id: int) -> None:
    session.execute(
        update(SlackEvent).where(SlackEvent.dedupe_key.in_(keys)).values(job_id=job_id),
        execution_options={"synchronize_session": False},
    )


def find_conversation(
    session: Session, *, team_id: str, channel_id: str, thread_ts: str
) -> Conversation | None:
    return session.scalars(
        select(Conversation).where(
            Conversation.team_id == team_id,
            Conversation.channel_id == channel_id,
            Conversation.thread_ts == thread_ts,
        )
    ).first()


# The ack path's inserts: Core statements built once, each one round trip that returns the new row's id.
# Through the ORM's unit of work, the three flushes took half an acknowledgement's CPU (measured).
_NEW_CONVERSATION = insert(Conversation).returning(Conversation.id)
_NEW_TURN = insert(Turn).returning(Turn.id)
_NEW_JOB = insert(Job).returning(Job.id)
_NEW_JOB_ON_SERVER_CLOCK = _NEW_JOB.values(not_before=queue.server_now())


@dataclass(frozen=True)
class NewConversation:
    team_id: str
    channel_id: str
    thread_ts: str | None  # None: the job posts the thread's root
    origin: str
    user_id: str
    request: Request
    response_url: str | None = None

    def row(self) -> dict[str, Any]:
        return {
            "team_id": self.team_id,
            "channel_id": self.channel_id,
            "thread_ts": self.thread_ts,
            "origin": self.origin,
            "started_by": self.user_id,
            "model_id": self.request.model.model_id,
            "model_label": self.request.model.label,
            "aspect_ratio": self.request.aspect_ratio,
            "image_size": self.request.image_size,
            "response_url": self.response_url,
        }


def start_conversation(session: Session, new: NewConversation) -> int:
    """A new conversation; its id."""
    return int(session.connection().execute(_NEW_CONVERSATION, new.row()).scalar_one())


def update_options(conversation: Conversation, request: Request) -> None:
    """A reply may switch model or options; later replies keep them."""
    conversation.model_id = request.model.model_id
    conversation.model_label = request.model.label
    conversation.aspect_ratio = request.aspect_ratio
    conversation.image_size = request.image_size


def _next_seq(session: Session, conversation_id: int) -> int:
    """The next turn number. A web process (a reply) and a worker (an answer) may add a turn to the same
    conversation at once: the conversation's row lock makes them take turns (until their commit) instead
    of both taking the same number. SQLite has no FOR UPDATE; its write lock already serialises them."""
    session.execute(select(Conversation.id).where(Conversation.id == conversation_id).with_for_update())
    last = session.scalars(
        select(Turn.seq).where(Turn.conversation_id == conversation_id).order_by(Turn.seq.desc())
    ).first()
    return 0 if last is None else last + 1


def add_user_turn(
    session: Session,
    *,
    conversation_id: int,
    team_id: str,
    user_id: str,
    text: str,
    files: list[dict[str, Any]],
    slack_ts: str | None,
    markup: bool = False,
    first: bool = False,
) -> int:
    """A person's turn; its id. Attachments are stored as ``slackFile`` references; the job downloads them
    (slow work). Text in Slack's markup (``markup``) is stored as ``slackText``: the job turns it into
    what a person reads (mentions become names, which takes ``users.info``) before anything is posted or
    sent to Gemini. ``first``: the conversation was started in this transaction, so this is turn 0 (two
    queries fewer on the ack path)."""
    values = {
        "conversation_id": conversation_id,
        "team_id": team_id,
        "seq": 0 if first else _next_seq(session, conversation_id),
        "role": "user",
        "parts": user_parts(text, files, markup=markup),
        "user_id": user_id,
        "slack_ts": slack_ts,
    }
    return int(session.connection().execute(_NEW_TURN, values).scalar_one())


def user_parts(text: str, files: list[dict[str, Any]], *, markup: bool) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = [{"slackText" if markup else "text": text}] if text else []
    return parts + [{"slackFile": _file_ref(f)} for f in files]


def _first_turn_at_once() -> Select[Any]:
    """PostgreSQL: a new conversation, its first turn and that turn's job in one statement (data-modifying
    CTEs), with the job's id and how many jobs wait ahead of it."""
    new = bindparam
    conversation = (
        insert(Conversation)
        .values(
            team_id=new("team_id"),
            channel_id=new("channel_id"),
            thread_ts=new("thread_ts"),
            origin=new("origin"),
            started_by=new("started_by"),
            model_id=new("model_id"),
            model_label=new("model_label"),
            aspect_ratio=new("aspect_ratio"),
            image_size=new("image_size"),
            response_url=new("response_url"),
            created_at=new("now"),
        )
        .returning(Conversation.id)
        .cte("new_conversation")
    )
    turn_columns = {
        "conversation_id": conversation.c.id,
        "team_id": new("team_id"),
        "seq": literal(0),
        "role": literal("user"),
        "parts": new("parts", type_=Turn.__table__.c.parts.type),
        "user_id": new("user_id"),
        "slack_ts": new("slack_ts", type_=String),
        "created_at": new("now"),
    }
    turn = (
        insert(Turn)
        .from_select(list(turn_columns), select(*turn_columns.values()), include_defaults=False)
        .returning(Turn.id, Turn.conversation_id)
        .cte("new_turn")
    )
    job_columns = {
        "team_id": new("team_id"),
        "conversation_id": turn.c.conversation_id,
        "turn_id": turn.c.id,
        "requested_by": new("user_id"),
        "model_id": new("model_id"),
        "model_label": new("model_label"),
        "aspect_ratio": new("aspect_ratio"),
        "image_size": new("image_size"),
        "state": literal("queued"),
        "attempts": literal(0),
        "not_before": queue.server_now(),  # by the database's clock, like every lease and delay
        "created_at": new("now"),
    }
    job = (
        insert(Job)
        .from_select(list(job_columns), select(*job_columns.values()), include_defaults=False)
        .returning(Job.id)
        .cte("new_job")
    )
    ahead = queue.jobs_ahead(team_id=new("team_id"), user_id=new("user_id"), job_id=job.c.id)
    return select(job.c.id, ahead.scalar_subquery())


_FIRST_TURN_AT_ONCE = _first_turn_at_once()


def start_at_once(
    session: Session, new: NewConversation, *, parts: list[dict[str, Any]], slack_ts: str | None = None
) -> tuple[int, int]:
    """PostgreSQL only: ``start_conversation``, ``add_user_turn`` and ``enqueue`` in one statement, and
    ``queue.position``: the job's id and how many jobs wait ahead of it. With ``db.autocommit`` that is
    one round trip where the four statements and their transaction took six."""
    values = {**new.row(), "user_id": new.user_id, "parts": parts, "slack_ts": slack_ts, "now": utcnow()}
    row = session.connection().execute(_FIRST_TURN_AT_ONCE, values).one()
    return int(row[0]), int(row[1])


def set_parts(session: Session, turn_id: int, parts: list[dict[str, Any]]) -> None:
    """Replace a user turn's parts once its job has resolved them (text, downloaded attachments)."""
    turn = session.get(Turn, turn_id)
    assert turn is not None
    turn.parts = parts


_FILE_FIELDS = (
    "id",
    "name",
    "mimetype",
    "filetype",
    "size",
    "url_private",
    "url_private_download",
    "file_access",
    "is_external",
    "mode",
)


def _file_ref(file: dict[str, Any]) -> dict[str, Any]:
    return {k: file[k] for k in _FILE_FIELDS if k in file}


def enqueue(
    session: Session, *, conversation_id: int, team_id: str, turn_id: int, requested_by: str, request: Request
) -> int:
    """Queue a turn, fixing the model and options it is answered with; the job's id."""
    values = {
        "team_id": team_id,
        "conversation_id": conversation_id,
        "turn_id": turn_id,
        "requested_by": requested_by,
        "model_id": request.model.model_id,
        "model_label": request.model.label,
        "aspect_ratio": request.aspect_ratio,
        "image_size": request.image_size,
    }
    # By the database's clock, like every lease and delay (on SQLite, this host's: a value).
    if on_postgresql(session):
        return int(session.connection().execute(_NEW_JOB_ON_SERVER_CLOCK, values).scalar_one())
    return int(session.connection().execute(_NEW_JOB, {**values, "not_before": utcnow()}).scalar_one())


def save_blob(session: Session, *, team_id: str, data: bytes, info: ImageInfo) -> Blob:
    blob = Blob(
        team_id=team_id,
        mime_type=info.mime_type,
        sha256=hashlib.sha256(data).hexdigest(),
        width=info.width,
        height=info.height,
        size=len(data),
        data=data,
    )
    session.add(blob)
    session.flush()
    carried_image(session)
    return blob


def load_blob(session: Session, *, team_id: str, blob_id: int) -> Blob:
    carried_image(session)
    blob = session.get(Blob, blob_id)
    if blob is None or blob.team_id != team_id:
        raise LookupError(f"blob {blob_id} is not in workspace {team_id}")
    return blob


def save_model_turn(session: Session, conversation: Conversation, answer: Answer) -> Turn:
    """Store the answer verbatim, moving every image's bytes to a blob. Thought images (drafts) are not
    kept: they are never replayed or shown, and each is as large as the result."""
    parts: list[dict[str, Any]] = []
    for part in answer.parts:
        part = dict(part)
        inline = part.get("inlineData")
        if part.get("thought") and isinstance(inline, dict):
            continue
        if isinstance(inline, dict) and isinstance(inline.get("bytes"), bytes):
            data = inline["bytes"]
            try:
                info = inspect(data)
            except Exception:
                info = ImageInfo(str(inline.get("mimeType")), 0, 0)
            blob = save_blob(session, team_id=conversation.team_id, data=data, info=info)
            part["inlineData"] = {"mimeType": info.mime_type, "blobId": blob.id}
        parts.append(part)
    turn = Turn(
        conversation_id=conversation.id,
        team_id=conversation.team_id,
        seq=_next_seq(session, conversation.id),
        role="model",
        parts=parts,
    )
    session.add(turn)
    session.flush()
    return turn


def keep_result_shape(
    session: Session, conversation: Conversation, turn: Turn, *, model_id: str
) -> str | None:
    """Record the aspect ratio of ``turn``'s image on the conversation, if it has none yet."""
    width, height = session.execute(  # the size only: the blob's bytes may be megabytes
        select(Blob.width, Blob.height).where(Blob.id == final_blob_id(turn), Blob.team_id == turn.team_id)
    ).one()
    ratio = closest_ratio(width or 0, height or 0, family_of(model_id).aspect_ratios)
    row = session.get(Conversation, conversation.id)
    if row is not None and row.aspect_ratio is None and ratio is not None:
        row.aspect_ratio = ratio
    return ratio


def final_image(session: Session, turn: Turn) -> Blob:
    """The last non-thought image of a model turn: what the user gets."""
    return load_blob(session, team_id=turn.team_id, blob_id=final_blob_id(turn))


def final_blob_id(turn: Turn) -> int:
    for part in reversed(turn.parts):
        inline = part.get("inlineData")
        if isinstance(inline, dict) and not part.get("thought") and "blobId" in inline:
            return int(inline["blobId"])
    raise LookupError(f"turn {turn.id} has no image")


def contents_for(
    session: Session, conversation: Conversation, *, up_to: Turn, model_id: str
) -> list[dict[str, Any]]:
    """The ``contents`` of the request that answers ``up_to`` with ``model_id``, bounded by ``bot.history``.

    Each user turn is followed by the answer its job delivered (jobs that failed don't count: nobody saw
    their image). Ordering by ``seq`` alone would be wrong: two quick replies are both stored before the
    first one's answer exists. Answers from another model are replayed as a user image.
    """
    users = session.scalars(
        select(Turn)
        .where(Turn.conversation_id == conversation.id, Turn.role == "user", Turn.seq <= up_to.seq)
        .order_by(Turn.seq)
    ).all()
    answers = session.execute(
        select(Job.turn_id, Job.model_id, Turn)
        .join(Turn, Turn.id == Job.result_turn_id)
        .where(Job.conversation_id == conversation.id, Job.state == "done")
    ).all()
    answered = {turn_id: (maker or conversation.model_id, turn) for turn_id, maker, turn in answers}
    ordered: list[history.TurnData] = []
    for turn in users:
        ordered.append(history.TurnData(turn.seq, "user", turn.parts))
        if turn.id != up_to.id and turn.id in answered:
            maker, answer = answered[turn.id]
            ordered.append(history.TurnData(answer.seq, "model", answer.parts, foreign=maker != model_id))
    contents = []
    for data in history.select(ordered):
        role, parts = data.role, history.replayable(data.parts)
        if data.foreign:
            role, parts = "user", history.as_user_image(data.parts)
        materialised = [_materialise(session, conversation.team_id, p) for p in parts]
        kept = [p for p in materialised if p is not None]
        if kept:
            contents.append({"role": role, "parts": kept})
    return history.merge_roles(contents)


def _materialise(session: Session, team_id: str, part: dict[str, Any]) -> dict[str, Any] | None:
    inline = part.get("inlineData")
    if isinstance(inline, dict) and "blobId" in inline:
        blob = load_blob(session, team_id=team_id, blob_id=int(inline["blobId"]))
        out = dict(part)
        # Send the type the bytes really are: a JPEG labelled PNG is rejected on the way back in.
        out["inlineData"] = {"mimeType": blob.mime_type, "data": base64.b64encode(blob.data).decode()}
        return out
    if "slackFile" in part:
        return None  # not downloaded (the job downloads before it builds the request)
    if "slackText" in part:  # not resolved (a job given up before it started): readable all the same
        return {"text": mrkdwn.to_plain(str(part["slackText"]))}
    return part
