"""Slack delivery for the workers: messages, the v2 file upload, share checks and safe downloads.

Runs in worker threads, never in Bolt listeners: slack_sdk's retry handlers sleep on 429s.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)

from bot.errors import (
    AttachmentError,
    ChannelArchived,
    NotInChannel,
    SlackAuthError,
    SlackDeliveryFailed,
    SlackError,
)
from bot.images import MAX_DOWNLOAD_BYTES

log = logging.getLogger(__name__)

SLACK_FILE_ORIGIN = ("https", "files.slack.com", 443)
_NOT_IN_CHANNEL = {"not_in_channel", "channel_not_found"}
_AUTH = {"invalid_auth", "not_authed", "token_revoked", "token_expired", "account_inactive", "missing_scope"}


def web_client(*, token: str, base_url: str) -> WebClient:
    """A WebClient that retries connection errors, 429s (after Retry-After) and 5xx a few times."""
    return WebClient(
        token=token,
        base_url=base_url,
        timeout=30,
        retry_handlers=[
            ConnectionErrorRetryHandler(max_retry_count=2),
            RateLimitErrorRetryHandler(max_retry_count=3),
            ServerErrorRetryHandler(max_retry_count=2),
        ],
    )


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


def translate(err: SlackApiError, method: str) -> SlackError:
    code = str(err.response.get("error") or f"http_{err.response.status_code}")
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
        raise translate(err, method) from err


class SlackGateway:
    def __init__(
        self, client: WebClient, *, http: httpx.Client, api_url: str, share_timeout: float = 20.0
    ) -> None:
        self.client = client
        self._http = http
        self._token_origins = token_origins(api_url)
        self._share_timeout = share_timeout

    # --- messages --------------------------------------------------------------------------------------

    def post(
        self,
        channel: str,
        text: str,
        *,
        thread_ts: str | None = None,
        blocks: list[dict[str, Any]] | None = None,
    ) -> str:
        with _slack_call("chat.postMessage"):
            response = self.client.chat_postMessage(
                channel=channel, text=text, thread_ts=thread_ts, blocks=blocks, unfurl_links=False
            )
        return str(response["ts"])

    def update(self, channel: str, ts: str, text: str) -> None:
        with _slack_call("chat.update"):
            self.client.chat_update(channel=channel, ts=ts, text=text, blocks=[])

    def delete(self, channel: str, ts: str) -> None:
        with _slack_call("chat.delete"):
            self.client.chat_delete(channel=channel, ts=ts)

    def respond(self, response_url: str, text: str) -> None:
        """Private reply through a slash command's response_url (works where the bot is not a member)."""
        try:
            self._http.post(
                response_url,
                json={"response_type": "ephemeral", "text": text, "replace_original": False},
                timeout=10,
            )
        except httpx.HTTPError:
            log.warning("could not post to response_url", exc_info=True)

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
            raise SlackDeliveryFailed("upload_failed", method="upload") from err
        if response.status_code != 200:
            raise SlackDeliveryFailed(f"upload_http_{response.status_code}", method="upload")
        # No alt_txt: with it, Slack has been reported to accept the upload and never share it.
        with _slack_call("files.completeUploadExternal"):
            self.client.files_completeUploadExternal(
                files=[{"id": file_id, "title": title}],
                channel_id=channel,
                thread_ts=thread_ts,
                initial_comment=comment,
            )

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
        """completeUploadExternal can answer ok before (or without) the share: poll files.info."""
        deadline = time.monotonic() + (self._share_timeout if timeout is None else timeout)
        delay = 0.2
        while True:
            ts = self.shared_ts(file_id, channel)
            if ts is not None or time.monotonic() >= deadline:
                return ts
            time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
            delay = min(delay * 2, 3.0)

    def file_info(self, file_id: str) -> dict[str, Any]:
        with _slack_call("files.info"):
            response = self.client.files_info(file=file_id)
        return dict(response["file"])

    def download(self, url: str, *, external: bool = False, max_bytes: int = MAX_DOWNLOAD_BYTES) -> bytes:
        """Fetch a user's file. The bot token goes only to Slack's file host (or the overridden API host),
        never to another host, never across a redirect to one, and never for external (remote) files."""
        for _ in range(4):
            allowed = not external and _origin(url) in self._token_origins
            headers = {"authorization": f"Bearer {self.client.token}"} if allowed else {}
            with self._http.stream(
                "GET", url, headers=headers, follow_redirects=False, timeout=30
            ) as response:
                if response.is_redirect:
                    url = urljoin(url, response.headers.get("location", ""))
                    continue
                if response.status_code != 200:
                    raise AttachmentError(f"Slack answered {response.status_code} when I downloaded it")
                size = int(response.headers.get("content-length") or 0)
                if size > max_bytes:
                    raise AttachmentError(f"it is larger than {max_bytes // 1_048_576} MB")
                chunks: list[bytes] = []
                total = 0
                for chunk in response.iter_bytes():
                    total += len(chunk)
                    if total > max_bytes:
                        raise AttachmentError(f"it is larger than {max_bytes // 1_048_576} MB")
                    chunks.append(chunk)
                return b"".join(chunks)
        raise AttachmentError("Slack redirected the download too many times")
