"""The floor for ack latency: a bare Bolt app on the same server stack as ours (Bolt, waitress with our
server settings, Bolt's own signature check), whose listeners only ack. No database, no jobs.

    SLACK_SIGNING_SECRET=… SLACK_BOT_TOKEN=… SLACK_API_URL=… PORT=3001 .venv/bin/python bench/bare_app.py
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import waitress
from slack_bolt import Ack, App
from slack_bolt.adapter.wsgi import SlackRequestHandler
from slack_sdk import WebClient

from handlers.web import SERVER_SETTINGS


def build() -> App:
    app = App(
        client=WebClient(token=os.environ["SLACK_BOT_TOKEN"], base_url=os.environ["SLACK_API_URL"]),
        signing_secret=os.environ["SLACK_SIGNING_SECRET"],
        process_before_response=True,
    )

    @app.command("/banana")
    def command(ack: Ack) -> None:
        ack("On it.")

    @app.event("app_mention")
    @app.event("message")
    def event(ack: Ack) -> None:
        ack()

    return app


def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    handler = SlackRequestHandler(build(), path="/slack/events")

    def application(environ: dict[str, Any], start_response: Any) -> Any:
        if environ.get("PATH_INFO") == "/healthz":
            start_response("200 OK", [("Content-Type", "application/json")])
            return [b'{"ok": true}']
        return handler(environ, start_response)

    waitress.serve(application, host="127.0.0.1", port=int(os.environ["PORT"]), **SERVER_SETTINGS)


if __name__ == "__main__":
    main()
