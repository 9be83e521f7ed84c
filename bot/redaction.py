"""Keep secrets and image bytes out of the log, whatever the level and whoever logs.

``RedactingFilter`` sits on the root handlers (see ``bot.logs.configure_logging``). It rewrites each record's
message and traceback before any handler formats it:

* the configured secrets (``add_secret``: tokens, the signing secret, the Gemini key, the database
  password) wherever they appear;
* anything shaped like a Slack token (``xoxb-…``, ``xapp-…``), a Google API key (``AIza…``), a bearer
  token, an ``x-goog-api-key`` header or a ``?key=`` query parameter;
* long runs of base64 (an image inline in a request or response body) are replaced by their length.
"""

from __future__ import annotations

import logging
import re
import threading

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

REDACTED = "[redacted]"
_MIN_SECRET_LENGTH = 6

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\bxox[a-z]-[A-Za-z0-9-]+"), REDACTED),
    (re.compile(r"\bxapp-[A-Za-z0-9-]+"), REDACTED),
    (re.compile(r"\bAIza[0-9A-Za-z_-]{20,}"), REDACTED),
    (re.compile(r"(?i)(\bbearer\s+)[^\s'\",]+"), rf"\1{REDACTED}"),
    (re.compile(r"(?i)(x-goog-api-key['\"]?\s*[:=]\s*['\"]?)[^\s'\",}]+"), rf"\1{REDACTED}"),
    (re.compile(r"(?i)([?&](?:key|token)=)[^&\s'\"]+"), rf"\1{REDACTED}"),
)
# 200+ base64 characters in a row is an encoded payload (an image), not something a person reads.
_BASE64_RUN = re.compile(r"[A-Za-z0-9+/_-]{200,}={0,2}")

_lock = threading.Lock()
_secrets: set[str] = set()


def add_secret(*values: str | None) -> None:
    """Never log these values (too-short ones are ignored: they would redact ordinary words)."""
    with _lock:
        _secrets.update(v for v in values if v and len(v) >= _MIN_SECRET_LENGTH)


def redact(text: str) -> str:
    with _lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return _BASE64_RUN.sub(lambda m: f"[{len(m.group())} base64 characters]", text)


class RedactingFilter(logging.Filter):
    """Redacts a record in place (message, arguments, traceback, stack) and lets it through."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: log what there is rather than lose the record
            message = f"{record.msg!r} {record.args!r}"
        record.msg, record.args = redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


def shown_url(url: str) -> str:
    """A database URL as an operator may see it: the password hidden, or the variable's name if the URL
    can't be parsed (it might hold a password where the parser can't see one)."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "DATABASE_URL"
