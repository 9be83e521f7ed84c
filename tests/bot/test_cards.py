"""A card's button value is only a job id: one from another workspace, or one that isn't an id, finds
nothing (both databases)."""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from bot import messages
from bot.cards import Cards
from tests.bot.helpers import add_job, new_conversation


def test_view_settings_answers_only_for_a_job_of_the_workspace_that_pressed(
    sessions: sessionmaker[Session],
) -> None:
    with sessions.begin() as session:
        job_id = add_job(session, new_conversation(session, team="T1")).id
    cards = Cards(sessions=sessions, slack=lambda _team_id: None)  # type: ignore[arg-type,return-value]
    assert "`gemini-" in cards.settings(team_id="T1", value=str(job_id))
    assert cards.settings(team_id="T2", value=str(job_id)) == messages.RESULT_GONE  # another workspace's
    for forged in ("", "abc", "-1", "1 OR 1=1", str(job_id + 1000)):
        assert cards.settings(team_id="T1", value=forged) == messages.RESULT_GONE
