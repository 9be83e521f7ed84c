"""Issue 22, end to end: what an operator gets from the running app: metrics on the HTTP server and on a
worker's own port, health for a worker, structured logs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import pytest

from bot.sandbox.process import free_port
from tests.e2e.conftest import Stack, make_stack

pytestmark = pytest.mark.e2e


def test_json_logs_are_one_object_a_line_with_the_jobs_ids_and_no_secret(tmp_path: Path) -> None:
    stacks = make_stack(tmp_path, "sqlite", LOG_FORMAT="json")
    stack = next(stacks)
    try:
        stack.start_app()
        stack.slack.send_command("a paper boat")
        stack.uploads(1)
        stack.settled()
        [job] = stack.jobs()
        stack.app.terminate(timeout=30)
        text = stack.logs()
        lines = [json.loads(line) for line in text.splitlines() if line.strip()]
        assert all({"time", "level", "logger", "message"} <= set(line) for line in lines)
        done = [line for line in lines if line["message"] == f"job {job.id} done"]
        assert done and done[0]["job_id"] == job.id and done[0]["team_id"] == job.team_id
        assert done[0]["conversation_id"] == job.conversation_id
        for secret in (stack.slack.bot_token, stack.slack.signing_secret, stack.gemini.api_key):
            assert secret not in text
    finally:
        next(stacks, None)


def scrape(url: str) -> dict[str, float]:
    """``/metrics`` as {"name{labels}": value}, after checking every metric is the bot's own."""
    response = httpx.get(f"{url}/metrics", timeout=10)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    samples: dict[str, float] = {}
    for line in response.text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    assert samples and all(name.startswith("banana_") for name in samples)
    return samples


def test_metrics_after_a_job_count_it(stack: Stack) -> None:
    stack.slack.send_command("a paper boat")
    stack.uploads(1)
    stack.settled()
    [job] = stack.jobs()
    samples = scrape(stack.app.url)
    assert samples["banana_claims_total"] == 1
    assert samples['banana_jobs{state="done"}'] == 1 and samples["banana_queue_depth"] == 0
    assert samples[f'banana_gemini_request_seconds_count{{model="{job.model_id}"}}'] == 1
    assert samples[f'banana_images_total{{model="{job.model_id}"}}'] == 1
    assert samples["banana_ack_seconds_count"] >= 1  # the command's request
    assert sum(v for k, v in samples.items() if k.startswith("banana_spent_dollars_total")) > 0
    assert not any(re.match(r"banana_slack_api_errors_total", k) for k in samples)


def test_a_worker_serves_metrics_and_health_on_its_own_port(tmp_path: Path) -> None:
    stacks = make_stack(tmp_path, "sqlite", BANANA_WORKERS="0")
    stack = next(stacks)
    try:
        stack.start_app()  # web only
        port = free_port()
        worker = stack.start_app(command="worker", BANANA_WORKERS="2", METRICS_PORT=str(port))
        url = f"http://127.0.0.1:{port}"
        stack.slack.send_command("a paper boat")
        stack.uploads(1)
        stack.settled()
        health = httpx.get(f"{url}/healthz", timeout=10)
        assert health.status_code == 200 and health.json() == {"ok": True}
        assert scrape(url)["banana_claims_total"] == 1
        assert "metrics on http://0.0.0.0:" in worker.logs()
    finally:
        next(stacks, None)


def test_a_job_queued_by_a_web_process_wakes_a_worker_process_at_once(pg_stack: Stack) -> None:
    """PostgreSQL LISTEN/NOTIFY: the workers' own look for work is a minute apart here, so the job can only
    be claimed in time because the web process's commit woke them (how fast: ``bench/``, "wake-up")."""
    stack = pg_stack
    stack.start_app(BANANA_WORKERS="0")
    workers = [
        stack.start_app(command="worker", BANANA_WORKERS="2", BANANA_POLL_SECONDS="60") for _ in range(2)
    ]
    for worker in workers:
        worker.wait_for_log("listening for new jobs")
        worker.wait_for_log("2 workers started")
    stack.slack.send_command("a paper boat")
    [upload] = stack.uploads(1, timeout=20)  # well inside the minute
    root = str(upload.thread_ts)
    stack.settled()
    stack.slack.post_user_message(channel="C0GENERAL", text="make it blue", thread_ts=root)
    stack.uploads(2, timeout=20)
