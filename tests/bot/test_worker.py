"""The worker pool in-process: claiming, waking, and stopping with and without a grace period."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import pytest
from sqlalchemy import event

from bot.models import Conversation, Job
from bot.worker import WorkerPool, owner_prefix
from tests.bot.helpers import add_job
from tests.bot.stack import InProcess

SLOW_POLL = 60.0  # longer than any test: a job is claimed promptly only if the pool is woken


def make_pool(world: InProcess, *, threads: int = 2) -> WorkerPool:
    stopping = threading.Event()  # shared by the pool, the runner and the Gemini client, as in app.py
    return WorkerPool(
        sessions=world.sessions,
        runner=world.runner(stopping=stopping),
        threads=threads,
        lease_seconds=60,
        poll_seconds=SLOW_POLL,
        stopping=stopping,
        gemini_wait=30,
    )


@pytest.fixture
def pool(stand_ins: InProcess) -> Iterator[WorkerPool]:
    pool = make_pool(stand_ins)
    pool.start()
    yield pool
    pool.stop(grace_seconds=0)


def test_an_enqueued_job_wakes_the_pool_and_runs(stand_ins: InProcess, pool: WorkerPool) -> None:
    world = stand_ins
    job_id = world.command("a red kite")  # queued before the pool is told
    pool.wake()
    world.slack.wait_for_uploads(1, timeout=20)
    world.slack.wait_for(lambda: world.job(job_id).state == "done")
    assert world.job(job_id).attempts == 1


def test_stop_lets_a_running_job_finish_within_the_grace_period(
    stand_ins: InProcess, pool: WorkerPool
) -> None:
    world = stand_ins
    job_id = world.command("a patient heron")
    with ThreadPoolExecutor(max_workers=1) as waiter, world.gemini.hold() as held:
        pool.wake()
        held.wait_for_call()
        stopping = waiter.submit(pool.stop, grace_seconds=30)
        held.release()
        stopping.result(timeout=40)
    job = world.job(job_id)
    assert (job.state, job.attempts) == ("done", 1)
    assert len(world.slack.uploads) == 1


def test_stop_lets_a_job_inside_its_gemini_call_store_its_answer_past_the_grace_period(
    stand_ins: InProcess, pool: WorkerPool
) -> None:
    world = stand_ins
    job_id = world.command("a stubborn mule")
    with ThreadPoolExecutor(max_workers=1) as waiter, world.gemini.hold() as held:
        pool.wake()
        held.wait_for_call()
        stopping = waiter.submit(pool.stop, grace_seconds=0.1)
        world.slack.wait_for(lambda: world.job(job_id).state == "running" and not stopping.done())
        held.release()  # Gemini answers after the grace period: the answer is stored, not thrown away
        stopping.result(timeout=40)
    assert world.job(job_id).result_turn_id is not None
    again = make_pool(world)  # the next process (a deploy) delivers what was bought
    again.start()
    again.wake()
    try:
        world.slack.wait_for(lambda: world.job(job_id).state == "done", timeout=20)
    finally:
        again.stop(grace_seconds=0)
    assert len(world.gemini.requests) == 1 and len(world.slack.uploads) == 1


def test_stop_releases_a_job_not_yet_at_gemini_and_buys_nothing(
    stand_ins: InProcess, pool: WorkerPool
) -> None:
    world = stand_ins
    job_id = world.command("a patient tortoise")
    with ThreadPoolExecutor(max_workers=1) as waiter, world.slack.hold("chat.postMessage") as held:
        pool.wake()
        held.wait_for_call()  # the job is posting its root message
        stopping = waiter.submit(pool.stop, grace_seconds=30)
        held.release()
        stopping.result(timeout=40)
    job = world.job(job_id)
    assert (job.state, job.lease_owner, job.result_turn_id) == ("queued", None, None)
    assert world.gemini.requests == []
    assert len([m for m in world.slack.messages if m.get("bot_id") and not m.get("thread_ts")]) == 1


@pytest.mark.parametrize("hostname", ["web-1", "a" * 63, "pod-" + "x" * 251])
def test_every_worker_id_fits_the_lease_column(hostname: str) -> None:
    prefix = owner_prefix(hostname, 4_194_304, "abcdef")
    assert len(f"{prefix}:999") <= 64
    assert prefix.endswith(":4194304:abcdef") and prefix.startswith(hostname[:20])
    assert owner_prefix("b" * 63, 1, "t") != owner_prefix("b" * 62 + "c", 1, "t")  # cut, yet distinct


def test_a_finished_job_wakes_another_worker_for_the_next_turn_of_its_conversation(
    stand_ins: InProcess, pool: WorkerPool
) -> None:
    """The worker that finished the first turn is held in its clean-up (chat.delete); the second turn
    must not wait for it, nor for the pool's poll."""
    world = stand_ins
    first = world.command("a red kite")
    with world.sessions.begin() as session:
        job = session.get(Job, first)
        assert job is not None
        conversation = session.get(Conversation, job.conversation_id)
        assert conversation is not None
        second = add_job(session, conversation, "make it blue").id
    with world.slack.hold("chat.delete") as held:
        pool.wake()
        held.wait_for_call()  # the first job is done; its worker waits on Slack
        world.slack.wait_for(lambda: world.job(second).state == "done", timeout=20)
    assert world.job(first).state == "done"


