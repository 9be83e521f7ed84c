"""Issue 17, start-up as an operator meets it: every mistake is one readable line and a non-zero exit."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.sandbox.fake_slack import FakeSlack
from bot.sandbox.process import ROOT, AppProcess, free_port
from tests.conftest import PG_URL

pytestmark = pytest.mark.e2e
APP = str(ROOT / "app.py")


@pytest.fixture(scope="module")
def slack() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        yield fake


def base_env(slack: FakeSlack, tmp_path: Path) -> dict[str, str]:
    return {
        "SLACK_BOT_TOKEN": slack.bot_token,
        "SLACK_SIGNING_SECRET": slack.signing_secret,
        "GEMINI_API_KEY": "sandbox-gemini-key",
        "SLACK_API_URL": slack.api_url,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'banana.db'}",
        "PORT": str(free_port()),
    }


def run(args: list[str], *, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, APP, *args],
        cwd=cwd,
        env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    """The failure as the operator sees it: a non-zero exit and exactly one line, first, no traceback."""
    assert result.returncode != 0, result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


# --- the database ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["serve", "worker", "migrate"])
def test_a_database_path_that_cannot_be_opened_is_one_line_with_a_hint(
    slack: FakeSlack, tmp_path: Path, command: str
) -> None:
    env = {**base_env(slack, tmp_path), "DATABASE_URL": "sqlite:////no/such/folder/banana.db"}
    line = one_line(run([command], cwd=tmp_path, env=env))
    assert "sqlite:////no/such/folder/banana.db" in line
    assert "check the path" in line


def test_a_missing_postgresql_database_names_it_hides_the_password_and_says_create_it(
    slack: FakeSlack, tmp_path: Path
) -> None:
    if not PG_URL:
        pytest.skip("needs PostgreSQL: set TEST_DATABASE_URL")
    url = "postgresql://postgres:hunter2@127.0.0.1:5432/banana_no_such_db"
    for command in ("serve", "worker", "migrate"):
        line = one_line(run([command], cwd=tmp_path, env={**base_env(slack, tmp_path), "DATABASE_URL": url}))
        assert "postgresql://postgres:***@127.0.0.1:5432/banana_no_such_db" in line
        assert "does not exist" in line and "create the database" in line
        assert "hunter2" not in line


def test_a_database_without_its_driver_says_install_it(slack: FakeSlack, tmp_path: Path) -> None:
    env = {**base_env(slack, tmp_path), "DATABASE_URL": "mysql://bob:secret@db.example/banana"}
    line = one_line(run(["migrate"], cwd=tmp_path, env=env))
    assert "mysql://bob:***@db.example/banana" in line and "driver" in line
    assert "secret" not in line


# --- the port ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("port", ["70000", "0", "eighty"])
def test_a_port_out_of_range_is_refused(slack: FakeSlack, tmp_path: Path, port: str) -> None:
    line = one_line(run(["serve"], cwd=tmp_path, env={**base_env(slack, tmp_path), "PORT": port}))
    assert "PORT" in line and "65535" in line


def test_a_port_in_use_names_the_port_and_the_setting(slack: FakeSlack, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))  # noqa: S104 - where the app would listen
        taken.listen()
        port = taken.getsockname()[1]
        line = one_line(run(["serve"], cwd=tmp_path, env={**base_env(slack, tmp_path), "PORT": str(port)}))
    assert f"port {port} is already in use" in line and "PORT" in line


def test_the_port_actually_bound_is_logged(slack: FakeSlack, tmp_path: Path) -> None:
    env = base_env(slack, tmp_path)
    with AppProcess(env, log_path=tmp_path / "app.log") as app:
        app.wait_healthy()
        assert f"listening on http://0.0.0.0:{env['PORT']}" in app.logs()


# --- settings ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value", "needle"),
    [
        ("BANANA_DEFAULT_MODEL", "dall-e-3", "BANANA_DEFAULT_MODEL"),
        ("BANANA_MODEL_ALIASES", "pro=dall-e-3", "BANANA_MODEL_ALIASES"),
        ("SLACK_BOT_TOKEN", "xoxb-123 456", "SLACK_BOT_TOKEN"),
        ("SLACK_BOT_TOKEN", "xoxb-123…", "SLACK_BOT_TOKEN"),
        ("GEMINI_API_KEY", "AIza key", "GEMINI_API_KEY"),
        ("SLACK_SIGNING_SECRET", "sécret", "SLACK_SIGNING_SECRET"),
    ],
    ids=["default-model", "aliases", "token-space", "token-ellipsis", "key-space", "secret-accent"],
)
def test_a_bad_setting_is_named_in_one_line(
    slack: FakeSlack, tmp_path: Path, name: str, value: str, needle: str
) -> None:
    line = one_line(run(["serve"], cwd=tmp_path, env={**base_env(slack, tmp_path), name: value}))
    assert needle in line
    assert value not in line or name.startswith("BANANA")  # secrets are not echoed


def test_missing_settings_name_the_dotenv_that_was_looked_for(tmp_path: Path) -> None:
    result = run(["serve"], cwd=tmp_path, env={})
    assert result.returncode == 2
    first = result.stderr.splitlines()[0]
    assert first.startswith("Nano Banana can't start") and str(tmp_path / ".env") in first
    assert "not found" in first


def test_a_rejected_token_is_the_first_thing_printed(slack: FakeSlack, tmp_path: Path) -> None:
    env = {**base_env(slack, tmp_path), "SLACK_BOT_TOKEN": "xoxb-wrong"}
    line = one_line(run(["serve"], cwd=tmp_path, env=env))  # no Bolt or slack_sdk lines before it
    assert line.startswith("Nano Banana can't start") and "invalid_auth" in line


def test_a_worker_needs_no_signing_secret(slack: FakeSlack, tmp_path: Path) -> None:
    env = base_env(slack, tmp_path)
    del env["SLACK_SIGNING_SECRET"]
    with AppProcess(env, command="worker", log_path=tmp_path / "worker.log") as worker:
        worker.wait_for_log("workers started")
        assert worker.terminate() == 0


@pytest.mark.parametrize(
    ("command", "names"),
    [
        ("serve", ["SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "SLACK_APP_TOKEN", "PORT", "DATABASE_URL"]),
        ("worker", ["SLACK_BOT_TOKEN", "GEMINI_API_KEY", "BANANA_WORKERS", "DATABASE_URL"]),
        ("migrate", ["DATABASE_URL"]),
        ("sandbox", ["--out"]),
    ],
)
def test_every_command_has_its_own_help(tmp_path: Path, command: str, names: list[str]) -> None:
    result = run([command, "--help"], cwd=tmp_path, env={})
    assert result.returncode == 0, result.stderr
    for name in names:
        assert name in result.stdout
    if command == "worker":
        assert "SLACK_SIGNING_SECRET" not in result.stdout


# --- the sandbox ------------------------------------------------------------------------------------------


def test_the_sandbox_refuses_an_output_folder_it_cannot_use(tmp_path: Path) -> None:
    a_file = tmp_path / "not-a-folder"
    a_file.write_text("x")
    line = one_line(run(["sandbox", "--out", str(a_file)], cwd=tmp_path, env={}))
    assert str(a_file) in line


def test_the_sandbox_stops_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, APP, "sandbox", "--out", str(tmp_path / "out")],
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    first = process.stdout.readline()  # the sandbox is under way
    assert first
    process.send_signal(signal.SIGINT)
    _out, err = process.communicate(timeout=60)
    assert process.returncode == 130
    assert "Traceback" not in err and "stopped" in err.lower()


def test_oauth_mode_without_a_valid_encryption_key_refuses_to_start_with_one_line(
    slack: FakeSlack, tmp_path: Path
) -> None:
    env = {k: v for k, v in base_env(slack, tmp_path).items() if k != "SLACK_BOT_TOKEN"}
    env |= {"SLACK_CLIENT_ID": slack.client_id, "SLACK_CLIENT_SECRET": slack.client_secret}
    missing = one_line(run([], cwd=tmp_path, env=env))
    assert missing.startswith("Nano Banana can't start: BANANA_ENCRYPTION_KEY is not set")
    assert "Fernet.generate_key()" in missing
    wrong = one_line(run([], cwd=tmp_path, env={**env, "BANANA_ENCRYPTION_KEY": "hunter2"}))
    assert "BANANA_ENCRYPTION_KEY is not a Fernet key" in wrong and "hunter2" not in wrong
