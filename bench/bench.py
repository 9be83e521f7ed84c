"""The benchmark: the real app as processes against the stand-ins, each figure beside a baseline measured in
the same run, and the ratio. Figures, never assertions.

    .venv/bin/python bench/bench.py                       # SQLite (a file in a temporary folder)
    .venv/bin/python bench/bench.py --database-url postgresql://postgres@127.0.0.1:5432/test
    .venv/bin/python bench/bench.py --quick               # a smoke run in under a minute (CI runs it)

Baselines: a bare Bolt app on the same server stack (``bench/bare_app.py``: Bolt, waitress with our
settings, signature checks on, listeners that only ack), a straight-line script that calls Gemini, uploads
with ``files_upload_v2`` and polls ``files.info`` until the share shows (``straight_line_job``), and floors
the run itself measures (the time requests spent inside the stand-in Gemini).

The stand-in Slack answers each Web API call after ``--slack-latency`` and shows a shared file in
``files.info`` after ``--share-delay``, as the real one does; the stand-in Gemini answers after
``--gemini-latency`` (more in the makespan workload).
"""

from __future__ import annotations

import argparse
import base64
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from slack_sdk import WebClient
from sqlalchemy import delete, select

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.db import create_db_engine, migrate, session_factory
from bot.models import Base, Job
from bot.sandbox.databases import private_database
from bot.sandbox.fake_gemini import FakeGemini
from bot.sandbox.fake_slack import FakeSlack
from bot.sandbox.process import AppProcess, free_port
from bot.sandbox.scenario import sandbox_env

BENCH = Path(__file__).resolve().parent
MODEL = "gemini-nano-banana-2.1"  # what the default model resolves to
NEVER_REACHED = "user/day=1000000,user/month=$1000000,workspace/month=$1000000"


@dataclass
class Row:
    figure: str
    baseline: str
    base: float
    ours: float
    unit: str = "ms"
    target: str = ""

    def cells(self) -> list[str]:
        scale = 1000.0 if self.unit == "ms" else 1.0
        decimals = 0 if self.unit == "" else 1
        ratio = self.ours / self.base if self.base > 0 else float("nan")
        return [
            self.figure,
            self.baseline,
            f"{self.base * scale:,.{decimals}f} {self.unit}".strip(),
            f"{self.ours * scale:,.{decimals}f} {self.unit}".strip(),
            f"{ratio:.2f}×",
            self.target,
        ]


