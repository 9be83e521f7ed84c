"""Turning what Slack delivers into durable jobs. Called by the thin Bolt listeners in ``handlers/``.

``route`` is pure: it decides from the event alone (and whether its thread is a conversation) what to do.
``Intake`` persists: dedupe keys, conversation, user turn and job in one transaction, before Slack gets
its acknowledgement.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from bot import messages, mrkdwn, queue, store
from bot.catalog import Catalog, Model, family_of
from bot.errors import OptionError
from bot.models import Conversation, Job
from bot.options import Request, is_help, parse_request

log = logging.getLogger(__name__)

# Message subtypes that are a person saying something; everything else (edits, deletions, joins, bot
# messages, …) is acknowledged and ignored.
_SPOKEN_SUBTYPES = {None, "file_share", "thread_broadcast"}


class Route(Enum):
    IGNORE = "ignore"
    START = "start"
    CONTINUE = "continue"  # continue if the thread is a conversation; a mention there starts one otherwise


@dataclass(frozen=True)
class Message:
    """The parts of a ``message``/``app_mention`` event that matter here. ``text`` is Slack's markup with
    the bot's own mention taken out (other people's mentions are content: the job names them)."""

    team_id: str
    channel_id: str
    user_id: str
    text: str
    ts: str
    thread_ts: str | None
    is_dm: bool
    mentions_bot: bool
    files: list[dict[str, Any]] = field(default_factory=list)

    @property
    def is_reply(self) -> bool:
        return self.thread_ts is not None and self.thread_ts != self.ts

    @property
    def dedupe_key(self) -> str:
        # app_mention and message.* deliver the same message twice, with different event ids.
        return f"msg:{self.team_id}:{self.channel_id}:{self.ts}"


def parse_message(event: dict[str, Any], *, team_id: str, bot_user_id: str | None) -> Message | None:
    """None for anything that is not a person talking: bots (the bot itself included), edits, deletions."""
    if event.get("subtype") not in _SPOKEN_SUBTYPES:
        return None
    if event.get("bot_id") or event.get("bot_profile") or not event.get("user"):
        return None
    if bot_user_id and event.get("user") == bot_user_id:
        return None
    channel = str(event.get("channel") or "")
    text = str(event.get("text") or "")
    channel_type = event.get("channel_type") or ("im" if channel.startswith("D") else None)
    mentions_bot = bool(bot_user_id) and f"<@{bot_user_id}" in text
    return Message(
        team_id=team_id or str(event.get("team") or ""),  # the signed envelope's team wins
        channel_id=channel,
        user_id=str(event["user"]),
        text=mrkdwn.strip_user(text, bot_user_id) if bot_user_id else text.strip(),
        ts=str(event.get("ts")),
        thread_ts=event.get("thread_ts"),
        is_dm=channel_type == "im",
        mentions_bot=mentions_bot,
        files=[f for f in event.get("files") or [] if isinstance(f, dict)],
    )


def image_files(files: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Attachments worth sending as references (Slack Connect stubs are checked later, in the job)."""
    return [
        f
        for f in files
        if str(f.get("mimetype", "")).startswith("image/") or f.get("file_access") == "check_file_info"
    ]


def route(message: Message) -> Route:
    if message.is_reply:
        return Route.CONTINUE
    if message.is_dm or message.mentions_bot:
        return Route.START
    return Route.IGNORE


@dataclass(frozen=True)
class Outcome:
    """What the listener should tell the person, if anything (privately)."""

    job_id: int | None = None
    reply: str | None = None
    duplicate: bool = False


