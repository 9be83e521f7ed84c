"""The command line as an operator meets it: .env, migrate, start-up errors, --help, sandbox output."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from bot.sandbox.fake_slack import FakeSlack
from bot.sandbox.process import ROOT, AppProcess, free_port
from bot.sandbox.scenario import clear_outputs

pytestmark = pytest.mark.e2e
APP = str(ROOT / "app.py")


def run(args: list[str], *, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, APP, *args],
        cwd=cwd,
        env={"PATH": "/usr/bin:/bin", **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_migrate_needs_only_the_database_and_reads_dotenv_from_the_working_directory(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    (work / ".env").write_text(f"DATABASE_URL=sqlite:///{tmp_path / 'from-dotenv.db'}\n")
    (tmp_path / ".env").write_text(f"DATABASE_URL=sqlite:///{tmp_path / 'from-parent.db'}\n")
    result = run(["migrate"], cwd=work)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "from-dotenv.db").exists()
    assert not (tmp_path / "from-parent.db").exists()


def test_real_environment_wins_over_dotenv(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(f"DATABASE_URL=sqlite:///{tmp_path / 'dotenv.db'}\n")
    result = run(["migrate"], cwd=tmp_path, env={"DATABASE_URL": f"sqlite:///{tmp_path / 'real.db'}"})
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "real.db").exists()
    assert not (tmp_path / "dotenv.db").exists()


def test_missing_configuration_is_listed_in_one_message(tmp_path: Path) -> None:
    result = run(["serve"], cwd=tmp_path)
    assert result.returncode == 2
    for name in ("SLACK_BOT_TOKEN", "GEMINI_API_KEY", "SLACK_SIGNING_SECRET"):
        assert name in result.stderr
    assert "Traceback" not in result.stderr


def test_a_rejected_bot_token_stops_with_one_clear_line(tmp_path: Path) -> None:
    with FakeSlack() as slack:
        result = run(
            ["serve"],
            cwd=tmp_path,
            env={
                "SLACK_BOT_TOKEN": "xoxb-wrong",
                "SLACK_SIGNING_SECRET": "s",
                "GEMINI_API_KEY": "k",
                "SLACK_API_URL": slack.api_url,
                "PORT": str(free_port()),
                "DATABASE_URL": f"sqlite:///{tmp_path / 'b.db'}",
            },
        )
    assert result.returncode == 2
    assert "Slack rejected SLACK_BOT_TOKEN (invalid_auth)" in result.stderr
    assert "Traceback" not in result.stderr
    assert "xoxb-wrong" not in result.stderr + result.stdout


def test_a_rejected_app_token_stops_with_one_clear_line(tmp_path: Path) -> None:
    with FakeSlack() as slack:
        result = run(
            ["serve"],
            cwd=tmp_path,
            env={
                "SLACK_BOT_TOKEN": slack.bot_token,
                "SLACK_APP_TOKEN": "xapp-wrong",
                "GEMINI_API_KEY": "k",
                "SLACK_API_URL": slack.api_url,
                "DATABASE_URL": f"sqlite:///{tmp_path / 'b.db'}",
            },
        )
    assert result.returncode == 2
    assert "Slack refused the connection (invalid_auth). Check SLACK_APP_TOKEN" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_unreachable_slack_stops_with_one_clear_line(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/api/"
    result = run(
        ["serve"],
        cwd=tmp_path,
        env={
            "SLACK_BOT_TOKEN": "xoxb-1",
            "SLACK_SIGNING_SECRET": "s",
            "GEMINI_API_KEY": "k",
            "SLACK_API_URL": url,
            "PORT": str(free_port()),
            "DATABASE_URL": f"sqlite:///{tmp_path / 'b.db'}",
        },
    )
    assert result.returncode == 2
    assert f"can't reach Slack at {url}" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_installed_banana_command_is_the_same_program(tmp_path: Path) -> None:
    banana = Path(sys.executable).parent / "banana"  # pip install -e . puts it beside the interpreter
    result = subprocess.run(
        [str(banana), "migrate"],
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "DATABASE_URL": f"sqlite:///{tmp_path / 'b.db'}"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "b.db").exists()
    usage = subprocess.run([str(banana), "--help"], capture_output=True, text=True, timeout=60, check=False)
    assert usage.stdout.startswith("usage: banana") and "sandbox" in usage.stdout


def test_help_explains_the_commands(tmp_path: Path) -> None:
    result = run(["--help"], cwd=tmp_path)
    assert result.returncode == 0
    for command in ("[serve]", "worker", "migrate", "sandbox"):
        assert f"python app.py {command}" in result.stdout


def test_sandbox_clears_only_its_own_outputs(tmp_path: Path) -> None:
    for name in (
        "01-F1.jpg",
        "transcript.md",
        "app.log",
        "banana.db",
        "banana.db-wal",
        "keep.txt",
        ".env",
        "notes.md",
    ):
        (tmp_path / name).write_text("x")
    clear_outputs(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".env", "keep.txt", "notes.md"]


def test_app_process_runs_the_app_outside_the_repository(tmp_path: Path) -> None:
    # A relative SQLite path lands in the child's working directory: the log's folder, not the repository
    # (whose .env, if a developer filled one in, must not reach runs against the stand-ins).
    app = AppProcess(
        {"DATABASE_URL": "sqlite:///cwd-probe.db"}, command="migrate", log_path=tmp_path / "app.log"
    )
    app.start()
    assert app.process is not None
    assert app.process.wait(timeout=60) == 0, app.logs()
    app.terminate()
    assert (tmp_path / "cwd-probe.db").exists()


def test_sandbox_prints_what_a_person_needs_and_keeps_other_files(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    result = run(["sandbox", "--out", str(out)], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (out / "keep.txt").read_text() == "mine"
    assert "Got it" in result.stdout  # the ack's text, not its JSON body
    assert '{"' not in result.stdout
    assert not re.search(r"\d{10}\.\d{6}", result.stdout)  # no raw Slack timestamps
    assert "banana-1.jpg" not in result.stdout  # the Slack file name, not where the image is
    images = sorted(out.glob("[0-9][0-9]-*.jpg"))
    assert len(images) == 8  # three turns, a Variations press (four), a mention
    assert all(str(image) in result.stdout for image in images)
    assert "pressed Variations ×4" in result.stdout
    transcript = (out / "transcript.md").read_text()
    assert "(only visible to <@UALICE>) **banana**: 🍌 Got it" in transcript
    assert transcript.count("(removed once the image was in)") == 8
    assert transcript.count("[Variations ×4 · ~$") == 8  # a card under every image, its buttons shown
    assert transcript.count("a variation of result 3") == 4
