"""Run the real app (``python app.py …``) as a child process, the way an operator would."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

import httpx

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _peak_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc: Linux only")


class AppProcess:
    """``python app.py <command>`` with exactly the given environment (plus PATH); logs go to a file."""

    def __init__(
        self,
        env: Mapping[str, str],
        *,
        command: str = "serve",
        log_path: Path | None = None,
        wrapper: Sequence[str] = (),
        script: Path = ROOT / "app.py",
    ) -> None:
        """``wrapper``: a command the app runs under (``unshare -u sh -c …``), for a test that needs the
        process to see a different host. ``script``: another program to run the same way (the
        benchmark's bare Bolt app); ``command`` empty for none."""
        # Coverage's settings pass through (``pytest --cov`` measures the app in its child processes).
        measuring = {k: v for k, v in os.environ.items() if k.startswith("COVERAGE_")}
        self.env = {"PATH": os.environ.get("PATH", ""), "PYTHONUNBUFFERED": "1", **measuring, **env}
        self.command = command
        self.wrapper = list(wrapper)
        self.script = script
        self.port = int(self.env.get("PORT", "0") or 0)
        self.log_path = log_path or Path(tempfile.mkstemp(prefix="banana-app-", suffix=".log")[1])
        self._log: IO[bytes] | None = None
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> AppProcess:
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(  # noqa: S603 - our own interpreter and script
            [*self.wrapper, sys.executable, str(self.script), *([self.command] if self.command else [])],
            # Not the repository: app.py reads .env from its working directory, and a developer's real
            # .env (tokens, SLACK_APP_TOKEN) must not leak into a run against the stand-ins.
            cwd=str(self.log_path.parent),
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        return self

    def wait_healthy(self, timeout: float = 30.0) -> None:
        """Block until GET /healthz answers 200 (HTTP mode)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise TimeoutError(f"the app did not become healthy in {timeout}s\n{self.logs()[-4000:]}")

    def wait_for_log(self, text: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.logs():
                return
            self._check_alive()
            time.sleep(0.05)
        raise TimeoutError(f"{text!r} not logged within {timeout}s\n{self.logs()[-4000:]}")

    def _check_alive(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(f"the app exited with {self.process.returncode}\n{self.logs()[-4000:]}")

    def children(self) -> list[int]:
        """The pids of the app's own child processes (``serve``'s worker process; Linux only)."""
        assert self.process is not None
        pids: list[int] = []
        for task in Path(f"/proc/{self.process.pid}/task").glob("*"):
            try:
                pids += [int(child) for child in (task / "children").read_text().split()]
            except FileNotFoundError:  # the thread ended meanwhile
                continue
        return pids

    def peak_rss(self) -> int:
        """The peak resident memory so far of the app and its worker process, each at its own peak, summed:
        in bytes (``VmHWM``; Linux only)."""
        assert self.process is not None
        return sum(_peak_rss(pid) for pid in (self.process.pid, *self.children()))

    def logs(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def terminate(self, timeout: float = 40.0) -> int:
        """SIGTERM and wait: the app stops claiming, finishes or releases jobs, and exits."""
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait()
        self._close_log()
        return code

    def kill(self) -> None:
        """SIGKILL: a crash, with no chance to clean up."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._close_log()

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> AppProcess:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.terminate()
