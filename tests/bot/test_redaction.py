"""The log filter that keeps secrets and image bytes out of every log line."""

from __future__ import annotations

import base64
import logging
import os
import sys

from bot.redaction import REDACTED, RedactingFilter, add_secret, redact


def record(msg: str, *args: object, exc: bool = False) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise RuntimeError("boom with sandbox-unit-secret-42 inside")
        except RuntimeError:
            exc_info = sys.exc_info()
    return logging.LogRecord("t", logging.INFO, __file__, 1, msg, args, exc_info)


def test_token_shapes_are_redacted() -> None:
    line = (
        "bot xoxb-1234-5678-abcdef app xapp-1-A0-123-abc user xoxp-99-88 "
        "key AIzaSyA1234567890abcdefghijklmnopqrstu header {'x-goog-api-key': 'k-123456'} "
        "Authorization: Bearer abc.def url https://x.test/v1?key=s3cr3t&alt=json"
    )
    out = redact(line)
    for secret in ("xoxb-1234", "xapp-1-A0", "xoxp-99", "AIzaSyA", "k-123456", "abc.def", "s3cr3t"):
        assert secret not in out
    assert "alt=json" in out and out.count(REDACTED) == 7


def test_configured_secrets_are_redacted_wherever_they_appear() -> None:
    add_secret("sandbox-unit-secret-42", None, "", "abc")  # empty and too-short values are ignored
    assert redact("signing secret=sandbox-unit-secret-42!") == f"signing secret={REDACTED}!"
    assert redact("abc def") == "abc def"


def test_base64_payloads_are_replaced_by_their_length() -> None:
    encoded = base64.b64encode(os.urandom(600)).decode()
    out = redact(f'{{"inlineData": {{"data": "{encoded}"}}}}')
    assert encoded[:40] not in out
    assert f"[{len(encoded)} base64 characters]" in out
    assert redact("a" * 199) == "a" * 199  # short runs are ordinary text


def test_filter_redacts_arguments_and_tracebacks() -> None:
    add_secret("sandbox-unit-secret-42")
    rec = record("calling with %s and %r", "xoxb-1-2-3", {"token": "sandbox-unit-secret-42"}, exc=True)
    assert RedactingFilter().filter(rec)
    formatted = logging.Formatter().format(rec)
    assert "xoxb-1-2-3" not in formatted and "sandbox-unit-secret-42" not in formatted
    assert "RuntimeError: boom with [redacted] inside" in formatted
    assert rec.getMessage() == f"calling with {REDACTED} and {{'token': '{REDACTED}'}}"


def test_filter_survives_a_bad_format_string() -> None:
    rec = record("%d items", "not a number")
    assert RedactingFilter().filter(rec)
    assert "not a number" in rec.getMessage()
