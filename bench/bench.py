"""Benchmarks: figures, not assertions. Runs the real app as a process against the stand-ins.

    .venv/bin/python bench/bench.py [--jobs 100] [--gemini-latency 1.0] [--workers 8] [--thread-length 20]
    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test .venv/bin/python bench/bench.py   # on PostgreSQL

Prints: ack latency (p50/p95/max) for /banana while the workers are busy; overhead per job beyond
Gemini's own time (from the job rows); throughput for many concurrent requests; request size as a thread
grows; the app's peak memory.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from sqlalchemy import select

from bot.db import create_db_engine, session_factory
from bot.models import Job
from bot.sandbox.fake_gemini import FakeGemini
from bot.sandbox.fake_slack import FakeSlack
from bot.sandbox.process import AppProcess, free_port
from bot.sandbox.scenario import sandbox_env


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:7.1f} ms"


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=100)
    parser.add_argument("--gemini-latency", type=float, default=1.0)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--thread-length", type=int, default=20)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="banana-bench-"))
    database_url = args.database_url or f"sqlite:///{tmp / 'bench.db'}"
    with FakeSlack() as slack, FakeGemini(latency_s=args.gemini_latency) as gemini:
        port = free_port()
        slack.request_url = f"http://127.0.0.1:{port}/slack/events"
        env = sandbox_env(slack, gemini, database_url=database_url, port=port)
        env["BANANA_WORKERS"] = str(args.workers)
        app = AppProcess(env, log_path=tmp / "app.log").start()
        app.wait_healthy()
        assert app.process is not None
        print(
            f"database: {database_url.split('@')[-1]}, workers: {args.workers}, "
            f"Gemini stand-in latency: {args.gemini_latency:.2f} s, jobs: {args.jobs}\n"
        )

        # 1. Throughput, and ack latency while the queue is full: concurrent mentions in many channels.
        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=16) as pool:
            mention = f"<@{slack.bot_user_id}> job"
            deliveries = list(
                pool.map(
                    lambda n: slack.post_user_message(channel=f"C{n:04d}", text=f"{mention} {n}"),
                    range(args.jobs),
                )
            )
        submit_s = time.monotonic() - started
        acks = [d.elapsed_s for batch in deliveries for d in batch]
        slack.wait_for_uploads(args.jobs, timeout=args.jobs * args.gemini_latency + 120)
        total_s = time.monotonic() - started
        ideal_s = args.jobs * args.gemini_latency / args.workers
        print("ack latency (event deliveries, 16 senders, queue filling):")
        print(
            f"  p50 {ms(pct(acks, 50))}   p95 {ms(pct(acks, 95))}   max {ms(max(acks))}   "
            f"({len(acks)} deliveries in {submit_s:.1f} s)"
        )
        commands = [slack.send_command(f"busy-time command {n}").elapsed_s for n in range(20)]
        print(
            f"  /banana while {args.workers} workers are busy: p50 {ms(pct(commands, 50))}   "
            f"max {ms(max(commands))}"
        )
        print(
            f"\nthroughput: {args.jobs} images in {total_s:.1f} s = {args.jobs / total_s:.1f} images/s "
            f"(ideal with {args.workers} workers at {args.gemini_latency:.2f} s each: {ideal_s:.1f} s, "
            f"efficiency {ideal_s / total_s:.0%})"
        )
        slack.wait_for_uploads(args.jobs + 20, timeout=120)

        # 2. Overhead per job beyond Gemini's own time, from the job rows.
        engine = create_db_engine(database_url)
        with session_factory(engine)() as session:
            jobs = session.scalars(select(Job).where(Job.state == "done")).all()
            overhead = [
                (job.finished_at - job.started_at).total_seconds() - (job.gemini_seconds or 0)
                for job in jobs
                if job.finished_at and job.started_at
            ]
        print("\noverhead per job beyond Gemini (claim → status → history → store → upload → done):")
        mean, p95 = statistics.mean(overhead), pct(overhead, 95)
        print(f"  mean {ms(mean)}   p95 {ms(p95)}   max {ms(max(overhead))}")

        # 3. Request size as one thread grows.
        before = len(gemini.requests)
        slack.send_command("a long conversation --ar 1:1", channel_id="C0LONG")
        slack.wait_for(lambda: len(gemini.requests) > before and slack.wait_for_uploads(args.jobs + 21))
        root = next(
            m for m in reversed(slack.messages) if m.get("channel") == "C0LONG" and not m.get("thread_ts")
        )
        for n in range(1, args.thread_length):
            slack.post_user_message(channel="C0LONG", text=f"edit number {n}", thread_ts=str(root["ts"]))
            slack.wait_for_uploads(args.jobs + 21 + n, timeout=60)
        sizes = [len(json.dumps(c.body)) for c in gemini.requests[before:]]
        print(f"\nrequest size as the thread grows (bytes of generateContent body, turn 1..{len(sizes)}):")
        print("  " + " ".join(f"{s // 1024}K" for s in sizes))
        print(
            f"  turn 1: {sizes[0]:,} B, turn 5: {sizes[min(4, len(sizes) - 1)]:,} B, "
            f"last: {sizes[-1]:,} B (bounded: brief + 2 latest exchanges)"
        )

        print(f"\napp peak memory (VmHWM): {peak_rss_mb(app.process.pid):.0f} MB")
        app.terminate()
        engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