@contextmanager
def looks_for_work(world: InProcess) -> Iterator[list[str]]:
    """The worker threads' queries of the job table, by thread name, in order."""
    engine = world.sessions.kw["bind"]
    names: list[str] = []

    def on_statement(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        name = threading.current_thread().name
        if name.startswith("banana-worker") and "FROM job" in statement:
            names.append(name)

    event.listen(engine, "before_cursor_execute", on_statement)
    try:
        yield names
    finally:
        event.remove(engine, "before_cursor_execute", on_statement)


def test_of_the_idle_workers_one_looks_for_work_at_each_poll(stand_ins: InProcess) -> None:
    """Fifty idle workers that each polled every half second made a hundred queries a second, half of the
    process's Python time under load on PostgreSQL (py-spy): one idle worker polls, the others sleep
    until they are woken."""
    world = stand_ins
    pool = WorkerPool(
        sessions=world.sessions,
        runner=world.runner(),
        threads=4,
        lease_seconds=60,
        poll_seconds=0.01,
        gemini_wait=30,
    )
    with looks_for_work(world) as lookers:
        pool.start()
        try:
            world.slack.wait_for(lambda: len(lookers) >= 30, timeout=20)
        finally:
            pool.stop(grace_seconds=0)
    assert len(set(lookers[-10:])) == 1, lookers[-10:]


def test_a_claim_wakes_another_worker_so_a_backlog_is_taken_at_once(stand_ins: InProcess) -> None:
    """Jobs queued by another process are found by the poll; the worker that claims one wakes the next,
    so three of them reach Gemini together, not one per poll."""
    world = stand_ins
    pool = make_pool(world, threads=3)  # polls once a minute: only the wake-ups can explain a prompt claim
    pool.start()
    try:
        world.slack.wait_for(lambda: pool.idle() == 3, timeout=20)  # each looked once and found nothing
        with world.gemini.hold() as held:
            # This process's intake would wake the pool; nothing does here.
            # Three people's: one person may have two running (BANANA_USER_CONCURRENCY).
            jobs = [world.command(f"a {c} kite", user=f"U{c.upper()}") for c in ("red", "blue", "green")]
            pool.wake()  # as the poll would, once
            held.wait_for_call(3, timeout=20)
            states = [world.job(job_id).state for job_id in jobs]
    finally:
        pool.stop(grace_seconds=0)
    assert states == ["running"] * 3  # together, not one after another Gemini call gave up
