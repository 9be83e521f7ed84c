"""What one claim costs (``queue.claim``: the claims lock, then the one statement that takes the next job)
as the running jobs grow, on SQLite or PostgreSQL, in this process. Claims take turns, so a wave of answers
stored at once waits for the claims that follow them one by one.

The queue of the makespan workload: one person's ``--conversations`` conversations of ``--turns`` turns each.
Baseline: a claim with nothing running (each conversation's first turn). Then the same with every first turn
running and answered (still being delivered), so that each conversation's second turn can be claimed beside
them: the claims of the next wave.

    .venv/bin/python bench/claim_cost.py [--conversations 40] [--turns 5] [--database-url URL]

Figures, not assertions: the median time of a claim, in this thread, on a fresh database.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import text, update
from sqlalchemy.orm import Session, sessionmaker

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot import queue
from bot.catalog import Catalog
from bot.db import listener_sessions, open_database, session_factory
from bot.intake import Intake
from bot.models import Job
from bot.payloads import parse_message
from bot.sandbox.databases import private_database

BOT = "UBOT"


def fill(sessions: sessionmaker[Session], conversations: int, turns: int) -> None:
    """One person's conversations, every turn queued, as the intake writes them."""
    intake = Intake(sessions=sessions, catalog=Catalog(), default_model="nano-banana-2.1")
    for turn in range(turns):
        for c in range(conversations):
            event = {"type": "app_mention", "user": "U1", "channel": f"C{c}", "ts": f"{1000 + turn}.{c:04d}"}
            if turn:
                event |= {"type": "message", "thread_ts": f"1000.{c:04d}"}
            message = parse_message(
                {**event, "text": f"<@{BOT}> a mug, turn {turn}"}, team_id="T1", bot_user_id=BOT
            )
            assert message is not None
            assert intake.message(message, event_id=f"E{c}-{turn}").job_id is not None


def claims(sessions: sessionmaker[Session], n: int, tag: str) -> list[float]:
    spent = []
    with sessions() as session:
        for i in range(n):
            started = time.perf_counter()
            lease = queue.claim(session, owner=f"{tag}{i}", lease_seconds=600, per_user=1_000_000)
            spent.append(time.perf_counter() - started)
            assert lease is not None, "nothing to claim"
    return spent


def measure(url: str, conversations: int, turns: int) -> tuple[float, float]:
    engine = open_database(url)
    try:
        sessions = session_factory(engine)
        fill(listener_sessions(engine), conversations, turns)
        if engine.dialect.name == "postgresql":
            with engine.begin() as conn:
                conn.execute(text("ANALYZE job"))
        idle = claims(sessions, conversations, "first")  # the first turns, with nothing running
        with sessions.begin() as session:  # answered, still being delivered: the next turns may run
            session.execute(update(Job).where(Job.state == "running").values(result_turn_id=Job.turn_id))
        busy = claims(sessions, conversations, "second")
    finally:
        engine.dispose()
    return statistics.median(idle), statistics.median(busy)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--conversations", type=int, default=40)
    parser.add_argument("--turns", type=int, default=5)
    parser.add_argument("--database-url", default=None, help="default: SQLite in a temporary folder")
    args = parser.parse_args()
    sqlite_file = Path(tempfile.mkdtemp(prefix="banana-claims-")) / "claims.db"
    with private_database(args.database_url, sqlite_file=sqlite_file, prefix="banana_claims") as private:
        idle, busy = measure(private, args.conversations, args.turns)
    n = args.conversations
    print("| Figure | Baseline | Baseline value | This project | Ratio |\n|---|---|---|---|---|")
    print(
        f"| a claim with {n} running, median | a claim with none running | {idle * 1000:.2f} ms "
        f"| {busy * 1000:.2f} ms | {busy / idle:.2f}× |"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
