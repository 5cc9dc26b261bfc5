"""The shard scale benchmark (loadtest/bench_shards.py) runs and reports as documented (its
figures are never asserted: only that it measured, verified and computed them as it says)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from loadtest import bench_shards as bench


def test_ratios_are_medians_of_same_round_ratios_and_the_projection_divides_cores() -> None:
    ds = [bench.Deployment("in-process", k, "http://127.0.0.1:1", "key", list) for k in (1, 2)]
    res = bench.Results()
    for one, two in ((100.0, 150.0), (200.0, 220.0), (50.0, 100.0)):  # ratios 1.5, 1.1, 2.0
        res.rounds.append({"in-process K=1": bench.Run(one, 10.0, 20.0, 0),
                           "in-process K=2": bench.Run(two, 10.0, 25.0, 1)})
    for rnd in res.rounds:
        for name, run in rnd.items():
            res.runs.setdefault(name, []).append(run)
    assert bench.ratio(res, "in-process K=2", "in-process K=1", lambda r: r.entries_per_s) == 1.5
    text = bench.report(res, ds, seconds=1, clients=1, per_request=1)
    row = next(line for line in text.splitlines() if line.startswith("| in-process K=2"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1:7] == ["150", "1.500", "10.0", "25.0", "1.250", "3"]
    assert cells[7] == f"{16e6 / 25:,.0f} / {64e6 / 25:,.0f}" and cells[8] == f"{1e5 * 25 / 1e6:.1f}"


@pytest.mark.slow
def test_a_quick_in_process_run_measures_and_verifies(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "shards.json"
    assert bench.main(["--shards", "1", "--modes", "in-process", "--quick", "--out", str(out)]) == 0
    saved = json.loads(out.read_text())
    (run,) = saved["rounds"][0].values()
    assert run["errors"] == 0 and run["entries_per_s"] > 0 and run["notar_cpu_us"] > 0
    assert saved["verified"] > 0
    assert "| in-process K=1 |" in capsys.readouterr().out
