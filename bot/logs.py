"""The bot's log: stderr, ``LOG_LEVEL`` (INFO by default), ``LOG_FORMAT`` ``text`` (default) or ``json``
(one object a line, for a log pipeline), secrets and image bytes redacted in both.

A job's lines carry its id, workspace and conversation (``job_context``): as fields in JSON, so an
operator can follow one job, or one workspace, through the workers' lines. The lines of a ``serve``'s
worker process, which share its stream, say so: ``[worker]`` before the logger's name, ``"process":
"worker"`` in JSON.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from bot.redaction import RedactingFilter

log = logging.getLogger(__name__)

# Libraries that log request bodies and headers (slack_sdk: every Web API call and answer; SQLAlchemy: SQL)
# or just noise. They stay at WARNING whatever LOG_LEVEL says, so DEBUG never spills tokens or images.
LIBRARY_LOGGERS = (
    "slack_sdk",
    "slack_bolt",
    "httpx",
    "httpcore",
    "urllib3",
    "waitress",
    "alembic",
    "sqlalchemy",
    "psycopg",
    "PIL",
    "websocket",
    "websockets",
)
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

_context: ContextVar[dict[str, Any] | None] = ContextVar("banana_log_context", default=None)


@contextmanager
def job_context(**fields: Any) -> Iterator[None]:
    """Within the block (this thread only), every log line carries ``fields``."""
    token = _context.set({**(_context.get() or {}), **fields})
    try:
        yield
    finally:
        _context.reset(token)


class _ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.banana = _context.get() or {}
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time (UTC), level, logger, message, the process (if a ``serve``'s worker
    process), the job's fields, the traceback."""

    def __init__(self, process: str | None = None) -> None:
        super().__init__()
        self._process = {"process": process} if process else {}

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **self._process,
            **getattr(record, "banana", {}),
        }
        if record.exc_text or record.exc_info:
            line["exception"] = record.exc_text or self.formatException(record.exc_info)  # type: ignore[arg-type]
        return json.dumps(line, ensure_ascii=False, default=str)


def configure_logging(
    level_name: str | None = None, format_name: str | None = None, *, process: str | None = None
) -> None:
    """Log to stderr at ``LOG_LEVEL`` in ``LOG_FORMAT``, with secrets and image bytes redacted. ``process``:
    the name every line carries (a ``serve``'s worker process: "worker")."""
    name = (level_name if level_name is not None else os.environ.get("LOG_LEVEL", "")).strip().upper()
    level = logging.getLevelNamesMapping().get(name or "INFO")
    shape = (format_name if format_name is not None else os.environ.get("LOG_FORMAT", "")).strip().lower()
    logging.basicConfig(level=level if level is not None else logging.INFO, format=TEXT_FORMAT)
    for handler in logging.getLogger().handlers:
        # Redaction first: the context and the formatter only ever see the redacted record.
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
            handler.addFilter(_ContextFilter())
        text = TEXT_FORMAT.replace("%(name)s", f"[{process}] %(name)s") if process else TEXT_FORMAT
        handler.setFormatter(JsonFormatter(process) if shape == "json" else logging.Formatter(text))
    for library in LIBRARY_LOGGERS:
        logging.getLogger(library).setLevel(max(logging.WARNING, level or logging.INFO))
    if level is None:
        log.warning("LOG_LEVEL=%r is not a level (DEBUG, INFO, WARNING, ERROR); using INFO", name)
    if shape not in ("", "text", "json"):
        log.warning("LOG_FORMAT=%r is not a format (text, json); using text", shape)
