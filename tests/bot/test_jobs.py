"""The job runner in-process: a real database (SQLite and PostgreSQL) and the stand-ins."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import Engine, event, update
from sqlalchemy.pool import Pool

from bot.installations import Workspaces
from bot.models import Job
from tests.bot.stack import CHANNEL, InProcess


def roots(world: InProcess) -> list[dict[str, object]]:
    return [m for m in world.slack.messages if m.get("bot_id") and not m.get("thread_ts")]


def test_a_job_runs_from_the_command_to_an_image_in_its_thread(stand_ins: InProcess) -> None:
    world = stand_ins
    job_id = world.command("a lighthouse at dawn --ar 16:9")
    world.runner().run(world.claim())

    [upload] = world.slack.uploads
    [root] = roots(world)
    assert upload.shared and upload.channel == CHANNEL and upload.thread_ts == root["ts"]
    job = world.job(job_id)
    assert (job.state, job.attempts, job.upload_file_id) == ("done", 1, upload.file_id)
    assert job.model_version == "gemini-nano-banana-2.1" and job.result_turn_id is not None
    assert world.slack.message(CHANNEL, str(job.status_ts))["deleted"]  # type: ignore[index]


def test_on_postgresql_jobs_after_the_first_open_no_connection(stand_ins: InProcess, engine: Engine) -> None:
    """Each job writes its result and reads it back for the upload. Those transactions go to the image
    pool, whose connections stay open: a connection closed after every image cost the server a process
    start for each reconnect (half of PostgreSQL's CPU in the benchmark)."""
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite's connections are files: reopening one costs microseconds")
    world = stand_ins
    runner = world.runner()
    world.command("a lighthouse, the first")
    runner.run(world.claim())
    opened: list[object] = []

    def on_connect(dbapi_connection: object, _record: object) -> None:
        opened.append(dbapi_connection)

    event.listen(Pool, "connect", on_connect)
    try:
        for n in range(3):
            job_id = world.command(f"a lighthouse, number {n}")
            runner.run(world.claim())
            assert world.job(job_id).state == "done"
    finally:
        event.remove(Pool, "connect", on_connect)
    assert len(world.slack.uploads) == 4
    assert opened == []


def test_a_run_after_slack_turned_it_away_repeats_only_the_slack_step(stand_ins: InProcess) -> None:
    world = stand_ins
    job_id = world.command("a lighthouse at dusk")
    world.slack.fail("files.getUploadURLExternal", error="edge", http_status=500)
    world.runner().run(world.claim())
    waiting = world.job(job_id)
    assert waiting.state == "queued" and waiting.result_turn_id is not None  # the answer is kept
    assert "trying again in 30 s" in str(world.slack.message(CHANNEL, str(waiting.status_ts))["text"])  # type: ignore[index]

    with world.sessions.begin() as session:  # as if the 30 s had passed
        session.execute(update(Job).values(not_before=Job.created_at))
    world.runner().run(world.claim())
    assert world.job(job_id).state == "done"
    assert len(world.gemini.requests) == 1  # Gemini was not paid twice
    assert len(roots(world)) == 1 and len(world.slack.uploads) == 1
    # The root, one status message and the result card.
    assert len(world.slack.calls_to("chat.postMessage")) == 3


def test_when_the_retries_are_used_up_the_person_is_told(stand_ins: InProcess) -> None:
    world = stand_ins
    job_id = world.command("a lighthouse in fog")
    world.slack.fail("chat.postMessage", error="edge", http_status=500)
    world.runner(slack_retry_delays=()).run(world.claim())
    job = world.job(job_id)
    assert (job.state, job.error_code) == ("failed", "http_500")
    [told] = world.slack.responses  # no thread yet: privately, through the command's response_url
    assert "nothing was generated" in str(told.body["text"])
    assert world.gemini.requests == []


def test_a_run_whose_lease_was_taken_over_stops_without_touching_slack(stand_ins: InProcess) -> None:
    world = stand_ins
    job_id = world.command("a lighthouse in a storm")
    lease = world.claim()
    with ThreadPoolExecutor(max_workers=1) as pool, world.gemini.hold() as held:
        running = pool.submit(world.runner().run, lease)
        held.wait_for_call()  # the run is inside its Gemini call
        with world.sessions.begin() as session:  # another worker took the job over
            session.execute(update(Job).values(lease_owner="other-worker", attempts=Job.attempts + 1))
        held.release()
        running.result(timeout=30)
    job = world.job(job_id)
    assert (job.state, job.lease_owner, job.result_turn_id) == ("running", "other-worker", None)
    assert world.slack.uploads == [] and world.slack.calls_to("files.getUploadURLExternal") == []


def test_a_job_given_up_after_too_many_attempts_says_so_without_calling_gemini(stand_ins: InProcess) -> None:
    world = stand_ins
    job_id = world.command("a cursed teapot")
    with world.sessions.begin() as session:
        session.execute(update(Job).values(attempts=8))
    world.runner().run(world.claim())
    job = world.job(job_id)
    assert (job.state, job.error_code) == ("failed", "GaveUp")
    assert world.gemini.requests == []
    assert "failed 8 times" in str(world.slack.responses[-1].body["text"])


def test_a_job_of_a_workspace_without_an_installation_ends_without_a_word_to_slack(
    stand_ins: InProcess,
) -> None:
    """OAuth mode, a workspace that removed the app (or never installed it): no token to post with."""
    world = stand_ins
    job_id = world.command("a lighthouse")
    nowhere = Workspaces(sessions=world.sessions, make=lambda _token: world.gateway(), store=None)
    world.runner(workspaces=nowhere).run(world.claim())
    job = world.job(job_id)
    assert (job.state, job.error_code) == ("failed", "not_installed")
    assert world.gemini.requests == [] and world.slack.calls == []


def test_a_workspace_key_gemini_refuses_is_the_workspaces_admins_to_mend(stand_ins: InProcess) -> None:
    world = stand_ins
    job_id = world.command("a lighthouse")
    world.runner(own_key="AIzaSy-revoked-since-it-was-saved").run(world.claim())
    job = world.job(job_id)
    assert job.state == "failed" and [c.key_name for c in world.gemini.requests] == [None]
    said = [m.get("text") for m in world.slack.messages] + [r.body.get("text") for r in world.slack.responses]
    told = " ".join(str(text) for text in said)
    assert "this workspace's own API key" in told and "/banana key" in told and "GEMINI_API_KEY" not in told
