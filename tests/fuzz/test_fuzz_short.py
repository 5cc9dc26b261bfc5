"""Short runs of every receipt fuzz target (loadtest/fuzz_receipts.py): Hypothesis with a fixed
number of structure-aware examples per target group, and atheris for a few hundred byte-level
executions per group in its own process. The long runs are the same code with larger bounds."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from loadtest.fuzz_receipts import GROUPS, hypothesis_group
from loadtest.fuzz_seeds import Seeds
from loadtest.fuzz_targets import Targets

EXAMPLES = {"receipt": 300, "note": 300, "anchors": 150, "export": 300, "statement": 300}


@pytest.mark.parametrize("group", GROUPS)
def test_hypothesis_finds_nothing(group: str, seeds: Seeds, targets: Targets) -> None:
    outcome = hypothesis_group(group, targets, seeds, runs=EXAMPLES[group], seconds=float("inf"))
    assert not outcome.found, outcome.found[0]
    assert outcome.executions >= EXAMPLES[group]


def test_atheris_finds_nothing(tmp_path: Path) -> None:
    runs = 400
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "loadtest.fuzz_receipts",
            "--engine",
            "atheris",
            "--runs",
            str(runs),
            "--seconds",
            "600",
            "--instrument",
            "merkle",
            "--artifacts",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    logs = "\n".join(p.read_text(errors="replace")[-3000:] for p in sorted(tmp_path.glob("*.log")))
    assert done.returncode == 0, done.stdout + done.stderr[-3000:] + logs
    for group in GROUPS:
        line = next(x for x in done.stdout.splitlines() if x.startswith(group))
        assert f"{runs:>9,} executions" in line and "nothing found" in line and "cov " in line, line
    assert not list(tmp_path.glob("*-crash-*"))
