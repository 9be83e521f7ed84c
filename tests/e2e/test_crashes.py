"""Crashes and shutdowns lose nothing and duplicate nothing."""

from __future__ import annotations

import signal

import pytest

from bot.sandbox.fake_gemini import Fault
from tests.e2e.conftest import MOVED_CLOCK, Stack

pytestmark = pytest.mark.e2e


def test_kill_9_during_the_gemini_call_runs_the_job_again_with_one_image(any_db_stack: Stack) -> None:
    stack = any_db_stack
    stack.gemini.script(Fault.hang(30))
    first = stack.start_app(BANANA_JOB_LEASE_SECONDS="3")
    stack.slack.send_command("a lighthouse at dawn")
    stack.gemini.wait_for_requests(1)
    first.kill()  # SIGKILL while Gemini is "thinking"

    stack.start_app(BANANA_JOB_LEASE_SECONDS="3")
    [upload] = stack.uploads(1, timeout=30)
    assert len(stack.gemini.requests) == 2
    roots = [m for m in stack.slack.messages if m.get("bot_id") and not m.get("thread_ts")]
    assert len(roots) == 1  # the root was checkpointed before the crash
    assert upload.thread_ts == roots[0]["ts"]
    [job] = stack.wait_for_jobs(lambda jobs: jobs[0].state == "done")
    assert job.attempts == 2  # run again, after the first attempt's lease lapsed


def test_sigterm_finishes_running_jobs_and_exits_0(stack: Stack) -> None:
    app = stack.app
    assert app.process is not None
    with stack.gemini.hold() as held:
        stack.slack.send_command("a slow owl")
        held.wait_for_call()  # the job is surely inside its Gemini call
        app.process.send_signal(signal.SIGTERM)
        app.wait_for_log("received SIGTERM")
        assert app.process.poll() is None  # still running: it waits for the job it is doing
    assert app.terminate() == 0
    [upload] = stack.uploads(1)
    assert upload.shared and len(stack.gemini.requests) == 1


def test_sigterm_lets_a_delivery_under_way_finish_and_exits_0(any_db_stack: Stack) -> None:
    """A delivery runs beside the worker that took the job to Gemini: a stop waits for it as for a worker."""
    stack = any_db_stack
    app = stack.start_app(BANANA_WORKERS="1")
    assert app.process is not None
    with stack.slack.hold("files.info") as held:
        stack.slack.send_command("a slow owl")
        held.wait_for_call()  # the image is uploaded; its delivery waits to see it shared
        app.process.send_signal(signal.SIGTERM)
        app.wait_for_log("waiting for the deliveries under way")
        assert app.process.poll() is None
    assert app.terminate() == 0
    [job] = stack.jobs()
    assert job.state == "done" and job.attempts == 1 and job.card_ts
    assert len(stack.uploads(1)) == 1 and len(stack.gemini.requests) == 1


def test_sigterm_during_a_gemini_call_waits_for_the_answer_and_buys_one_image(any_db_stack: Stack) -> None:
    """A job inside its Gemini call keeps its lease past the grace period: its answer may already be paid
    for, so the process waits for it and stores it instead of handing the job to another worker."""
    stack = any_db_stack
    first = stack.start_app(BANANA_SHUTDOWN_GRACE_SECONDS="0.5")
    assert first.process is not None
    with stack.gemini.hold() as held:
        stack.slack.send_command("a stubborn mule")
        held.wait_for_call()
        first.process.send_signal(signal.SIGTERM)
        first.wait_for_log("waiting for the jobs inside their Gemini call")
        assert first.process.poll() is None  # still running, past its 0.5 s grace
    assert first.terminate() == 0
    # A deploy: whatever the first process left is picked up at once. If the first process ended in the
    # middle of the upload, the next one waits for that upload to show before making its own: a short
    # share timeout keeps this test quick (it costs time, never a second Gemini call).
    stack.start_app(BANANA_SLACK_SHARE_TIMEOUT_SECONDS="2")
    [upload] = stack.uploads(1, timeout=20)
    assert len(stack.gemini.requests) == 1  # one image bought, one delivered
    roots = [m for m in stack.slack.messages if m.get("bot_id") and not m.get("thread_ts")]
    assert len(roots) == 1 and upload.thread_ts == roots[0]["ts"]


def test_sigterm_releases_a_job_not_yet_at_gemini_at_once(any_db_stack: Stack) -> None:
    stack = any_db_stack
    first = stack.start_app()
    assert first.process is not None
    with stack.slack.hold("chat.postMessage") as held:
        stack.slack.send_command("a patient tortoise")
        held.wait_for_call()  # posting its root message
        first.process.send_signal(signal.SIGTERM)
        first.wait_for_log("received SIGTERM")
    assert first.terminate() == 0
    [job] = stack.jobs()
    assert (job.state, job.lease_owner, job.result_turn_id) == ("queued", None, None)  # released, unbought
    assert stack.gemini.requests == []
    stack.start_app()
    [upload] = stack.uploads(1, timeout=20)
    assert len(stack.gemini.requests) == 1
    roots = [m for m in stack.slack.messages if m.get("bot_id") and not m.get("thread_ts")]
    assert len(roots) == 1 and upload.thread_ts == roots[0]["ts"]


def test_a_job_that_keeps_dying_is_given_up_with_a_message(stack: Stack) -> None:
    from sqlalchemy import update

    from bot.db import create_db_engine
    from bot.models import Job

    stack.apps[-1].terminate()
    stack.gemini.script(Fault.hang(30))
    first = stack.start_app(BANANA_JOB_LEASE_SECONDS="3")
    stack.slack.send_command("a cursed teapot")
    stack.gemini.wait_for_requests(1)
    first.kill()
    engine = create_db_engine(stack.env["DATABASE_URL"])
    with engine.begin() as conn:  # as if it had already crashed the process seven more times
        conn.execute(update(Job).values(attempts=8))
    engine.dispose()
    stack.start_app(BANANA_JOB_LEASE_SECONDS="3")
    failure = stack.slack.wait_for(
        lambda: next((m for m in stack.slack.messages if "failed 8 times" in str(m.get("text"))), None)
    )
    assert failure.get("thread_ts")
    assert len(stack.gemini.requests) == 1  # not sent again
    assert stack.slack.uploads == []


def test_a_worker_whose_clock_runs_an_hour_ahead_does_not_take_a_live_job(pg_stack: Stack) -> None:
    """Leases are timed by the database's clock: the skewed worker takes the next job, not the live one."""
    stack = pg_stack
    with stack.gemini.hold() as held:
        stack.start_app(BANANA_WORKERS="1", BANANA_JOB_LEASE_SECONDS="30")
        stack.slack.send_command("the live job: a lighthouse")
        held.wait_for_call()  # the first process is inside its Gemini call, lease held
        stack.start_app(
            command="worker",
            PYTHONPATH=MOVED_CLOCK,
            CLOCK_OFFSET_SECONDS="3600",  # this host's clock an hour ahead
            BANANA_WORKERS="1",
            BANANA_JOB_LEASE_SECONDS="30",
        )
        stack.slack.send_command("the next job: a windmill")
        held.wait_for_call(2)  # the skewed worker claimed something
        first, second = stack.gemini.requests[:2]
        assert "lighthouse" in str(first.body) and "windmill" in str(second.body)
    stack.uploads(2)
    assert len(stack.gemini.requests) == 2  # the live job was never taken over and paid for again
