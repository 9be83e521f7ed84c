"""Configuration: read once from the environment into a frozen, typed object (the README's table)."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from bot.catalog import DEFAULT_MODEL, Catalog, is_model_id
from bot.errors import ConfigError, OptionError
from bot.installations import check_key
from bot.limits import Limit, parse_limits
from bot.prices import PriceTable, load_prices
from bot.redaction import shown_url

DEFAULT_SLACK_API_URL = "https://slack.com/api/"
DEFAULT_GEMINI_API_URL = "https://generativelanguage.googleapis.com"
DEFAULT_DATABASE_FILE = "banana.db"
_USER_ID = re.compile(r"^[UW][A-Z0-9]{2,}$")

_WHERE = {
    "SLACK_BOT_TOKEN": "the xoxb- token under OAuth & Permissions of your Slack app (or set SLACK_CLIENT_ID "
    "and SLACK_CLIENT_SECRET to install it in many workspaces)",
    "SLACK_CLIENT_SECRET": "Basic Information → App Credentials of your Slack app",
    "BANANA_ENCRYPTION_KEY": "a Fernet key that seals the workspaces' tokens; make one with "
    '`python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"` and keep it',
    "SLACK_SIGNING_SECRET": "Basic Information → App Credentials of your Slack app (or set SLACK_APP_TOKEN "
    "to use Socket Mode)",
    "GEMINI_API_KEY": "https://aistudio.google.com/apikey (image models need a billed project)",
}


MAX_VARIATIONS = 8


@dataclass(frozen=True)
class Settings:
    slack_bot_token: str  # "" in OAuth mode: each workspace's token is in the database
    gemini_api_key: str
    slack_client_id: str | None = None  # OAuth mode (many workspaces)
    slack_client_secret: str | None = None  # serve in OAuth mode: exchanges an install's code for a token
    encryption_key: str | None = None  # OAuth mode: seals the tokens at rest
    slack_signing_secret: str | None = None
    slack_app_token: str | None = None
    slack_api_url: str = DEFAULT_SLACK_API_URL
    gemini_api_url: str = DEFAULT_GEMINI_API_URL
    database_url: str = f"sqlite:///{DEFAULT_DATABASE_FILE}"
    port: int = 3000
    metrics_port: int | None = None  # worker and Socket Mode processes: /metrics and /healthz here
    default_model: str = DEFAULT_MODEL
    workers: int = 4
    job_lease_seconds: float = 60.0
    model_aliases: Mapping[str, str] = field(default_factory=dict)
    gemini_timeout_seconds: float = 180.0
    shutdown_grace_seconds: float = 25.0
    slack_retry_delays: tuple[float, ...] = (5.0, 30.0, 120.0)
    slack_share_timeout_seconds: float = 20.0
    prices: PriceTable = field(default_factory=load_prices)
    limits: tuple[Limit, ...] = field(default_factory=lambda: parse_limits(None))
    admins: tuple[str, ...] = ()
    user_concurrency: int = 2
    variations: int = 4
    listen: bool = True  # PostgreSQL LISTEN/NOTIFY wakes the workers (off behind a transaction pooler)
    poll_seconds: float = 1.0  # an idle pool's look for work while notifications wake it

    @property
    def socket_mode(self) -> bool:
        return bool(self.slack_app_token)

    @property
    def oauth(self) -> bool:
        """Installed in many workspaces through OAuth, rather than one workspace's SLACK_BOT_TOKEN."""
        return bool(self.slack_client_id)

    def __repr__(self) -> str:  # never print secrets, even by accident
        return (
            f"Settings(socket_mode={self.socket_mode}, oauth={self.oauth}, "
            f"slack_api_url={self.slack_api_url!r}, gemini_api_url={self.gemini_api_url!r}, "
            f"database={shown_url(self.database_url)!r}, "
            f"port={self.port}, default_model={self.default_model!r}, workers={self.workers})"
        )


def _parse_aliases(raw: str) -> dict[str, str]:
    """``BANANA_MODEL_ALIASES="nano-banana-2=gemini-3.1-flash-image,pro=gemini-3-pro-image"``."""
    aliases: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in raw.split(","))):
        name, sep, model_id = item.partition("=")
        if not sep or not name.strip() or not model_id.strip():
            raise ConfigError([f"BANANA_MODEL_ALIASES: {item!r} is not alias=model-id"])
        if not is_model_id(model_id.strip()):
            raise ConfigError([f"BANANA_MODEL_ALIASES: {model_id.strip()!r} is not a gemini-… model ID"])
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


Role = Literal["serve", "worker"]

SECRETS = (
    "SLACK_BOT_TOKEN",
    "SLACK_APP_TOKEN",
    "SLACK_SIGNING_SECRET",
    "SLACK_CLIENT_SECRET",
    "GEMINI_API_KEY",
    "BANANA_ENCRYPTION_KEY",
)

