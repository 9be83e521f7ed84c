"""The conversation store: conversations, turns, blobs and the dedupe ledger. Every function takes the
session it works in; the caller owns the transaction."""

from __future__ import annotations

import base64
import functools
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    DateTime,
    Select,
    String,
    TextClause,
    bindparam,
    delete,
    exists,
    func,
    insert,
    literal,
    select,
    text,
    true,
    update,
)
from sqlalchemy.orm import Session

from bot import history, ledger, mrkdwn, queue, wakeup
from bot.answer import Answer
from bot.catalog import closest_ratio, family_of
from bot.db import carried_image, on_postgresql
from bot.errors import ResultGone
from bot.images import ImageInfo, inspect
from bot.models import Blob, Conversation, Job, JobKind, SlackEvent, Turn, utcnow
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
    statement = _claim_keys(len(keys))
    values = {"team_id": team_id, "now": utcnow(), **{f"key_{i}": key for i, key in enumerate(keys)}}
    return len(session.connection().execute(statement, values).all()) == len(keys)


@functools.cache
def _claim_keys(count: int) -> TextClause:
    """``claim_delivery``'s statement for ``count`` keys, written once. SQLAlchemy can't cache an upsert
    (``ON CONFLICT``): it compiled one afresh for every event (measured: 2 ms of a mention's 4.4 ms of CPU).
    The same SQL runs on SQLite and on PostgreSQL."""
    rows = ", ".join(f"(:team_id, :key_{i}, :now)" for i in range(count))
    return text(
        f"INSERT INTO slack_event (team_id, dedupe_key, received_at) VALUES {rows} "  # noqa: S608 - no input
        "ON CONFLICT (dedupe_key) DO NOTHING RETURNING id"
    ).bindparams(bindparam("now", type_=DateTime))


DELIVERY_KEYS_KEPT = timedelta(days=1)  # Slack retries for 5 minutes; its delayed events, for hours


def prune_deliveries(session: Session, *, older_than: timedelta = DELIVERY_KEYS_KEPT) -> int:
    """Forget dedupe keys older than ``older_than`` (by the database's clock); how many went."""
    cutoff = queue.db_now(session) - older_than
    result = session.execute(delete(SlackEvent).where(SlackEvent.received_at < cutoff))
    return int(getattr(result, "rowcount", 0) or 0)


# The ack path's statements are built once, with bind parameters: building one cost as much CPU as running
# it (measured: a thread reply's ack spent 1.9 ms building the two of ``_next_seq`` alone).
_LINK_DELIVERY = (
    update(SlackEvent)
    .where(SlackEvent.dedupe_key.in_(bindparam("keys", expanding=True)))
    .values(job_id=bindparam("job_id"))
)
_FIND_CONVERSATION = select(Conversation).where(
    Conversation.team_id == bindparam("team_id"),
    Conversation.channel_id == bindparam("channel_id"),
    Conversation.thread_ts == bindparam("thread_ts"),
)
_LOCK_CONVERSATION = (
    select(Conversation.id).where(Conversation.id == bindparam("conversation_id")).with_for_update()
)
_NEXT_SEQ = select(func.coalesce(func.max(Turn.seq) + 1, 0)).where(
    Turn.conversation_id == bindparam("conversation_id")
)


def link_delivery(session: Session, *, keys: list[str], job_id: int) -> None:
    session.connection().execute(_LINK_DELIVERY, {"keys": keys, "job_id": job_id})


def find_conversation(
    session: Session, *, team_id: str, channel_id: str, thread_ts: str
) -> Conversation | None:
    found = {"team_id": team_id, "channel_id": channel_id, "thread_ts": thread_ts}
    return session.scalars(_FIND_CONVERSATION, found).first()


# The ack path's inserts: Core statements built once, each one round trip that returns the new row's id.
# Through the ORM's unit of work, the three flushes took half an acknowledgement's CPU (measured).
_NEW_CONVERSATION = insert(Conversation).returning(Conversation.id)
_NEW_TURN = insert(Turn).returning(Turn.id)
# A job carries its conversation's channel (for the limit sums), copied as it is queued.
_CHANNEL_OF = select(Conversation.channel_id).where(Conversation.id == bindparam("of_conversation"))
_NEW_JOB = insert(Job).values(channel_id=_CHANNEL_OF.scalar_subquery()).returning(Job.id)
# PostgreSQL: the database's clock, and a notification for every listening worker (``bot.wakeup``).
_NEW_JOB_ON_SERVER_CLOCK = (
    insert(Job)
    .values(channel_id=_CHANNEL_OF.scalar_subquery(), not_before=queue.server_now())
    .returning(Job.id, wakeup.notified())
)


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


