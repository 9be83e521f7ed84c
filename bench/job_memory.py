"""How many copies of its image one job holds at its peak: the real runner in this process, traced with
tracemalloc, against the stand-ins in a child process (so their own allocations don't count).

    .venv/bin/python bench/job_memory.py [--sizes 1K,4K]

Figures, beside their baseline from the same run: the image's size, and the peak of Python memory
allocated while the job ran (claim to done), as a multiple of the image. Gemini's images carry
photographic grain, so a 4K answer weighs what a real one does.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import tracemalloc
from pathlib import Path

import httpx

from bot import queue
from bot.catalog import Catalog
from bot.db import open_database, session_factory
from bot.gemini import GeminiClient
from bot.intake import Intake
from bot.jobs import JobRunner
from bot.models import Blob, Job
from bot.payloads import Command
from bot.slack import SlackGateway, web_client

MB = 1024 * 1024
STAND_INS = """
import json, sys
from bot.sandbox.fake_gemini import FakeGemini
from bot.sandbox.fake_slack import FakeSlack
with FakeSlack() as slack, FakeGemini(grain=True) as gemini:
    print(json.dumps({"api": slack.api_url, "token": slack.bot_token, "team": slack.team_id,
                      "gemini": gemini.url, "key": gemini.api_key}), flush=True)
    sys.stdin.read()  # until the benchmark closes it
"""


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="1K,4K")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="banana-job-memory-"))
    child = subprocess.Popen(
        [sys.executable, "-c", STAND_INS], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None and child.stdin is not None
    where = json.loads(child.stdout.readline())
    try:
        engine = open_database(f"sqlite:///{tmp / 'memory.db'}")
        sessions = session_factory(engine)
        with httpx.Client(timeout=300) as http:
            gateway = SlackGateway(
                web_client(token=where["token"], base_url=where["api"]), http=http, api_url=where["api"]
            )
            runner = JobRunner(
                sessions=sessions,
                gemini=GeminiClient(http, base_url=where["gemini"], api_key=where["key"]),
                slack=lambda _team: gateway,
            )
            intake = Intake(sessions=sessions, catalog=Catalog(), default_model="nano-banana-2.1")
            for n, size in enumerate(args.sizes.split(","), start=1):
                command = Command(
                    where["team"], "C0GENERAL", "UALICE", f"a harbour, take {n} --size {size}", None
                )
                job_id = intake.command(command).job_id
                with sessions() as session:
                    lease = queue.claim(session, owner="bench", lease_seconds=300)
                assert lease is not None and lease.job_id == job_id
                tracemalloc.start()
                runner.run(lease)
                _, peak = tracemalloc.get_traced_memory()
                tracemalloc.stop()
                with sessions() as session:
                    job = session.get(Job, job_id)
                    assert job is not None and job.state == "done", job and job.error_message
                    image = max(b.size for b in session.query(Blob).all() if b.id)
                print(
                    f"{size}: image {image / MB:5.1f} MB; peak Python memory during the job "
                    f"{peak / MB:6.1f} MB = {peak / image:4.1f} copies of the image"
                )
    finally:
        child.stdin.close()
        child.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
