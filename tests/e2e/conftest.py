"""End-to-end fixtures: fake Slack + fake Gemini on loopback, and the real app as a child process."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bot.sandbox.fake_gemini import FakeGemini
from bot.sandbox.fake_slack import FakeSlack, Upload
from bot.sandbox.process import AppProcess, free_port
from bot.sandbox.scenario import sandbox_env
from tests.conftest import BACKENDS, fresh_database_url

CHANNEL = "C0GENERAL"


@dataclass
class Stack:
    slack: FakeSlack
    gemini: FakeGemini
    env: dict[str, str]
    tmp: Path
    apps: list[AppProcess] = field(default_factory=list)

    @property
    def app(self) -> AppProcess:
        return self.apps[-1]

    def start_app(self, *, command: str = "serve", wait: bool = True, **overrides: str) -> AppProcess:
        env = {**self.env, **overrides}
        if command == "serve" and "PORT" not in overrides:
            env["PORT"] = str(free_port())
        app = AppProcess(env, command=command, log_path=self.tmp / f"app-{len(self.apps)}.log").start()
        self.apps.append(app)
        if command == "serve":
            self.slack.request_url = f"{app.url}/slack/events"
            if wait:
                app.wait_healthy()
        return app

    def logs(self) -> str:
        return "\n".join(app.logs() for app in self.apps)

    def root_message(self, channel: str = CHANNEL) -> dict[str, object]:
        """The bot's newest top-level message in ``channel``."""
        return self.slack.wait_for(
            lambda: next(
                (
                    m
                    for m in reversed(self.slack.messages)
                    if m.get("bot_id") and m.get("channel") == channel and not m.get("thread_ts")
                ),
                None,
            )
        )

    def uploads(self, n: int, timeout: float = 30.0) -> list[Upload]:
        return self.slack.wait_for_uploads(n, timeout=timeout)


def make_stack(tmp_path: Path, backend: str, **overrides: str) -> Iterator[Stack]:
    with FakeSlack() as slack, FakeGemini() as gemini:
        for url in fresh_database_url(backend, tmp_path):
            env = sandbox_env(slack, gemini, database_url=url, port=0)
            env.update({"BANANA_WORKERS": "3", **overrides})
            stack = Stack(slack=slack, gemini=gemini, env=env, tmp=tmp_path)
            try:
                yield stack
            finally:
                for app in stack.apps:
                    app.terminate(timeout=30)


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    """The app running on SQLite."""
    stack_iter = make_stack(tmp_path, "sqlite")
    stack = next(stack_iter)
    stack.start_app()
    yield stack
    next(stack_iter, None)


@pytest.fixture(params=BACKENDS)
def any_db_stack(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stack]:
    """A stack whose app is not started yet, on SQLite and (when configured) PostgreSQL."""
    yield from make_stack(tmp_path, request.param)
