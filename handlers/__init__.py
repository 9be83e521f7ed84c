"""Thin Bolt listeners: parse, validate, persist, enqueue, reply. The domain lives in ``bot/``."""

from __future__ import annotations

from slack_bolt import App

from bot.intake import Intake
from handlers import commands, errors, events, shortcuts


def register_all(app: App, intake: Intake) -> None:
    commands.register(app, intake)
    events.register(app, intake)
    shortcuts.register(app, intake)
    errors.register(app)
