"""What one job does: thread → status → references → Gemini → upload → done.

Each side effect is checkpointed on the job row (``stage``, ``status_ts``, ``result_turn_id``,
``upload_file_id``) before the next one starts, so a job that is run again after a crash or a lapsed lease
skips what already happened: one root message, one Gemini charge per successful answer, one image.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from bot import history, messages, mrkdwn, queue, store
from bot.answer import Answer
from bot.catalog import family_of
from bot.errors import (
    AttachmentError,
    BananaError,
    ChannelArchived,
    GaveUp,
    GeminiAlarm,
    NotInChannel,
    SlackDeliveryFailed,
    SlackError,
    SlackUnavailable,
)
from bot.gemini import GeminiClient, build_request
from bot.images import ImageInfo, check_declared, extension, normalise_reference
from bot.models import Conversation, Job, Turn
from bot.queue import Lease
from bot.slack import SlackGateway

log = logging.getLogger(__name__)


MAX_ATTEMPTS = 8  # claims of one job, crashes and Slack retries included, before it is given up
SAVE_RETRY_WAITS = (1.0, 2.0, 4.0, 8.0, None)  # ~15 s of database trouble before the answer is given up


class LeaseLost(Exception):
    """Another worker owns the job now; stop without touching Slack or the job again."""


@dataclass
class Context:
    job: Job
    conversation: Conversation
    turn: Turn
    lease: Lease

    # The job's own model and options (fixed when it was queued); rows from before they were recorded, and
    # a job queued before the first result fixed the shape, fall back to the conversation's.
    @property
    def model_id(self) -> str:
        return self.job.model_id or self.conversation.model_id

    @property
    def model_label(self) -> str:
        return self.job.model_label or self.conversation.model_label

    @property
    def aspect_ratio(self) -> str | None:
        ratio = self.job.aspect_ratio or self.conversation.aspect_ratio
        return ratio if ratio in family_of(self.model_id).aspect_ratios else None

    @property
    def image_size(self) -> str | None:
        return self.job.image_size if self.job.model_id else self.conversation.image_size

    def summary(self) -> str:
        return " · ".join(x for x in (self.model_label, self.aspect_ratio, self.image_size) if x)


class JobRunner:
    def __init__(
        self,
        *,
        sessions: sessionmaker[Session],
        gemini: GeminiClient,
        slack: Callable[[str], SlackGateway],
    ) -> None:
        self._sessions = sessions
        self._gemini = gemini
        self._slack = slack

    # --- entry point -----------------------------------------------------------------------------------

    def run(self, lease: Lease) -> None:
        ctx = self._load(lease)
        slack = self._slack(ctx.job.team_id)
        try:
            if lease.attempt > MAX_ATTEMPTS:
                raise GaveUp(lease.attempt - 1)  # e.g. it crashes the process every time: stop the loop
            self._ensure_prompt(ctx, slack)
            self._ensure_thread(ctx, slack)
            self._ensure_status(ctx, slack)
            self._ensure_references(ctx, slack)
            self._ensure_generated(ctx, slack)
            self._ensure_delivered(ctx, slack)
        except LeaseLost:
            log.warning("job %s: lease lost, leaving it to its new owner", lease.job_id)
            return
        except OperationalError:
            # The database went away: leave the lease to lapse; the job is claimed again once it is back.
            log.exception("job %s: database error, will be retried after the lease lapses", lease.job_id)
            return
        except SlackUnavailable as err:
            if self._retry_later(ctx, slack, err):
                return
            log.warning("job %s failed: Slack kept answering %s: %s", lease.job_id, err.code, err)
            self._fail(ctx, slack, err)
            return
        except GeminiAlarm as err:
            # Not about this prompt: the key's account (or a policy rule) blocks the bot; an admin must act.
            log.error(
                "job %s: Gemini answered %s: an admin must act on the API key's account", lease.job_id, err
            )
            self._fail(ctx, slack, err)
            return
        except BananaError as err:
            log.info("job %s failed: %s: %s", lease.job_id, type(err).__name__, err)
            self._fail(ctx, slack, err)
            return
        except Exception as err:
            log.exception("job %s crashed", lease.job_id)
            self._fail(ctx, slack, err)
            return
        with self._sessions() as session:
            queue.finish(session, lease, state="done")
            session.commit()
        if ctx.job.status_ts:
            self._quietly(lambda: slack.delete(ctx.conversation.channel_id, str(ctx.job.status_ts)))
        log.info("job %s done", lease.job_id)

    # --- stages ----------------------------------------------------------------------------------------

    def _load(self, lease: Lease) -> Context:
        with self._sessions() as session:
            job = session.get(Job, lease.job_id)
            assert job is not None
            conversation = session.get(Conversation, job.conversation_id)
            turn = session.get(Turn, job.turn_id)
            assert conversation is not None
            assert turn is not None
            session.expunge_all()
        return Context(job=job, conversation=conversation, turn=turn, lease=lease)

    def _checkpoint(self, ctx: Context, **values: Any) -> None:
        with self._sessions() as session:
            if not queue.set_stage(session, ctx.lease, **values):
                raise LeaseLost()
        for key, value in values.items():
            setattr(ctx.job, key, value)

    def _ensure_prompt(self, ctx: Context, slack: SlackGateway) -> None:
        """Slack's markup becomes the text a person reads in Slack (names for mentions, link labels,
        ``&`` ``<`` ``>``): that is what is posted back and what Gemini gets."""
        if not any("slackText" in p for p in ctx.turn.parts):
            return
        parts: list[dict[str, Any]] = []
        for part in ctx.turn.parts:
            if "slackText" not in part:
                parts.append(part)
                continue
            text = mrkdwn.to_plain(str(part["slackText"]), user_name=slack.user_name)
            if text.strip():
                parts.append({"text": text})
        with self._sessions() as session:
            store.set_parts(session, ctx.turn.id, parts)
            session.commit()
        ctx.turn.parts = parts

    def _ensure_thread(self, ctx: Context, slack: SlackGateway) -> None:
        """A slash command's conversation gets its root message (and so its thread) here."""
        conversation = ctx.conversation
        if conversation.thread_ts:
            return
        prompt = history.first_text(ctx.turn.parts) or ""
        text = messages.root_message(user_id=ctx.job.requested_by, prompt=prompt, summary=ctx.summary())
        try:
            ts = slack.post(conversation.channel_id, text)
        except NotInChannel:
            if conversation.response_url:
                slack.respond(conversation.response_url, messages.not_in_channel(conversation.channel_id))
            raise
        with self._sessions() as session:
            row = session.get(Conversation, conversation.id)
            assert row is not None
            row.thread_ts = ts
            session.commit()
        conversation.thread_ts = ts
        self._checkpoint(ctx, stage="rooted")

    def _ensure_status(self, ctx: Context, slack: SlackGateway) -> None:
        if ctx.job.status_ts:
            return
        conversation = ctx.conversation
        summary = ctx.summary()
        editing = ctx.turn.seq > 0
        ts = slack.post(
            conversation.channel_id,
            messages.working(editing=editing, summary=summary),
            thread_ts=conversation.thread_ts,
        )
        self._checkpoint(ctx, status_ts=ts)

    def _ensure_references(self, ctx: Context, slack: SlackGateway) -> None:
        pending = [p for p in ctx.turn.parts if "slackFile" in p]
        if not pending:
            return
        limit = family_of(ctx.model_id).max_reference_images
        if len(pending) > limit:
            raise AttachmentError(
                f"{len(pending)} images are attached but `{ctx.model_label}` takes at most {limit}"
            )
        # Download and check everything first, with no transaction open: on SQLite an open write would hold
        # the database lock (and every listener's ack) for as long as the downloads take.
        fetched = [
            self._fetch_reference(dict(p["slackFile"]), slack) if "slackFile" in p else None
            for p in ctx.turn.parts
        ]
        parts: list[dict[str, Any]] = []
        with self._sessions() as session:
            for part, reference in zip(ctx.turn.parts, fetched, strict=True):
                if reference is None:
                    parts.append(part)
                    continue
                data, mime, info = reference
                blob = store.save_blob(session, team_id=ctx.job.team_id, data=data, info=info)
                parts.append({"inlineData": {"mimeType": mime, "blobId": blob.id}})
            store.set_parts(session, ctx.turn.id, parts)
            session.commit()
        ctx.turn.parts = parts

    @staticmethod
    def _fetch_reference(file: dict[str, Any], slack: SlackGateway) -> tuple[bytes, str, ImageInfo]:
        """One attachment: looked up if it is a stub, checked by what Slack says, downloaded, normalised."""
        if file.get("file_access") == "check_file_info" or not file.get("url_private"):
            try:  # Slack Connect stubs (and deleted files) carry no URLs
                file = slack.file_info(str(file["id"]))
            except SlackUnavailable:
                raise  # Slack trouble that may pass: the job is tried again later
            except SlackDeliveryFailed as err:  # file_not_found, file_deleted, …
                raise AttachmentError(
                    f"Slack wouldn't give me the file `{file.get('name') or file['id']}` ({err.code})"
                ) from err
        name = str(file.get("name") or file.get("id") or "attachment")
        if file.get("is_external") or file.get("mode") == "external":
            # A remote file's URL can point anywhere (including this network): not fetched at all.
            raise AttachmentError(
                f"`{name}` is a link to a file stored outside Slack; download it and attach the image itself"
            )
        check_declared(name=name, mimetype=file.get("mimetype"), size=file.get("size"))
        url = str(file.get("url_private_download") or file.get("url_private") or "")
        if not url:
            raise AttachmentError(f"Slack gave me no way to download `{name}`")
        try:
            raw = slack.download(url)
        except AttachmentError as err:
            raise AttachmentError(f"`{name}`: {err}") from err
        return normalise_reference(raw, name=name)

    def _ensure_generated(self, ctx: Context, slack: SlackGateway) -> None:
        if ctx.job.result_turn_id is not None:
            return
        conversation = ctx.conversation
        with self._sessions() as session:
            contents = store.contents_for(session, conversation, up_to=ctx.turn, model_id=ctx.model_id)
        body = build_request(contents, aspect_ratio=ctx.aspect_ratio, image_size=ctx.image_size)
        started = time.monotonic()

        def show_retry(reason: str, seconds: float) -> None:
            if ctx.job.status_ts:
                self._quietly(
                    lambda: slack.update(
                        conversation.channel_id, str(ctx.job.status_ts), messages.retrying(reason, seconds)
                    )
                )

        generated = self._gemini.generate(ctx.model_id, body, on_retry=show_retry)
        elapsed = time.monotonic() - started
        # The answer is paid for: a database blip now must not throw it away (a re-run would pay again).
        for wait in SAVE_RETRY_WAITS:
            try:
                turn_id = self._save_answer(ctx, generated, elapsed)
                break
            except OperationalError:
                if wait is None:
                    raise
                log.warning(
                    "job %s: could not store Gemini's answer; trying again in %.0f s", ctx.job.id, wait
                )
                time.sleep(wait)
        ctx.job.result_turn_id = turn_id
        ctx.job.stage = "generated"

    def _save_answer(self, ctx: Context, generated: Answer, elapsed: float) -> int:
        with self._sessions() as session:
            turn = store.save_model_turn(session, ctx.conversation, generated)
            if ctx.aspect_ratio is None:
                # Without --ar Gemini picks the shape (from the references, else square); keep it for the
                # edits that follow, or "make it blue" could come back in another shape.
                ratio = store.keep_result_shape(session, ctx.conversation, turn, model_id=ctx.model_id)
                ctx.conversation.aspect_ratio = ratio
            if not queue.set_stage(
                session,
                ctx.lease,
                stage="generated",
                result_turn_id=turn.id,
                usage=generated.usage,
                model_version=generated.model_version,
                gemini_seconds=elapsed,
            ):
                session.rollback()
                raise LeaseLost()
            return turn.id

    def _ensure_delivered(self, ctx: Context, slack: SlackGateway) -> None:
        """Upload the result into the thread and see it there (``files.info``).

        Stages: ``uploading`` (file id recorded, share not confirmed: a crash here leaves it open whether
        Slack got ``files.completeUploadExternal``), ``completed`` (Slack said ok, the share is awaited),
        ``delivered``. A run that finds an earlier upload waits for it to show; if it still does not, the
        earlier file is deleted before the image is uploaded again, so a share that turns up late can't
        make a second image.
        """
        conversation = ctx.conversation
        channel, thread_ts = conversation.channel_id, str(conversation.thread_ts)
        previous = ctx.job.upload_file_id
        if previous:
            if slack.wait_until_shared(previous, channel) is not None:
                self._checkpoint(ctx, stage="delivered")
                return  # a previous run shared it and died (or gave up waiting) before recording that
            log.warning("job %s: upload %s never showed in the thread; uploading again", ctx.job.id, previous)
            self._quietly(lambda: slack.delete_file(previous))
            self._checkpoint(ctx, stage="generated", upload_file_id=None)
        with self._sessions() as session:
            result = session.get(Turn, ctx.job.result_turn_id)
            assert result is not None
            blob = store.final_image(session, result)
            data, mime = blob.data, blob.mime_type
            text = history.first_text(result.parts)
        filename = f"banana-{ctx.job.id}.{extension(mime)}"
        file_id, upload_url = slack.start_upload(filename=filename, length=len(data))
        self._checkpoint(ctx, stage="uploading", upload_file_id=file_id)
        comment = messages.result_comment(user_id=ctx.job.requested_by, text=text)
        try:
            slack.finish_upload(
                file_id=file_id,
                upload_url=upload_url,
                data=data,
                title=_title(ctx.turn),
                channel=channel,
                thread_ts=thread_ts,
                comment=comment[:3000],
            )
        except SlackUnavailable as err:
            if err.settled:  # Slack answered no: this file is not in the thread and never will be
                self._checkpoint(ctx, stage="generated", upload_file_id=None)
            raise
        self._checkpoint(ctx, stage="completed")
        if slack.wait_until_shared(file_id, channel) is None:
            raise SlackUnavailable("file_not_shared", method="files.completeUploadExternal")
        self._checkpoint(ctx, stage="delivered")

    # --- failures --------------------------------------------------------------------------------------

    def _retry_later(self, ctx: Context, slack: SlackGateway, err: SlackUnavailable) -> bool:
        """Give the job back for a later try, if tries are left (``BANANA_SLACK_RETRY_DELAYS``). What is done
        stays done: the root, the status message and Gemini's answer are checkpointed, so the next run
        only repeats the step Slack turned away, and Gemini is not paid twice."""
        delays = slack.retry_delays
        if ctx.lease.attempt > len(delays):
            return False
        delay = max(delays[ctx.lease.attempt - 1], err.retry_after or 0.0)
        log.warning(
            "job %s: Slack answered %s to %s; trying again in %.1f s (try %d of %d)",
            ctx.job.id,
            err.code,
            err.method or "a call",
            delay,
            ctx.lease.attempt + 1,
            len(delays) + 1,
        )
        if ctx.job.status_ts and ctx.conversation.thread_ts:
            self._quietly(
                lambda: slack.update(
                    ctx.conversation.channel_id,
                    str(ctx.job.status_ts),
                    messages.retrying(messages.slack_trouble(err), delay),
                )
            )
        with self._sessions() as session:
            queue.release(session, ctx.lease, delay_seconds=delay)
        return True

    def _fail(self, ctx: Context, slack: SlackGateway, err: BaseException) -> None:
        if isinstance(err, SlackError):
            text = messages.slack_failure(
                err, generated=ctx.job.result_turn_id is not None, tries=ctx.lease.attempt
            )
        else:
            text = messages.for_error(err)
        code = getattr(err, "code", None) or getattr(err, "reason", None) or type(err).__name__
        with self._sessions() as session:
            if not queue.finish(
                session, ctx.lease, state="failed", error_code=str(code)[:64], error_message=str(err)[:2000]
            ):
                return
            session.commit()
        self._tell(
            ctx,
            slack,
            text,
            silent_in_thread=isinstance(err, NotInChannel) and not ctx.conversation.thread_ts,
            channel_gone=isinstance(err, NotInChannel | ChannelArchived),
        )

    def _tell(
        self,
        ctx: Context,
        slack: SlackGateway,
        text: str,
        *,
        silent_in_thread: bool = False,
        channel_gone: bool = False,
    ) -> None:
        """Say ``text`` where the person will see it: in the thread (the status message, or a reply), else
        privately through the slash command's ``response_url``, else in a DM from the bot (a mention or a
        reply in a channel the bot can no longer post in). ``silent_in_thread``: already said."""
        if silent_in_thread:
            return
        conversation = ctx.conversation
        if conversation.thread_ts and not channel_gone:
            mentioned = messages.for_requester(ctx.job.requested_by, text)
            try:
                if ctx.job.status_ts:
                    slack.update(conversation.channel_id, ctx.job.status_ts, mentioned)
                else:
                    slack.post(conversation.channel_id, mentioned, thread_ts=conversation.thread_ts)
                return
            except SlackError:
                log.warning("job %s: could not post the failure in the thread", ctx.job.id, exc_info=True)
        if conversation.response_url and slack.respond(conversation.response_url, text):
            return
        if conversation.channel_id.startswith("D"):
            log.error("job %s: could not tell %s in their DM", ctx.job.id, ctx.job.requested_by)
            return
        where = f"About your request in <#{conversation.channel_id}>: "
        try:
            slack.post(ctx.job.requested_by, where + text)  # a user id: Slack posts in the bot's DM
        except SlackError:
            log.error(
                "job %s: could not tell %s anywhere (thread, response_url, DM)",
                ctx.job.id,
                ctx.job.requested_by,
                exc_info=True,
            )

    @staticmethod
    def _quietly(action: Callable[[], None]) -> None:
        try:
            action()
        except SlackError:
            log.info("ignored a failed clean-up call", exc_info=True)


def _title(turn: Turn) -> str:
    prompt = history.first_text(turn.parts) or "Nano Banana image"
    return prompt if len(prompt) <= 120 else prompt[:117] + "…"