def _next_seq(session: Session, conversation_id: int, *, locked: bool = False) -> int:
    """The next turn number. A web process (a reply) and a worker (an answer) may add a turn to the same
    conversation at once: the conversation's row lock makes them take turns (until their commit) instead
    of both taking the same number (``locked``: the caller holds it already). SQLite has no FOR UPDATE;
    its write lock already serialises them."""
    connection, which = session.connection(), {"conversation_id": conversation_id}
    if on_postgresql(session) and not locked:
        connection.execute(_LOCK_CONVERSATION, which)
    return int(connection.scalar(_NEXT_SEQ, which) or 0)


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
    (slow work). Text in Slack's markup (``markup``) is stored as the text a person reads, or, when it
    mentions someone, as ``slackText``: the job turns that into names (``users.info``) before anything is
    posted or sent to Gemini (``user_parts``). ``first``: the conversation was started in this
    transaction, so this is turn 0 (two queries fewer on the ack path)."""
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
    """A person's text and files as a turn's parts. Slack's markup is read here (``mrkdwn.to_plain``)
    unless it mentions someone: a name takes ``users.info``, which is the job's to call, not the ack's."""
    if markup and not mrkdwn.names_people(text):
        parts = text_parts(text)
    else:
        parts = [{"slackText" if markup else "text": text}] if text else []
    return parts + [{"slackFile": _file_ref(f)} for f in files]


def text_parts(markup: str, *, user_name: mrkdwn.UserName = lambda _user_id: None) -> list[dict[str, Any]]:
    """Slack's markup as the text part a person reads (``mrkdwn.to_plain``), or none if that is blank."""
    text = mrkdwn.to_plain(markup, user_name=user_name)
    return [{"text": text}] if text.strip() else []


def _first_turn_at_once(*, with_usage: bool = False) -> Select[Any]:
    """PostgreSQL: a new conversation, its first turn and that turn's job in one statement (data-modifying
    CTEs), with the job's id and how many jobs wait ahead of it. ``with_usage``: beside them, one row per
    row of ``ledger.USED`` (or one of NULLs): what was used before this request, read in the statement's
    snapshot, which can't see the job it queues."""
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
        "channel_id": new("channel_id"),
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
    started = select(job.c.id, ahead.scalar_subquery().label("ahead"), wakeup.notified().label("notified"))
    if not with_usage:
        return started
    once = started.cte("started")  # one row, computed once, whatever the sums' row count
    used = ledger.USED.subquery("used")
    return select(once.c.id, once.c.ahead, *used.c).select_from(once.outerjoin(used, true()))


_FIRST_TURN_AT_ONCE = _first_turn_at_once()
_FIRST_TURN_AND_USAGE = _first_turn_at_once(with_usage=True)


def start_at_once(
    session: Session, new: NewConversation, *, parts: list[dict[str, Any]], slack_ts: str | None = None
) -> tuple[int, int]:
    """PostgreSQL only: ``start_conversation``, ``add_user_turn`` and ``enqueue`` in one statement, and
    ``queue.position``: the job's id and how many jobs wait ahead of it. With ``db.autocommit`` that is
    one round trip where the four statements and their transaction took six."""
    values = _first_turn_values(new, parts, slack_ts)
    row = session.connection().execute(_FIRST_TURN_AT_ONCE, values).one()
    return int(row[0]), int(row[1])


def start_at_once_with_usage(
    session: Session,
    new: NewConversation,
    *,
    parts: list[dict[str, Any]],
    slack_ts: str | None,
    usage: Mapping[str, Any],
) -> tuple[int, int, list[tuple[Any, ...]]]:
    """``start_at_once``, and in the same statement ``ledger.USED`` with ``usage``'s values (its rows,
    for ``ledger.tally``): what was used before this job. A limit check reads them and then commits
    the transaction or rolls the job back. One round trip where the check before the inserts took two."""
    values = {**_first_turn_values(new, parts, slack_ts), **usage}
    rows = session.connection().execute(_FIRST_TURN_AND_USAGE, values).all()
    return int(rows[0][0]), int(rows[0][1]), [tuple(row[2:]) for row in rows]