# What each command reads, for its --help. (migrate reads DATABASE_URL only; sandbox nothing.)
VARIABLES: dict[str, tuple[tuple[Role, ...], str]] = {
    "SLACK_BOT_TOKEN": (("serve", "worker"), "the xoxb- bot token: one workspace (or SLACK_CLIENT_ID)"),
    "SLACK_CLIENT_ID": (("serve", "worker"), "OAuth mode: installed in many workspaces (/slack/install)"),
    "SLACK_CLIENT_SECRET": (("serve",), "OAuth mode: the app's client secret"),
    "BANANA_ENCRYPTION_KEY": (("serve", "worker"), "OAuth mode: the Fernet key that seals the tokens"),
    "SLACK_SIGNING_SECRET": (("serve",), "required in HTTP mode: verifies Slack's requests"),
    "SLACK_APP_TOKEN": (("serve",), "xapp- token: when set, Socket Mode instead of HTTP"),
    "GEMINI_API_KEY": (("serve", "worker"), "required: sent to Gemini as x-goog-api-key"),
    "SLACK_API_URL": (("serve", "worker"), f"Web API base (default {DEFAULT_SLACK_API_URL})"),
    "GEMINI_API_URL": (("serve", "worker"), f"Gemini base (default {DEFAULT_GEMINI_API_URL})"),
    "DATABASE_URL": (("serve", "worker"), f"SQLAlchemy URL (default sqlite:///{DEFAULT_DATABASE_FILE})"),
    "PORT": (("serve",), "HTTP mode: the port for /slack/events and /healthz (default 3000)"),
    "BANANA_DEFAULT_MODEL": (("serve",), f"alias or model ID (default {DEFAULT_MODEL})"),
    "BANANA_MODEL_ALIASES": (("serve", "worker"), "alias=model-id,… over the built-in table"),
    "BANANA_WORKERS": (("serve", "worker"), "images made at once (default 4)"),
    "BANANA_JOB_LEASE_SECONDS": (("serve", "worker"), "a job with no heartbeat this long runs again (60)"),
    "BANANA_GEMINI_TIMEOUT_SECONDS": (("serve", "worker"), "one generateContent call (180)"),
    "BANANA_SHUTDOWN_GRACE_SECONDS": (("serve", "worker"), "on SIGTERM, time for running jobs (25)"),
    "BANANA_SLACK_RETRY_DELAYS": (("serve", "worker"), "seconds before each further try (5,30,120)"),
    "BANANA_SLACK_SHARE_TIMEOUT_SECONDS": (("serve", "worker"), "wait for an upload to show (20)"),
    "BANANA_LIMITS": (("serve",), "scope/period=amount,… checked before anything is queued; off for none"),
    "BANANA_USER_CONCURRENCY": (("serve", "worker"), "running jobs per person; claims go round-robin (2)"),
    "BANANA_VARIATIONS": (("serve", "worker"), "results made by a card's Variations button (4, at most 8)"),
    "BANANA_ADMINS": (("serve",), "Slack user ids of the bot's admins (comma-separated)"),
    "BANANA_PRICES_FILE": (("serve", "worker"), "a price table (JSON) that replaces the built-in one"),
    "BANANA_LISTEN": (
        ("serve", "worker"),
        "PostgreSQL: on (default) wakes workers by LISTEN/NOTIFY; off polls",
    ),
    "BANANA_POLL_SECONDS": (
        ("serve", "worker"),
        "PostgreSQL with LISTEN, a serve's workers on SQLite: how often idle workers look anyway (1)",
    ),
    "METRICS_PORT": (("serve", "worker"), "worker and Socket Mode: serve GET /metrics and /healthz here"),
    "LOG_LEVEL": (("serve", "worker"), "DEBUG, INFO, WARNING or ERROR (default INFO)"),
    "LOG_FORMAT": (("serve", "worker"), "text (default) or json: one object a line, with the job's ids"),
}


def variables_for(role: Role) -> list[tuple[str, str]]:
    return [(name, text) for name, (roles, text) in VARIABLES.items() if role in roles]


