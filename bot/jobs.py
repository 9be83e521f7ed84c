"""What one job does: prompt → thread → status → references → Gemini → upload → done.

A run works from a frozen snapshot of its job (``JobView``). Each side effect is recorded with a typed
transition on the queue (``bot.queue.record_*``) before the next one starts, and the snapshot moves on
with it, so a job that is run again after a crash or a lapsed lease starts from what already happened:
one root message, one Gemini charge per successful answer, one image.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from typing import Any, Literal

from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from bot import history, ledger, logs, messages, metrics, notify, queue, store
from bot.answer import Answer, SentCall
from bot.blocks import result_card
from bot.cards import ButtonPrices
from bot.catalog import family_of
from bot.db import reading
from bot.errors import (
    AttachmentError,
    BananaError,
    ChannelArchived,
    GaveUp,
    GeminiAlarm,
    GeminiAuthError,
    Interrupted,
    NotInChannel,
    SlackAuthError,
    SlackError,
    SlackUnavailable,
    WorkspaceKeyRefused,
)
from bot.gemini import GeminiClient, build_request
from bot.images import extension
from bot.job_view import JobView
from bot.models import Conversation, Job, Turn
from bot.prices import PriceTable, load_prices
from bot.queue import Lease
from bot.references import fetch_reference
from bot.slack import Backoff, SlackGateway

log = logging.getLogger(__name__)


MAX_ATTEMPTS = 8  # claims of one job, crashes and Slack retries included, before it is given up
SAVE_RETRY_WAITS = (1.0, 2.0, 4.0, 8.0, None)  # ~15 s of database trouble before the answer is given up
# Results being uploaded at the same time, per process: each holds its image (6 MB at 4K, twice over
# while the request is built); the rest wait their turn with no image in hand.
UPLOADS_AT_ONCE = 4
# A result goes into its thread after the results before it: how its job looks for theirs being done (a
# job finishing in this process ends the wait at once), and for how long at most.
IN_ORDER_POLLS = Backoff(first=0.05, growth=1.5, most=1.0)
IN_ORDER_MOST_SECONDS = 60.0


Stage = Callable[[JobView, SlackGateway], JobView]


class LeaseLost(Exception):
    """Another worker owns the job now; stop without touching Slack or the job again."""


class JobRunner:
    """``slack_retry_delays``: seconds before each further try of a job that Slack turned away for a
    while (``SlackUnavailable``); the job fails, and the person is told, once they are used up."""

    def __init__(
        self,
        *,
        sessions: sessionmaker[Session],
        gemini: GeminiClient,
        slack: Callable[[str], SlackGateway],
        slack_retry_delays: tuple[float, ...] = (5.0, 30.0, 120.0),
        stopping: threading.Event | None = None,
        prices: PriceTable | None = None,
        buttons: ButtonPrices | None = None,
        own_keys: Callable[[str], str | None] = lambda _team_id: None,
        image_sessions: sessionmaker[Session] | None = None,
    ) -> None:
        """``image_sessions``: for the transactions that write or read images (``db.image_engine``),
        ``sessions`` by default. ``buttons``: what a result card's paid buttons cost (their text says).
        ``on_unblocked`` (the pool sets its ``wake``): called as soon as a job's answer is stored or the job
        is marked done or failed, each of which may make the next job of its conversation claimable.
        ``hand_off`` (the pool sets it too): see ``run``."""
        self.on_unblocked: Callable[[], None] = lambda: None
        self._sessions = sessions
        self._image_sessions = image_sessions or sessions
        self._gemini = gemini
        self._slack = slack
        self._retry_delays = slack_retry_delays
        self._stopping = stopping or threading.Event()
        self._at_gemini: set[int] = set()
        self._lock = threading.Lock()
        self._finished = threading.Condition()
        self._uploads = threading.BoundedSemaphore(UPLOADS_AT_ONCE)
        self._prices = prices or load_prices()
        self._buttons = buttons or ButtonPrices(self._prices)
        self._own_keys = own_keys  # a workspace's own Gemini key (``WorkspaceKeys.get``), else None
        self.hand_off: Callable[[Lease, Callable[[], None]], bool] = lambda _lease, _rest: False
        self._generating = (
            self._within_attempts,
            self._resolve_prompt,
            self._ensure_thread,
            self._ensure_status,
            self._ensure_references,
            self._ensure_answer,
        )
        self._delivering = (self._in_order, self._deliver, self._ensure_card)

    def at_gemini(self) -> set[int]:
        """The jobs inside their Gemini call, or storing its answer, right now: on shutdown they may
        finish that (their answer may already be paid for); every other job goes back to the queue."""
        with self._lock:
            return set(self._at_gemini)

    def run(self, lease: Lease) -> bool:
        """Run a job. Once its answer is stored, the rest (its place in the thread, the upload, the card)
        may go on in another thread: ``hand_off`` (the pool sets it) is offered that rest, and True means
        it took it, so this thread is free for the next job while the lease is still held."""
        with reading(self._sessions) as session:
            view = JobView.read(session, lease)
        context = {"job_id": view.job_id, "team_id": view.team_id, "conversation_id": view.conversation_id}
        with logs.job_context(**context):
            try:
                slack = self._slack(view.team_id)
            except SlackAuthError as err:  # the workspace removed the app: nothing can be posted, nobody told
                log.warning("job %s failed: no Slack token for workspace %s", lease.job_id, view.team_id)
                self._finish(view, "failed", error_code=err.code, error_message=str(err))
                return False
            answered = self._through(view, slack, self._generating)
        if answered is None:
            return False
        rest = partial(self._deliver_answered, answered, slack, context)
        if self.hand_off(lease, rest):
            return True
        rest()
        return False

    def _deliver_answered(self, view: JobView, slack: SlackGateway, context: dict[str, Any]) -> None:
        with logs.job_context(**context):
            if self._through(view, slack, self._delivering) is not None:
                self._done(view, slack)
                log.info("job %s done", view.job_id)

    def _through(self, view: JobView, slack: SlackGateway, stages: tuple[Stage, ...]) -> JobView | None:
        """The view after ``stages``; None if the job ended on the way (failed, or given back for later)."""
        lease = view.lease
        try:
            for stage in stages:
                if self._stopping.is_set() and view.result_turn_id is None:
                    raise Interrupted("stopping before the job reached Gemini")
                view = stage(view, slack)
            return view
        except Interrupted as err:
            with self._sessions() as session:
                queue.release(session, lease)
            log.info("job %s released for another worker (%s)", lease.job_id, err)
        except LeaseLost:
            log.warning("job %s: lease lost, leaving it to its new owner", lease.job_id)
        except OperationalError:
            # The database went away: leave the lease to lapse; the job is claimed again once it is back.
            log.exception("job %s: database error, will be retried after the lease lapses", lease.job_id)
        except SlackUnavailable as err:
            if not self._retry_later(view, slack, err):
                log.warning("job %s failed: Slack kept answering %s: %s", lease.job_id, err.code, err)
                self._fail(view, slack, err)
        except GeminiAlarm as err:
            # Not about this prompt: the key's account (or a policy rule) blocks the bot; an admin must act.
            log.error(
                "job %s: Gemini answered %s: an admin must act on the API key's account", lease.job_id, err
            )
            self._fail(view, slack, err)
        except BananaError as err:
            log.info("job %s failed: %s: %s", lease.job_id, type(err).__name__, err)
            self._fail(view, slack, err)
        except Exception as err:
            log.exception("job %s crashed", lease.job_id)
            self._fail(view, slack, err)
        return None

    def _done(self, view: JobView, slack: SlackGateway) -> None:
        """Mark the job done and take its "working on it" message away."""
        if self._finish(view, "done"):
            metrics.IMAGES.labels(view.model_id).inc()
        if view.status_ts:
            notify.quietly(lambda: slack.delete(view.channel_id, str(view.status_ts)))

    def _finish(self, view: JobView, state: Literal["done", "failed"], **error: str) -> bool:
        """Mark the job ``state`` (``queue.finish``) and count it; False if it was no longer ours."""
        with self._sessions() as session:
            if not queue.finish(session, view.lease, state=state, **error):
                return False
            session.commit()
        metrics.FINISHED.labels(state).inc()
        self.on_unblocked()
        with self._finished:
            self._finished.notify_all()
        return True

    def _record(self, change: Callable[[Session], bool], *, images: bool = False) -> None:
        """Run one transition in its own transaction (``images``: one that writes images); LeaseLost (and
        nothing written) if the job is no longer ours."""
        with (self._image_sessions if images else self._sessions).begin() as session:
            if not change(session):
                raise LeaseLost()

    # --- stages: each returns the view after what it did --------------------------------------------

    @staticmethod
    def _within_attempts(view: JobView, _slack: SlackGateway) -> JobView:
        if view.lease.attempt > MAX_ATTEMPTS:  # e.g. it crashes the process every time: stop the loop
            raise GaveUp(view.lease.attempt - 1)
        return view

    def _resolve_prompt(self, view: JobView, slack: SlackGateway) -> JobView:
        """Slack's markup becomes the text a person reads in Slack (names for mentions, link labels,
        ``&`` ``<`` ``>``): that is what is posted back and what Gemini gets."""
        if not any("slackText" in p for p in view.parts):
            return view
        parts: list[dict[str, Any]] = []
        for part in view.parts:
            if "slackText" not in part:
                parts.append(part)
                continue
            parts += store.text_parts(str(part["slackText"]), user_name=slack.user_name)
        self._record(lambda s: queue.record_parts(s, view.lease, turn_id=view.turn_id, parts=parts))
        return replace(view, parts=parts)

    def _ensure_thread(self, view: JobView, slack: SlackGateway) -> JobView:
        """A slash command's conversation gets its root message (and so its thread) here."""
        if view.thread_ts:
            return view
        prompt = history.first_text(view.parts) or ""
        text = messages.root_message(user_id=view.requested_by, prompt=prompt, summary=view.summary)
        try:
            ts = self._post_once(view, slack, text, kind="root", thread_ts=None)
        except NotInChannel:
            if view.response_url:
                slack.respond(view.response_url, messages.not_in_channel(view.channel_id))
            raise
        self._record(
            lambda s: queue.record_root(s, view.lease, conversation_id=view.conversation_id, thread_ts=ts)
        )
        return replace(view, thread_ts=ts)

    def _ensure_status(self, view: JobView, slack: SlackGateway) -> JobView:
        if view.status_ts:
            return view
        text = messages.working(editing=view.turn_seq > 0, summary=view.summary)
        ts = self._post_once(view, slack, text, kind="status", thread_ts=view.thread_ts)
        self._record(lambda s: queue.record_status(s, view.lease, ts))
        return replace(view, status_ts=ts)

    @staticmethod
    def _post_once(
        view: JobView,
        slack: SlackGateway,
        text: str,
        *,
        kind: str,
        thread_ts: str | None,
        blocks: list[dict[str, Any]] | None = None,
    ) -> str:
        """The job's root or status message, marked with the job. A later try of the job looks for the
        mark first (from a few minutes before the job was queued: hosts' clocks differ a little)."""
        retry = view.lease.attempt > 1
        return slack.post_once(
            view.channel_id,
            text,
            thread_ts=thread_ts,
            marker={"job_id": view.job_id, "kind": kind},
            look_back_to=view.queued_at - 300 if retry else None,
            blocks=blocks,
        )

    def _ensure_references(self, view: JobView, slack: SlackGateway) -> JobView:
        pending = [p for p in view.parts if "slackFile" in p]
        if not pending:
            return view
        limit = family_of(view.model_id).max_reference_images
        if len(pending) > limit:
            raise AttachmentError(
                f"{len(pending)} images are attached but `{view.model_label}` takes at most {limit}"
            )
        # Download and check everything first, with no transaction open: on SQLite an open write would hold
        # the database lock (and every listener's ack) for as long as the downloads take.
        fetched = [
            fetch_reference(dict(p["slackFile"]), slack) if "slackFile" in p else None for p in view.parts
        ]
        parts: list[dict[str, Any]] = []

        def save(session: Session) -> bool:
            for part, reference in zip(view.parts, fetched, strict=True):
                if reference is None:
                    parts.append(part)
                    continue
                data, mime, info = reference
                blob = store.save_blob(session, team_id=view.team_id, data=data, info=info)
                parts.append({"inlineData": {"mimeType": mime, "blobId": blob.id}})
            return queue.record_parts(session, view.lease, turn_id=view.turn_id, parts=parts)

        self._record(save, images=True)
        return replace(view, parts=parts)

    def _ensure_answer(self, view: JobView, slack: SlackGateway) -> JobView:
        if view.result_turn_id is not None:
            return view
        with reading(self._image_sessions) as session:
            found = store.contents_for(session, session.get_one(Job, view.job_id))
        body = build_request(found.contents, aspect_ratio=view.aspect_ratio, image_size=view.image_size)
        own_key = self._own_keys(view.team_id)
        view = replace(view, key_owner="workspace" if own_key else "operator")

        def show_retry(reason: str, seconds: float) -> None:
            if view.status_ts:
                text = messages.retrying(reason, seconds)
                notify.quietly(lambda: slack.update(view.channel_id, str(view.status_ts), text))

        with self._lock:  # until the answer is stored, not only until Gemini answers (see at_gemini)
            self._at_gemini.add(view.job_id)
        try:
            started = time.monotonic()
            charge_call = partial(self._charge_call, view)
            with self._gemini.answer(
                view.model_id, body, on_retry=show_retry, on_call=charge_call, api_key=own_key
            ) as answer:
                elapsed = time.monotonic() - started
                stored = self._store_answer(
                    view, answer, elapsed, sent=_sent(found.contents), parent=found.base
                )
            return replace(view, result_turn_id=stored)
        except GeminiAuthError as err:
            if own_key is None:
                raise
            # The workspace's own key (``/banana key``): its admins can mend that, not the operator.
            raise WorkspaceKeyRefused(str(err)) from err
        finally:
            with self._lock:
                self._at_gemini.discard(view.job_id)

    def _charge_call(self, view: JobView, call: SentCall) -> None:
        """A call that brought no answer goes into the ledger at once (the answer's own call is charged
        with the answer, in ``_save_answer``)."""
        row = ledger.charge_row(
            self._prices,
            view.payer,
            outcome=call.outcome,
            billed=call.billed,
            usage=call.usage,
            model_version=call.model_version,
        )
        try:
            with self._sessions.begin() as session:
                ledger.charge(session, row)
        except OperationalError:
            log.error("job %s: could not record a Gemini call in the ledger: %s", view.job_id, row)
            return
        metrics.charged(row)

    def _store_answer(
        self, view: JobView, answer: Answer, elapsed: float, *, sent: tuple[int, int], parent: int | None
    ) -> int:
        """The answer is paid for: a database blip now must not throw it away (a re-run would pay again)."""
        for wait in SAVE_RETRY_WAITS:
            try:
                return self._save_answer(view, answer, elapsed, sent=sent, parent=parent)
            except OperationalError:
                if wait is None:
                    raise
                log.warning(
                    "job %s: could not store Gemini's answer; trying again in %.0f s", view.job_id, wait
                )
                time.sleep(wait)
        raise AssertionError("unreachable")

    def _save_answer(
        self, view: JobView, answer: Answer, elapsed: float, *, sent: tuple[int, int], parent: int | None
    ) -> int:
        turn_ids: list[int] = []
        charge = ledger.charge_row(
            self._prices,
            view.payer,
            outcome="image",
            billed="yes",
            usage=answer.usage,
            model_version=answer.model_version,
        )

        def save(session: Session) -> bool:
            # Locked: the results of a conversation's Variations are stored side by side and numbered in turn.
            conversation = session.get_one(Conversation, view.conversation_id, with_for_update=True)
            shape_for = view.model_id if view.aspect_ratio is None else None  # Gemini picks the shape
            turn = store.save_model_turn(session, conversation, answer, locked=True, shape_for=shape_for)
            turn_ids.append(turn.id)
            recorded = queue.record_answer(
                session,
                view.lease,
                result_turn_id=turn.id,
                usage=answer.usage,
                gemini_seconds=elapsed,
                model_version=answer.model_version,
                sent=sent,
                parent_job_id=parent,
            )
            if recorded:  # last: on PostgreSQL its running totals stay locked until the commit, just after
                ledger.charge(session, charge)
            return recorded

        self._record(save, images=True)
        metrics.charged(charge)
        self.on_unblocked()
        return turn_ids[-1]

    def _in_order(self, view: JobView, slack: SlackGateway) -> JobView:
        """Wait while the result before this one is still being delivered by a live worker: the next turn
        of a conversation starts as soon as the answer before it is stored, but its image and card go into
        the thread after that answer's. A job given back for later, or whose worker died, is not waited
        for, nor for longer than ``IN_ORDER_MOST_SECONDS``."""
        if view.kind != "turn" or view.upload_file_id:
            return view
        deadline = time.monotonic() + IN_ORDER_MOST_SECONDS
        pauses = IN_ORDER_POLLS.delays()
        while not self._stopping.is_set():
            with reading(self._sessions) as session:
                if not queue.delivering(session, view.lease):
                    return view
            if time.monotonic() >= deadline:
                log.warning("job %s: the result before it is still not in the thread; posting", view.job_id)
                return view
            with self._finished:
                self._finished.wait(next(pauses))
        return view

    def _deliver(self, view: JobView, slack: SlackGateway) -> JobView:
        """Upload the result into the thread and see it there (``files.info``).

        The file id is recorded before the share is asked for, so a crash between the two leaves it open
        whether Slack got ``files.completeUploadExternal``. A run that finds an earlier upload waits for it
        to show; if it still does not, the earlier file is deleted before the image is uploaded again, so
        a share that turns up late can't make a second image.
        """
        channel = view.channel_id
        previous = view.upload_file_id
        if previous:
            if slack.wait_until_shared(previous, channel) is not None:
                return view  # a previous run shared it and died (or gave up waiting) before finishing
            log.warning(
                "job %s: upload %s never showed in the thread; uploading again", view.job_id, previous
            )
            notify.quietly(lambda: slack.delete_file(previous))
            self._record(lambda s: queue.record_upload(s, view.lease, None))
        with self._uploads:
            file_id = self._upload(view, slack)
        if slack.wait_until_shared(file_id, channel) is None:
            raise SlackUnavailable("file_not_shared", method="files.completeUploadExternal")
        return replace(view, upload_file_id=file_id)

    def _ensure_card(self, view: JobView, slack: SlackGateway) -> JobView:
        """The result card, once the image shows in the thread (never before: it would sit above it)."""
        if view.card_ts:
            return view
        with reading(self._sessions) as session:
            number, parent, source = queue.card_numbers(session, view.job_id)
        text, blocks = result_card(
            job_id=view.job_id,
            number=number,
            origin=messages.result_origin(view.kind, parent=parent, source=source),
            asked_by=slack.user_name(view.requested_by) or view.requested_by,
            instruction=history.first_text(view.parts) or "",
            summary=view.summary,
            costs=self._buttons.for_result(view.model_id, view.image_size),
        )
        ts = self._post_once(view, slack, text, kind="card", thread_ts=view.thread_ts, blocks=blocks)
        self._record(lambda s: queue.record_card(s, view.lease, ts))
        return replace(view, card_ts=ts)

    def _upload(self, view: JobView, slack: SlackGateway) -> str:
        """Upload the result and ask for its share; the image's bytes are in hand only in here."""
        with reading(self._image_sessions) as session:
            result = session.get(Turn, view.result_turn_id)
            assert result is not None
            blob = store.final_image(session, result)
            data, mime = blob.data, blob.mime_type
            comment = messages.result_comment(
                user_id=view.requested_by, text=history.first_text(result.parts)
            )
        file_id, upload_url = slack.start_upload(
            filename=f"banana-{view.job_id}.{extension(mime)}", length=len(data)
        )
        self._record(lambda s: queue.record_upload(s, view.lease, file_id))
        try:
            slack.finish_upload(
                file_id=file_id,
                upload_url=upload_url,
                data=data,
                title=messages.file_title(history.first_text(view.parts)),
                channel=view.channel_id,
                thread_ts=str(view.thread_ts),
                comment=comment[:3000],
            )
        except SlackUnavailable as err:
            if err.settled:  # Slack answered no: this file is not in the thread and never will be
                self._record(lambda s: queue.record_upload(s, view.lease, None))
            raise
        return file_id

    # --- failures --------------------------------------------------------------------------------------

    def _retry_later(self, view: JobView, slack: SlackGateway, err: SlackUnavailable) -> bool:
        """Give the job back for a later try, if tries are left. What is done stays done: the root, the
        status message and Gemini's answer are recorded, so the next run only repeats the step Slack
        turned away, and Gemini is not paid twice."""
        attempt = view.lease.attempt
        if attempt > len(self._retry_delays):
            return False
        delay = max(self._retry_delays[attempt - 1], err.retry_after or 0.0)
        log.warning(
            "job %s: Slack answered %s to %s; trying again in %.1f s (try %d of %d)",
            view.job_id,
            err.code,
            err.method or "a call",
            delay,
            attempt + 1,
            len(self._retry_delays) + 1,
        )
        if view.status_ts and view.thread_ts:
            text = messages.retrying(messages.slack_trouble(err), delay)
            notify.quietly(lambda: slack.update(view.channel_id, str(view.status_ts), text))
        with self._sessions() as session:
            queue.release(session, view.lease, delay_seconds=delay)
        return True

    def _fail(self, view: JobView, slack: SlackGateway, err: BaseException) -> None:
        if isinstance(err, SlackError) and self._delivered_after_all(view, slack):
            self._done(view, slack)
            log.info("job %s done: its image is in the thread after all (%s)", view.job_id, err.code)
            return
        if isinstance(err, SlackError):
            generated = view.result_turn_id is not None
            text = messages.slack_failure(err, generated=generated, tries=view.lease.attempt)
        else:
            text = messages.for_error(err)
        code = getattr(err, "code", None) or getattr(err, "reason", None) or type(err).__name__
        if not self._finish(view, "failed", error_code=str(code)[:64], error_message=str(err)[:2000]):
            return
        if isinstance(err, NotInChannel) and not view.thread_ts:
            return  # a slash command's private answer already said so (_ensure_thread)
        notify.tell(
            slack, view.audience, text, thread_usable=not isinstance(err, NotInChannel | ChannelArchived)
        )

    def _delivered_after_all(self, view: JobView, slack: SlackGateway) -> bool:
        """Before saying an image couldn't be posted: ask ``files.info`` whether the upload a try made
        shows in the thread anyway (Slack shared it and the answer was lost)."""
        with reading(self._sessions) as session:
            job = session.get(Job, view.job_id)
            file_id = job.upload_file_id if job is not None else None
        if not file_id:
            return False
        try:
            return slack.shared_ts(file_id, view.channel_id) is not None
        except SlackError:
            return False


def _sent(contents: list[dict[str, Any]]) -> tuple[int, int]:
    """The turns a request carries, and the images among their parts."""
    images = sum(1 for turn in contents for part in turn.get("parts") or [] if "inlineData" in part)
    return len(contents), images
