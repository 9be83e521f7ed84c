"""The benchmark's smoke run (``bench/bench.py --quick``), so that it cannot rot. It asserts that every
workload ran and printed its figure, never a timing: speed is measured by running the benchmark."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_quick_benchmark_runs_every_workload_and_prints_its_table(database_url: str) -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "bench.py"), "--quick", "--database-url", database_url],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    rows = [line for line in done.stdout.splitlines() if line.startswith("| ") and "×" in line]
    figures = " ".join(rows)
    for figure in ("ack p99, idle", "ack p99, bursts", "peak RSS", "per-job time", "makespan", "request"):
        assert figure in figures, done.stdout
    if database_url.startswith("postgresql"):
        assert "scale-out" in figures and "wake-up" in figures, done.stdout


def test_the_intake_cpu_benchmark_runs() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "intake_cpu.py"), "--requests", "5", "--rounds", "1"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    assert all(f"| {kind} |" in done.stdout for kind in ("/banana", "mention", "reply")), done.stdout


def test_the_job_cpu_benchmark_runs(database_url: str) -> None:
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "job_cpu.py"),
            "--jobs",
            "2",
            "--rounds",
            "1",
            "--database-url",
            database_url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    assert all(f"| {figure} |" in done.stdout for figure in ("CPU per job (ms)", "statements")), done.stdout
