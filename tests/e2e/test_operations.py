"""Issue 22, end to end: what an operator gets from the running app: structured logs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.conftest import make_stack

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
