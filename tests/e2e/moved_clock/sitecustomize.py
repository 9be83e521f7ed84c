"""On ``PYTHONPATH`` for a test's app: with ``CLOCK_OFFSET_SECONDS`` set, every Python process started with
that environment (a ``serve`` and its worker process alike, as on one host) sees the clock moved by that
many seconds, ticking. time-machine moves ``time.time`` and ``datetime``; nothing of the app's own."""

from __future__ import annotations

import os

if "CLOCK_OFFSET_SECONDS" in os.environ:
    from datetime import UTC, datetime, timedelta

    import time_machine

    moved = datetime.now(UTC) + timedelta(seconds=float(os.environ["CLOCK_OFFSET_SECONDS"]))
    time_machine.travel(moved, tick=True).start()
