"""The WSGI app served in HTTP mode: POST /slack/events (Bolt) and GET /healthz."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from slack_bolt import App
from slack_bolt.adapter.wsgi import SlackRequestHandler

from handlers.errors import screen_requests

StartResponse = Callable[..., Any]


def wsgi_app(
    app: App, *, healthy: Callable[[], bool]
) -> Callable[[dict[str, Any], StartResponse], Iterable[bytes]]:
    # 401 / 400 for requests Bolt cannot parse (it would raise, and waitress would answer 500)
    slack = screen_requests(SlackRequestHandler(app, path="/slack/events"))

    def application(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/healthz" and environ.get("REQUEST_METHOD") in ("GET", "HEAD"):
            ok = healthy()
            body = json.dumps({"ok": ok}).encode()
            start_response(
                "200 OK" if ok else "503 Service Unavailable",
                [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
            )
            return [body]
        if path == "/slack/events":
            result: Iterable[bytes] = slack(environ, start_response)
            return result
        body = b'{"error":"not found"}'
        start_response(
            "404 Not Found", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
        )
        return [body]

    return application
