"""Runs the command after it (``python app.py worker``) with this host's clock an hour ahead, as on a
host whose clock is wrong. time-machine moves the clock the process sees (``time.time``, ``datetime``),
nothing of the app's own."""

from __future__ import annotations

import runpy
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import time_machine

if __name__ == "__main__":
    _python, app, *args = sys.argv[1:]
    sys.argv = [app, *args]
    sys.path.insert(0, str(Path(app).resolve().parent))  # the app's own tree, as `python app.py` has it
    with time_machine.travel(datetime.now(UTC) + timedelta(hours=1), tick=True):
        runpy.run_path(app, run_name="__main__")
