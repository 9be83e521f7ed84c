"""FakeSlack.hold: a method's effects happen at once, its responses wait until released."""

from __future__ import annotations

import contextlib
import threading

import pytest
from slack_sdk import WebClient

from bot.sandbox.fake_slack import FakeSlack


def test_hold_delays_the_response_but_not_the_effect(fake: FakeSlack) -> None:
    client = WebClient(token=fake.bot_token, base_url=fake.api_url)
    answers: list[str] = []
    with fake.hold("chat.postMessage") as held:
        thread = threading.Thread(
            target=lambda: answers.append(str(client.chat_postMessage(channel="C0GENERAL", text="hi")["ts"]))
        )
        thread.start()
        held.wait_for_call()
        assert [m["text"] for m in fake.messages] == ["hi"]  # posted ...
        assert answers == []  # ... but the client has not heard back
        assert client.auth_test()["ok"]  # other methods are not held
    thread.join(timeout=5)
    assert answers == [fake.messages[0]["ts"]]
    assert held.released and held.held == 1
    client.chat_postMessage(channel="C0GENERAL", text="again")  # released: answered at once


def test_one_hold_per_method_and_stop_releases_it() -> None:
    fake = FakeSlack().start()
    client = WebClient(token=fake.bot_token, base_url=fake.api_url, timeout=5)
    held = fake.hold("auth.test")
    with pytest.raises(ValueError, match="already held"):
        fake.hold("auth.test")

    def call() -> None:
        with contextlib.suppress(Exception):  # the fake stopped under the call; any outcome will do
            client.api_call("auth.test")

    thread = threading.Thread(target=call)
    thread.start()
    held.wait_for_call()
    fake.stop()
    assert held.released
    thread.join(timeout=5)
    assert not thread.is_alive()
