from __future__ import annotations

import pytest

from bot.errors import ConfigError
from bot.settings import load_settings

BASE = {"SLACK_BOT_TOKEN": "xoxb-1", "GEMINI_API_KEY": "key-1", "SLACK_SIGNING_SECRET": "s3cret"}


def test_every_missing_value_is_listed_with_where_to_get_it() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings({})
    text = " ".join(info.value.problems)
    for name in ("SLACK_BOT_TOKEN", "GEMINI_API_KEY", "SLACK_SIGNING_SECRET"):
        assert name in text
    assert "aistudio.google.com" in text


def test_socket_mode_needs_no_signing_secret() -> None:
    settings = load_settings(
        {"SLACK_BOT_TOKEN": "xoxb-1", "GEMINI_API_KEY": "k", "SLACK_APP_TOKEN": "xapp-1"}
    )
    assert settings.socket_mode


def test_defaults_follow_the_contract() -> None:
    settings = load_settings(BASE)
    assert settings.slack_api_url == "https://slack.com/api/"
    assert settings.gemini_api_url == "https://generativelanguage.googleapis.com"
    assert settings.port == 3000
    assert settings.default_model == "nano-banana-2.1"
    assert 4 <= settings.workers <= 8
    assert settings.job_lease_seconds == 60
    assert settings.database_url.startswith("sqlite:///") and settings.database_url.endswith("banana.db")


def test_bad_numbers_and_aliases_are_reported() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings({**BASE, "PORT": "http", "BANANA_MODEL_ALIASES": "nonsense"})
    assert len(info.value.problems) == 2


def test_repr_hides_secrets() -> None:
    settings = load_settings({**BASE, "DATABASE_URL": "postgresql://u:pw@db/x"})
    assert "xoxb-1" not in repr(settings) and "key-1" not in repr(settings) and "pw" not in repr(settings)


def test_token_shapes_and_placeholders_are_caught() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings({**BASE, "SLACK_BOT_TOKEN": "xoxp-user-token"})
    assert "xoxb-" in info.value.problems[0]
    with pytest.raises(ConfigError) as placeholder:
        load_settings({**BASE, "SLACK_BOT_TOKEN": "xoxb-...", "GEMINI_API_KEY": "..."})
    assert len(placeholder.value.problems) == 2
    assert all("placeholder" in p for p in placeholder.value.problems)


OAUTH = {"SLACK_CLIENT_ID": "1111.2222", "GEMINI_API_KEY": "k", "SLACK_SIGNING_SECRET": "s3cret"}
KEY = "aGVsbG8tdGhpcy1pcy1hLWZlcm5ldC1rZXktb2YtMzI="  # 32 url-safe base64 bytes


def test_oauth_mode_needs_the_client_secret_and_a_fernet_key_and_no_bot_token() -> None:
    settings = load_settings({**OAUTH, "SLACK_CLIENT_SECRET": "cs", "BANANA_ENCRYPTION_KEY": KEY})
    assert settings.oauth and settings.slack_bot_token == "" and settings.encryption_key == KEY
    assert "cs" not in repr(settings) and KEY not in repr(settings)
    with pytest.raises(ConfigError) as missing:
        load_settings(OAUTH)
    assert [p.split(" ")[0] for p in missing.value.problems] == [
        "BANANA_ENCRYPTION_KEY",
        "SLACK_CLIENT_SECRET",
    ]
    assert "Fernet.generate_key()" in missing.value.problems[0]
    with pytest.raises(ConfigError) as bad_key:
        load_settings({**OAUTH, "SLACK_CLIENT_SECRET": "cs", "BANANA_ENCRYPTION_KEY": "not-a-key"})
    assert bad_key.value.problems == [
        "BANANA_ENCRYPTION_KEY is not a Fernet key (32 url-safe base64-encoded bytes); make one with "
        '`python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"`'
    ]
    with pytest.raises(ConfigError) as both:
        load_settings(
            {**OAUTH, "SLACK_CLIENT_SECRET": "cs", "BANANA_ENCRYPTION_KEY": KEY, "SLACK_BOT_TOKEN": "xoxb-1"}
        )
    assert "not both" in both.value.problems[0]
    # A worker exchanges no codes: the client id (the installations' key) and the key are enough.
    worker = load_settings(
        {"SLACK_CLIENT_ID": "1111.2222", "GEMINI_API_KEY": "k", "BANANA_ENCRYPTION_KEY": KEY}, role="worker"
    )
    assert worker.oauth and worker.slack_client_secret is None
