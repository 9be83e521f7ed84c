"""The benchmark's smoke run (``bench/bench.py --quick``), so that it cannot rot. It asserts that every
workload ran and printed its figure, never a timing: speed is measured by running the benchmark."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def bench(script: str, *args: str, timeout: float = 120) -> str:
    """``bench/<script> <args>``'s table, once it ran to the end."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / script), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return done.stdout


def test_the_quick_benchmark_runs_every_workload_and_prints_its_table(database_url: str) -> None:
    out = bench("bench.py", "--quick", "--database-url", database_url, timeout=600)
    rows = [line for line in out.splitlines() if line.startswith("| ") and "×" in line]
    figures = " ".join(rows)
    for figure in ("ack p99, idle", "ack p99, bursts", "peak RSS", "per-job time", "makespan", "request"):
        assert figure in figures, out
    if database_url.startswith("postgresql"):
        assert "scale-out" in figures and "wake-up" in figures, out


def test_the_intake_cpu_benchmark_runs() -> None:
    out = bench("intake_cpu.py", "--requests", "5", "--rounds", "1")
    assert all(f"| {kind} |" in out for kind in ("/banana", "mention", "reply")), out


def test_the_job_cpu_benchmark_runs(database_url: str) -> None:
    out = bench("job_cpu.py", "--jobs", "2", "--rounds", "1", "--database-url", database_url)
    assert all(f"| {figure} |" in out for figure in ("CPU per job (ms)", "statements")), out


def test_the_claim_cost_benchmark_runs(database_url: str) -> None:
    out = bench("claim_cost.py", "--conversations", "3", "--turns", "2", "--database-url", database_url)
    assert "| a claim with 3 running, median |" in out, out
