"""ruff and mypy run as part of the test command, with their settings from pyproject.toml."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    "args",
    [["ruff", "check", "."], ["ruff", "format", "--check", "."], ["mypy"]],
    ids=["ruff-check", "ruff-format", "mypy"],
)
def test_tool_is_clean(args: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_stand_in_modules_stay_small() -> None:
    """The stand-ins are split by concern; a module that grows past about 600 lines wants splitting."""
    sizes = {
        str(path.relative_to(ROOT)): len(path.read_text().splitlines())
        for path in (ROOT / "bot" / "sandbox").rglob("*.py")
    }
    assert {name: n for name, n in sizes.items() if n > 600} == {}


def test_env_example_is_plain_ascii_and_names_every_setting() -> None:
    from bot.settings import VARIABLES

    text = (ROOT / ".env.example").read_text()
    assert text.isascii()  # placeholders copied from it can't smuggle an ellipsis into a token
    assert [name for name in VARIABLES if name not in text] == []
