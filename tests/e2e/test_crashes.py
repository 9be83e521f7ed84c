"""Crashes and shutdowns lose nothing and duplicate nothing."""

from __future__ import annotations

import signal

import pytest

from bot.sandbox.fake_gemini import Fault
from tests.e2e.conftest import CHANNEL, Stack

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


def test_sigterm_releases_what_cannot_finish_in_the_grace_period(any_db_stack: Stack) -> None:
    stack = any_db_stack
    stack.gemini.script(Fault.hang(60))
    first = stack.start_app(BANANA_SHUTDOWN_GRACE_SECONDS="0.5")
    stack.slack.send_command("a stubborn mule")
    stack.gemini.wait_for_requests(1)
    assert first.terminate() == 0
    [job] = stack.jobs()
    assert (job.state, job.attempts, job.lease_owner) == ("queued", 1, None)  # released for another worker
    stack.start_app()  # picks the released job up at once: no lease to wait out
    assert len(stack.uploads(1, timeout=20)) == 1
    assert [
        m
        for m in stack.slack.messages
        if m.get("bot_id") and m.get("channel") == CHANNEL and not m.get("thread_ts")
    ].__len__() == 1


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
