"""The bot's own parts wired in-process against the stand-ins: a real database, the real slack_sdk and
httpx clients, the stand-in Slack and Gemini on loopback. For the runner, the pool and the listeners."""

from __future__ import annotations

import threading
from dataclasses import dataclass

import httpx
from sqlalchemy.orm import Session, sessionmaker

from bot import queue
from bot.cards import Cards
from bot.catalog import Catalog
from bot.gemini import GeminiClient
from bot.installations import Workspaces
from bot.intake import Intake
from bot.jobs import JobRunner
from bot.models import Job
from bot.payloads import Command
from bot.queue import Lease
from bot.sandbox.fake_gemini import FakeGemini
from bot.sandbox.fake_slack import FakeSlack
from bot.slack import SlackGateway, web_client

CHANNEL = "C0GENERAL"


@dataclass
class InProcess:
    sessions: sessionmaker[Session]
    slack: FakeSlack
    gemini: FakeGemini
    http: httpx.Client
    image_sessions: sessionmaker[Session] | None = None  # ``db.image_engine``'s: the runner's for images

    def gateway(self) -> SlackGateway:
        client = web_client(token=self.slack.bot_token, base_url=self.slack.api_url)
        return SlackGateway(client, http=self.http, api_url=self.slack.api_url, share_timeout=2.0)

    def runner(
        self,
        *,
        slack_retry_delays: tuple[float, ...] = (30.0,),
        stopping: threading.Event | None = None,
        workspaces: Workspaces | None = None,
        own_key: str | None = None,
    ) -> JobRunner:
        """``workspaces``: the workspaces' gateways (default: the stand-in's one workspace); ``own_key``:
        every workspace's own Gemini key (default: none, the operator's pays)."""
        gateway = self.gateway()
        gemini = GeminiClient(
            self.http, base_url=self.gemini.url, api_key=self.gemini.api_key, cancel=stopping
        )
        return JobRunner(
            sessions=self.sessions,
            image_sessions=self.image_sessions,
            gemini=gemini,
            slack=workspaces or (lambda _team_id: gateway),
            slack_retry_delays=slack_retry_delays,
            stopping=stopping,
            own_keys=lambda _team_id: own_key,
        )

    def workspaces(self) -> Workspaces:
        """The one workspace of the stand-in Slack, as ``SLACK_BOT_TOKEN`` serves it."""
        gateway = self.gateway()
        return Workspaces(sessions=self.sessions, make=lambda _token: gateway, token=self.slack.bot_token)

    def cards(self) -> Cards:
        gateway = self.gateway()
        return Cards(sessions=self.sessions, slack=lambda _team_id: gateway)

    def intake(self, **kwargs: object) -> Intake:
        return Intake(sessions=self.sessions, catalog=Catalog(), default_model="nano-banana-2.1", **kwargs)  # type: ignore[arg-type]

    def command(self, text: str, *, user: str = "UALICE") -> int:
        response_url = self.slack.new_response_url(channel_id=CHANNEL, user_id=user)
        command = Command(
            team_id=self.slack.team_id, channel_id=CHANNEL, user_id=user, text=text, response_url=response_url
        )
        outcome = self.intake().command(command)
        assert outcome.job_id is not None, outcome.reply
        return outcome.job_id

    def claim(self, owner: str = "test-worker") -> Lease:
        with self.sessions() as session:
            lease = queue.claim(session, owner=owner, lease_seconds=60)
        assert lease is not None
        return lease

    def job(self, job_id: int) -> Job:
        with self.sessions() as session:
            job = session.get(Job, job_id)
            assert job is not None
            session.expunge(job)
            return job
