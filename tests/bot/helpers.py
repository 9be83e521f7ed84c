from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from bot import store
from bot.catalog import Catalog
from bot.models import Conversation, Job
from bot.options import parse_request
from bot.payloads import Message, parse_message

CATALOG = Catalog()
BOT = "UBANANA"


def event(**fields: Any) -> dict[str, Any]:
    """A person's ``message`` event, as Slack delivers it, with ``fields`` changed."""
    return {"type": "message", "user": "UALICE", "channel": "C1", "ts": "10.0", "text": "hi", **fields}


def parsed(**fields: Any) -> Message:
    message = parse_message(event(**fields), team_id="T1", bot_user_id=BOT)
    assert message is not None
    return message


def new_conversation(
    session: Session,
    *,
    team: str = "T1",
    channel: str = "C1",
    thread: str | None = "1.0",
    prompt: str = "a mug --ar 4:5",
) -> Conversation:
    request = parse_request(prompt, catalog=CATALOG, default_model="nano-banana-2")
    new = store.NewConversation(
        team_id=team, channel_id=channel, thread_ts=thread, origin="mention", user_id="U1", request=request
    )
    conversation_id = store.start_conversation(session, new)
    return session.get_one(Conversation, conversation_id)


def add_job(
    session: Session, conversation: Conversation, text: str = "make it blue", *, user: str = "U1"
) -> Job:
    ids = {"conversation_id": conversation.id, "team_id": conversation.team_id}
    turn_id = store.add_user_turn(session, **ids, user_id=user, text=text, files=[], slack_ts=None)
    request = parse_request(text, catalog=CATALOG, default_model="nano-banana-2")
    return session.get_one(
        Job, store.enqueue(session, **ids, turn_id=turn_id, requested_by=user, request=request)
    )
