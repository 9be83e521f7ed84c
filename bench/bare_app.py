"""The floor for ack latency: a bare Bolt app on the same server stack as ours (Bolt, waitress with our
server settings, Bolt's own signature check), whose listeners only ack. No database, no jobs.

    SLACK_SIGNING_SECRET=… SLACK_BOT_TOKEN=… SLACK_API_URL=… PORT=3001 .venv/bin/python bench/bare_app.py

With ``BARE_DATABASE_URL``, the floor for an ack that a durable write comes before: ``/banana`` first
inserts one row (its text) in a transaction of its own (``BEGIN``, ``INSERT``, ``COMMIT``), into a table
``bare_acks`` of that database, through the driver and pool settings of ours.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import waitress
from slack_bolt import Ack, App
from slack_bolt.adapter.wsgi import SlackRequestHandler
from slack_sdk import WebClient
from sqlalchemy import Column, Integer, MetaData, Table, Text

from bot.db import create_db_engine
from handlers.web import SERVER_SETTINGS


def durable_write(database_url: str) -> Callable[[str], None]:
    engine = create_db_engine(database_url, pool_size=SERVER_SETTINGS["threads"])
    acks = Table("bare_acks", MetaData(), Column("id", Integer, primary_key=True), Column("text", Text))
    acks.create(engine, checkfirst=True)

    def write(text: str) -> None:
        with engine.begin() as conn:
            conn.execute(acks.insert().values(text=text))

    return write


def build(write: Callable[[str], None] | None = None) -> App:
    app = App(
        client=WebClient(token=os.environ["SLACK_BOT_TOKEN"], base_url=os.environ["SLACK_API_URL"]),
        signing_secret=os.environ["SLACK_SIGNING_SECRET"],
        process_before_response=True,
    )

    @app.command("/banana")
    def command(ack: Ack, command: dict[str, Any]) -> None:
        if write is not None:
            write(str(command.get("text", "")))
        ack("On it.")

    @app.event("app_mention")
    @app.event("message")
    def event(ack: Ack) -> None:
        ack()

    return app


def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    database_url = os.environ.get("BARE_DATABASE_URL")
    write = durable_write(database_url) if database_url else None
    handler = SlackRequestHandler(build(write), path="/slack/events")

    def application(environ: dict[str, Any], start_response: Any) -> Any:
        if environ.get("PATH_INFO") == "/healthz":
            start_response("200 OK", [("Content-Type", "application/json")])
            return [b'{"ok": true}']
        return handler(environ, start_response)

    waitress.serve(application, host="127.0.0.1", port=int(os.environ["PORT"]), **SERVER_SETTINGS)


if __name__ == "__main__":
    main()
