"""The Slack gateway in-process: the real slack_sdk client against the stand-in Slack, and how each
answer becomes one of the bot's errors."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import httpx
import pytest

from bot.errors import (
    AttachmentError,
    ChannelArchived,
    NotInChannel,
    SlackAuthError,
    SlackDeliveryFailed,
    SlackError,
    SlackUnavailable,
)
from bot.references import fetch_reference
from bot.sandbox.fake_slack import TINY_PNG, FakeSlack
from bot.slack import SHARE_POLLS, SlackGateway, web_client

CHANNEL = "C0GENERAL"


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        yield fake


@pytest.fixture
def gateway(slack: FakeSlack) -> Iterator[SlackGateway]:
    with httpx.Client() as http:
        client = web_client(token=slack.bot_token, base_url=slack.api_url)
        yield SlackGateway(client, http=http, api_url=slack.api_url, share_timeout=2.0)


@pytest.mark.parametrize(
    ("error", "status", "kind", "settled"),
    [
        ("not_in_channel", 200, NotInChannel, None),
        ("channel_not_found", 200, NotInChannel, None),
        ("is_archived", 200, ChannelArchived, None),
        ("invalid_auth", 200, SlackAuthError, None),
        ("token_revoked", 200, SlackAuthError, None),
        ("msg_too_long", 200, SlackDeliveryFailed, None),
        ("internal_error", 200, SlackUnavailable, False),  # may have half-happened
        ("ratelimited", 200, SlackUnavailable, True),
        ("edge", 500, SlackUnavailable, False),  # Slack's edge HTML page: it may have posted
    ],
)
def test_each_answer_becomes_one_of_the_bots_errors(
    slack: FakeSlack,
    gateway: SlackGateway,
    error: str,
    status: int,
    kind: type[SlackError],
    settled: bool | None,
) -> None:
    slack.fail("chat.postMessage", error=error, http_status=status)
    with pytest.raises(SlackError) as info:
        gateway.post(CHANNEL, "hello")
    assert type(info.value) is kind and info.value.method == "chat.postMessage"
    if settled is not None:
        assert isinstance(info.value, SlackUnavailable) and info.value.settled is settled
    # A 5xx is never resent blindly: Slack may have posted before its edge failed.
    assert len(slack.calls_to("chat.postMessage")) == 1


def test_a_rate_limit_is_waited_out_then_raised_with_retry_after(
    slack: FakeSlack, gateway: SlackGateway
) -> None:
    slack.fail("chat.postMessage", retry_after=0, times=4)  # the client's own three retries, then one more
    with pytest.raises(SlackUnavailable) as info:
        gateway.post(CHANNEL, "hello")
    assert info.value.settled and info.value.retry_after == 0
    assert len(slack.calls_to("chat.postMessage")) == 4
    assert gateway.post(CHANNEL, "hello again")  # the next call goes through


def test_a_permanent_failure_and_a_temporary_one_are_siblings() -> None:
    assert not issubclass(SlackUnavailable, SlackDeliveryFailed)
    assert not issubclass(SlackDeliveryFailed, SlackUnavailable)


def test_user_names_are_looked_up_once_and_cached(slack: FakeSlack, gateway: SlackGateway) -> None:
    slack.set_user("UBOB", profile={"display_name": "", "real_name": "Bob Stone"})
    assert gateway.user_name("UBOB") == "Bob Stone"  # no display name: the full name
    assert gateway.user_name("UBOB") == "Bob Stone"
    assert len(slack.calls_to("users.info")) == 1
    assert gateway.user_name("not-a-user") is None  # user_not_found: the mention stays as it is


def test_only_slacks_file_host_is_fetched_with_the_token(slack: FakeSlack, gateway: SlackGateway) -> None:
    hosted = slack.host_file(TINY_PNG, name="dot.png", mimetype="image/png")
    assert gateway.download(str(hosted["url_private_download"])) == TINY_PNG
    assert slack.downloads[-1].authorized
    outside = f"{slack.external_host}/anything.png"
    with pytest.raises(AttachmentError, match="file host"):
        gateway.download(outside)
    assert slack.external_requests == []  # not fetched at all, with or without the token
    slack.fail("files.info", error="file_not_found")
    with pytest.raises(SlackDeliveryFailed):
        gateway.file_info("F404")


def test_a_download_that_lands_on_the_login_page_is_not_taken_for_an_image(slack: FakeSlack) -> None:
    with httpx.Client() as http:
        wrong = web_client(token="xoxb-not-the-token", base_url=slack.api_url)
        gateway = SlackGateway(wrong, http=http, api_url=slack.api_url)
        hosted = slack.host_file(TINY_PNG, name="dot.png", mimetype="image/png")
        assert gateway.download(str(hosted["url_private_download"])).startswith(b"<!DOCTYPE html>")
        with pytest.raises(AttachmentError, match=r"dot\.png"):
            fetch_reference(hosted, gateway)


def test_an_external_file_is_never_fetched(slack: FakeSlack, gateway: SlackGateway) -> None:
    remote = slack.host_external_file(TINY_PNG, name="drive.png", mimetype="image/png")
    with pytest.raises(AttachmentError, match="outside Slack"):
        fetch_reference(remote, gateway)
    assert slack.external_requests == []


def test_share_polls_start_short_and_grow_to_a_cap() -> None:
    delays = list(itertools.islice(SHARE_POLLS.delays(), 20))
    assert delays[0] <= 0.2
    assert all(b >= a for a, b in itertools.pairwise(delays))
    assert sum(delays[:3]) < 1.0  # four looks (the first at once) within the first second
    assert delays[-1] == SHARE_POLLS.most <= 2.0  # then no more than one call every 2 s (Tier 4)
