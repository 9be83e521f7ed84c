"""The WSGI app served in HTTP mode: POST /slack/events (Bolt) and GET /healthz, behind a screen.

The screen answers before Bolt sees a request it can't parse: a body that is neither a JSON object nor a
form gets a 400, and a request whose timestamp header is missing, not a number or over five minutes old
gets a 401. Bolt would raise while parsing such a body, which the WSGI server turns into a 500 (and
Slack retries). Everything else reaches Bolt byte for byte, and Bolt checks the signature.
"""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qsl

from slack_bolt import App
from slack_bolt.adapter.wsgi import SlackRequestHandler

log = logging.getLogger(__name__)

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

MAX_BODY_BYTES = 1_048_576  # Slack's payloads are a few KB; a slash command's text is capped far lower
STALE_AFTER_SECONDS = 300  # Slack's rule, and Bolt's: a request older than five minutes may be a replay


def wsgi_app(app: App, *, healthy: Callable[[], bool]) -> WsgiApp:
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


def malformed(body: bytes, content_type: str) -> str | None:
    """Why Bolt could not parse ``body``, or None when it is a JSON object or a form Bolt can read."""
    if not body:
        return "empty body"
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return "body is not UTF-8"
    if content_type.split(";")[0].strip().lower() == "application/json" or text.startswith("{"):
        try:
            parsed = json.loads(text)
        except ValueError:
            return "body is not valid JSON"
        return None if isinstance(parsed, dict) else "JSON body is not an object"
    try:
        form = dict(parse_qsl(text, keep_blank_values=True, strict_parsing=True))
    except ValueError:
        return "body is neither JSON nor a form"
    if "payload" in form:  # an interaction: payload=<json>
        try:
            payload = json.loads(form["payload"])
        except ValueError:
            return "payload is not valid JSON"
        if not isinstance(payload, dict):
            return "payload is not a JSON object"
    return None


def screen_requests(slack: WsgiApp) -> WsgiApp:
    """Wrap Bolt's WSGI handler: answer 401 to requests that can't be Slack's (no, a non-numeric or a stale
    timestamp) and 400 to bodies Bolt can't parse; pass everything else, byte for byte, to Bolt (which
    checks the signature)."""

    def reply(start_response: StartResponse, status: str, error: str) -> list[bytes]:
        body = json.dumps({"error": error}).encode()
        start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]

    def application(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") != "POST":
            return slack(environ, start_response)
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = -1
        if length < 0 or length > MAX_BODY_BYTES:
            return reply(start_response, "400 Bad Request", "invalid content length")
        body = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(body)
        problem = malformed(body, str(environ.get("CONTENT_TYPE") or ""))
        if problem is None and (body.startswith(b"ssl_check=") or b"&ssl_check=" in body):
            return slack(environ, start_response)  # Bolt answers these itself, before any signature check
        timestamp = str(environ.get("HTTP_X_SLACK_REQUEST_TIMESTAMP") or "")
        if not timestamp.isdigit() or not environ.get("HTTP_X_SLACK_SIGNATURE"):
            log.info("rejected a request without a valid Slack timestamp or signature header")
            return reply(start_response, "401 Unauthorized", "invalid request")
        if abs(time.time() - int(timestamp)) > STALE_AFTER_SECONDS:
            log.info("rejected a stale request (timestamp %s)", timestamp)
            return reply(start_response, "401 Unauthorized", "invalid request")
        if problem is not None:
            log.info("rejected a malformed request: %s", problem)
            return reply(start_response, "400 Bad Request", problem)
        return slack(environ, start_response)

    return application
