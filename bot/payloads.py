"""What Slack delivers, read into plain values. Pure: no I/O, no database, no Bolt (its ``payload_utils``
is the model), so every rule here is tested on dicts alone.

Each entry point has its reader: ``parse_message`` (``message`` and ``app_mention`` events),
``parse_shortcut`` (the message shortcut), ``parse_edit_submission`` (its modal). A new entry point (a
button, an App Home action) gets a reader here and a method on ``bot.intake.Intake``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from bot import mrkdwn

# Message subtypes that are a person saying something; everything else (edits, deletions, joins, bot
# messages, …) is acknowledged and ignored.
SPOKEN_SUBTYPES = {None, "file_share", "thread_broadcast"}
MAX_SHORTCUT_FILES = 20  # private_metadata holds at most 3,000 characters: only file ids travel


# What Slack's ids and timestamps look like. A value that doesn't is refused here, before anything is
# written: every column it would go into is bounded (ids and timestamps: 32 characters).
_SLACK_ID = re.compile(r"[A-Z0-9]{2,32}")
_SLACK_TS = re.compile(r"[0-9]{1,12}\.[0-9]{1,9}")
_EVENT_ID = re.compile(r"[A-Za-z0-9]{1,64}")


def is_slack_id(value: object) -> bool:
    return isinstance(value, str) and _SLACK_ID.fullmatch(value) is not None


def is_slack_ts(value: object) -> bool:
    return isinstance(value, str) and _SLACK_TS.fullmatch(value) is not None


def event_id_of(body: dict[str, Any]) -> str | None:
    """The envelope's ``event_id`` when it looks like one (it becomes part of a bounded dedupe key)."""
    value = body.get("event_id")
    return value if isinstance(value, str) and _EVENT_ID.fullmatch(value) else None


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
    """None for anything that is not a person talking: bots (the bot itself included), edits, deletions,
    and events whose ids or timestamps don't look like Slack's."""
    if event.get("subtype") not in SPOKEN_SUBTYPES:
        return None
    if event.get("bot_id") or event.get("bot_profile") or not event.get("user"):
        return None
    if bot_user_id and event.get("user") == bot_user_id:
        return None
    channel = str(event.get("channel") or "")
    text = str(event.get("text") or "")
    channel_type = event.get("channel_type") or ("im" if channel.startswith("D") else None)
    team = team_id or str(event.get("team") or "")  # the signed envelope's team wins
    thread_ts = event.get("thread_ts")
    if not (is_slack_id(team) and is_slack_id(channel) and is_slack_id(event["user"])):
        return None
    if not is_slack_ts(event.get("ts")) or (thread_ts is not None and not is_slack_ts(thread_ts)):
        return None
    return Message(
        team_id=team,
        channel_id=channel,
        user_id=str(event["user"]),
        text=mrkdwn.strip_user(text, bot_user_id) if bot_user_id else text.strip(),
        ts=str(event.get("ts")),
        thread_ts=event.get("thread_ts"),
        is_dm=channel_type == "im",
        mentions_bot=bool(bot_user_id) and f"<@{bot_user_id}" in text,
        files=[f for f in event.get("files") or [] if isinstance(f, dict)],
    )


def route(message: Message) -> Route:
    if message.is_reply:
        return Route.CONTINUE
    if message.is_dm or message.mentions_bot:
        return Route.START
    return Route.IGNORE


def image_files(files: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Attachments worth sending as references (Slack Connect stubs are checked later, in the job)."""
    return [
        f
        for f in files
        if str(f.get("mimetype", "")).startswith("image/") or f.get("file_access") == "check_file_info"
    ]


@dataclass(frozen=True)
class Command:
    """A ``/banana`` invocation. ``text`` is Slack's markup (``&amp;``, ``<@U…>``)."""

    team_id: str
    channel_id: str
    user_id: str
    text: str
    response_url: str | None


def parse_command(command: dict[str, Any], *, team_id: str | None = None) -> Command | None:
    """None when the ids don't look like Slack's. ``team_id``: the workspace the app is installed in, as
    Bolt resolved it, over the payload's."""
    ids = (team_id or command.get("team_id"), command.get("channel_id"), command.get("user_id"))
    if not all(is_slack_id(v) for v in ids):
        return None
    response_url = command.get("response_url")
    return Command(
        team_id=str(ids[0]),
        channel_id=str(ids[1]),
        user_id=str(ids[2]),
        text=str(command.get("text") or ""),
        response_url=str(response_url) if isinstance(response_url, str) else None,
    )


@dataclass(frozen=True)
class EditTarget:
    """Where "Edit with Nano Banana" was used: the message's channel, its thread and its images. It
    travels through the modal as ``private_metadata``."""

    channel_id: str
    thread_ts: str
    file_ids: list[str]
    response_url: str | None

    def to_metadata(self) -> str:
        return json.dumps(
            {
                "channel": self.channel_id,
                "thread_ts": self.thread_ts,
                "files": self.file_ids,
                "response_url": self.response_url,
            }
        )

    @classmethod
    def from_metadata(cls, metadata: str) -> EditTarget:
        data = json.loads(metadata or "{}")
        return cls(
            channel_id=str(data["channel"]),
            thread_ts=str(data["thread_ts"]),
            file_ids=[str(f) for f in data.get("files") or []],
            response_url=data.get("response_url"),
        )


def parse_shortcut(shortcut: dict[str, Any]) -> EditTarget | None:
    """The message shortcut's target, or None when the message has no images to edit (or its ids don't
    look like Slack's)."""
    message = shortcut.get("message") or {}
    images = [f for f in image_files(message.get("files") or []) if is_slack_id(f.get("id"))]
    channel = (shortcut.get("channel") or {}).get("id")
    thread_ts = message.get("thread_ts") or message.get("ts")
    if not images or not is_slack_id(channel) or not is_slack_ts(thread_ts):
        return None
    return EditTarget(
        channel_id=str(channel),
        thread_ts=str(thread_ts),
        file_ids=[str(f["id"]) for f in images][:MAX_SHORTCUT_FILES],
        response_url=shortcut.get("response_url"),
    )


@dataclass(frozen=True)
class EditSubmission:
    team_id: str
    user_id: str
    target: EditTarget
    text: str  # as typed: a modal's text input is not Slack markup


def parse_edit_submission(
    body: dict[str, Any], *, block_id: str, action_id: str, team_id: str | None = None
) -> EditSubmission | None:
    """None when the ids don't look like Slack's (the metadata is ours, but it travels through Slack).
    ``team_id``: the workspace the app is installed in, as Bolt resolved it (``app_installed_team_id``)."""
    view = body["view"]
    value = view["state"]["values"][block_id][action_id].get("value")
    target = EditTarget.from_metadata(view.get("private_metadata") or "{}")
    team = team_id or view.get("app_installed_team_id") or (body.get("team") or {}).get("id")
    user = (body.get("user") or {}).get("id")
    ids_ok = all(is_slack_id(v) for v in (team, user, target.channel_id, *target.file_ids))
    if not ids_ok or not is_slack_ts(target.thread_ts):
        return None
    return EditSubmission(team_id=str(team), user_id=str(user), target=target, text=str(value or ""))
