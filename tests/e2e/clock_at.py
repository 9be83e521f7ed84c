"""Runs the command after it (``python app.py serve``) on the clock the test set: ``CLOCK_AT`` (ISO 8601,
UTC), ticking from there. The test moves its own clock (the stand-ins sign Slack's requests with it) to the
same moment, so the app's signature checks still agree."""

from __future__ import annotations

import os
import runpy
import sys
from datetime import datetime
from pathlib import Path

import time_machine

if __name__ == "__main__":
    _python, app, *args = sys.argv[1:]
    sys.argv = [app, *args]
    sys.path.insert(0, str(Path(app).resolve().parent))  # the app's own tree, as `python app.py` has it
    with time_machine.travel(datetime.fromisoformat(os.environ["CLOCK_AT"]), tick=True):
        runpy.run_path(app, run_name="__main__")