def _first_turn_values(
    new: NewConversation, parts: list[dict[str, Any]], slack_ts: str | None
) -> dict[str, Any]:
    return {**new.row(), "user_id": new.user_id, "parts": parts, "slack_ts": slack_ts, "now": utcnow()}


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
    session: Session,
    *,
    conversation_id: int,
    team_id: str,
    turn_id: int,
    requested_by: str,
    request: Request,
    **made_by: object,
) -> int:
    """Queue a turn, fixing the model and options it is answered with; the job's id. ``made_by``: a
    button's job's own columns (``enqueue_from_result``)."""
    values = {
        "team_id": team_id,
        "conversation_id": conversation_id,
        "turn_id": turn_id,
        "requested_by": requested_by,
        "model_id": request.model.model_id,
        "model_label": request.model.label,
        "aspect_ratio": request.aspect_ratio,
        "image_size": request.image_size,
        "of_conversation": conversation_id,
        **made_by,
    }
    # By the database's clock, like every lease and delay (on SQLite, this host's: a value).
    if on_postgresql(session):
        return int(session.connection().execute(_NEW_JOB_ON_SERVER_CLOCK, values).scalar_one())
    return int(session.connection().execute(_NEW_JOB, {**values, "not_before": utcnow()}).scalar_one())


def enqueue_from_result(
    session: Session, source: Job, *, kind: JobKind, requested_by: str, request: Request, count: int = 1
) -> list[int]:
    """Queue ``count`` jobs made by a button of ``source``'s card: Regenerate and Variations answer its
    turn again from the result it was made from, Finalize re-renders it. Several are one request
    (``group_id``, the first one's id). The jobs' ids."""
    parent = source.id if kind == "finalize" else source.parent_job_id
    ids = [
        enqueue(
            session,
            conversation_id=source.conversation_id,
            team_id=source.team_id,
            turn_id=source.turn_id,
            requested_by=requested_by,
            request=request,
            kind=kind,
            parent_job_id=parent,
            source_job_id=source.id,
        )
        for _ in range(count)
    ]
    if count > 1:
        session.execute(update(Job).where(Job.id.in_(ids)).values(group_id=ids[0]))
    return ids


def pressed_lately(
    session: Session, source: Job, *, kind: str, user_id: str, size: str | None, since: datetime
) -> bool:
    """Whether ``user_id`` pressed this button of ``source``'s card since ``since`` (a job it made)."""
    same = [
        Job.source_job_id == source.id,
        Job.kind == kind,
        Job.requested_by == user_id,
        Job.created_at >= since,
    ]
    if kind == "finalize":
        same.append(Job.image_size == size)
    return bool(session.scalar(select(exists().where(*same))))


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


def save_model_turn(
    session: Session,
    conversation: Conversation,
    answer: Answer,
    *,
    locked: bool = False,
    shape_for: str | None = None,
) -> Turn:
    """Store the answer verbatim, moving every image's bytes to a blob. Thought images (drafts) are not
    kept: they are never replayed or shown, and each is as large as the result. ``locked``: the caller
    holds the conversation's row lock (``_next_seq``). ``shape_for`` (a model id): the conversation has
    no aspect ratio, and takes the result's, closest among that model's ratios: without ``--ar`` Gemini
    picks the shape (from the references, else square), and the edits that follow keep it, or "make it
    blue" could come back in another shape."""
    parts: list[dict[str, Any]] = []
    final: ImageInfo | None = None
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
            final = info
        parts.append(part)
    turn = Turn(
        conversation_id=conversation.id,
        team_id=conversation.team_id,
        seq=_next_seq(session, conversation.id, locked=locked),
        role="model",
        parts=parts,
    )
    session.add(turn)
    if shape_for is not None and final is not None and conversation.aspect_ratio is None:
        ratios = family_of(shape_for).aspect_ratios
        conversation.aspect_ratio = closest_ratio(final.width or 0, final.height or 0, ratios)
    session.flush()
    return turn


def final_image(session: Session, turn: Turn) -> Blob:
    """The last non-thought image of a model turn: what the user gets."""
    return load_blob(session, team_id=turn.team_id, blob_id=final_blob_id(turn))


def final_blob_id(turn: Turn) -> int:
    for part in reversed(turn.parts):
        inline = part.get("inlineData")
        if isinstance(inline, dict) and not part.get("thought") and "blobId" in inline:
            return int(inline["blobId"])
    raise LookupError(f"turn {turn.id} has no image")


@dataclass(frozen=True)
class History:
    """What a job sends Gemini (``contents``) and the result it builds on (``base``, a job id)."""

    contents: list[dict[str, Any]]
    base: int | None


