from __future__ import annotations

from sqlalchemy.orm import Session

from bot import store
from bot.catalog import Catalog
from bot.models import Conversation, Job
from bot.options import parse_request

CATALOG = Catalog()


def new_conversation(
    session: Session,
    *,
    team: str = "T1",
    channel: str = "C1",
    thread: str | None = "1.0",
    prompt: str = "a mug --ar 4:5",
) -> Conversation:
    request = parse_request(prompt, catalog=CATALOG, default_model="nano-banana-2")
    return store.start_conversation(
        session,
        team_id=team,
        channel_id=channel,
        thread_ts=thread,
        origin="mention",
        user_id="U1",
        request=request,
    )


def add_job(session: Session, conversation: Conversation, text: str = "make it blue") -> Job:
    turn = store.add_user_turn(session, conversation, user_id="U1", text=text, files=[], slack_ts=None)
    request = parse_request(text, catalog=CATALOG, default_model="nano-banana-2")
    return store.enqueue(session, conversation, turn, requested_by="U1", request=request)
