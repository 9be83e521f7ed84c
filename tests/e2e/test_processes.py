"""Several processes, crashes at the worst moment and a database outage lose nothing and duplicate nothing.

The real app runs as processes (``python app.py serve`` / ``python app.py worker``) against the stand-ins;
the tests wait on the fakes, the logs and the database, never on the clock.
"""

from __future__ import annotations

import time
from collections import defaultdict
from itertools import pairwise
from typing import Any, TypeVar

import httpx
import pytest
from sqlalchemy.engine import make_url

from bot.sandbox.fake_gemini import Fault, GeminiCall
from bot.sandbox.process import AppProcess
from tests.e2e.conftest import CHANNEL, Stack, TcpProxy, conversation_rows, job_rows

T = TypeVar("T")

pytestmark = pytest.mark.e2e


def health(app: AppProcess) -> int:
    try:
        return httpx.get(f"{app.url}/healthz", timeout=5).status_code
    except httpx.HTTPError:
        return 0


def wait_for_health(app: AppProcess, status: int, timeout: float = 20.0) -> None:
    """Until GET /healthz answers ``status`` (polls the app's own state)."""
    deadline = time.monotonic() + timeout
    while (seen := health(app)) != status:
        if time.monotonic() > deadline:
            raise TimeoutError(f"/healthz stayed {seen}, wanted {status}\n{app.logs()[-3000:]}")
        time.sleep(0.05)


def texts(call: GeminiCall) -> list[str]:
    """The text of each user turn of a Gemini request."""
    return [
        "".join(str(p.get("text", "")) for p in content["parts"])
        for content in call.body["contents"]
        if content["role"] == "user"
    ]


def answer_signatures(call: GeminiCall) -> list[Any]:
    assert call.payload is not None
    parts = call.payload["candidates"][0]["content"]["parts"]
    return [p.get("thoughtSignature") for p in parts if not p.get("thought")]


# --- kill -9 between the upload and "done" -------------------------------------------------------------


@pytest.mark.parametrize("held", ["files.completeUploadExternal", "files.info"])
def test_kill_9_after_the_upload_before_done_posts_no_second_image(any_db_stack: Stack, held: str) -> None:
    stack = any_db_stack
    first = stack.start_app(BANANA_JOB_LEASE_SECONDS="3")
    with stack.slack.hold(held) as hold:
        stack.slack.send_command("a red kite over the dunes")
        hold.wait_for_call(timeout=30)
        # The image is in the thread; the app is waiting for Slack's answer and has not marked the job done.
        [upload] = stack.slack.uploads
        assert upload.shared
        first.kill()

    stack.start_app(BANANA_JOB_LEASE_SECONDS="3")
    stack.wait_for_jobs(lambda jobs: jobs[0].state == "done", timeout=30)
    assert stack.slack.uploads == [upload]  # no second image
    assert len(stack.gemini.requests) == 1  # the stored answer was not paid for again
    roots = [m for m in stack.slack.messages if m.get("bot_id") and not m.get("thread_ts")]
    assert len(roots) == 1
    [job] = job_rows(stack.env["DATABASE_URL"])
    assert (job.state, job.attempts, job.upload_file_id) == ("done", 2, upload.file_id)
    # The "working on it" message was removed, as after any finished job.
    # (it goes once the job is marked done)
    stack.slack.wait_for(lambda: (stack.slack.message(CHANNEL, str(job.status_ts)) or {}).get("deleted"))


# --- two web processes, two worker processes, one PostgreSQL ---------------------------------------------

THREADS = 40
REPLIES = 4


