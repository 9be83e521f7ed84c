"""Slack delivery for the workers: messages, the v2 file upload, share checks and safe downloads.

Runs in worker threads, never in Bolt listeners: slack_sdk's retry handlers sleep on 429s.
"""

from __future__ import annotations

import http.client
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler

from bot import metrics
from bot.errors import (
    AttachmentError,
    ChannelArchived,
    NotInChannel,
    SlackAuthError,
    SlackDeliveryFailed,
    SlackError,
    SlackUnavailable,
)
from bot.images import MAX_DOWNLOAD_BYTES

log = logging.getLogger(__name__)

SLACK_FILE_ORIGIN = ("https", "files.slack.com", 443)
NAME_CACHE_SECONDS = 3600.0
NAME_CACHE_SIZE = 10_000
_NOT_IN_CHANNEL = {"not_in_channel", "channel_not_found"}
_AUTH = {"invalid_auth", "not_authed", "token_revoked", "token_expired", "account_inactive", "missing_scope"}
# Answers that say "not now" rather than "no": the job is released and tried again later.
_TRANSIENT = {"ratelimited", "rate_limited", "internal_error", "fatal_error", "service_unavailable"}


def web_client(*, token: str, base_url: str) -> WebClient:
    """A WebClient that retries 429s only (after Retry-After): Slack did nothing with those.

    Not 5xx, not connection errors: Slack may have posted the message or shared the file before its edge
    failed or the connection dropped, and a blind resend of chat.postMessage or
    files.completeUploadExternal would post twice. They become SlackUnavailable, and the job, which knows
    what it already did (recorded side effects, marked posts, files.info), tries again later.
    """
    return WebClient(
        token=token,
        base_url=base_url,
        timeout=30,
        retry_handlers=[RateLimitErrorRetryHandler(max_retry_count=3)],
    )


@dataclass(frozen=True)
class Backoff:
    first: float
    growth: float
    most: float

    def delays(self) -> Iterator[float]:
        delay = self.first
        while True:
            yield delay
            delay = min(delay * self.growth, self.most)


# files.info is Tier 4 (100+ calls a minute): 4 looks in the first second, 6 in three, then one every 2 s.
SHARE_POLLS = Backoff(first=0.2, growth=1.5, most=2.0)

POST_MARKER = "nano_banana_post"  # message metadata event type on the bot's root and status posts


