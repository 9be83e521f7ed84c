"""What one job costs the bot's worker (``JobRunner.run``: the root and status messages, the history, the
Gemini call, the answer stored, the upload and its share, the card, done), on SQLite or PostgreSQL, against
the stand-ins in this process. Jobs run one at a time in this thread, so nothing else competes:

- CPU per job: this thread's CPU time (the stand-ins answer on threads of their own, not counted);
- statements, transactions and pings (a PostgreSQL connection checked before use) per job, counted from
  SQLAlchemy's events on the app's engines and around its dialect's ping: the database round trips a job
  makes, beside each transaction's BEGIN and COMMIT;
- connections opened per job.

    .venv/bin/python bench/job_cpu.py [--jobs 30] [--rounds 3] [--database-url URL]

Figures, not assertions: medians of ``--rounds`` rounds, each on a fresh database, after two jobs that warm
the connections up. The whole-process figures, with contention, are ``bench.py``'s.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Engine, event
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot import queue
from bot.catalog import Catalog
from bot.db import image_engine, open_database, session_factory
from bot.gemini import GeminiClient
from bot.intake import Intake
from bot.jobs import JobRunner
from bot.limits import parse_limits
from bot.payloads import Command
from bot.sandbox.databases import private_database
from bot.sandbox.fake_gemini import FakeGemini
from bot.sandbox.fake_slack import FakeSlack
from bot.slack import SlackGateway, web_client

FIGURES = ("CPU per job (ms)", "statements", "transactions", "pings", "connections opened")


def count(engine: Engine, counts: Counter[str]) -> None:
    def add(name: str) -> Any:
        return lambda *_args, **_kwargs: counts.update([name])

    event.listen(engine, "before_cursor_execute", add("statements"))
    event.listen(engine, "begin", add("transactions"))
    event.listen(engine, "connect", add("connections opened"))
    ping = engine.dialect.do_ping

    def counted_ping(dbapi_connection: Any) -> bool:
        counts["pings"] += 1
        return ping(dbapi_connection)

    engine.dialect.do_ping = counted_ping  # type: ignore[method-assign]


def one_round(url: str | None, jobs: int) -> dict[str, float]:
    """Per job, after two that warm up."""
    server = url if url and make_url(url).get_backend_name() != "sqlite" else None  # SQLite: a new file
    fresh = Path(tempfile.mkdtemp(prefix="banana-job-cpu-")) / "bench.db"
    with (
        private_database(server, sqlite_file=fresh, prefix="banana_job_cpu") as database_url,
        FakeSlack() as slack,
        FakeGemini() as gemini,
        httpx.Client(timeout=30) as http,
    ):
        slack.share_delay_s = 0.0
        engine = open_database(database_url, pool_size=8)
        images = image_engine(engine)
        counts: Counter[str] = Counter()
        for each in {engine, images}:
            count(each, counts)
        sessions = session_factory(engine)
        gateway = SlackGateway(
            web_client(token=slack.bot_token, base_url=slack.api_url), http=http, api_url=slack.api_url
        )
        runner = JobRunner(
            sessions=sessions,
            image_sessions=session_factory(images),
            gemini=GeminiClient(http, base_url=gemini.url, api_key=gemini.api_key),
            slack=lambda _team_id: gateway,
        )
        intake = Intake(
            sessions=sessions,
            catalog=Catalog(),
            default_model="nano-banana-2.1",
            limits=parse_limits("user/day=1000000,workspace/month=$1000000"),
        )

        def job(i: int) -> None:
            url = slack.new_response_url(channel_id="C0GENERAL", user_id="UALICE")
            command = Command(
                team_id=slack.team_id,
                channel_id="C0GENERAL",
                user_id="UALICE",
                text=f"a mug {i}",
                response_url=url,
            )
            assert intake.command(command).job_id is not None
            counts.clear()
            started = time.thread_time()
            with sessions() as session:
                lease = queue.claim(session, owner="bench", lease_seconds=60)
            assert lease is not None
            runner.run(lease)
            counts["CPU per job (ms)"] += round((time.thread_time() - started) * 1_000_000)

        for i in range(2):
            job(i)
        totals: Counter[str] = Counter()
        for i in range(jobs):
            job(2 + i)
            totals.update(counts)
        if len(slack.uploads) != jobs + 2:
            raise SystemExit(f"{len(slack.uploads)} uploads for {jobs + 2} jobs")
        engine.dispose()
        images.dispose()
    per_job = {name: totals[name] / jobs for name in FIGURES}
    per_job["CPU per job (ms)"] /= 1000  # counted in microseconds
    return per_job


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--database-url", default=None, help="default: SQLite in a temporary folder")
    args = parser.parse_args()
    rounds = [one_round(args.database_url, args.jobs) for _ in range(args.rounds)]
    database = make_url(args.database_url).get_backend_name() if args.database_url else "sqlite"
    print(f"| Per job ({database}, {args.jobs} jobs, median of {args.rounds} rounds) | Value |\n|---|---|")
    for name in FIGURES:
        print(f"| {name} | {statistics.median(r[name] for r in rounds):.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
