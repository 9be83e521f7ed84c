"""The WSGI app served in HTTP mode: POST /slack/events (Bolt) behind a screen, GET /healthz and GET
/metrics (``ops_app``, also served alone on ``METRICS_PORT`` by processes that serve no HTTP), and in OAuth
mode GET /slack/install and GET /slack/oauth_redirect (Bolt's install flow).

The screen answers before Bolt sees a request that can't be Slack's or that Bolt can't parse: an
oversized body gets 413, a missing, stale or wrong signature 401 (checked on the raw bytes before
anything is parsed), and only then a body that is neither a JSON object nor a form 400. Bolt would raise
while parsing such a body, which the WSGI server turns into a 500 (and Slack retries).
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qsl

from slack_bolt import App
from slack_bolt.adapter.wsgi import SlackRequestHandler

from bot import metrics

log = logging.getLogger(__name__)

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

MAX_BODY_BYTES = 1_048_576  # Slack's payloads are a few KB; a slash command's text is capped far lower
STALE_AFTER_SECONDS = 300  # Slack's rule, and Bolt's: a request older than five minutes may be a replay


# waitress reads every request in one async loop and hands only complete ones to its threads, so a slow
# client costs a socket, not a thread. These settings bound what idle or hostile clients can hold:
SERVER_SETTINGS: dict[str, Any] = {
    "threads": 16,
    "connection_limit": 1000,  # default 100: a hundred idle sockets stopped every new connection
    "channel_timeout": 10,  # seconds a connection may send nothing before it is closed (default 120)
    "cleanup_interval": 2,  # how often idle connections are looked for
    "asyncore_use_poll": True,  # poll(), not select(): no 1,024-descriptor ceiling
    "max_request_header_size": 65_536,
    "max_request_body_size": MAX_BODY_BYTES,  # answered 413 as soon as Content-Length says more
    "inbuf_overflow": 2 * MAX_BODY_BYTES,  # a body that is allowed is kept in memory, never spooled
    "ident": "nano-banana",
}


INSTALL_PATHS = ("/slack/install", "/slack/oauth_redirect")


def wsgi_app(app: App, *, healthy: Callable[[], bool], signing_secret: str | None) -> WsgiApp:
    """``signing_secret``: None in Socket Mode, whose events come over the socket: then POST /slack/events
    is not served at all (404), since there is no secret to check a request's signature against (and
    Bolt, in Socket Mode, checks none)."""
    bolt = SlackRequestHandler(app, path="/slack/events")
    slack = screen_requests(bolt, signing_secret=signing_secret) if signing_secret else None
    ops = ops_app(healthy=healthy)
    installs = app.oauth_flow is not None

    def application(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/slack/events" and slack is not None:
            started = time.monotonic()
            result: Iterable[bytes] = slack(environ, start_response)  # Bolt answers once the listener ends
            metrics.ACK_SECONDS.observe(time.monotonic() - started)
            return result
        if installs and path in INSTALL_PATHS and environ.get("REQUEST_METHOD") == "GET":
            return bolt(environ, start_response)  # a person's browser: the install page, Slack's redirect
        return ops(environ, start_response)

    return application


def ops_app(*, healthy: Callable[[], bool]) -> WsgiApp:
    """GET /healthz (200 ``{"ok": true}`` or 503) and GET /metrics (Prometheus); 404 for anything else."""

    def application(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD")
        if path == "/healthz" and method in ("GET", "HEAD"):
            ok = healthy()
            body = json.dumps({"ok": ok}).encode()
            start_response(
                "200 OK" if ok else "503 Service Unavailable",
                [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
            )
            return [body]
        if path == "/metrics" and method in ("GET", "HEAD"):
            body = metrics.exposition()
            start_response(
                "200 OK", [("Content-Type", metrics.CONTENT_TYPE), ("Content-Length", str(len(body)))]
            )
            return [body]
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
        except (ValueError, RecursionError):  # RecursionError: JSON nested deeper than Python recurses
            return "body is not valid JSON"
        return None if isinstance(parsed, dict) else "JSON body is not an object"
    try:
        form = dict(parse_qsl(text, keep_blank_values=True, strict_parsing=True))
    except ValueError:
        return "body is neither JSON nor a form"
    if "payload" in form:  # an interaction: payload=<json>
        try:
            payload = json.loads(form["payload"])
        except (ValueError, RecursionError):
            return "payload is not valid JSON"
        if not isinstance(payload, dict):
            return "payload is not a JSON object"
    return None


def screen_requests(slack: WsgiApp, *, signing_secret: str) -> WsgiApp:
    """Wrap Bolt's WSGI handler. In this order, and before anything is parsed: a body over
    ``MAX_BODY_BYTES`` is refused (waitress already refuses it from its Content-Length, before reading
    it); a request without a fresh timestamp and a valid signature over the raw bytes gets 401; only then
    is the body read as JSON or a form, and one Bolt can't parse gets 400. Everything else reaches Bolt
    byte for byte (which checks the signature again)."""
    secret = signing_secret.encode()

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
            return reply(start_response, "413 Content Too Large", "invalid content length")
        body = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(body)
        if _is_ssl_check(body):
            return slack(environ, start_response)  # Bolt answers these itself; Slack doesn't sign them
        timestamp = str(environ.get("HTTP_X_SLACK_REQUEST_TIMESTAMP") or "")
        signature = str(environ.get("HTTP_X_SLACK_SIGNATURE") or "")
        if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > STALE_AFTER_SECONDS:
            log.info("rejected a request without a fresh Slack timestamp")
            return reply(start_response, "401 Unauthorized", "invalid request")
        if not _signed(secret, timestamp, body, signature):
            log.info("rejected a request with an invalid signature")
            return reply(start_response, "401 Unauthorized", "invalid request")
        problem = malformed(body, str(environ.get("CONTENT_TYPE") or ""))
        if problem is not None:
            log.info("rejected a malformed request: %s", problem)
            return reply(start_response, "400 Bad Request", problem)
        return slack(environ, start_response)

    return application


def _signed(secret: bytes, timestamp: str, body: bytes, signature: str) -> bool:
    """Slack's v0 signature over the raw bytes (slack_sdk's SignatureVerifier wants text, and a body that
    is not UTF-8 must be refused as malformed, not crash the check)."""
    base = b"v0:" + timestamp.encode() + b":" + body
    expected = "v0=" + hmac.new(secret, base, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, signature)


def _is_ssl_check(body: bytes) -> bool:
    """Slack's certificate check (``ssl_check=1&token=…``), recognised by its bytes alone."""
    return body.startswith(b"ssl_check=") or b"&ssl_check=" in body
