"""On PostgreSQL ``serve`` runs its workers in a process of its own (``app.py worker``, its child), so the
listeners that ack Slack don't wait for the GIL behind the jobs. It is still one unit for the operator: one
port, one ``/healthz``, one ``/metrics``, one pid to signal, and a crash of it is a crash of both. On
SQLite the workers stay in the ``serve`` process (``app.serve`` says why)."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.e2e.conftest import Stack, make_stack
from tests.e2e.test_operations import scrape
from tests.e2e.test_processes import wait_for_health

pytestmark = pytest.mark.e2e


@pytest.fixture
def stack(any_db_stack: Stack) -> Stack:
    """A ``serve`` with workers, running (on SQLite and on PostgreSQL)."""
    any_db_stack.start_app()
    return any_db_stack


def gone(pid: int) -> bool:
    """The process has ended (a zombie nobody reaped yet counts as ended)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def until(check: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.05)


def test_serve_runs_its_workers_in_a_child_and_reports_them_as_its_own(stack: Stack) -> None:
    [child] = stack.app.children()
    assert b"worker" in Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
    stack.slack.send_command("a paper boat")
    stack.uploads(1)
    stack.settled()
    samples = scrape(stack.app.url)  # the parent's port: the child's counters, summed with the parent's
    assert samples["banana_claims_total"] == 1
    assert samples["banana_ack_seconds_count"] >= 1  # the parent's own
    assert samples["banana_worker_process_resident_memory_bytes"] > 0
    assert samples["banana_process_resident_memory_bytes"] > 0
    assert "workers run in process" in stack.app.logs()


def test_the_worker_processs_log_lines_say_so(any_db_stack: Stack) -> None:
    """Both processes write to ``serve``'s stream; the child's lines are marked, in JSON as in text."""
    stack = any_db_stack
    stack.start_app(LOG_FORMAT="json")
    stack.slack.send_command("a paper boat")
    stack.uploads(1)
    stack.settled()
    [job] = stack.jobs()
    lines = [json.loads(line) for line in stack.logs().splitlines() if line.strip()]
    [done] = [line for line in lines if line["message"] == f"job {job.id} done"]
    assert done["process"] == "worker" and done["job_id"] == job.id
    [spawned] = [line for line in lines if line["message"].startswith("workers run in process")]
    assert "process" not in spawned  # serve's own lines are not marked


def test_a_worker_process_that_dies_is_started_again_and_healthz_is_red_meanwhile(stack: Stack) -> None:
    [child] = stack.app.children()
    os.kill(child, signal.SIGKILL)
    wait_for_health(stack.app, 503)
    stack.app.wait_for_log("the worker process was killed by SIGKILL; starting it again")
    wait_for_health(stack.app, 200)
    [again] = stack.app.children()
    assert again != child
    stack.slack.send_command("a paper boat")  # the new one does the work
    stack.uploads(1)


def test_kill_9_of_serve_takes_its_worker_process_with_it(stack: Stack) -> None:
    [child] = stack.app.children()
    stack.app.kill()
    until(lambda: gone(child), "the worker process outlived its serve")


def test_sigterm_stops_the_worker_process_too_and_exits_0(stack: Stack) -> None:
    [child] = stack.app.children()
    assert stack.app.terminate() == 0
    assert gone(child)
    logs = stack.app.logs()
    assert "workers stopped" in logs
    assert logs.count("received SIGTERM") == 2  # the serve's, and the one it passed on
    assert "the serve process is gone" not in logs  # it was told, not left


def test_ctrl_c_stops_both_once(stack: Stack) -> None:
    """A terminal's Ctrl-C reaches both processes; the child leaves its stop to the parent."""
    app = stack.app
    assert app.process is not None
    [child] = app.children()
    app.process.send_signal(signal.SIGINT)
    os.kill(child, signal.SIGINT)
    assert app.terminate() == 0
    assert app.logs().count("received SIGINT") == 1


def test_a_web_only_serve_starts_no_worker_process(any_db_stack: Stack) -> None:
    any_db_stack.start_app(BANANA_WORKERS="0")
    assert any_db_stack.app.children() == []


def test_on_sqlite_the_jobs_serve_queues_wake_its_worker_process_at_once(tmp_path: Path) -> None:
    """SQLite has no notifications: ``serve`` wakes its worker process through their pipe. The workers' own
    look for work is a minute apart here, so each job can only be claimed in time because it was woken:
    the new conversation by ``serve``, the reply in its thread too, and the turn after a running one by
    the worker process itself, when that one ends."""
    stacks = make_stack(tmp_path, "sqlite", BANANA_POLL_SECONDS="60")
    stack = next(stacks)
    try:
        stack.start_app()
        stack.slack.send_command("a paper boat")
        [upload] = stack.uploads(1, timeout=20)  # well inside the minute
        root = str(upload.thread_ts)
        stack.settled()
        stack.slack.post_user_message(channel="C0GENERAL", text="make it blue", thread_ts=root)
        stack.slack.post_user_message(channel="C0GENERAL", text="and add a sail", thread_ts=root)
        stack.uploads(3, timeout=20)
    finally:
        next(stacks, None)
