"""Issue 18: Slack acts and then loses its answer (a 5xx from its edge, a dropped connection). The bot must
not post a second root, leave a status message behind, or say "couldn't post" under an image it posted."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import CHANNEL, Stack, make_stack

pytestmark = pytest.mark.e2e

FAST = {"BANANA_SLACK_RETRY_DELAYS": "0.2,0.2,0.2", "BANANA_SLACK_SHARE_TIMEOUT_SECONDS": "2"}


@pytest.fixture(scope="module")
def lossy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    stacks = make_stack(tmp_path_factory.mktemp("lost-answers"), "sqlite", **FAST)
    stack = next(stacks)
    stack.start_app()
    yield stack
    next(stacks, None)


def bot_messages(stack: Stack, *, thread_ts: str | None = None) -> list[dict[str, object]]:
    if thread_ts is not None:
        return [m for m in stack.slack.thread(CHANNEL, thread_ts) if m.get("bot_id")]
    return [m for m in stack.slack.messages if m.get("bot_id") and m.get("channel") == CHANNEL]


def settled(stack: Stack, user: str) -> None:
    stack.wait_for_jobs(
        lambda jobs: all(j.state in ("done", "failed") for j in jobs if j.requested_by == user)
    )


@pytest.mark.parametrize("how", ["5xx", "drop"])
def test_a_root_post_whose_answer_is_lost_leaves_one_root(lossy: Stack, how: str) -> None:
    user = f"UROOT{how.upper()}"
    calls = len(lossy.gemini.requests)
    lossy.slack.fail("chat.postMessage", lose_answer=how)  # the root is posted, its answer lost
    assert lossy.slack.send_command(f"a lighthouse, root lost by {how}", user_id=user).status == 200
    settled(lossy, user)
    roots = [m for m in bot_messages(lossy) if not m.get("thread_ts") and f"<@{user}>" in str(m["text"])]
    assert len(roots) == 1
    [job] = [j for j in lossy.jobs() if j.requested_by == user]
    assert job.state == "done"
    upload = next(u for u in lossy.slack.uploads if u.file_id == job.upload_file_id)
    assert upload.thread_ts == roots[0]["ts"]
    assert len(lossy.gemini.requests) == calls + 1


@pytest.mark.parametrize("how", ["5xx", "drop"])
def test_a_status_post_whose_answer_is_lost_is_still_removed(lossy: Stack, how: str) -> None:
    user = f"USTAT{how.upper()}"
    bot = lossy.slack.bot_user_id
    lossy.slack.fail("chat.postMessage", lose_answer=how)  # a mention has its thread: this is the status
    [mention, _] = lossy.slack.post_user_message(
        channel=CHANNEL, text=f"<@{bot}> a windmill ({how})", user=user
    )
    assert mention.event is not None
    settled(lossy, user)
    thread_ts = str(mention.event["ts"])

    def statuses() -> list[dict[str, object]]:
        return [m for m in bot_messages(lossy, thread_ts=thread_ts) if str(m["text"]).startswith("🍌")]

    # The job is marked done, then its status message is removed: wait for that, then count.
    lossy.slack.wait_for(lambda: all(m.get("deleted") for m in statuses()))
    assert len(statuses()) == 1  # one status message, found again rather than posted twice
    [job] = [j for j in lossy.jobs() if j.requested_by == user]
    assert job.state == "done"


@pytest.mark.parametrize("how", ["5xx", "drop"])
def test_an_upload_whose_answer_is_lost_leaves_one_image_and_no_apology(lossy: Stack, how: str) -> None:
    user = f"UUPL{how.upper()}"
    lossy.slack.fail("files.completeUploadExternal", lose_answer=how)  # shared, answer lost
    assert lossy.slack.send_command(f"a tram ({how})", user_id=user).status == 200
    settled(lossy, user)
    [job] = [j for j in lossy.jobs() if j.requested_by == user]
    assert job.state == "done"
    mine = [u for u in lossy.slack.uploads if (u.initial_comment or "").startswith(f"<@{user}>")]
    assert len(mine) == 1 and mine[0].shared
    root = next(m for m in bot_messages(lossy) if not m.get("thread_ts") and f"<@{user}>" in str(m["text"]))
    texts = [str(m["text"]) for m in bot_messages(lossy, thread_ts=str(root["ts"]))]
    assert not any("couldn't post" in t or "wouldn't take" in t for t in texts), texts


def test_nothing_resends_a_post_blindly_after_a_dropped_connection(tmp_path: Path) -> None:
    """With no retries left, a dropped root post is not sent again by the client: the person is told,
    and there is one root (the one Slack made before the connection dropped)."""
    stacks = make_stack(tmp_path, "sqlite", BANANA_SLACK_RETRY_DELAYS="none")
    stack = next(stacks)
    try:
        stack.start_app()
        stack.slack.fail("chat.postMessage", lose_answer="drop")
        stack.slack.send_command("a lighthouse with no second chance")
        stack.wait_for_jobs(lambda jobs: jobs[0].state == "failed")
        assert len(stack.slack.calls_to("chat.postMessage")) == 1
    finally:
        next(stacks, None)
