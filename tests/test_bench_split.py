"""The CPU-split benchmark (loadtest/bench_split.py) reads every process of the server, counts
only answered digests, and reports medians and same-round ratios (never timing anything)."""

from __future__ import annotations

import pytest

from loadtest import bench_split as bench


def _run(tree: str, rate: float, parent: float = 10.0) -> bench.Run:
    return bench.Run(tree, rate, 5.0, 9.0, 0, 0, 30.0, parent, 20.0, 4.0)


def test_the_report_gives_medians_and_same_round_ratios() -> None:
    rounds = [[_run("base", 100), _run("head", 150)], [_run("base", 200), _run("head", 200)],
              [_run("base", 400, parent=30), _run("head", 200)]]
    text = bench.report(rounds, "digests")
    assert "| base | 200 |" in text and "| head | 200 |" in text  # medians over rounds
    assert "| 10.0 | 20.0 |" in text  # the anchor's and the workers' CPU, medians
    assert "1.50, 1.00, 0.50; median 1.000" in text


@pytest.mark.parametrize(
    "argv",
    [["--rounds", "0"], ["--seconds", "500"], ["--per-request", "10001"], ["--set", "NOTAR_WORKERS"],
     ["--mode", "both"]],
)
def test_bad_arguments_are_refused(argv: list[str]) -> None:
    with pytest.raises(SystemExit):
        bench.parse_args(argv)


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["single", "bulk"])
def test_a_quick_run_counts_the_anchor_and_its_workers(mode: str, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--mode", mode, "--connections", "4", "--per-request", "50", "--seconds", "1", "--rounds", "1",
            "--set", "NOTAR_WORKERS=2"]
    assert bench.main(argv) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("| head |"))
    rate, _, _, per_batch, anchor, workers, _, busy, failed = (c.strip() for c in row.split("|")[2:-1])
    assert float(rate.replace(",", "")) > 0 and float(per_batch) >= 1
    assert float(anchor) > 0 and float(workers) > 0  # both sides of the internal hop are read
    assert (busy, failed) == ("0", "0")
