"""Reference images attached in Slack: looked up, checked by what Slack says, downloaded, normalised.

The bot token goes only where ``SlackGateway.download`` allows (Slack's file host); a file stored outside
Slack (``is_external``) is never fetched at all, since its URL can point anywhere, this network included.
"""

from __future__ import annotations

from typing import Any

from bot.errors import AttachmentError, SlackDeliveryFailed
from bot.images import ImageInfo, check_declared, normalise_reference
from bot.slack import SlackGateway


def fetch_reference(file: dict[str, Any], slack: SlackGateway) -> tuple[bytes, str, ImageInfo]:
    """One attachment as (bytes, MIME type, info), ready to send to Gemini. ``AttachmentError`` says why
    it can't be used; ``SlackUnavailable`` (Slack trouble that may pass) is left to the job's retry."""
    if file.get("file_access") == "check_file_info" or not file.get("url_private"):
        try:  # Slack Connect stubs (and deleted files) carry no URLs
            file = slack.file_info(str(file["id"]))
        except SlackDeliveryFailed as err:  # file_not_found, file_deleted, …
            raise AttachmentError(
                f"Slack wouldn't give me the file `{file.get('name') or file['id']}` ({err.code})"
            ) from err
    name = str(file.get("name") or file.get("id") or "attachment")
    if file.get("is_external") or file.get("mode") == "external":
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