def pct(values: Sequence[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def timed_commands(slack: FakeSlack, bursts: Sequence[tuple[str, Sequence[str]]]) -> list[list[float]]:
    """Ack times of ``/banana`` bursts, each ``(url, texts)`` (each text from its own person in its own
    channel, a burst's commands sent at once, one burst after another), timed by ``burst_client.py`` in a
    process of its own, where the stand-ins' work can't delay them. Twenty people at once: one person's
    own burst is checked against their limits one request at a time, by design (``db.lock_requester``)."""
    job = {
        "bursts": [
            {
                "url": url,
                "requests": [
                    {"body": body.decode(), "headers": headers}
                    for body, headers in (
                        slack.command_request(text, channel_id=f"CB{i:03d}", user_id=f"UB{i:03d}")
                        for i, text in enumerate(texts)
                    )
                ],
            }
            for url, texts in bursts
        ]
    }
    done = subprocess.run(
        [sys.executable, str(BENCH / "burst_client.py")],
        input=json.dumps(job),
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    results = json.loads(done.stdout)
    failed = [status for status, _ in results if status != 200]
    if failed:
        raise SystemExit(f"{len(failed)} of {len(results)} commands were not acknowledged: {failed[:5]}")
    times = iter(float(seconds) for _, seconds in results)
    return [[next(times) for _ in texts] for _, texts in bursts]


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.tmp = Path(tempfile.mkdtemp(prefix="banana-bench-"))
        # A database of the bench's own, which it empties between workloads (dropped by ``close``).
        self._databases = ExitStack()
        self.database_url = self._databases.enter_context(
            private_database(args.database_url, sqlite_file=self.tmp / "bench.db", prefix="banana_bench")
        )
        self.size = f" --size {args.image_size}" if args.image_size else ""  # appended to every request
        self.rows: list[Row] = []
        self.notes: list[str] = []

    # --- processes -------------------------------------------------------------------------------------

    def stand_ins(self, gemini_latency: float) -> tuple[FakeSlack, FakeGemini]:
        slack = FakeSlack()
        slack.api_latency_s = self.args.slack_latency
        slack.share_delay_s = self.args.share_delay
        slack.delivery_timeout = 30.0
        return slack, FakeGemini(latency_s=gemini_latency, grain=self.args.grain)

    def close(self) -> None:
        self._databases.close()

    def fresh_database(self) -> None:
        engine = create_db_engine(self.database_url)
        migrate(engine)
        with engine.begin() as conn:
            for table in reversed(Base.metadata.sorted_tables):
                if table.name != "alembic_version":
                    conn.execute(delete(table))
        engine.dispose()

    @contextmanager
    def app(
        self,
        slack: FakeSlack,
        gemini: FakeGemini,
        *,
        workers: int,
        command: str = "serve",
        name: str = "app",
        **settings: str,
    ) -> Iterator[AppProcess]:
        port = free_port()
        env = sandbox_env(slack, gemini, database_url=self.database_url, port=port)
        env.update(settings)
        env["BANANA_WORKERS"] = str(workers)
        env["BANANA_LIMITS"] = NEVER_REACHED  # checked on every request, as in production, and never hit
        # One person sends each workload here: their cap on running jobs would measure the cap, not the app
        # (the round-robin ordering of claims is still paid for on every claim).
        env["BANANA_USER_CONCURRENCY"] = "100000"
        process = AppProcess(env, command=command, log_path=self.tmp / f"{name}-{port}.log").start()
        try:
            if command == "serve":
                process.wait_healthy(timeout=60)
                slack.request_url = f"{process.url}/slack/events"
            else:
                process.wait_for_log("workers started", timeout=60)
            yield process
        finally:
            process.terminate(timeout=60)

    @contextmanager
    def bare_app(self, slack: FakeSlack, *, durable: bool = False) -> Iterator[AppProcess]:
        """``durable``: its ``/banana`` writes one row before it acks: on PostgreSQL to a table of the
        bench's database, on SQLite to a file of its own (sharing ours, it would wait for our workers'
        write lock, and measure them)."""
        env = {"SLACK_BOT_TOKEN": slack.bot_token, "SLACK_SIGNING_SECRET": slack.signing_secret}
        env["SLACK_API_URL"] = slack.api_url
        if durable:
            postgresql = self.database_url.startswith("postgres")
            env["BARE_DATABASE_URL"] = (
                self.database_url if postgresql else f"sqlite:///{self.tmp / 'bare.db'}"
            )
        env["PORT"] = str(free_port())
        log = self.tmp / f"bare-{env['PORT']}.log"
        process = AppProcess(env, command="", script=BENCH / "bare_app.py", log_path=log)
        try:
            process.start().wait_healthy(timeout=30)
            yield process
        finally:
            process.terminate()

    # --- workloads -------------------------------------------------------------------------------------

    def acks_idle(self) -> None:
        """Sequential slash commands against the bare app and against a web process (no workers here:
        nothing else runs, so this is the listener path alone). Beside them, the bare app that writes one
        row before its ack: the floor for an ack that comes after a durable write, as ours does."""
        n = self.args.idle_commands
        slack, gemini = self.stand_ins(0.0)

        def timed(url: str) -> list[float]:
            slack.request_url = f"{url}/slack/events"
            for _ in range(5):
                slack.send_command("warm up")
            return [slack.send_command(f"idle {i}").elapsed_s for i in range(n)]

        with slack, gemini:
            self.fresh_database()
            with self.bare_app(slack) as bare:
                base = timed(bare.url)
            with self.bare_app(slack, durable=True) as bare:
                durable = timed(bare.url)
            with self.app(slack, gemini, workers=0) as app:
                ours = timed(app.url)
        self.rows.append(
            Row("slash-command ack p99, idle", "bare Bolt app", pct(base, 99), pct(ours, 99), target="≤ 2×")
        )
        self.rows.append(
            Row(
                "slash-command ack p99, idle",
                "bare Bolt app writing one row first",
                pct(durable, 99),
                pct(ours, 99),
            )
        )
        p50s = (
            f"{statistics.median(ours) * 1000:.1f} ms (bare: {statistics.median(base) * 1000:.1f} ms, "
            f"writing one row: {statistics.median(durable) * 1000:.1f} ms)"
        )
        self.notes.append(f"idle ack p50: {p50s}")

    def acks_loaded(self) -> None:
        """Bursts of 20 concurrent commands while ``--workers`` jobs run (each in its own channel), sent in
        turn to the bare app, to the bare app writing one row first and to ours, all up at once: the bare
        apps' bursts meet the same load on the machine (the stand-ins, the database, our workers), so the
        ratios are what our own ack path adds. The bare app's bursts before the load are reported too."""
        bursts, size, workers = self.args.bursts, 20, self.args.workers
        slack, gemini = self.stand_ins(self.args.gemini_latency)

        def burst(url: str, label: str) -> tuple[str, list[str]]:
            return url, [f"{label} {i}{self.size}" for i in range(size)]

        self.fresh_database()
        with (
            slack,
            gemini,
            self.bare_app(slack) as bare,
            self.bare_app(slack, durable=True) as writing,
            self.app(slack, gemini, workers=workers) as app,
        ):
            bare_url, writing_url = f"{bare.url}/slack/events", f"{writing.url}/slack/events"
            ours_url = f"{app.url}/slack/events"
            slack.request_url = ours_url  # the load's mentions
            timed_commands(slack, [burst(bare_url, "warm up")])
            quiet = [t for times in timed_commands(slack, [burst(bare_url, "quiet")] * bursts) for t in times]
            mention = f"<@{slack.bot_user_id}>"
            with ThreadPoolExecutor(max_workers=10) as pool:
                list(
                    pool.map(
                        lambda i: slack.post_user_message(
                            channel=f"CL{i:03d}", text=f"{mention} load {i}{self.size}"
                        ),
                        range(workers),
                    )
                )
            gemini.wait_for(lambda: len(gemini.requests) >= min(workers, 10), timeout=60)
            # Taking turns, burst by burst, so that both meet the load as it was.
            urls = (bare_url, writing_url, ours_url)
            timed = timed_commands(slack, [burst(url, f"burst {b}") for b in range(bursts) for url in urls])
            base, durable, ours = ([t for times in timed[i :: len(urls)] for t in times] for i in range(3))
            slack.wait_for_uploads(workers + bursts * size, timeout=600)
            rss = app.peak_rss() / 1_048_576
        self.rows.append(
            Row(
                f"ack p99, bursts of {size} while {workers} jobs run",
                "bare Bolt app, same bursts, same load",
                pct(base, 99),
                pct(ours, 99),
                target="≤ 2×, < 1 s",
            )
        )
        self.rows.append(
            Row(
                f"ack p99, bursts of {size} while {workers} jobs run",
                "bare Bolt app writing one row first",
                pct(durable, 99),
                pct(ours, 99),
            )
        )
        self.notes.append(
            f"worst single ack under load: {max(ours) * 1000:.0f} ms (bare: {max(base) * 1000:.0f} ms, "
            f"writing one row: {max(durable) * 1000:.0f} ms); "
            f"the bare app's bursts before the load: p99 {pct(quiet, 99) * 1000:.1f} ms"
        )
        self.rows.append(
            Row(f"peak RSS with {workers} workers", "(limit)", 400.0, rss, unit="MB", target="< 400 MB")
        )

    def per_job(self) -> None:
        """One job at a time: ack → image shared in the thread → job done, minus the time inside Gemini.
        Baseline: the straight-line script doing Gemini, upload and share check for the same image."""
        n = self.args.sequential_jobs
        slack, gemini = self.stand_ins(self.args.gemini_latency)
        with slack, gemini:
            client = WebClient(token=slack.bot_token, base_url=slack.api_url)
            thread_ts = str(client.chat_postMessage(channel="CSCRIPT", text="a thread for the script")["ts"])
            base = [
                straight_line_job(client, gemini, "CSCRIPT", thread_ts, image_size=self.args.image_size)
                for _ in range(n)
            ]
            self.fresh_database()
            with self.app(slack, gemini, workers=1):
                mention = f"<@{slack.bot_user_id}>"
                ours: list[float] = []
                engine = create_db_engine(self.database_url)
                sessions = session_factory(engine)
                for i in range(n):
                    before = len(gemini.requests)
                    slack.post_user_message(channel=f"CJ{i:03d}", text=f"{mention} job {i}{self.size}")
                    done = wait_done(sessions, i + 1)
                    call = gemini.requests[before]
                    assert call.answered_at is not None
                    ours.append(done - (call.answered_at - call.at))
                engine.dispose()
        self.rows.append(
            Row(
                "per-job time beyond Gemini's (ack → shared → done), mean",
                "straight-line script",
                statistics.mean(base),
                statistics.mean(ours),
                target="≤ 1.3×",
            )
        )

    def makespan(self) -> None:
        """``--conversations`` threads of ``--turns`` each, all sent at once: a mention and its replies.
        Floor: the slowest conversation's time inside the stand-in Gemini (its turns run one after
        another); ideal: all jobs' Gemini time spread evenly over the workers."""
        conversations, turns, workers = self.args.conversations, self.args.turns, self.args.workers
        latency = self.args.makespan_latency
        slack, gemini = self.stand_ins(latency)
        self.fresh_database()
        with slack, gemini, self.app(slack, gemini, workers=workers):
            mention = f"<@{slack.bot_user_id}>"
            started = time.monotonic()

            def start(c: int) -> str:
                channel = f"CM{c:03d}"
                slack.post_user_message(channel=channel, text=f"{mention} conv{c}x turn0{self.size}")
                return next(
                    str(m["ts"])
                    for m in reversed(list(slack.messages))
                    if m.get("channel") == channel and not m.get("thread_ts")
                )

            def replies(c: int, ts: str) -> None:
                for t in range(1, turns):
                    slack.post_user_message(channel=f"CM{c:03d}", text=f"conv{c}x turn{t}", thread_ts=ts)

            # Every conversation's first message at once, then the replies (which wait for it anyway):
            # posting conversation by conversation kept the last first turns back by a second or more.
            with ThreadPoolExecutor(max_workers=conversations) as pool:
                roots = list(pool.map(start, range(conversations)))
            with ThreadPoolExecutor(max_workers=10) as pool:
                list(pool.map(replies, range(conversations), roots))
            total = conversations * turns
            slack.wait_for_uploads(total, timeout=total * latency + 300)
            took = time.monotonic() - started
            inside: dict[str, float] = defaultdict(float)
            for call in gemini.requests:
                tag = _conversation_tag(call.body)
                if call.answered_at is not None:
                    inside[tag] += call.answered_at - call.at
            floor = max(inside.values())
        ideal = total * latency / min(workers, conversations * turns)
        ideal = max(ideal, turns * latency)
        self.rows.append(
            Row(
                f"makespan, {total} jobs / {conversations} conversations / {latency:g} s Gemini / "
                f"{workers} workers",
                "slowest conversation inside Gemini",
                floor,
                took,
                unit="s",
                target="≤ 1.15×",
            )
        )
        self.notes.append(f"makespan against the ideal ({ideal:.1f} s): {took / ideal:.2f}×")
        self.notes.append(f"makespan, per job (medians, from the job rows): {self.job_breakdown()}")

    def job_breakdown(self) -> str:
        """Where a job's time goes beyond Gemini's: waiting to be claimed once it could run (queued, and
        the answer of the job before it in its conversation stored), and its run (claim to done) minus
        Gemini's time."""
        engine = create_db_engine(self.database_url)
        with session_factory(engine)() as session:
            jobs = session.scalars(select(Job).where(Job.state == "done").order_by(Job.id)).all()
        engine.dispose()
        answered_at: dict[int, Any] = {}
        waits, answers, runs = [], [], []
        for job in jobs:
            assert job.started_at is not None and job.answered_at is not None and job.finished_at is not None
            ready = max(job.created_at, answered_at.get(job.conversation_id, job.created_at))
            gemini = job.gemini_seconds or 0.0
            waits.append((job.started_at - ready).total_seconds())
            answers.append((job.answered_at - job.started_at).total_seconds() - gemini)
            runs.append((job.finished_at - job.started_at).total_seconds() - gemini)
            answered_at[job.conversation_id] = job.answered_at
        return (
            f"claimed {statistics.median(waits) * 1000:.0f} ms after it could run, "
            f"answer stored {statistics.median(answers) * 1000:.0f} ms and done "
            f"{statistics.median(runs) * 1000:.0f} ms after the claim, beyond Gemini"
        )

    def wakeup(self) -> None:
        """PostgreSQL only: how long a job queued by a web process waits until a worker process claims it,
        woken by LISTEN/NOTIFY (with its fallback look once a second), against polling alone (every 0.1 s,
        ``BANANA_LISTEN=off``). One job at a time, each after the last is done, at a random moment."""
        if not self.database_url.startswith("postgres"):
            self.notes.append("wake-up: PostgreSQL only (pass --database-url)")
            return
        jobs = self.args.wakeup_jobs

        def run(listen: str) -> list[float]:
            slack, gemini = self.stand_ins(0.05)
            self.fresh_database()
            with slack, gemini, ExitStack() as stack:
                stack.enter_context(self.app(slack, gemini, workers=0, name="web"))
                stack.enter_context(
                    self.app(slack, gemini, workers=4, command="worker", name="worker", BANANA_LISTEN=listen)
                )
                mention = f"<@{slack.bot_user_id}>"
                for i in range(jobs):
                    time.sleep(random.uniform(0.0, 0.2))  # not in step with the poll
                    slack.post_user_message(channel=f"CW{i:03d}", text=f"{mention} wake {i}{self.size}")
                    slack.wait_for_uploads(i + 1, timeout=60)
            engine = create_db_engine(self.database_url)
            with session_factory(engine)() as session:
                rows = session.scalars(select(Job).order_by(Job.id)).all()
            engine.dispose()
            return [(job.started_at - job.created_at).total_seconds() for job in rows if job.started_at]

        polled, notified = run("off"), run("on")
        for label, pick in (("median", statistics.median), ("p90", lambda v: pct(v, 90))):
            self.rows.append(
                Row(
                    f"wake-up: a job queued by a web process until a worker process claims it, {label}",
                    "polling every 0.1 s",
                    pick(polled),
                    pick(notified),
                )
            )

    def scale_out(self) -> None:
        """PostgreSQL only: a worker-bound workload on one ``serve`` (on PostgreSQL, a web process and its
        worker process) vs 2 web + 2 worker processes."""
        if not self.database_url.startswith("postgres"):
            self.notes.append("scale-out: PostgreSQL only (pass --database-url)")
            return
        jobs, per_process = self.args.scale_jobs, self.args.scale_workers
        latency = self.args.gemini_latency

        def run(web: int, workers_each: int, worker_processes: int) -> float:
            slack, gemini = self.stand_ins(latency)
            self.fresh_database()
            with slack, gemini, ExitStack() as stack:
                webs = [
                    stack.enter_context(
                        self.app(
                            slack, gemini, workers=workers_each if worker_processes == 0 else 0, name="web"
                        )
                    )
                    for _ in range(web)
                ]
                for _ in range(worker_processes):
                    stack.enter_context(
                        self.app(slack, gemini, workers=workers_each, command="worker", name="worker")
                    )
                slack.request_urls = [f"{web.url}/slack/events" for web in webs]  # a load balancer
                mention = f"<@{slack.bot_user_id}>"

                def post(i: int) -> None:
                    text = f"{mention} scale {i}{self.size}"
                    slack.post_user_message(channel=f"CS{i:03d}", user=f"US{i:03d}", text=text)

                started = time.monotonic()
                with ThreadPoolExecutor(max_workers=10) as pool:
                    list(pool.map(post, range(jobs)))
                slack.wait_for_uploads(jobs, timeout=jobs * latency + 300)
                return time.monotonic() - started

        one = run(1, per_process, 0)
        four = run(2, per_process, 2)
        self.rows.append(
            Row(
                f"scale-out: {jobs} jobs, 2 web + 2 worker processes vs 1 serve ({per_process} workers each)",
                "1 serve (web + worker process)",
                one,
                four,
                unit="s",
                target="≤ 0.55×",
            )
        )

    def request_size(self) -> None:
        """generateContent body as one thread grows, turn 20 against turn 5: its bytes apart from image
        data, and its images (the stand-in draws each instruction into its image, so image bytes vary
        from turn to turn whatever the app sends)."""
        turns = self.args.thread_length
        slack, gemini = self.stand_ins(0.0)
        self.fresh_database()
        with slack, gemini, self.app(slack, gemini, workers=2):
            mention = f"<@{slack.bot_user_id}>"
            slack.post_user_message(
                channel="CLONG", text=f"{mention} a long conversation --ar 1:1{self.size}"
            )
            ts = str(next(m["ts"] for m in slack.messages if m.get("channel") == "CLONG"))
            slack.wait_for_uploads(1, timeout=60)
            for n in range(1, turns):
                slack.post_user_message(channel="CLONG", text=f"edit number {n}", thread_ts=ts)
                slack.wait_for_uploads(n + 1, timeout=60)
            bodies = [c.body for c in gemini.requests]
        fifth, last = bodies[min(4, len(bodies) - 1)], bodies[-1]
        label = f"turn {len(bodies)} vs turn {min(5, len(bodies))}"
        self.rows.append(
            Row(f"request without image data, {label}", "turn 5", _kb(fifth), _kb(last), "KB", "≤ 1.05×")
        )
        self.rows.append(
            Row(f"images in the request, {label}", "turn 5", _images(fifth), _images(last), "", "≤ 1.05×")
        )
        self.notes.append(
            f"whole request body, {label}: {len(json.dumps(fifth)) / 1024:.1f} KB → "
            f"{len(json.dumps(last)) / 1024:.1f} KB"
        )

    # --- report ----------------------------------------------------------------------------------------

    def report(self) -> str:
        header = ["Figure", "Baseline", "Baseline value", "This project", "Ratio", "Target"]
        lines = [
            "| " + " | ".join(header) + " |",
            "|" + "|".join("---" for _ in header) + "|",
            *("| " + " | ".join(row.cells()) + " |" for row in self.rows),
        ]
        return "\n".join([*lines, "", *(f"- {note}" for note in self.notes)])


def _without_image_data(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: ("" if k == "data" else _without_image_data(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_image_data(v) for v in value]
    return value


def _kb(body: dict[str, Any]) -> float:
    return len(json.dumps(_without_image_data(body))) / 1024


def _images(body: dict[str, Any]) -> float:
    return float(sum("inlineData" in p for c in body.get("contents") or [] for p in c.get("parts") or []))


def _conversation_tag(body: dict[str, Any]) -> str:
    for content in body.get("contents") or []:
        for part in content.get("parts") or []:
            text = str(part.get("text") or "")
            if "conv" in text:
                return text.split("conv", 1)[1].split("x", 1)[0]
    return "?"


def wait_done(sessions: Any, count: int, timeout: float = 120.0) -> float:
    """Seconds from the newest job's creation (its ack) to its done mark, once ``count`` jobs are done."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with sessions() as session:
            jobs = session.scalars(select(Job).where(Job.state == "done").order_by(Job.id)).all()
            if len(jobs) >= count:
                job = jobs[count - 1]
                return float((job.finished_at - job.created_at).total_seconds())
        time.sleep(0.01)
    raise TimeoutError(f"job {count} not done in {timeout} s")


def straight_line_job(
    client: WebClient, gemini: FakeGemini, channel: str, thread_ts: str, *, image_size: str = ""
) -> float:
    """The floor for one job's Slack side: ask Gemini, upload the image with ``files_upload_v2`` into the
    thread, poll ``files.info`` every 50 ms until the share shows. Seconds beyond Gemini's time."""
    started = time.monotonic()
    body: dict[str, Any] = {"contents": [{"role": "user", "parts": [{"text": "a banana"}]}]}
    if image_size:
        body["generationConfig"] = {"imageConfig": {"imageSize": image_size}}
    response = httpx.post(
        f"{gemini.url}/v1beta/models/{MODEL}:generateContent",
        headers={"x-goog-api-key": gemini.api_key},
        json=body,
        timeout=60,
    )
    call = gemini.requests[-1]
    part = next(p for p in response.json()["candidates"][0]["content"]["parts"] if "inlineData" in p)
    data = base64.b64decode(part["inlineData"]["data"])
    upload = client.files_upload_v2(content=data, filename="banana.png", channel=channel, thread_ts=thread_ts)
    file_id = str(upload["file"]["id"])
    while True:
        shares = (client.files_info(file=file_id)["file"].get("shares") or {}).values()
        if any(channel in scope for scope in shares):
            break
        time.sleep(0.05)
    assert call.answered_at is not None
    return time.monotonic() - started - (call.answered_at - call.at)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url", default=None, help="default: SQLite in a temporary folder")
    parser.add_argument("--quick", action="store_true", help="a small smoke run (CI)")
    parser.add_argument("--gemini-latency", type=float, default=1.0)
    parser.add_argument("--image-size", default="", help="--size for every request (1K, 2K, 4K)")
    parser.add_argument(
        "--grain", action="store_true", help="photographic noise: images weigh what real ones do"
    )
    parser.add_argument("--makespan-latency", type=float, default=5.0)
    parser.add_argument("--slack-latency", type=float, default=0.04, help="seconds per Web API call")
    parser.add_argument("--share-delay", type=float, default=0.25, help="seconds until an upload shows")
    parser.add_argument("--workers", type=int, default=50)
    parser.add_argument("--idle-commands", type=int, default=100)
    parser.add_argument("--bursts", type=int, default=5)
    parser.add_argument("--sequential-jobs", type=int, default=10)
    parser.add_argument("--conversations", type=int, default=40)
    parser.add_argument("--turns", type=int, default=5)
    parser.add_argument("--scale-jobs", type=int, default=80)
    parser.add_argument("--scale-workers", type=int, default=8)
    parser.add_argument("--thread-length", type=int, default=20)
    parser.add_argument("--wakeup-jobs", type=int, default=30)
    parser.add_argument(
        "--only",
        default="",
        help="comma-separated: idle,loaded,per-job,makespan,scale-out,wake-up,request-size",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.gemini_latency, args.makespan_latency, args.workers = 0.2, 0.3, 6
        args.idle_commands, args.bursts, args.sequential_jobs = 10, 1, 2
        args.conversations, args.turns, args.scale_jobs, args.scale_workers = 4, 2, 8, 2
        args.thread_length = 6
        args.wakeup_jobs = 3
    return args


WORKLOADS: dict[str, Callable[[Bench], None]] = {
    "idle": Bench.acks_idle,
    "loaded": Bench.acks_loaded,
    "per-job": Bench.per_job,
    "makespan": Bench.makespan,
    "scale-out": Bench.scale_out,
    "wake-up": Bench.wakeup,
    "request-size": Bench.request_size,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    bench = Bench(args)
    chosen = [w for w in args.only.split(",") if w] or list(WORKLOADS)
    slack = f"{args.slack_latency * 1000:.0f} ms per call, shares after {args.share_delay * 1000:.0f} ms"
    print(
        f"database: {bench.database_url.split('@')[-1]}; Slack stand-in: {slack}; "
        f"Gemini stand-in: {args.gemini_latency:g} s",
        flush=True,
    )
    try:
        for name in chosen:
            started = time.monotonic()
            WORKLOADS[name](bench)
            print(f"  {name}: {time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)
    finally:
        bench.close()
    print(bench.report())
    return 0


if __name__ == "__main__":
    sys.exit(main())
