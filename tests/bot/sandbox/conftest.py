"""The stand-ins' own tests share a fresh stand-in Slack that must end without a bug of its own."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bot.sandbox.fake_slack import FakeSlack


@pytest.fixture
def fake() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        yield fake
        assert fake.errors == []