def _origin(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return parts.scheme, (parts.hostname or "").lower(), port


def token_origins(api_url: str) -> set[tuple[str, str, int]]:
    """Where the bot token may be sent for downloads: Slack's file host, and the API host when overridden."""
    origins = {SLACK_FILE_ORIGIN}
    if _origin(api_url) != ("https", "slack.com", 443):
        origins.add(_origin(api_url))
    return origins


def _retry_after(headers: Any) -> float | None:
    try:
        for name, value in dict(headers or {}).items():
            if str(name).lower() == "retry-after":
                return float(value[0] if isinstance(value, list | tuple) else value)
    except (TypeError, ValueError):
        pass
    return None


def translate(err: SlackApiError, method: str) -> SlackError:
    """A failed Web API call (after the client's own retries) as one of the bot's errors."""
    status = int(err.response.status_code or 0)
    data = err.response.data
    error = str(data.get("error") or "") if isinstance(data, dict) else ""
    if status >= 500:
        code = f"http_{status}"  # Slack's edge answers 5xx with an HTML page
    elif error and not error.startswith("Received a response in a non-JSON format"):
        code = error
    else:
        code = f"http_{status}" if status != 200 else "unexpected_response"
    if status == 429 or status >= 500 or code in _TRANSIENT or code == "unexpected_response":
        return SlackUnavailable(
            code,
            method=method,
            retry_after=_retry_after(err.response.headers) if status == 429 else None,
            # Only a rate limit surely did nothing; internal_error/fatal_error may have half-happened.
            settled=status == 429 or code in {"ratelimited", "rate_limited"},
        )
    if code in _NOT_IN_CHANNEL:
        return NotInChannel(code, method=method)
    if code == "is_archived":
        return ChannelArchived(code, method=method)
    if code in _AUTH:
        return SlackAuthError(code, method=method)
    return SlackDeliveryFailed(code, method=method)


@contextmanager
def _slack_call(method: str) -> Iterator[None]:
    try:
        yield
    except SlackApiError as err:
        error = translate(err, method)
        metrics.SLACK_ERRORS.labels(method, error.code).inc()
        raise error from err
    except (OSError, http.client.HTTPException) as err:  # unreachable, reset, timed out (after retries)
        metrics.SLACK_ERRORS.labels(method, "connection_failed").inc()
        raise SlackUnavailable("connection_failed", method=method) from err


class SlackGateway:
    """``share_timeout``: how long to wait for an upload to show in its thread (``files.info``)."""

    def __init__(
        self,
        client: WebClient,
        *,
        http: httpx.Client,
        api_url: str,
        share_timeout: float = 20.0,
    ) -> None:
        self.client = client
        self._http = http
        self._token_origins = token_origins(api_url)
        self._share_timeout = share_timeout
        self._names: dict[str, tuple[str | None, float]] = {}
        self._names_lock = threading.Lock()

    # --- messages --------------------------------------------------------------------------------------

    def post(
        self,
        channel: str,
        text: str,
        *,
        thread_ts: str | None = None,
        marker: dict[str, Any] | None = None,
        blocks: list[dict[str, Any]] | None = None,
    ) -> str:
        """``marker``: message metadata (``POST_MARKER``) that ``find_marked`` can look for, when the
        answer to this post may be lost after Slack made it."""
        metadata = {"event_type": POST_MARKER, "event_payload": marker} if marker else None
        with _slack_call("chat.postMessage"):
            response = self.client.chat_postMessage(
                channel=channel,
                text=text,
                blocks=blocks,
                thread_ts=thread_ts,
                unfurl_links=False,
                metadata=metadata,
            )
        return str(response["ts"])

    def post_once(
        self,
        channel: str,
        text: str,
        *,
        thread_ts: str | None,
        marker: dict[str, Any],
        look_back_to: float | None = None,
        blocks: list[dict[str, Any]] | None = None,
    ) -> str:
        """Post a message marked with ``marker``. ``look_back_to`` (epoch seconds): an earlier try may have
        made this post and lost Slack's answer (a 5xx after Slack acted, a dropped connection) or died
        before recording it, so look for the mark from then on first, and use that post if it is there."""
        if look_back_to is not None:
            found = self.find_marked(channel, marker, thread_ts=thread_ts, since=look_back_to)
            if found:
                log.info("found the %s an earlier try posted", marker)
                return found
        return self.post(channel, text, thread_ts=thread_ts, marker=marker, blocks=blocks)

    def find_marked(
        self, channel: str, marker: dict[str, Any], *, thread_ts: str | None = None, since: float = 0.0
    ) -> str | None:
        """The ts of the bot's post carrying ``marker``, if an earlier try made it: in the channel (a
        root) or in ``thread_ts``'s replies, posted after ``since``. One call, 50 messages: these
        methods are rate limited hard for some apps, so this runs only when a post may have been lost."""
        oldest = f"{max(0.0, since):.6f}"
        if thread_ts:
            with _slack_call("conversations.replies"):
                response = self.client.conversations_replies(
                    channel=channel, ts=thread_ts, oldest=oldest, limit=50, include_all_metadata=True
                )
        else:
            with _slack_call("conversations.history"):
                response = self.client.conversations_history(
                    channel=channel, oldest=oldest, limit=50, include_all_metadata=True
                )
        for message in response.get("messages") or []:
            metadata = message.get("metadata") or {}
            if metadata.get("event_type") == POST_MARKER and metadata.get("event_payload") == marker:
                return str(message["ts"])
        return None

    def update(self, channel: str, ts: str, text: str) -> None:
        with _slack_call("chat.update"):
            self.client.chat_update(channel=channel, ts=ts, text=text, blocks=[])

    def delete(self, channel: str, ts: str) -> None:
        with _slack_call("chat.delete"):
            self.client.chat_delete(channel=channel, ts=ts)

    def respond(self, response_url: str, text: str) -> bool:
        """Private reply through a slash command's response_url (works where the bot is not a member, and
        without the bot token). False when it could not be delivered (expired, used up, unreachable)."""
        try:
            response = self._http.post(
                response_url,
                json={"response_type": "ephemeral", "text": text, "replace_original": False},
                timeout=10,
            )
        except httpx.HTTPError:
            log.warning("could not post to response_url", exc_info=True)
            return False
        if response.status_code != 200:
            log.warning("response_url answered %s", response.status_code)
            return False
        return True

    # --- people ----------------------------------------------------------------------------------------

    def user_name(self, user_id: str) -> str | None:
        """The name Slack shows for ``user_id`` (display name, else full name), for prompts that mention
        someone. Cached for an hour. None when Slack won't say (no such user, ``users:read`` not granted);
        Slack trouble that may pass (``SlackUnavailable``) is raised, so the job is tried again later."""
        now = time.monotonic()
        with self._names_lock:
            cached = self._names.get(user_id)
        if cached is not None and cached[1] > now:
            return cached[0]
        try:
            with _slack_call("users.info"):
                response = self.client.users_info(user=user_id)
        except SlackUnavailable:
            raise
        except SlackError as err:
            log.warning(
                "users.info for %s answered %s; the prompt keeps the mention as is", user_id, err.code
            )
            return None
        user = response.get("user") or {}
        profile = user.get("profile") or {}
        found = profile.get("display_name") or profile.get("real_name") or user.get("real_name")
        name = str(found or user.get("name") or "").strip() or None
        with self._names_lock:
            if len(self._names) >= NAME_CACHE_SIZE:
                self._names.clear()
            self._names[user_id] = (name, now + NAME_CACHE_SECONDS)
        return name

    # --- files -----------------------------------------------------------------------------------------

    def start_upload(self, *, filename: str, length: int) -> tuple[str, str]:
        """Step 1 of the v2 upload: a file id and an upload URL. The caller records the id before sharing."""
        with _slack_call("files.getUploadURLExternal"):
            response = self.client.files_getUploadURLExternal(filename=filename, length=length)
        return str(response["file_id"]), str(response["upload_url"])

    def finish_upload(
        self,
        *,
        file_id: str,
        upload_url: str,
        data: bytes,
        title: str,
        channel: str,
        thread_ts: str,
        comment: str | None,
    ) -> None:
        """Steps 2 and 3: send the bytes (the URL is pre-signed: no token) and share into the thread."""
        try:
            response = self._http.post(upload_url, content=data, timeout=60)
        except httpx.HTTPError as err:
            raise SlackUnavailable("upload_failed", method="upload", settled=True) from err
        if response.status_code != 200:  # the file was not completed, so nothing can be shared
            raise SlackUnavailable(f"upload_http_{response.status_code}", method="upload", settled=True)
        # No alt_txt: with it, Slack has been reported to accept the upload and never share it.
        with _slack_call("files.completeUploadExternal"):
            self.client.files_completeUploadExternal(
                files=[{"id": file_id, "title": title}],
                channel_id=channel,
                thread_ts=thread_ts,
                initial_comment=comment,
            )

    def delete_file(self, file_id: str) -> None:
        """Remove an upload of ours (one that never showed up, before it is uploaded again)."""
        with _slack_call("files.delete"):
            self.client.files_delete(file=file_id)

    def shared_ts(self, file_id: str, channel: str) -> str | None:
        """The ts of the message that shows the file in ``channel``, if Slack has shared it yet."""
        try:
            with _slack_call("files.info"):
                response = self.client.files_info(file=file_id)
        except SlackDeliveryFailed as err:
            if err.code == "file_not_found":
                return None
            raise
        shares = (response.get("file") or {}).get("shares") or {}
        for scope in ("public", "private"):
            entries = (shares.get(scope) or {}).get(channel) or []
            if entries:
                return str(entries[0].get("ts"))
        return None

    def wait_until_shared(self, file_id: str, channel: str, *, timeout: float | None = None) -> str | None:
        """completeUploadExternal can answer ok before (or without) the share: poll files.info, at once
        and then at a short, growing interval (``SHARE_POLLS``): most shares show within a second, and
        the job (and the person) waits for no more than a fraction of the time it has waited so far."""
        deadline = time.monotonic() + (self._share_timeout if timeout is None else timeout)
        delays = SHARE_POLLS.delays()
        while True:
            ts = self.shared_ts(file_id, channel)
            if ts is not None or time.monotonic() >= deadline:
                return ts
            time.sleep(min(next(delays), max(0.0, deadline - time.monotonic())))

    def file_info(self, file_id: str) -> dict[str, Any]:
        with _slack_call("files.info"):
            response = self.client.files_info(file=file_id)
        return dict(response["file"])

    def download(self, url: str, *, max_bytes: int = MAX_DOWNLOAD_BYTES) -> bytes:
        """Fetch a user's file, from Slack's file host only (``https://files.slack.com``, or the
        ``SLACK_API_URL`` host when that is overridden), with the bot token. Any other URL, or a redirect
        to one, is not fetched at all: the bot must not be a way to reach other hosts (this network
        included), and its token goes nowhere else.

        Every failure is an ``AttachmentError`` (the caller names the file), never a crash of the job."""
        try:
            return self._download(url, max_bytes=max_bytes)
        except httpx.HTTPError as err:
            raise AttachmentError(f"downloading it failed ({type(err).__name__})") from err

    def _download(self, url: str, *, max_bytes: int) -> bytes:
        for _ in range(4):
            if _origin(url) not in self._token_origins:
                raise AttachmentError("its address isn't on Slack's file host, so I didn't fetch it")
            headers = {"authorization": f"Bearer {self.client.token}"}
            with self._http.stream(
                "GET", url, headers=headers, follow_redirects=False, timeout=30
            ) as response:
                if response.is_redirect:
                    url = urljoin(url, response.headers.get("location", ""))
                    continue
                if response.status_code != 200:
                    raise AttachmentError(f"downloading it failed (HTTP {response.status_code})")
                declared = response.headers.get("content-length") or "0"
                if declared.isdigit() and int(declared) > max_bytes:
                    raise AttachmentError(f"it is larger than {max_bytes // 1_048_576} MB")
                chunks: list[bytes] = []
                total = 0
                for chunk in response.iter_bytes():
                    total += len(chunk)
                    if total > max_bytes:
                        raise AttachmentError(f"it is larger than {max_bytes // 1_048_576} MB")
                    chunks.append(chunk)
                return b"".join(chunks)
        raise AttachmentError("the download was redirected too many times")
