"""What an operator deploys from: the Slack app manifest, the container image and the compose file. Read
and checked here; built and validated with Docker where a Docker engine is running (skipped otherwise)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.blocks import EDIT_SHORTCUT
from bot.installations import BOT_SCOPES
from bot.settings import VARIABLES

ROOT = Path(__file__).resolve().parent.parent


def load(name: str) -> dict[str, Any]:
    data = yaml.safe_load((ROOT / name).read_text())
    assert isinstance(data, dict)
    return data


def test_the_manifest_declares_what_the_app_uses() -> None:
    manifest = load("manifest.yml")
    assert manifest["display_information"]["name"]
    features, settings = manifest["features"], manifest["settings"]
    assert [c["command"] for c in features["slash_commands"]] == ["/banana"]
    assert [s["callback_id"] for s in features["shortcuts"]] == [EDIT_SHORTCUT]
    assert len(features["bot_user"]["display_name"]) <= 80
    assert settings["interactivity"]["is_enabled"] is True  # the result cards' buttons
    events = set(settings["event_subscriptions"]["bot_events"])
    assert {"app_mention", "message.channels", "message.groups", "message.im"} <= events
    assert {"app_uninstalled", "tokens_revoked"} <= events
    # An install through /slack/install (OAuth mode) asks for exactly the manifest's scopes.
    assert sorted(BOT_SCOPES) == sorted(manifest["oauth_config"]["scopes"]["bot"])


def test_compose_runs_postgresql_two_web_processes_and_two_workers() -> None:
    services = load("compose.yaml")["services"]
    assert services["db"]["image"].startswith("postgres:")
    assert services["migrate"]["command"] == ["migrate"]
    web, worker = services["web"], services["worker"]
    assert web["command"] == ["serve"] and web["deploy"]["replicas"] == 2
    assert worker["command"] == ["worker"] and worker["deploy"]["replicas"] == 2
    assert web["environment"]["BANANA_WORKERS"] == "0"
    assert "9100" in worker["healthcheck"]["test"][-1] and worker["environment"]["METRICS_PORT"] == "9100"
    for service in (web, worker):
        assert set(service["environment"]) <= set(VARIABLES) | {"DATABASE_URL"}
        assert service["depends_on"]["migrate"]["condition"] == "service_completed_successfully"


def test_the_image_runs_as_a_user_and_serves_by_default() -> None:
    lines = [line.strip() for line in (ROOT / "Dockerfile").read_text().splitlines()]
    assert "USER banana" in lines
    assert 'ENTRYPOINT ["banana"]' in lines and 'CMD ["serve"]' in lines
    assert lines.index("USER banana") > max(i for i, line in enumerate(lines) if line.startswith("RUN"))


def docker_engine() -> bool:
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "info"], capture_output=True, timeout=30, check=False).returncode == 0


@pytest.mark.skipif(not docker_engine(), reason="no Docker engine here (the docker client alone can't build)")
def test_the_image_builds_and_the_compose_file_validates() -> None:
    build = subprocess.run(
        ["docker", "build", "-q", "-t", "nano-banana-slack:test", "."],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert build.returncode == 0, build.stderr
    run = subprocess.run(
        ["docker", "run", "--rm", "nano-banana-slack:test", "--help"], capture_output=True, text=True
    )
    assert run.returncode == 0 and "usage: banana" in run.stdout
    env = {
        "SLACK_BOT_TOKEN": "xoxb-1",
        "SLACK_SIGNING_SECRET": "s",
        "GEMINI_API_KEY": "k",
        "PATH": "/usr/bin:/bin",
    }
    config = subprocess.run(
        ["docker", "compose", "config", "-q"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert config.returncode == 0, config.stderr