def test_two_web_and_two_worker_processes_run_each_job_once_and_each_thread_in_order(
    pg_stack: Stack,
) -> None:
    stack = pg_stack
    stack.gemini.latency_s = 0
    # Two people send all 200 requests here: the default limits (50 images a day each) would refuse most,
    # and their cap on running jobs (2 each) would leave most of the eight workers idle. This is about
    # processes, not limits or fairness.
    webs = [stack.start_app(command="serve", BANANA_WORKERS="0", BANANA_LIMITS="off") for _ in range(2)]
    workers = [
        stack.start_app(command="worker", BANANA_WORKERS="4", BANANA_USER_CONCURRENCY="8") for _ in range(2)
    ]
    for worker in workers:
        worker.wait_for_log("4 workers started")
    bot = stack.slack.bot_user_id

    def via(n: int) -> None:
        stack.slack.request_url = f"{webs[n % 2].url}/slack/events"

    roots: list[str] = []
    for n in range(THREADS):
        via(n)
        deliveries = stack.slack.post_user_message(
            channel=CHANNEL, user="UALICE", text=f"<@{bot}> thread {n:02d}: a banana --model nb2 --size 512"
        )
        assert [d.status for d in deliveries] == [200, 200]
        assert deliveries[0].event is not None
        roots.append(str(deliveries[0].event["ts"]))
    for k in range(1, REPLIES + 1):
        for n, root in enumerate(roots):
            via(n + k)
            [delivery] = stack.slack.post_user_message(
                channel=CHANNEL, user="UBOB", text=f"thread {n:02d} reply {k}", thread_ts=root
            )
            assert delivery.status == 200

    total = THREADS * (REPLIES + 1)
    uploads = stack.uploads(total, timeout=60)
    jobs = stack.slack.wait_for(
        lambda: (
            (rows := job_rows(stack.env["DATABASE_URL"]))
            and all(j.state != "running" and j.state != "queued" for j in rows)
            and rows
        ),
        timeout=30,
    )

    # Every job ran exactly once.
    assert len(jobs) == total
    assert [(j.state, j.attempts) for j in jobs] == [("done", 1)] * total
    assert len(stack.gemini.requests) == total
    assert len(uploads) == total == len({u.file_id for u in uploads})
    # Both worker processes did work.
    claimed = [w.logs().count("claimed (attempt 1)") for w in workers]
    assert sum(claimed) == total and all(claimed), claimed

    # Each thread's jobs ran in order: request k was sent after answer k-1 and replays it.
    by_thread: dict[int, list[GeminiCall]] = defaultdict(list)
    for call in sorted(stack.gemini.requests, key=lambda c: c.seq):
        by_thread[int(texts(call)[0].split()[1].rstrip(":"))].append(call)
    assert sorted(by_thread) == list(range(THREADS))
    for n, calls in by_thread.items():
        assert [texts(c)[-1] for c in calls] == [f"thread {n:02d}: a banana"] + [
            f"thread {n:02d} reply {k}" for k in range(1, REPLIES + 1)
        ]
        for previous, call in pairwise(calls):
            replayed = call.body["contents"][-2]
            assert replayed["role"] == "model"
            assert [p.get("thoughtSignature") for p in replayed["parts"]] == answer_signatures(previous)
            assert previous.at < call.at

    # ... and their images landed in the thread in that order.
    for root in roots:
        in_thread = sorted(
            (u for u in uploads if u.thread_ts == root), key=lambda u: float(str(u.message_ts))
        )
        job_ids = [int(u.filename.split("-")[1].split(".")[0]) for u in in_thread]
        assert len(job_ids) == REPLIES + 1 and job_ids == sorted(job_ids)


# --- the database goes away for a few seconds --------------------------------------------------------------


def test_database_outage_reports_unhealthy_and_recovers_without_a_restart(pg_stack: Stack) -> None:
    stack = pg_stack
    direct = stack.env["DATABASE_URL"]
    url = make_url(direct)
    bot = stack.slack.bot_user_id
    with TcpProxy(url.host or "127.0.0.1", url.port or 5432) as proxy:
        proxied = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
        stack.env["DATABASE_URL"] = proxied
        app = stack.start_app(BANANA_JOB_LEASE_SECONDS="3")
        stack.slack.send_command("before: a calm lake --model nb2 --size 512")
        stack.uploads(1)

        # A job is waiting on Gemini when the database goes away; its answer comes back during the outage.
        stack.gemini.script(Fault.delay(1.5))
        stack.slack.send_command("during: a stormy sea --model nb2 --size 512")
        in_flight = stack.gemini.wait_for_requests(2)[1]
        proxy.cut()
        wait_for_health(app, 503)
        stack.gemini.wait_for(lambda: in_flight.answered, timeout=10)
        app.wait_for_log("job 2: database error")
        app.wait_for_log("cannot claim jobs: database unavailable")

        # Meanwhile: a command is told something went wrong (nothing is queued); an event gets a 500, so
        # Slack delivers it again later.
        ack = stack.slack.send_command("while down: a lost command")
        assert ack.status == 200 and "went wrong" in ack.json()["text"]
        deliveries = stack.slack.post_user_message(
            channel=CHANNEL,
            user="UCAROL",
            text=f"<@{bot}> while down: a patient mention --model nb2 --size 512",
        )
        assert [d.status for d in deliveries] == [500, 500]
        assert health(app) == 503

        proxy.restore()
        wait_for_health(app, 200)
        # Slack's retries of the mention (same event ids) are processed now: one job, not two.
        for delivery in deliveries:
            assert delivery.event is not None
            retry = stack.slack.send_event(
                delivery.event, event_id=delivery.event_id, retry_num=1, retry_reason="http_error"
            )
            assert retry.status == 200
        stack.slack.send_command("after: a rainbow --model nb2 --size 512")

        uploads = stack.uploads(4, timeout=30)
        jobs = stack.slack.wait_for(
            lambda: (rows := job_rows(direct)) and all(j.state == "done" for j in rows) and rows, timeout=30
        )
    assert len(jobs) == 4
    assert [j.attempts for j in jobs] == [1, 2, 1, 1]  # the in-flight job ran again after its lease
    assert len(uploads) == 4
    conversations = conversation_rows(direct)
    assert len(conversations) == 4  # before, during, the mention and after; the lost command made none
    assert sorted(str(u.thread_ts) for u in uploads) == sorted(str(c.thread_ts) for c in conversations)
    prompts = {texts(c)[-1] for c in stack.gemini.requests}
    assert "while down: a lost command" not in prompts
    assert "after: a rainbow" in prompts and "while down: a patient mention" in prompts
    assert app.process is not None and app.process.poll() is None  # never restarted