class Intake:
    def __init__(
        self,
        *,
        sessions: sessionmaker[Session],
        catalog: Catalog,
        default_model: str,
        on_enqueued: Callable[[], None] = lambda: None,
    ) -> None:
        self._sessions = sessions
        self.catalog = catalog
        self.default_model = default_model
        self._on_enqueued = on_enqueued

    def usage(self) -> str:
        return messages.usage(self.catalog, default_model=self.default_model)

    def command(
        self, *, team_id: str, channel_id: str, user_id: str, text: str, response_url: str | None
    ) -> str:
        """``/banana``: returns the private acknowledgement text. The job exists before this returns."""
        if is_help(text):
            return self.usage()
        try:
            request = parse_request(text, catalog=self.catalog, default_model=self.default_model)
        except OptionError as err:
            return messages.for_error(err)
        with self._sessions.begin() as session:
            job = self._open(
                session,
                None,
                request,
                team_id=team_id,
                channel_id=channel_id,
                thread_ts=None,
                origin="command",
                user_id=user_id,
                response_url=response_url,
                files=[],
                slack_ts=None,
                markup=True,
            )
            ahead = queue.position(session, job)
        self._on_enqueued()
        return messages.queued(ahead)

    def message(self, message: Message, *, event_id: str | None) -> Outcome:
        """A mention, a DM or a thread reply. Duplicates (retries, app_mention + message) yield no job."""
        decision = route(message)
        if decision is Route.IGNORE:
            return Outcome()
        keys = [message.dedupe_key] + ([f"event:{event_id}"] if event_id else [])
        with self._sessions.begin() as session:
            conversation: Conversation | None = None
            if decision is Route.CONTINUE:
                conversation = store.find_conversation(
                    session,
                    team_id=message.team_id,
                    channel_id=message.channel_id,
                    thread_ts=str(message.thread_ts),
                )
                if conversation is None and not (message.mentions_bot or message.is_dm):
                    return Outcome()  # a thread the bot did not start, and nobody asked it
            if not store.claim_delivery(session, team_id=message.team_id, keys=keys):
                log.info("duplicate delivery of %s ignored", message.dedupe_key)
                return Outcome(duplicate=True)
            base = _request_of(conversation) if conversation else None
            try:
                request = parse_request(
                    message.text,
                    catalog=self.catalog,
                    default_model=self.default_model,
                    allow_empty_prompt=bool(message.files) or base is not None,
                    base=base,
                )
            except OptionError as err:
                return Outcome(reply=messages.for_error(err))
            if not request.prompt and not message.files:
                return Outcome(
                    reply=messages.for_error(OptionError("Tell me what to change, e.g. `make it blue`."))
                )
            job = self._open(
                session,
                conversation,
                request,
                team_id=message.team_id,
                channel_id=message.channel_id,
                thread_ts=message.thread_ts or message.ts,
                origin="dm" if message.is_dm else "mention",
                user_id=message.user_id,
                response_url=None,
                files=message.files,
                slack_ts=message.ts,
                markup=True,
            )
            store.link_delivery(session, keys=keys, job=job)
            job_id = job.id
        self._on_enqueued()
        return Outcome(job_id=job_id)

    def shortcut(
        self,
        *,
        team_id: str,
        channel_id: str,
        user_id: str,
        thread_ts: str,
        files: list[dict[str, Any]],
        text: str,
        response_url: str | None,
    ) -> Outcome:
        """ "Edit with Nano Banana" on a message: its images become references of a new turn in that
        message's thread (continuing the conversation if the thread already is one)."""
        with self._sessions.begin() as session:
            conversation = store.find_conversation(
                session, team_id=team_id, channel_id=channel_id, thread_ts=thread_ts
            )
            base = _request_of(conversation) if conversation else None
            try:
                request = parse_request(
                    text, catalog=self.catalog, default_model=self.default_model, base=base
                )
            except OptionError as err:
                return Outcome(reply=str(err))
            job = self._open(
                session,
                conversation,
                request,
                team_id=team_id,
                channel_id=channel_id,
                thread_ts=thread_ts,
                origin="shortcut",
                user_id=user_id,
                response_url=response_url,
                files=files,
                slack_ts=None,
                markup=False,  # a modal's text input arrives as typed
            )
            job_id = job.id
        self._on_enqueued()
        return Outcome(job_id=job_id)

    @staticmethod
    def _open(
        session: Session,
        conversation: Conversation | None,
        request: Request,
        *,
        team_id: str,
        channel_id: str,
        thread_ts: str | None,
        origin: str,
        user_id: str,
        response_url: str | None,
        files: list[dict[str, Any]],
        slack_ts: str | None,
        markup: bool,
    ) -> Job:
        """Start the conversation (or make ``request``'s options its new defaults) and queue the turn."""
        if conversation is None:
            conversation = store.start_conversation(
                session,
                team_id=team_id,
                channel_id=channel_id,
                thread_ts=thread_ts,
                origin=origin,
                user_id=user_id,
                request=request,
                response_url=response_url,
            )
        else:
            store.update_options(conversation, request)
            conversation.response_url = response_url or conversation.response_url
        turn = store.add_user_turn(
            session,
            conversation,
            user_id=user_id,
            text=request.prompt,
            files=files,
            slack_ts=slack_ts,
            markup=markup,
        )
        return store.enqueue(session, conversation, turn, requested_by=user_id, request=request)


def _request_of(conversation: Conversation) -> Request:
    """The conversation's current model and options, as the base for parsing a reply."""
    model = Model(
        model_id=conversation.model_id,
        label=conversation.model_label,
        family=family_of(conversation.model_id),
    )
    return Request(
        prompt="", model=model, aspect_ratio=conversation.aspect_ratio, image_size=conversation.image_size
    )
