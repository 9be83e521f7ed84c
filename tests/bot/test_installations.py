"""Installations in many workspaces: slack_sdk's stores on our tables (both databases), tokens sealed."""

from __future__ import annotations

import httpx
import pytest
from cryptography.fernet import Fernet
from slack_sdk import WebClient
from slack_sdk.oauth.installation_store import Installation
from slack_sdk.oauth.installation_store.sqlalchemy import SQLAlchemyInstallationStore
from sqlalchemy import Engine, MetaData, text
from sqlalchemy.orm import Session, sessionmaker

from bot.errors import SlackAuthError, StartupError
from bot.installations import EncryptedInstallationStore, Workspaces, check_key, state_store
from bot.models import SLACK_BOTS, SLACK_INSTALLATIONS, Job
from bot.slack import SlackGateway
from tests.bot.helpers import add_job, new_conversation

KEY = Fernet.generate_key().decode()
BOT_TOKEN = "xoxb-1234-5678-abcdefghijklmnopqrstuvwx"
USER_TOKEN = "xoxp-1234-5678-9012-abcdefghijklmnopqrstuvwxyz012345"


def installation(team: str) -> Installation:
    return Installation(
        app_id="A1",
        team_id=team,
        team_name=f"Team {team}",
        bot_token=BOT_TOKEN + team,
        bot_id="B1",
        bot_user_id="UBOT",
        bot_scopes="chat:write,commands",
        user_id="UADMIN",
        user_token=USER_TOKEN,
        installed_at=1_800_000_000.0,
    )


def test_tokens_are_stored_sealed_and_read_back_in_the_clear(engine: Engine) -> None:
    store = EncryptedInstallationStore(client_id="C1", engine=engine, encryption_key=KEY)
    store.save(installation("T1"))
    store.save(installation("T2"))
    bot = store.find_bot(enterprise_id=None, team_id="T1")
    assert bot is not None and bot.bot_token == BOT_TOKEN + "T1"
    found = store.find_installation(enterprise_id=None, team_id="T2")
    assert found is not None and found.user_token == USER_TOKEN and found.bot_token == BOT_TOKEN + "T2"
    with engine.connect() as conn:
        stored = " ".join(
            str(row)
            for table in ("slack_installations", "slack_bots")
            for row in conn.execute(text(f"SELECT * FROM {table}"))  # noqa: S608 - fixed names
        )
    assert "xoxb-" not in stored and "xoxp-" not in stored  # no token readable in the database
    store.delete_installation(enterprise_id=None, team_id="T1")
    store.delete_bot(enterprise_id=None, team_id="T1")
    assert store.find_bot(enterprise_id=None, team_id="T1") is None

    other = EncryptedInstallationStore(
        client_id="C1", engine=engine, encryption_key=Fernet.generate_key().decode()
    )
    with pytest.raises(StartupError, match="can't be decrypted"):
        other.find_bot(enterprise_id=None, team_id="T2")


def test_each_workspace_gets_a_gateway_with_its_token_and_loses_it_when_it_removes_the_app(
    engine: Engine, sessions: sessionmaker[Session]
) -> None:
    store = EncryptedInstallationStore(client_id="C1", engine=engine, encryption_key=KEY)
    for team in ("T1", "T2"):
        store.save(installation(team))
    made: list[str] = []

    def make(token: str) -> SlackGateway:
        made.append(token)
        return SlackGateway(WebClient(token=token), http=httpx.Client(), api_url="https://slack.com/api/")

    workspaces = Workspaces(sessions=sessions, make=make, store=store)
    one, two = workspaces("T1"), workspaces("T2")
    assert (one.client.token, two.client.token) == (BOT_TOKEN + "T1", BOT_TOKEN + "T2")
    assert workspaces("T1") is one and len(made) == 2  # kept, with its cache of names
    again = installation("T1")
    again.bot_token = "xoxb-installed-again"
    store.save(again)
    assert workspaces("T1").client.token == "xoxb-installed-again"
    with sessions.begin() as session:
        conversation = new_conversation(session, team="T1")
        queued = add_job(session, conversation).id
        other = add_job(session, new_conversation(session, team="T2", thread="2.0")).id
    assert workspaces.removed("T1") == 1
    with pytest.raises(SlackAuthError, match="not_installed"):
        workspaces("T1")
    assert workspaces("T2") is two
    with sessions() as session:
        ended, untouched = session.get_one(Job, queued), session.get_one(Job, other)
        assert (ended.state, ended.error_code) == ("failed", "app_uninstalled")
        assert untouched.state == "queued"


def test_the_oauth_state_is_issued_and_used_once(engine: Engine) -> None:
    states = state_store(engine)
    state = states.issue()
    assert states.consume(state) and not states.consume(state)


def test_our_tables_have_every_column_slack_sdk_writes() -> None:
    """An upgrade of slack_sdk that adds a column fails here, not in a workspace's install."""
    theirs = MetaData()
    for table, ours in (
        (
            SQLAlchemyInstallationStore.build_installations_table(theirs, "slack_installations"),
            SLACK_INSTALLATIONS,
        ),
        (SQLAlchemyInstallationStore.build_bots_table(theirs, "slack_bots"), SLACK_BOTS),
    ):
        assert {c.name for c in table.c} <= {c.name for c in ours.c}


def test_a_key_that_is_not_a_fernet_key_is_refused_with_a_way_to_make_one() -> None:
    assert check_key(KEY) is None
    problem = check_key("not-a-key")
    assert problem is not None and "Fernet.generate_key()" in problem
