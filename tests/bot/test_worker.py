"""The worker pool in-process: claiming, waking, and stopping with and without a grace period."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from bot.worker import WorkerPool, owner_prefix
from tests.bot.stack import InProcess

SLOW_POLL = 60.0  # longer than any test: a job is claimed promptly only if the pool is woken


@pytest.fixture
def pool(stand_ins: InProcess) -> Iterator[WorkerPool]:
    pool = WorkerPool(
        sessions=stand_ins.sessions,
        runner=stand_ins.runner(),
        threads=2,
        lease_seconds=60,
        poll_seconds=SLOW_POLL,
    )
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


def test_stop_releases_what_cannot_finish_in_time(stand_ins: InProcess, pool: WorkerPool) -> None:
    world = stand_ins
    job_id = world.command("a stubborn mule")
    with world.gemini.hold() as held:
        pool.wake()
        held.wait_for_call()
        pool.stop(grace_seconds=0.2)
        job = world.job(job_id)
        assert (job.state, job.lease_owner, job.attempts) == ("queued", None, 1)  # for another worker
    # The released run hears Gemini now, finds the job no longer its own, and leaves it alone.
    for thread in threading.enumerate():
        if thread.name.startswith("banana-worker"):
            thread.join(timeout=30)
    assert world.job(job_id).state == "queued" and world.slack.uploads == []


@pytest.mark.parametrize("hostname", ["web-1", "a" * 63, "pod-" + "x" * 251])
def test_every_worker_id_fits_the_lease_column(hostname: str) -> None:
    prefix = owner_prefix(hostname, 4_194_304, "abcdef")
    assert len(f"{prefix}:999") <= 64
    assert prefix.endswith(":4194304:abcdef") and prefix.startswith(hostname[:20])
    assert owner_prefix("b" * 63, 1, "t") != owner_prefix("b" * 62 + "c", 1, "t")  # cut, yet distinct