def load_settings(environ: Mapping[str, str] | None = None, *, role: Role = "serve") -> Settings:
    """Build settings from ``environ`` (default ``os.environ``) for ``role``; list every problem at once.
    A ``worker`` serves no HTTP, so it needs no signing secret and no port."""
    env = os.environ if environ is None else environ

    def get(name: str) -> str | None:
        value = env.get(name, "").strip()
        return value or None

    problems: list[str] = []
    app_token = get("SLACK_APP_TOKEN")
    http_mode = role == "serve" and not app_token
    client_id = get("SLACK_CLIENT_ID")
    oauth = client_id is not None
    required = ["GEMINI_API_KEY"] + (["SLACK_SIGNING_SECRET"] if http_mode else [])
    if oauth:
        required += ["BANANA_ENCRYPTION_KEY"] + (["SLACK_CLIENT_SECRET"] if role == "serve" else [])
        if get("SLACK_BOT_TOKEN"):
            problems.append(
                "set SLACK_BOT_TOKEN (one workspace) or SLACK_CLIENT_ID and SLACK_CLIENT_SECRET (installed "
                "through OAuth in many workspaces), not both"
            )
    else:
        required.insert(0, "SLACK_BOT_TOKEN")
    problems += [f"{name} is not set: get it from {_WHERE[name]}" for name in required if not get(name)]
    encryption_key = get("BANANA_ENCRYPTION_KEY")
    if oauth and encryption_key and (why := check_key(encryption_key)):
        problems.append(why)
    if app_token and not app_token.startswith("xapp-"):
        problems.append("SLACK_APP_TOKEN must be an app-level xapp- token with connections:write")
    bot_token = get("SLACK_BOT_TOKEN")
    if bot_token and not bot_token.startswith("xoxb-"):
        problems.append("SLACK_BOT_TOKEN must be a bot token that starts with xoxb- (OAuth & Permissions)")
    for name in SECRETS:
        value = get(name) or ""
        if "..." in value:
            problems.append(f"{name} still holds the placeholder from .env.example")
        elif any(c.isspace() or not c.isascii() for c in value):
            problems.append(
                f"{name} contains a space or a character that isn't plain ASCII: it was probably copied "
                "with something extra (an ellipsis, a line break); copy it again"
            )

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

    def port_of(name: str) -> int | None:
        raw = get(name)
        if raw is None:
            return None
        if not (raw.isdigit() and 1 <= int(raw) <= 65535):
            problems.append(f"{name}={raw!r} is not a port: use a whole number from 1 to 65535")
            return None
        return int(raw)

    port = (port_of("PORT") if http_mode or (oauth and role == "serve") else None) or 3000
    metrics_port = port_of("METRICS_PORT")
    workers = number("BANANA_WORKERS", 4, minimum=0)
    per_user = number("BANANA_USER_CONCURRENCY", 2, minimum=1)
    variations = number("BANANA_VARIATIONS", 4, minimum=1)
    if variations > MAX_VARIATIONS:
        problems.append(f"BANANA_VARIATIONS must be at most {MAX_VARIATIONS}: each is a paid image")
    lease = number("BANANA_JOB_LEASE_SECONDS", 60, minimum=3)
    poll = number("BANANA_POLL_SECONDS", 1.0, minimum=0.05)
    listen = (get("BANANA_LISTEN") or "on").strip().lower()
    if listen not in ("on", "off"):
        problems.append(f"BANANA_LISTEN={listen!r} must be on or off")
    timeout = number("BANANA_GEMINI_TIMEOUT_SECONDS", 180, minimum=1)
    grace = number("BANANA_SHUTDOWN_GRACE_SECONDS", 25, minimum=0)
    share_timeout = number("BANANA_SLACK_SHARE_TIMEOUT_SECONDS", 20, minimum=0)
    retry_delays = _parse_delays(get("BANANA_SLACK_RETRY_DELAYS"), problems)
    aliases: dict[str, str] = {}
    try:
        aliases = _parse_aliases(get("BANANA_MODEL_ALIASES") or "")
    except ConfigError as err:
        problems += err.problems
    limits: tuple[Limit, ...] = ()
    try:
        limits = parse_limits(get("BANANA_LIMITS"))
    except ConfigError as err:
        problems += err.problems
    admins = tuple(a for a in re.split(r"[\s,]+", get("BANANA_ADMINS") or "") if a)
    problems += [
        f"BANANA_ADMINS: {a!r} is not a Slack user id (U… or W…; Profile → ⋮ → Copy member ID)"
        for a in admins
        if not _USER_ID.match(a)
    ]
    prices: PriceTable | None = None
    try:
        prices = load_prices(get("BANANA_PRICES_FILE"))
    except ConfigError as err:
        problems += err.problems
    default_model = get("BANANA_DEFAULT_MODEL") or DEFAULT_MODEL
    try:
        Catalog(aliases).resolve(default_model)
    except OptionError:
        names = ", ".join(Catalog(aliases).aliases)
        problems.append(
            f"BANANA_DEFAULT_MODEL={default_model!r} is neither an alias ({names}) nor a gemini-… model ID"
        )
    if problems:
        raise ConfigError(problems)
    assert prices is not None  # read, or its problem raised just above

    return Settings(
        slack_bot_token="" if oauth else get("SLACK_BOT_TOKEN") or "",
        gemini_api_key=get("GEMINI_API_KEY") or "",
        slack_client_id=client_id,
        slack_client_secret=get("SLACK_CLIENT_SECRET") if oauth else None,
        encryption_key=encryption_key if oauth else None,
        slack_signing_secret=get("SLACK_SIGNING_SECRET"),
        slack_app_token=app_token,
        slack_api_url=get("SLACK_API_URL") or DEFAULT_SLACK_API_URL,
        gemini_api_url=(get("GEMINI_API_URL") or DEFAULT_GEMINI_API_URL).rstrip("/"),
        database_url=database_url_from(env),
        port=port,
        metrics_port=metrics_port,
        default_model=default_model,
        workers=int(workers),
        job_lease_seconds=lease,
        model_aliases=aliases,
        gemini_timeout_seconds=timeout,
        shutdown_grace_seconds=grace,
        slack_retry_delays=retry_delays,
        slack_share_timeout_seconds=share_timeout,
        prices=prices,
        limits=limits,
        admins=admins,
        user_concurrency=int(per_user),
        variations=int(variations),
        listen=listen != "off",
        poll_seconds=poll,
    )
