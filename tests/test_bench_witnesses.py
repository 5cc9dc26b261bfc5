"""loadtest/bench_witnesses.py runs end to end at a tiny size: both servers measured in each mode,
the witnesses cosigned during the run (it refuses to print figures otherwise), sampled receipts
verified."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_witness_benchmark_runs_and_reports_both_servers() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "loadtest.bench_witnesses", "--rounds", "1", "--seconds", "2"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    rows = [line for line in done.stdout.splitlines() if line.startswith(("| single", "| batch"))]
    assert [row.split(" | ")[1] for row in rows] == ["none", "two, quorum 2"] * 2
    assert "sampled receipts verified offline" in done.stdout
    assert "checkpoints cosigned" in done.stdout