def test_sigterm_during_a_database_outage_exits_0_and_the_job_runs_once_later(pg_stack: Stack) -> None:
    stack = pg_stack
    direct = stack.env["DATABASE_URL"]
    url = make_url(direct)
    with TcpProxy(url.host or "127.0.0.1", url.port or 5432) as proxy:
        stack.env["DATABASE_URL"] = url.set(host="127.0.0.1", port=proxy.port).render_as_string(
            hide_password=False
        )
        first = stack.start_app(BANANA_JOB_LEASE_SECONDS="3", BANANA_SHUTDOWN_GRACE_SECONDS="0.5")
        stack.gemini.script(Fault.delay(2))
        stack.slack.send_command("a stubborn mule --model nb2 --size 512")
        stack.gemini.wait_for_requests(1)
        proxy.cut()
        wait_for_health(first, 503)
        # The job's Gemini answer comes during the outage and can't be stored (its save is retried for
        # about 15 s, then given up); the job can't be handed back either: the process still exits
        # cleanly, and the job's lease simply lapses.
        assert first.terminate() == 0
        [held] = job_rows(direct)
        assert (held.state, held.attempts) == ("running", 1) and held.lease_owner  # not released

        proxy.restore()
        stack.start_app(BANANA_JOB_LEASE_SECONDS="3")
        [upload] = stack.uploads(1, timeout=30)
        stack.wait_for_jobs(lambda jobs: jobs[0].state == "done")
    [job] = job_rows(direct)
    assert (job.state, job.attempts) == ("done", 2)
    assert len(stack.gemini.requests) == 2
    roots = [m for m in stack.slack.messages if m.get("bot_id") and not m.get("thread_ts")]
    assert len(roots) == 1 and upload.thread_ts == roots[0]["ts"]


def test_a_short_database_blip_keeps_geminis_answer_and_pays_once(pg_stack: Stack) -> None:
    """Gemini answers while the database is away for a moment: the answer is kept (its save is retried),
    so the job finishes on its first attempt and Gemini is asked once."""
    stack = pg_stack
    direct = stack.env["DATABASE_URL"]
    url = make_url(direct)
    with TcpProxy(url.host or "127.0.0.1", url.port or 5432) as proxy:
        stack.env["DATABASE_URL"] = url.set(host="127.0.0.1", port=proxy.port).render_as_string(
            hide_password=False
        )
        app = stack.start_app()  # the default 60 s lease outlives the blip
        stack.gemini.script(Fault.delay(1.0))
        stack.slack.send_command("a fragile vase --model nb2 --size 512")
        in_flight = stack.gemini.wait_for_requests(1)[0]
        proxy.cut()
        stack.gemini.wait_for(lambda: in_flight.answered, timeout=10)
        app.wait_for_log("could not store Gemini's answer")
        proxy.restore()
        [upload] = stack.uploads(1, timeout=30)
        jobs = stack.slack.wait_for(lambda: (rows := job_rows(direct)) and rows[0].state == "done" and rows)
    assert [(j.state, j.attempts) for j in jobs] == [("done", 1)]
    assert len(stack.gemini.requests) == 1
    assert upload.thread_ts is not None
