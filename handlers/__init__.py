"""Thin Bolt listeners: read the payload, hand it to ``bot.intake``, acknowledge. The domain lives in
``bot/``; ``register_all`` wires every listener with one ``Deps``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from slack_bolt import App

from bot.cards import Cards
from bot.installations import Workspaces
from bot.intake import Intake
from bot.reports import Reports
from bot.workspace_keys import WorkspaceKeys
from handlers import actions, commands, errors, events, keys, middleware, shortcuts


@dataclass(frozen=True)
class Deps:
    """What the listeners need. ``after_ack`` runs a Slack call once the listener has returned, so no
    Web API call ever stands between Slack's request and its 200 (``process_before_response`` holds the
    response until the listener is done)."""

    intake: Intake
    reports: Reports
    cards: Cards
    workspaces: Workspaces
    keys: WorkspaceKeys
    after_ack: Callable[[Callable[[], object]], None]


def register_all(app: App, deps: Deps) -> None:
    middleware.register(app)
    commands.register(app, deps)
    events.register(app, deps)
    shortcuts.register(app, deps)
    actions.register(app, deps)
    keys.register(app, deps)
    errors.register(app)
