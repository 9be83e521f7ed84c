"""Issue 3, Slack's side: every Slack fault ends in the image or a clear message, never silence, never a
second Gemini charge.

The real app runs as a process against the stand-ins; the tests wait on the fakes and on the job rows
(``stack.env["DATABASE_URL"]``), never on the clock.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import pytest

from bot.models import Blob, Job, SlackEvent, Turn
from bot.sandbox.fake_slack import Delivery, Upload
from tests.e2e.conftest import CHANNEL, Stack, make_stack
from tests.e2e.conftest import rows as table_rows

pytestmark = pytest.mark.e2e

# Short delivery retries and share waits, so the slow paths run in seconds.
T = TypeVar("T")

FAST = {"BANANA_SLACK_RETRY_DELAYS": "0.5,0.5,0.5", "BANANA_SLACK_SHARE_TIMEOUT_SECONDS": "1"}


@pytest.fixture
def fast_stack(tmp_path: Path) -> Iterator[Stack]:
    """The app on SQLite with ``FAST`` delivery retries."""
    stacks = make_stack(tmp_path, "sqlite")
    stack = next(stacks)
    stack.start_app(**FAST)
    yield stack
    next(stacks, None)


# --- helpers -----------------------------------------------------------------------------------------


def rows(stack: Stack, model: type[T]) -> list[T]:
    return table_rows(stack.env["DATABASE_URL"], model)


def jobs(stack: Stack) -> list[Job]:
    return stack.jobs()


def finished_job(stack: Stack, n: int = 1, timeout: float = 30.0) -> Job:
    """The ``n``-th job, once it is done or failed."""

    def finished() -> Job | None:
        found = jobs(stack)
        if len(found) >= n and found[n - 1].state in ("done", "failed"):
            return found[n - 1]
        return None

    job: Job = stack.slack.wait_for(finished, timeout)
    return job


def image_of(stack: Stack, job: Job) -> Blob | None:
    """The image Gemini made for ``job``, as stored."""
    turns = {t.id: t for t in rows(stack, Turn)}
    result = turns.get(job.result_turn_id or -1)
    if result is None:
        return None
    blob_ids = [p["inlineData"]["blobId"] for p in result.parts if "blobId" in p.get("inlineData", {})]
    blobs = {b.id: b for b in rows(stack, Blob)}
    return blobs.get(blob_ids[-1]) if blob_ids else None


def shared(stack: Stack) -> list[Upload]:
    return [u for u in stack.slack.uploads if u.shared]


def roots(stack: Stack, channel: str = CHANNEL) -> list[dict[str, Any]]:
    return [
        m
        for m in stack.slack.messages
        if m.get("bot_id") and m["channel"] == channel and not m.get("thread_ts")
    ]


def mention(
    stack: Stack, text: str, *, channel: str = CHANNEL, ts: str = "1700000000.000100"
) -> dict[str, Any]:
    return {
        "type": "app_mention",
        "user": "UALICE",
        "text": f"<@{stack.slack.bot_user_id}> {text}",
        "channel": channel,
        "ts": ts,
        "event_ts": ts,
    }


def response(stack: Stack, n: int) -> dict[str, Any]:
    """The body of the ``n``-th post to a response_url (1-based), once it has arrived."""
    responses = stack.slack.wait_for(
        lambda: stack.slack.responses if len(stack.slack.responses) >= n else None
    )
    body: dict[str, Any] = responses[n - 1].body
    return body


def status_saying(stack: Stack, job: Job, needle: str) -> str:
    """The text of ``job``'s status message, once it contains ``needle`` (the job row is marked failed a
    moment before the person is told)."""

    def text() -> str | None:
        status = stack.slack.message(CHANNEL, str(job.status_ts))
        return str(status["text"]) if status and needle in str(status["text"]) else None

    found: str = stack.slack.wait_for(text)
    return found


def texts_in(stack: Stack, channel: str) -> list[str]:
    return [str(m.get("text")) for m in stack.slack.messages if m.get("bot_id") and m["channel"] == channel]


# --- 1. Slack delivers the same event again ------------------------------------------------------------


def test_redelivered_event_makes_one_job_while_running_and_after_it_finished(any_db_stack: Stack) -> None:
    """Slack retries an event it thinks failed up to three times (at once, after 1 minute, after 5 minutes)
    with ``x-slack-retry-num`` 1..3. Each copy is acknowledged with 200 and makes nothing: the first one's
    keys (``event:<id>`` and ``msg:<team>:<channel>:<ts>``) are in ``slack_event``, written with its job.
    The ledger has no TTL at all (nothing ever deletes from ``slack_event``: see ``bot/store.py``), so a
    copy that arrives after the job finished — standing in for the retry six minutes later — is
    recognised as surely as one that races the first delivery."""
    stack = any_db_stack
    stack.gemini.latency_s = 1.5  # the job is still "in Gemini" while the early retries land
    stack.start_app()
    event = mention(stack, "a fox in the snow")

    def deliver(retry: tuple[int, str] | None) -> Delivery:
        if retry is None:
            return stack.slack.send_event(event, event_id="Ev0SAME")
        return stack.slack.send_event(event, event_id="Ev0SAME", retry_num=retry[0], retry_reason=retry[1])

    # The first delivery and Slack's immediate retry (it thought the first timed out) race each other.
    with ThreadPoolExecutor(2) as pool:
        first, racing = pool.map(deliver, [None, (1, "http_timeout")])
    assert (first.status, racing.status) == (200, 200)
    stack.gemini.wait_for_requests(1)  # the job is running
    assert deliver((2, "http_error")).status == 200
    # The same message delivered as `message` too (another event id), itself a retry.
    twin = {**event, "type": "message", "channel_type": "channel"}
    twin_delivery = stack.slack.send_event(twin, event_id="Ev0TWIN", retry_num=1, retry_reason="http_timeout")
    assert twin_delivery.status == 200

    [upload] = stack.uploads(1)
    assert upload.thread_ts == event["ts"]
    assert finished_job(stack).state == "done"
    assert deliver((3, "http_timeout")).status == 200  # "six minutes later": after the job finished

    assert len(stack.gemini.requests) == 1
    assert [j.state for j in jobs(stack)] == ["done"]
    assert stack.slack.uploads == [upload]
    assert {e.dedupe_key for e in rows(stack, SlackEvent)} >= {
        "event:Ev0SAME",
        f"msg:{stack.slack.team_id}:{CHANNEL}:{event['ts']}",
    }
    assert not stack.slack.ephemerals  # nobody was told anything about the copies
    assert "Traceback" not in stack.logs()


# --- 2. Web API calls that fail ------------------------------------------------------------------------


def test_429_with_retry_after_is_waited_out_and_the_image_arrives_once(stack: Stack) -> None:
    slack = stack.slack
    methods = ("chat.postMessage", "files.getUploadURLExternal", "files.completeUploadExternal")
    for method in methods:
        slack.fail(method, retry_after=1)
    slack.send_command("a lighthouse at dusk")
    [upload] = stack.uploads(1, timeout=30)
    for method in methods:
        first, second = slack.calls_to(method)[:2]
        assert second.at - first.at >= 1.0, method  # slack_sdk's RateLimitErrorRetryHandler honoured it
    [root] = roots(stack)
    assert upload.thread_ts == root["ts"]
    job = finished_job(stack)
    assert (job.state, job.attempts) == ("done", 1)
    assert len(stack.gemini.requests) == 1
    assert shared(stack) == [upload]


TRANSIENT = {
    # beyond RateLimitErrorRetryHandler's 3 retries: the image is made, its upload is refused
    "complete-ratelimited": ("files.completeUploadExternal", {"retry_after": 0, "times": 4}, "command"),
    # a 5xx is not resent by the client (Slack may have acted before its edge failed): the job, which
    # knows what it already did, tries again later (Slack's edge answers an HTML page)
    "complete-500": ("files.completeUploadExternal", {"http_status": 500, "times": 1}, "mention"),
    "upload-url-500": ("files.getUploadURLExternal", {"http_status": 500, "times": 1}, "mention"),
    # the root message of a slash command: nothing is spent yet
    "root-500": ("chat.postMessage", {"http_status": 500, "times": 1}, "command"),
}


@pytest.mark.parametrize("case", TRANSIENT.values(), ids=TRANSIENT.keys())
def test_transient_slack_failure_is_tried_again_later_without_a_second_gemini_call(
    fast_stack: Stack, case: tuple[str, dict[str, Any], str]
) -> None:
    stack, slack = fast_stack, fast_stack.slack
    method, fault, via = case
    slack.fail(method, **fault)
    if via == "command":
        slack.send_command("a paper boat on a pond")
    else:
        slack.send_event(mention(stack, "a paper boat on a pond"))

    [upload] = stack.uploads(1, timeout=30)
    job = finished_job(stack)
    assert (job.state, job.attempts) == ("done", 2)  # released once, delivered on the second run
    assert len(stack.gemini.requests) == 1  # the stored answer was delivered, not paid for again
    assert shared(stack) == [upload]
    assert job.upload_file_id == upload.file_id
    assert len(roots(stack)) == (1 if via == "command" else 0)
    thread = str(roots(stack)[0]["ts"]) if via == "command" else "1700000000.000100"
    assert upload.thread_ts == thread
    if method != "chat.postMessage":  # the status message said why it was waiting, then went away
        assert any("trying again" in str(c.params.get("text")) for c in slack.calls_to("chat.update"))
        slack.wait_for(lambda: (slack.message(CHANNEL, str(job.status_ts)) or {}).get("deleted"))
    if method == "files.completeUploadExternal" and "retry_after" in fault:
        assert slack.calls_to("files.delete") == []  # a 429 is a clear "no": nothing to look for
    if fault.get("http_status") == 500 and method == "files.completeUploadExternal":
        # A 5xx leaves it open whether Slack took the file: the next run looked for it, then removed it
        # before uploading again, so a late share could not make a second image.
        [deleted] = slack.calls_to("files.delete")
        assert deleted.params["file"] != upload.file_id


def test_slack_refusing_the_upload_for_good_keeps_the_image_and_says_so(any_db_stack: Stack) -> None:
    stack, slack = any_db_stack, any_db_stack.slack
    stack.start_app(BANANA_SLACK_RETRY_DELAYS="0.3", BANANA_SLACK_SHARE_TIMEOUT_SECONDS="1")
    slack.fail("files.completeUploadExternal", retry_after=0, times=8)  # two runs of four calls each
    slack.send_command("a teapot in the rain")

    job = finished_job(stack)
    assert (job.state, job.error_code, job.attempts) == ("failed", "ratelimited", 2)
    blob = image_of(stack, job)
    assert blob is not None and blob.data  # Gemini's image is kept with the failed job
    assert len(stack.gemini.requests) == 1
    assert shared(stack) == []
    status = status_saying(stack, job, "couldn't post it")
    assert status.startswith("<@UALICE> ⚠️") and "`ratelimited` after 2 tries" in status


def test_channel_and_token_problems_answer_a_slash_command_privately(stack: Stack) -> None:
    slack = stack.slack
    cases = [
        # (channel, how Slack refuses, expected error_code, what the user is told)
        (
            "C0SECRET",
            lambda: slack.set_channel("C0SECRET", member=False),
            "not_in_channel",
            "/invite @banana",
        ),
        (
            "C0GONE",
            lambda: slack.fail("chat.postMessage", error="channel_not_found"),
            "channel_not_found",
            "/invite @banana",
        ),
        ("C0OLD", lambda: slack.set_channel("C0OLD", archived=True), "is_archived", "archived"),
        (
            "C0TOKEN",
            lambda: slack.fail("chat.postMessage", error="invalid_auth"),
            "invalid_auth",
            "rejected the bot's token",
        ),
    ]
    for n, (channel, refuse, code, told) in enumerate(cases, start=1):
        refuse()
        ack = slack.send_command("a mug", channel_id=channel)
        assert ack.status == 200
        body = response(stack, n)
        assert body["response_type"] == "ephemeral" and told in body["text"], (code, body)
        assert "Nothing was generated" in body["text"]
        job = finished_job(stack, n)
        assert (job.state, job.error_code) == ("failed", code)
        assert not texts_in(stack, channel)
    assert stack.gemini.requests == []  # nothing was spent on any of them
    assert slack.uploads == []


def test_channel_lost_while_the_image_was_made_is_told_by_dm_or_response_url(stack: Stack) -> None:
    """A mention or a reply has no response_url: when its channel can't take the image any more (archived,
    or the bot was removed), the bot says so in a DM to the person who asked. A slash command is answered
    through its response_url. The image stays stored with the failed job."""
    slack = stack.slack
    stack.gemini.latency_s = 1.0
    cases = [
        ("C0ARCH", "mention", lambda c: slack.set_channel(c, archived=True), "is_archived", "archived"),
        ("C0KICK", "mention", lambda c: slack.set_channel(c, member=False), "not_in_channel", "not a member"),
        ("C0CMD", "command", lambda c: slack.set_channel(c, archived=True), "is_archived", "archived"),
    ]
    for n, (channel, via, lose, code, told) in enumerate(cases, start=1):
        if via == "command":
            slack.send_command("a kite", channel_id=channel)
        else:
            slack.send_event(mention(stack, "a kite", channel=channel, ts=f"1700000001.00000{n}"))
        stack.gemini.wait_for_requests(n)  # Gemini is making it...
        lose(channel)  # ...when the channel goes away
        job = finished_job(stack, n)
        assert (job.state, job.error_code) == ("failed", code)
        assert image_of(stack, job) is not None
        if via == "command":
            body = response(stack, 1)
            assert told in body["text"] and "I made your image" in body["text"]
        else:
            dm = slack.wait_for(lambda ch=channel: [t for t in texts_in(stack, "D0ALICE") if f"<#{ch}>" in t])
            assert told in dm[0] and "I made your image" in dm[0]
    assert shared(stack) == []
    assert len(stack.gemini.requests) == 3


def test_token_rejected_at_upload_is_said_in_the_thread(stack: Stack) -> None:
    slack = stack.slack
    slack.fail("files.completeUploadExternal", error="invalid_auth")
    slack.send_event(mention(stack, "a snail"))
    job = finished_job(stack)
    assert (job.state, job.error_code, job.attempts) == ("failed", "invalid_auth", 1)  # not retried
    status_saying(stack, job, "rejected the bot's token")
    assert image_of(stack, job) is not None


# --- 3. An upload Slack accepts but never shows --------------------------------------------------------


def test_upload_that_never_shows_is_replaced_once_with_no_second_image(fast_stack: Stack) -> None:
    stack, slack = fast_stack, fast_stack.slack
    slack.fail("files.completeUploadExternal", never_share=True)
    slack.send_command("a red balloon")

    [upload] = stack.uploads(1, timeout=30)
    lost, again = slack.uploads
    assert not lost.shared and again is upload and again.file_id != lost.file_id
    [deleted] = slack.calls_to("files.delete")  # the lost one is removed before the second upload
    assert deleted.params["file"] == lost.file_id
    assert deleted.at < slack.calls_to("files.completeUploadExternal")[1].at
    job = finished_job(stack)
    assert (job.state, job.attempts, job.upload_file_id) == ("done", 2, upload.file_id)
    assert len(stack.gemini.requests) == 1
    images = [m for m in slack.messages if m.get("files")]
    assert len(images) == 1


def test_share_that_shows_late_is_found_and_not_uploaded_again(any_db_stack: Stack) -> None:
    stack, slack = any_db_stack, any_db_stack.slack
    slack.share_delay_s = 2.5  # longer than the app waits on its first run
    stack.start_app(BANANA_SLACK_RETRY_DELAYS="0.5", BANANA_SLACK_SHARE_TIMEOUT_SECONDS="1.5")
    slack.send_command("a slow turtle")
    job = finished_job(stack)
    assert (job.state, job.attempts) == ("done", 2)
    assert len(slack.uploads) == 1 and len(slack.calls_to("files.completeUploadExternal")) == 1
    assert slack.calls_to("files.delete") == []
    assert len(stack.gemini.requests) == 1


def test_upload_that_never_shows_after_every_try_is_reported(any_db_stack: Stack) -> None:
    stack, slack = any_db_stack, any_db_stack.slack
    stack.start_app(BANANA_SLACK_RETRY_DELAYS="0.2", BANANA_SLACK_SHARE_TIMEOUT_SECONDS="0.5")
    slack.fail("files.completeUploadExternal", never_share=True, times=5)
    slack.send_command("an invisible man")
    job = finished_job(stack)
    assert (job.state, job.error_code, job.attempts) == ("failed", "file_not_shared", 2)
    status_saying(stack, job, "never showed it in this thread")
    assert shared(stack) == [] and len(slack.uploads) == 2
    assert [c.params["file"] for c in slack.calls_to("files.delete")] == [slack.uploads[0].file_id]
    assert image_of(stack, job) is not None and len(stack.gemini.requests) == 1


# --- 4. Requests that are not Slack's, or not for the bot -----------------------------------------------


def _signed(stack: Stack, body: bytes, content_type: str, *, timestamp: int | None = None) -> Delivery:
    ts = str(int(time.time()) if timestamp is None else timestamp)
    secret = stack.slack.signing_secret.encode()
    signature = "v0=" + hmac.new(secret, b"v0:" + ts.encode() + b":" + body, hashlib.sha256).hexdigest()
    headers = {"Content-Type": content_type, "X-Slack-Request-Timestamp": ts, "X-Slack-Signature": signature}
    return stack.slack.send_raw(body, headers)


def test_requests_bolt_cannot_take_get_401_or_400_and_unknown_ones_200(stack: Stack) -> None:
    slack = stack.slack
    event = json.dumps(
        {"type": "event_callback", "team_id": slack.team_id, "event_id": "EvX", "event": mention(stack, "x")}
    ).encode()
    now = int(time.time())
    rejected = {
        "bad signature": slack.send_raw(
            event,
            {
                "Content-Type": "application/json",
                "X-Slack-Request-Timestamp": str(now),
                "X-Slack-Signature": "v0=0",
            },
        ),
        "no signature": slack.send_raw(event, {"Content-Type": "application/json"}),
        "stale (6 min)": _signed(stack, event, "application/json", timestamp=now - 360),
        "timestamp not a number": slack.send_raw(
            event,
            {
                "Content-Type": "application/json",
                "X-Slack-Request-Timestamp": "soon",
                "X-Slack-Signature": "v0=0",
            },
        ),
        "unsigned, not JSON": slack.send_raw(
            b"{oops",
            {
                "Content-Type": "application/json",
                "X-Slack-Request-Timestamp": str(now),
                "X-Slack-Signature": "v0=0",
            },
        ),
    }
    assert {k: d.status for k, d in rejected.items()} == {
        "bad signature": 401,
        "no signature": 401,
        "stale (6 min)": 401,
        "timestamp not a number": 401,
        "unsigned, not JSON": 401,  # nothing is parsed before the signature is verified
    }
    malformed = {
        "truncated JSON": _signed(stack, b'{"type": "event_callback", ', "application/json"),
        "JSON array": _signed(stack, b"[1, 2]", "application/json"),
        "not UTF-8": _signed(stack, b"\xff\xfe\x00garbage", "application/octet-stream"),
        "neither JSON nor form": _signed(stack, b"hello world", "text/plain"),
        "payload not JSON": _signed(stack, b"payload=%7Bnot", "application/x-www-form-urlencoded"),
        "empty": _signed(stack, b"", "application/json"),
    }
    assert {k: d.status for k, d in malformed.items()} == dict.fromkeys(malformed, 400)

    # Well-formed and signed, but nothing listens: 200, so Slack neither retries nor shows an error.
    unknown = {
        "command": slack.send_command("a mug", command="/other"),
        "action": slack.send_interactive(
            {
                "type": "block_actions",
                "team": {"id": slack.team_id, "domain": "sandbox"},
                "user": {"id": "UALICE"},
                "api_app_id": slack.api_app_id,
                "trigger_id": slack.new_trigger_id(),
                "response_url": slack.new_response_url(channel_id=CHANNEL, user_id="UALICE"),
                "container": {"type": "message", "channel_id": CHANNEL, "message_ts": "1.1"},
                "channel": {"id": CHANNEL},
                "actions": [
                    {
                        "action_id": "nobody_handles_this",
                        "block_id": "b",
                        "type": "button",
                        "action_ts": "1.2",
                    }
                ],
            }
        ),
        "event": slack.send_event(
            {
                "type": "reaction_added",
                "user": "UALICE",
                "reaction": "banana",
                "item": {"type": "message", "channel": CHANNEL, "ts": "1.1"},
                "event_ts": "1.3",
            }
        ),
    }
    assert {k: d.status for k, d in unknown.items()} == dict.fromkeys(unknown, 200)
    # Slack's ssl_check (public distribution) is answered by Bolt itself, signed or not.
    ssl_check = slack.send_raw(b"ssl_check=1&token=x", {"Content-Type": "application/x-www-form-urlencoded"})
    assert ssl_check.status == 200
    challenge = _signed(
        stack, json.dumps({"type": "url_verification", "challenge": "c-123"}).encode(), "application/json"
    )
    assert challenge.status == 200 and "c-123" in challenge.body

    assert stack.gemini.requests == [] and jobs(stack) == []
    assert slack.messages == [] and slack.responses == []
    assert "Traceback" not in stack.logs()


def test_slash_command_mentioning_payload_is_not_dropped(stack: Stack) -> None:
    """Bolt 1.30 reads a form body containing the text "payload" anywhere as an empty interaction; the
    command (and any command from a channel named #payload-…) used to vanish without a word."""
    slack = stack.slack
    slack.set_channel("C0PAYLOAD", name="payload-team")
    first = slack.send_command("a rocket with its payload bay open")
    second = slack.send_command("a satellite", channel_id="C0PAYLOAD")
    for ack in (first, second):  # "Got it…", not the empty ack of a dropped one
        assert "Got it" in ack.json()["text"]
    uploads = stack.uploads(2, timeout=30)
    assert {u.channel for u in uploads} == {CHANNEL, "C0PAYLOAD"}
    assert "payload bay" in str(roots(stack)[0]["text"])
