"""Memory per job with 4K images: how many copies of its image one job makes the app hold at its peak.

    .venv/bin/python bench/memory.py [--size 4K] [--jobs 3]

Runs the real app as a process (one worker) against the stand-ins, with photographic grain in Gemini's
images so a 4K answer weighs what a real one does. Figures, beside their baseline from the same run: the
app's peak resident memory once idle (the baseline) and after each job, the size of the image, and the
growth of the peak divided by the image's size ("copies"). The first job also pays for imports and
caches; the later ones show the steady state.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from bot.sandbox.fake_gemini import FakeGemini
from bot.sandbox.fake_slack import FakeSlack
from bot.sandbox.process import AppProcess, free_port
from bot.sandbox.scenario import sandbox_env

MB = 1024 * 1024


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", default="4K")
    parser.add_argument("--jobs", type=int, default=3)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="banana-memory-"))
    with FakeSlack() as slack, FakeGemini(grain=True) as gemini:
        port = free_port()
        slack.request_url = f"http://127.0.0.1:{port}/slack/events"
        env = sandbox_env(slack, gemini, database_url=f"sqlite:///{tmp / 'memory.db'}", port=port)
        env["BANANA_WORKERS"] = "1"
        with AppProcess(env, log_path=tmp / "app.log") as app:
            app.wait_healthy()
            baseline = app.peak_rss()
            print(f"app peak RSS, idle (baseline): {baseline / MB:7.1f} MB")
            before = baseline
            for n in range(1, args.jobs + 1):
                slack.send_command(f"a harbour at night, take {n} --size {args.size}")
                upload = slack.wait_for_uploads(n, timeout=300)[-1]
                call = gemini.requests[n - 1]
                answer = len(json.dumps(call.payload or {}))
                after = app.peak_rss()
                copies = (after - before) / len(upload.data)
                grew = (after - before) / MB
                print(
                    f"job {n}: image {len(upload.data) / MB:5.1f} MB (answer {answer / MB:5.1f} MB as JSON); "
                    f"peak RSS {after / MB:7.1f} MB, +{grew:5.1f} MB = {copies:4.1f} image copies"
                )
                before = after
    return 0


if __name__ == "__main__":
    sys.exit(main())
