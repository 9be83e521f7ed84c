"""Telling the person who asked: in the thread, else privately through the slash command's
``response_url``, else in a DM from the bot. Plain values in, Slack calls out; nothing here knows jobs."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from bot import messages
from bot.errors import SlackError
from bot.mrkdwn import channel_link
from bot.slack import SlackGateway

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Audience:
    """Where the person who asked can be reached. ``status_ts``: the bot's "working on it" message in the
    thread, which becomes the message instead of adding another."""

    requester: str
    channel_id: str
    thread_ts: str | None
    status_ts: str | None
    response_url: str | None


def tell(slack: SlackGateway, to: Audience, text: str, *, thread_usable: bool = True) -> bool:
    """Say ``text`` where ``to.requester`` will see it; False when nowhere would take it.
    ``thread_usable=False``: the channel is gone (archived, the bot removed), so skip the thread."""
    if to.thread_ts and thread_usable:
        addressed = messages.for_requester(to.requester, text)
        try:
            if to.status_ts:
                slack.update(to.channel_id, to.status_ts, addressed)
            else:
                slack.post(to.channel_id, addressed, thread_ts=to.thread_ts)
            return True
        except SlackError:
            log.warning("could not tell %s in the thread", to.requester, exc_info=True)
    if to.response_url and slack.respond(to.response_url, text):
        return True
    if to.channel_id.startswith("D"):
        log.error("could not tell %s in their DM", to.requester)
        return False
    try:  # a user id as the channel: Slack posts in the bot's DM with them
        slack.post(to.requester, f"About your request in {channel_link(to.channel_id)}: {text}")
        return True
    except SlackError:
        log.error("could not tell %s anywhere (thread, response_url, DM)", to.requester, exc_info=True)
        return False


def quietly(action: Callable[[], None]) -> None:
    """A clean-up call whose failure changes nothing for anyone (removing a status message, a retry
    notice): logged, not raised."""
    try:
        action()
    except SlackError:
        log.info("ignored a failed clean-up call", exc_info=True)