def contents_for(session: Session, job: Job) -> History:
    """The ``contents`` of the request that answers ``job``, bounded by ``bot.history``.

    Results form a tree: each job builds on one earlier result (``history.lineage``), a thread reply on
    the newest one, a button's job on the result its button names. The request replays that line: each
    result's instruction and answer, then the job's own instruction; the conversation's first instruction
    (the brief) always stays. Answers from another model are replayed as a user image. Finalize sends the
    one image it re-renders, with its instruction.
    """
    rows = session.execute(
        select(
            Job.id,
            Job.turn_id,
            Job.parent_job_id,
            Job.kind,
            Job.state,
            Job.deleted_at,
            Job.result_turn_id,
            Job.model_id,
            Job.source_job_id,
        ).where(Job.conversation_id == job.conversation_id)
    ).all()
    nodes = {
        r.id: history.Node(
            r.id,
            r.turn_id,
            r.parent_job_id,
            r.kind,
            r.result_turn_id is not None and r.state != "failed" and r.deleted_at is None,
            r.source_job_id,
        )
        for r in rows
    }
    answers = {r.id: r.result_turn_id for r in rows}
    makers = {r.id: r.model_id for r in rows}
    chain = history.lineage(nodes, job.id)
    base = chain[-1].id if chain else None
    if history.renders(nodes, nodes[job.id]):
        return History(_finalize_contents(session, job, nodes, answers), base)
    first = session.scalars(
        select(Turn)
        .where(Turn.conversation_id == job.conversation_id, Turn.role == "user")
        .order_by(Turn.seq)
        .limit(1)
    ).one()
    wanted = (
        {first.id, job.turn_id} | {n.turn_id for n in chain} | {answers[n.id] for n in chain if answers[n.id]}
    )
    turns = {t.id: t for t in session.scalars(select(Turn).where(Turn.id.in_(wanted)))}
    ordered: list[history.TurnData] = []
    if (chain[0].turn_id if chain else job.turn_id) != first.id:
        ordered.append(history.TurnData(first.seq, "user", first.parts))
    for node in chain:
        ordered.append(_instruction(turns[node.turn_id], rendered=history.renders(nodes, node)))
        answer = answers[node.id]
        if node.answered and answer is not None:
            foreign = makers[node.id] != job.model_id
            ordered.append(history.TurnData(turns[answer].seq, "model", turns[answer].parts, foreign=foreign))
    ordered.append(_instruction(turns[job.turn_id], rendered=False))
    contents = []
    for data in history.select(ordered):
        role, parts = data.role, history.replayable(data.parts)
        if data.foreign:
            role, parts = "user", history.as_user_image(data.parts)
        materialised = [_materialise(session, job.team_id, p) for p in parts]
        kept = [p for p in materialised if p is not None]
        if kept:
            contents.append({"role": role, "parts": kept})
    return History(history.merge_roles(contents), base)


def _instruction(turn: Turn, *, rendered: bool) -> history.TurnData:
    """A job's instruction: its user turn's, or a render's own (a render reuses its result's turn)."""
    parts = [{"text": history.FINALIZE_INSTRUCTION}] if rendered else turn.parts
    return history.TurnData(turn.seq, "user", parts)


def channel_of(session: Session, conversation_id: int) -> str:
    return str(session.scalar(select(Conversation.channel_id).where(Conversation.id == conversation_id)))


def delete_result(session: Session, *, team_id: str, job_id: int) -> bool:
    """Mark a result deleted and drop its stored images (its answer keeps its words and signatures, which
    are no image). False if it was not there to delete (another workspace's, or deleted already)."""
    job = session.get(Job, job_id, with_for_update=True)
    if job is None or job.team_id != team_id or job.deleted_at is not None:
        return False
    job.deleted_at = utcnow()
    turn = session.get(Turn, job.result_turn_id) if job.result_turn_id else None
    if turn is not None:
        images = [p["inlineData"]["blobId"] for p in turn.parts if "blobId" in (p.get("inlineData") or {})]
        turn.parts = [p for p in turn.parts if "inlineData" not in p]
        session.execute(delete(Blob).where(Blob.id.in_(images), Blob.team_id == team_id))
    return True


def _finalize_contents(
    session: Session, job: Job, nodes: dict[int, history.Node], answers: dict[int, int | None]
) -> list[dict[str, Any]]:
    parent = nodes.get(job.parent_job_id or 0)
    answer = answers.get(parent.id) if parent is not None else None
    if parent is None or not parent.answered or answer is None:
        raise ResultGone()
    turn = session.get_one(Turn, answer)
    image = {"inlineData": {"mimeType": "image/png", "blobId": final_blob_id(turn)}}
    parts = [_materialise(session, job.team_id, image), {"text": history.FINALIZE_INSTRUCTION}]
    return [{"role": "user", "parts": [p for p in parts if p is not None]}]


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
