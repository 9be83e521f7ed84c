"""Turning what Slack delivers into durable jobs. Called by the thin Bolt listeners in ``handlers/``.

Every entry point (``command``, ``message``, ``edit``) reads its payload with ``bot.payloads``, checks the
request, and hands one ``NewTurn`` to ``_accept``, which writes the conversation, the user turn and the job
in one transaction, before Slack gets its acknowledgement. Every entry point answers with an ``Outcome``:
the job it queued, or the sentence (from ``bot.messages``) to show the person privately.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy.orm import Session, sessionmaker

from bot import ledger, messages, queue, store
from bot.cards import DEFAULT_VARIATIONS, FINALIZE_MODEL, result_named
from bot.catalog import Catalog, Model, family_of
from bot.db import autocommit, is_postgresql, lock_requester
from bot.errors import OptionError
from bot.limits import Limit, Period, Scope, Tally, first_exceeded, period_end, until
from bot.models import Conversation, Job, utcnow
from bot.options import Request, is_help, parse_request
from bot.payloads import Command, EditSubmission, Message, Route, route
from bot.prices import PriceTable, load_prices

log = logging.getLogger(__name__)

Origin = Literal["command", "mention", "dm", "shortcut", "button"]
PressKind = Literal["regenerate", "variation", "finalize"]
PRESS_GUARD = timedelta(seconds=3)  # the same paid button pressed again by the same person within this: once


@dataclass(frozen=True)
class Press:
    """A paid button of a result card (Regenerate, Variations, Finalize), pressed. ``value``: the button's
    value as Slack sent it back (a job id, unchecked); ``size``: the size Finalize renders at."""

    team_id: str
    user_id: str
    kind: PressKind
    value: str
    size: str | None = None


@dataclass(frozen=True)
class NewTurn:
    """One request to answer, whatever the entry point. ``thread_ts`` None: a new thread, whose root the
    job posts. ``markup``: the text is Slack's markup (events, commands), not as typed (a modal)."""

    team_id: str
    channel_id: str
    user_id: str
    origin: Origin
    thread_ts: str | None
    markup: bool
    response_url: str | None = None
    slack_ts: str | None = None
    files: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class Outcome:
    """What an entry point did. ``reply``: what to tell the person privately (mrkdwn, except for a
    modal, whose errors are plain text); ``duplicate``: Slack delivered this before."""

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
        limits: tuple[Limit, ...] = (),
        prices: PriceTable | None = None,
        admins: tuple[str, ...] = (),
        variations: int = DEFAULT_VARIATIONS,
    ) -> None:
        self._sessions = sessions
        self.variations = variations
        self.catalog = catalog
        self.default_model = default_model
        self._on_enqueued = on_enqueued
        self.limits = limits
        self.prices = prices or load_prices()
        self.admins = admins
        # On PostgreSQL a new /banana's inserts are one statement: under load every round trip waits for the
        # CPU. Without limits that statement commits on its own; with them it follows the check.
        self._at_once = is_postgresql(sessions)

    def command(self, command: Command) -> Outcome:
        """``/banana``: the reply is the private acknowledgement. The job exists before this returns."""
        if is_help(command.text):
            return Outcome(reply=messages.usage(self.catalog, default_model=self.default_model))
        try:
            request = self._parse(command.text)
        except OptionError as err:
            return Outcome(reply=messages.for_error(err))
        turn = NewTurn(
            team_id=command.team_id,
            channel_id=command.channel_id,
            user_id=command.user_id,
            origin="command",
            thread_ts=None,
            markup=True,
            response_url=command.response_url,
        )
        if self._at_once and not self.limits:  # nothing to check first: one statement, committing alone
            with autocommit(self._sessions) as session:
                job_id, ahead = self._start_at_once(session, request, turn)
        elif self._at_once:
            with self._sessions() as session:
                job_id, ahead, refusal = self._start_within_limits(session, request, turn)
                if refusal:
                    session.rollback()
                    return Outcome(reply=refusal)
                session.commit()
        else:
            with self._sessions.begin() as session:
                refusal = self._over_limit(session, request, turn)
                if refusal:
                    return Outcome(reply=refusal)
                job_id = self._accept(session, None, request, turn)
                ahead = queue.position(session, job_id, team_id=turn.team_id, user_id=turn.user_id)
        self._on_enqueued()
        return Outcome(job_id=job_id, reply=messages.queued(ahead))

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
                request = self._parse(message.text, base=base, allow_empty=bool(message.files) or bool(base))
            except OptionError as err:
                return Outcome(reply=messages.for_error(err))
            if not request.prompt and not message.files:
                return Outcome(reply=messages.for_error(OptionError(messages.NOTHING_TO_CHANGE)))
            turn = NewTurn(
                team_id=message.team_id,
                channel_id=message.channel_id,
                user_id=message.user_id,
                origin="dm" if message.is_dm else "mention",
                thread_ts=message.thread_ts or message.ts,
                markup=True,
                slack_ts=message.ts,
                files=message.files,
            )
            refusal = self._over_limit(session, request, turn)
            if refusal:
                return Outcome(reply=refusal)
            job_id = self._accept(session, conversation, request, turn)
            store.link_delivery(session, keys=keys, job_id=job_id)
        self._on_enqueued()
        return Outcome(job_id=job_id)

    def edit(self, submission: EditSubmission) -> Outcome:
        """ "Edit with Nano Banana" on a message: its images become references of a new turn in that
        message's thread (continuing the conversation if the thread already is one)."""
        target = submission.target
        with self._sessions.begin() as session:
            conversation = store.find_conversation(
                session, team_id=submission.team_id, channel_id=target.channel_id, thread_ts=target.thread_ts
            )
            base = _request_of(conversation) if conversation else None
            try:
                request = self._parse(submission.text, base=base)
            except OptionError as err:
                return Outcome(reply=messages.for_modal(err))
            turn = NewTurn(
                team_id=submission.team_id,
                channel_id=target.channel_id,
                user_id=submission.user_id,
                origin="shortcut",
                thread_ts=target.thread_ts,
                markup=False,  # a modal's text input arrives as typed
                response_url=target.response_url,
                files=[{"id": file_id} for file_id in target.file_ids],
            )
            refusal = self._over_limit(session, request, turn)
            if refusal:
                return Outcome(reply=refusal)
            job_id = self._accept(session, conversation, request, turn)
        self._on_enqueued()
        return Outcome(job_id=job_id)

    def press(self, press: Press) -> Outcome:
        """A result card's paid button: Regenerate (the result's turn again, from the same parent),
        Variations (``variations`` of those, run side by side, one request for the per-person cap) or
        Finalize (the result re-rendered by the Pro model at ``size``). Checked against the limits like any
        request; the same button pressed twice by one person within ``PRESS_GUARD`` queues once."""
        with self._sessions.begin() as session:
            source = result_named(session, press.team_id, press.value)
            if source is None:
                return Outcome(reply=messages.RESULT_GONE)
            lock_requester(session, press.team_id, press.user_id)  # this person's presses, one at a time
            since = utcnow() - PRESS_GUARD
            if store.pressed_lately(
                session, source, kind=press.kind, user_id=press.user_id, size=press.size, since=since
            ):
                log.info(
                    "press of %s on result %s by %s again: ignored", press.kind, source.id, press.user_id
                )
                return Outcome(duplicate=True)
            conversation = session.get_one(Conversation, source.conversation_id)
            request = self._pressed_request(source, conversation, press)
            count = self.variations if press.kind == "variation" else 1
            turn = NewTurn(
                team_id=press.team_id,
                channel_id=conversation.channel_id,
                user_id=press.user_id,
                origin="button",
                thread_ts=conversation.thread_ts,
                markup=False,
            )
            refusal = self._over_limit(session, request, turn, images=count)
            if refusal:
                return Outcome(reply=refusal)
            job_ids = store.enqueue_from_result(
                session, source, kind=press.kind, requested_by=press.user_id, request=request, count=count
            )
        self._on_enqueued()
        return Outcome(job_id=job_ids[0])

    def _pressed_request(self, source: Job, conversation: Conversation, press: Press) -> Request:
        if press.kind == "finalize":
            model = self.catalog.resolve(FINALIZE_MODEL)
            ratio = source.aspect_ratio or conversation.aspect_ratio
            ratio = ratio if ratio in model.family.aspect_ratios else None
            return Request(prompt="", model=model, aspect_ratio=ratio, image_size=press.size)
        model = Model(model_id=source.model_id, label=source.model_label, family=family_of(source.model_id))
        return Request(prompt="", model=model, aspect_ratio=source.aspect_ratio, image_size=source.image_size)

    def _over_limit(
        self, session: Session, request: Request, turn: NewTurn, *, images: int = 1
    ) -> str | None:
        """Why ``request`` can't be queued under the limits (what to tell the person), or None. Checked
        inside the transaction that would queue it, with this person's other checks waiting."""
        if not self.limits:
            return None
        lock_requester(session, turn.team_id, turn.user_id)
        now = utcnow()
        used = ledger.used(
            session,
            team_id=turn.team_id,
            user_id=turn.user_id,
            channel_id=turn.channel_id,
            now=now,
            prices=self.prices,
        )
        return self._refusal(used, request, turn, now=now, images=images)

    def _start_within_limits(
        self, session: Session, request: Request, turn: NewTurn
    ) -> tuple[int, int, str | None]:
        """PostgreSQL, with limits: ``_over_limit`` and ``_start_at_once`` in two round trips (three with the
        COMMIT, where they took five). Under this person's lock (taken with the transaction's BEGIN), the
        job is queued in the statement that sums what was used before it; the caller commits it, or rolls
        it back if the refusal isn't None."""
        lock_requester(session, turn.team_id, turn.user_id)
        now = utcnow()
        usage = ledger.usage_values(
            team_id=turn.team_id, user_id=turn.user_id, channel_id=turn.channel_id, now=now
        )
        job_id, ahead, rows = store.start_at_once_with_usage(
            session,
            _conversation_of(turn, request),
            parts=store.user_parts(request.prompt, turn.files, markup=turn.markup),
            slack_ts=turn.slack_ts,
            usage=usage,
        )
        used = ledger.tally(rows, self.prices)
        return job_id, ahead, self._refusal(used, request, turn, now=now)

    def _refusal(
        self,
        used: dict[tuple[Scope, Period], Tally],
        request: Request,
        turn: NewTurn,
        *,
        now: datetime,
        images: int = 1,
    ) -> str | None:
        """What to tell the person if ``request`` (``images`` of it) doesn't fit beside ``used``, or None."""
        asked = Tally(images, self.prices.estimate(request.model.model_id, request.image_size, images=images))
        hit = first_exceeded(self.limits, used, asked)
        if hit is None:
            return None
        limit, have = hit
        resets = period_end(limit.period, now)
        log.info("request by %s refused: over %s", turn.user_id, limit)
        return messages.over_limit(
            limit,
            used=have,
            asked=asked,
            resets_at=f"{resets:%b %-d, %H:%M}",
            resets_in=until(resets, now),
            admins=self.admins,
        )

    @staticmethod
    def _start_at_once(session: Session, request: Request, turn: NewTurn) -> tuple[int, int]:
        """PostgreSQL: what ``_accept`` does for a new conversation, in one statement
        (``store.start_at_once``), and the job's place in the queue."""
        return store.start_at_once(
            session,
            _conversation_of(turn, request),
            parts=store.user_parts(request.prompt, turn.files, markup=turn.markup),
            slack_ts=turn.slack_ts,
        )

    def _parse(self, text: str, *, base: Request | None = None, allow_empty: bool = False) -> Request:
        return parse_request(
            text,
            catalog=self.catalog,
            default_model=self.default_model,
            allow_empty_prompt=allow_empty,
            base=base,
        )

    @staticmethod
    def _accept(session: Session, conversation: Conversation | None, request: Request, turn: NewTurn) -> int:
        """Start the conversation (or make ``request``'s options its new defaults) and queue the turn: the
        job's id."""
        if conversation is None:
            conversation_id = store.start_conversation(session, _conversation_of(turn, request))
        else:
            store.update_options(conversation, request)
            conversation.response_url = turn.response_url or conversation.response_url
            conversation_id = conversation.id
        turn_id = store.add_user_turn(
            session,
            conversation_id=conversation_id,
            team_id=turn.team_id,
            user_id=turn.user_id,
            text=request.prompt,
            files=turn.files,
            slack_ts=turn.slack_ts,
            markup=turn.markup,
            first=conversation is None,
        )
        return store.enqueue(
            session,
            conversation_id=conversation_id,
            team_id=turn.team_id,
            turn_id=turn_id,
            requested_by=turn.user_id,
            request=request,
        )


def _conversation_of(turn: NewTurn, request: Request) -> store.NewConversation:
    return store.NewConversation(
        team_id=turn.team_id,
        channel_id=turn.channel_id,
        thread_ts=turn.thread_ts,
        origin=turn.origin,
        user_id=turn.user_id,
        request=request,
        response_url=turn.response_url,
    )


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
