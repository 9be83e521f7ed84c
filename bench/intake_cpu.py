"""CPU one request costs the ack path inside the bot (``Intake``), by kind, in this process on SQLite:
a ``/banana`` (the baseline), a mention that starts a conversation, and a reply in its thread. Limits on
(their check runs on every request), no workers (the queue grows as it would in a burst).

    .venv/bin/python bench/intake_cpu.py [--requests 300]

Figures, not assertions: process CPU time per request, the median of ``--rounds`` rounds.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.catalog import Catalog
from bot.db import listener_sessions, open_database
from bot.intake import Intake
from bot.limits import parse_limits
from bot.payloads import Command, Message, parse_message

BOT = "UBOT"


def mention(i: int) -> Message:
    event = {"type": "app_mention", "user": f"U{i % 20}", "channel": f"C{i}", "ts": f"{1000 + i}.0"}
    message = parse_message({**event, "text": f"<@{BOT}> a mug, number {i}"}, team_id="T1", bot_user_id=BOT)
    assert message is not None
    return message


def reply(i: int) -> Message:
    event = {"type": "message", "user": f"U{i % 20}", "channel": f"C{i}", "ts": f"{5000 + i}.0"}
    message = parse_message(
        {**event, "thread_ts": f"{1000 + i}.0", "text": f"make it blue, {i}"}, team_id="T1", bot_user_id=BOT
    )
    assert message is not None
    return message


def one_round(n: int, tag: int) -> dict[str, float]:
    """Seconds of CPU per request, by kind, on a fresh database."""
    engine = open_database(f"sqlite:///{tempfile.mkdtemp(prefix='banana-intake-')}/intake.db")
    intake = Intake(
        sessions=listener_sessions(engine),
        catalog=Catalog(),
        default_model="nano-banana-2.1",
        limits=parse_limits("user/day=1000000,user/month=$1000000,workspace/month=$1000000"),
    )

    def command(i: int) -> object:
        text = f"a mug {i}"
        return intake.command(
            Command(team_id="T1", channel_id=f"D{i}", user_id=f"U{i % 20}", text=text, response_url="")
        )

    kinds: dict[str, Callable[[int], object]] = {
        "/banana": command,
        "mention": lambda i: intake.message(mention(i), event_id=f"Ev{tag}m{i}"),
        "reply": lambda i: intake.message(reply(i), event_id=f"Ev{tag}r{i}"),
    }
    spent: dict[str, float] = {}
    for name, run in kinds.items():
        started = time.process_time()
        for i in range(n):
            run(i)
        spent[name] = (time.process_time() - started) / n
    engine.dispose()
    return spent


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    rounds = [one_round(args.requests, r) for r in range(args.rounds)]
    base = statistics.median(r["/banana"] for r in rounds)
    print("| Request | CPU per request | vs /banana |\n|---|---|---|")
    for name in rounds[0]:
        value = statistics.median(r[name] for r in rounds)
        print(f"| {name} | {value * 1000:.2f} ms | {value / base:.2f}× |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
