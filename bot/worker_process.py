"""``serve``'s workers in a process of their own: ``app.py worker``, started by ``serve`` as its child.

In one process the listeners that ack Slack took turns for the GIL with every worker: under bursts beside
fifty jobs on PostgreSQL, their p99 was 288–385 ms, against 169–272 ms with the process split in two
(``bench/``, "acks under load"; on SQLite ``serve`` keeps one process, ``app.serve`` says why). For the
operator a ``serve`` stays one unit: one port, one ``/healthz``, one ``/metrics``, one pid to signal.
Between the two processes:

- The child's stdin is a pipe from the parent. Its one byte, ``START``, comes once the parent has passed
  its own start checks (the child imports meanwhile), so a ``serve`` that can't start prints its one line
  and nothing of the child's. End of file, the parent gone, stops the child gracefully. Jobs queued by
  the parent wake the child's workers as they wake any worker process's on PostgreSQL (``NOTIFY``); on
  SQLite, which has no notifications, by one byte each, ``WAKE``, on the same pipe.
- On Linux a parent killed outright (``kill -9``, the OOM killer) takes the child with it
  (``PR_SET_PDEATHSIG``): a crash of the unit, which the job leases recover from.
- The child serves ``/healthz`` and ``/metrics`` on a unix socket only the parent reads: the parent's
  ``/healthz`` is red unless the child's is green, and its ``/metrics`` adds the child's counters.
- SIGTERM to the parent is passed on, and the parent waits for the child's graceful stop (its grace
  period, and the jobs inside their Gemini call). A terminal's Ctrl-C reaches both: the child ignores it.
- A child that exits on its own is started again, one second later, doubling to a minute while it keeps
  dying young; ``/healthz`` is red meanwhile.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx

log = logging.getLogger(__name__)

START = b"s"
WAKE = b"w"
APP = Path(__file__).resolve().parents[1] / "app.py"
PR_SET_PDEATHSIG = 1  # prctl(2)
FIRST_DELAY, LAST_DELAY = 1.0, 60.0  # seconds before a child that exited is started again
YOUNG = 60.0  # seconds: a child that dies younger waits twice as long as the one before it


class WorkerProcess:
    """The parent's side: start the child, ask after it, start it again, stop it. All but ``healthy``
    and ``metrics`` (request threads) are called from the main thread."""

    def __init__(self) -> None:
        self._dir = Path(tempfile.mkdtemp(prefix="banana-"))
        self.socket = self._dir / "worker.sock"
        self._http = httpx.Client(
            base_url="http://worker", transport=httpx.HTTPTransport(uds=str(self.socket)), timeout=2.0
        )
        self._process: subprocess.Popen[bytes] | None = None
        self._started = 0.0
        self._going = False  # ``START`` sent
        self._pipe = threading.Lock()  # ``wake`` (request threads) against the main thread's changes

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def spawn(self) -> None:
        """Start the child; it imports, then waits for ``go``. Call from the main thread: the child's
        ``PR_SET_PDEATHSIG`` fires when the thread that started it ends, not the process."""
        parent = str(os.getpid())
        command = [sys.executable, str(APP), "worker", "--for-serve", str(self.socket), "--parent", parent]
        process = subprocess.Popen(command, stdin=subprocess.PIPE)  # noqa: S603 - our own app
        assert process.stdin is not None
        os.set_blocking(process.stdin.fileno(), False)  # a child that doesn't read never stalls a ``wake``
        with self._pipe:
            self._process, self._going = process, False
        self._started = time.monotonic()

    def go(self) -> None:
        assert self._process is not None and self._process.stdin is not None
        with self._pipe:
            with contextlib.suppress(OSError):  # it died already: ``supervise`` starts it again
                os.write(self._process.stdin.fileno(), START)
            self._going = True
        log.info("workers run in process %s", self.pid)

    def wake(self) -> None:
        """A job was queued in the parent: one of the child's idle workers claims it now (SQLite; on
        PostgreSQL ``NOTIFY`` does it). Never waits: with the pipe full, the wakes in it are plenty."""
        with self._pipe:
            stdin = self._process.stdin if self._process is not None and self._going else None
            if stdin is not None and not stdin.closed:
                with contextlib.suppress(OSError):  # full, or the child is gone (``supervise``)
                    os.write(stdin.fileno(), WAKE)

    def healthy(self) -> bool:
        """The child is running and its own ``/healthz`` is green (its database, its claims)."""
        process = self._process
        if process is None or process.poll() is not None:
            return False
        try:
            return self._http.get("/healthz").status_code == 200
        except httpx.HTTPError:
            return False

    def metrics(self) -> str:
        """The child's ``/metrics``, or nothing while it can't answer."""
        try:
            response = self._http.get("/metrics")
        except httpx.HTTPError:
            return ""
        return response.text if response.status_code == 200 else ""

    def supervise(self, stop: threading.Event) -> None:
        """Until ``stop`` is set, start the child again whenever it exits. The main thread's job."""
        delay = 0.0
        while not stop.wait(0.2):
            process = self._process
            if process is None or process.poll() is None:
                continue
            delay = restart_delay(delay, lived=time.monotonic() - self._started)
            log.error("the worker process %s; starting it again in %.0f s", _ended(process), delay)
            self._close()
            if stop.wait(delay):
                return
            self.spawn()
            self.go()

    def stop(self) -> None:
        """SIGTERM, and wait for the child's graceful stop. Once more does nothing more (``serve`` calls it
        as it stops, and again on its way out, whatever ended it)."""
        process = self._process
        if process is not None:
            if process.poll() is None and self._going:
                process.send_signal(signal.SIGTERM)
                process.wait()  # the pipe stays open meanwhile: its end would say "the serve is gone"
            self._close()  # one still waiting for ``START`` exits quietly
            process.wait()
        self._http.close()
        shutil.rmtree(self._dir, ignore_errors=True)

    def _close(self) -> None:
        """Close the pipe: a child still waiting for ``START`` exits quietly."""
        with self._pipe:
            if self._process is not None and self._process.stdin is not None:
                self._process.stdin.close()


def restart_delay(last: float, *, lived: float) -> float:
    """Seconds to wait before starting again a child that exited after ``lived`` seconds, when the wait
    before it was ``last`` (0 for none): 1 s, doubling up to a minute while each dies young."""
    return min(LAST_DELAY, last * 2) if last and lived < YOUNG else FIRST_DELAY


def _ended(process: subprocess.Popen[bytes]) -> str:
    code = process.returncode
    if code >= 0:
        return f"exited with {code}"
    try:
        return f"was killed by {signal.Signals(-code).name}"
    except ValueError:  # a signal Python has no name for
        return f"was killed by signal {-code}"


# --- the child's side ---------------------------------------------------------------------------------


def wait_for_start(parent: int) -> bool:
    """In the child, first thing: die with the parent (Linux), leave Ctrl-C to it, and wait for ``START``.
    False when the parent is gone or gave up starting (the child then exits quietly)."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # it died before prctl took hold
        return False
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    return os.read(sys.stdin.fileno(), 1) == START


def stop_with_parent(stop: threading.Event, *, wake: Callable[[], None]) -> None:
    """In the child: call ``wake`` for each ``WAKE`` from the parent, and set ``stop`` when the pipe ends
    (the parent is gone)."""

    def run() -> None:
        while data := os.read(sys.stdin.fileno(), 512):
            for _ in range(data.count(WAKE)):
                wake()
        log.info("the serve process is gone, stopping")
        stop.set()

    threading.Thread(target=run, name="banana-parent", daemon=True).start()
