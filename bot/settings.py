"""Configuration: read once from the environment into a frozen, typed object (the README's table)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from bot.catalog import DEFAULT_MODEL
from bot.errors import ConfigError

DEFAULT_SLACK_API_URL = "https://slack.com/api/"
DEFAULT_GEMINI_API_URL = "https://generativelanguage.googleapis.com"
DEFAULT_DATABASE_FILE = "banana.db"

_WHERE = {
    "SLACK_BOT_TOKEN": "the xoxb- token under OAuth & Permissions of your Slack app",
    "SLACK_SIGNING_SECRET": "Basic Information → App Credentials of your Slack app (or set SLACK_APP_TOKEN "
    "to use Socket Mode)",
    "GEMINI_API_KEY": "https://aistudio.google.com/apikey (image models need a billed project)",
}


@dataclass(frozen=True)
class Settings:
    slack_bot_token: str
    gemini_api_key: str
    slack_signing_secret: str | None = None
    slack_app_token: str | None = None
    slack_api_url: str = DEFAULT_SLACK_API_URL
    gemini_api_url: str = DEFAULT_GEMINI_API_URL
    database_url: str = f"sqlite:///{DEFAULT_DATABASE_FILE}"
    port: int = 3000
    default_model: str = DEFAULT_MODEL
    workers: int = 4
    job_lease_seconds: float = 60.0
    model_aliases: Mapping[str, str] = field(default_factory=dict)
    gemini_timeout_seconds: float = 180.0
    shutdown_grace_seconds: float = 25.0
    slack_retry_delays: tuple[float, ...] = (5.0, 30.0, 120.0)
    slack_share_timeout_seconds: float = 20.0

    @property
    def socket_mode(self) -> bool:
        return bool(self.slack_app_token)

    def __repr__(self) -> str:  # never print secrets, even by accident
        return (
            f"Settings(socket_mode={self.socket_mode}, slack_api_url={self.slack_api_url!r}, "
            f"gemini_api_url={self.gemini_api_url!r}, database={_redact_url(self.database_url)!r}, "
            f"port={self.port}, default_model={self.default_model!r}, workers={self.workers})"
        )


def _redact_url(url: str) -> str:
    if "@" not in url or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    return f"{scheme}://***@{rest.rsplit('@', 1)[1]}"


def _parse_aliases(raw: str) -> dict[str, str]:
    """``BANANA_MODEL_ALIASES="nano-banana-2=gemini-3.1-flash-image,pro=gemini-3-pro-image"``."""
    aliases: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in raw.split(","))):
        name, sep, model_id = item.partition("=")
        if not sep or not name.strip() or not model_id.strip():
            raise ConfigError([f"BANANA_MODEL_ALIASES: {item!r} is not alias=model-id"])
        aliases[name.strip().lower()] = model_id.strip()
    return aliases


def _parse_delays(raw: str | None, problems: list[str]) -> tuple[float, ...]:
    """``BANANA_SLACK_RETRY_DELAYS="5,30,120"``: seconds before each further try of a job Slack turned away
    for a while (rate limited, 5xx, unreachable, an upload it never showed); ``none`` for no further try."""
    if raw is None:
        return Settings.slack_retry_delays
    if raw.lower() == "none":
        return ()
    try:
        delays = tuple(float(part) for part in raw.split(","))
    except ValueError:
        problems.append(f"BANANA_SLACK_RETRY_DELAYS={raw!r} is not a comma-separated list of seconds")
        return Settings.slack_retry_delays
    if any(d < 0 for d in delays):
        problems.append("BANANA_SLACK_RETRY_DELAYS must not be negative")
    return delays


def database_url_from(environ: Mapping[str, str]) -> str:
    """``DATABASE_URL``, or a SQLite file in the working directory."""
    return environ.get("DATABASE_URL", "").strip() or f"sqlite:///{Path.cwd() / DEFAULT_DATABASE_FILE}"


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Build settings from ``environ`` (default ``os.environ``); list every missing value at once."""
    env = os.environ if environ is None else environ

    def get(name: str) -> str | None:
        value = env.get(name, "").strip()
        return value or None

    problems: list[str] = []
    app_token = get("SLACK_APP_TOKEN")
    required = ["SLACK_BOT_TOKEN", "GEMINI_API_KEY"] + ([] if app_token else ["SLACK_SIGNING_SECRET"])
    problems += [f"{name} is not set: get it from {_WHERE[name]}" for name in required if not get(name)]
    if app_token and not app_token.startswith("xapp-"):
        problems.append("SLACK_APP_TOKEN must be an app-level xapp- token with connections:write")
    bot_token = get("SLACK_BOT_TOKEN")
    if bot_token and not bot_token.startswith("xoxb-"):
        problems.append("SLACK_BOT_TOKEN must be a bot token that starts with xoxb- (OAuth & Permissions)")
    problems += [
        f"{name} still holds the placeholder from .env.example"
        for name in ("SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "SLACK_SIGNING_SECRET", "GEMINI_API_KEY")
        if "..." in (get(name) or "")
    ]

    def number(name: str, default: float, *, minimum: float) -> float:
        raw = get(name)
        if raw is None:
            return default
        try:
            value = float(raw)
        except ValueError:
            problems.append(f"{name}={raw!r} is not a number")
            return default
        if value < minimum:
            problems.append(f"{name} must be at least {minimum:g}")
        return value

    port = number("PORT", 3000, minimum=0)
    workers = number("BANANA_WORKERS", 4, minimum=0)
    lease = number("BANANA_JOB_LEASE_SECONDS", 60, minimum=3)
    timeout = number("BANANA_GEMINI_TIMEOUT_SECONDS", 180, minimum=1)
    grace = number("BANANA_SHUTDOWN_GRACE_SECONDS", 25, minimum=0)
    share_timeout = number("BANANA_SLACK_SHARE_TIMEOUT_SECONDS", 20, minimum=0)
    retry_delays = _parse_delays(get("BANANA_SLACK_RETRY_DELAYS"), problems)
    aliases: dict[str, str] = {}
    try:
        aliases = _parse_aliases(get("BANANA_MODEL_ALIASES") or "")
    except ConfigError as err:
        problems += err.problems
    if problems:
        raise ConfigError(problems)

    return Settings(
        slack_bot_token=get("SLACK_BOT_TOKEN") or "",
        gemini_api_key=get("GEMINI_API_KEY") or "",
        slack_signing_secret=get("SLACK_SIGNING_SECRET"),
        slack_app_token=app_token,
        slack_api_url=get("SLACK_API_URL") or DEFAULT_SLACK_API_URL,
        gemini_api_url=(get("GEMINI_API_URL") or DEFAULT_GEMINI_API_URL).rstrip("/"),
        database_url=database_url_from(env),
        port=int(port),
        default_model=get("BANANA_DEFAULT_MODEL") or DEFAULT_MODEL,
        workers=int(workers),
        job_lease_seconds=lease,
        model_aliases=aliases,
        gemini_timeout_seconds=timeout,
        shutdown_grace_seconds=grace,
        slack_retry_delays=retry_delays,
        slack_share_timeout_seconds=share_timeout,
    )
