"""The tiles benchmark (loadtest/bench_tiles.py) reads wrk's report and computes its ratios as
documented (its figures are never asserted: only that it measured them)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from loadtest import bench_tiles as bench

WRK = """Running 2s test @ http://127.0.0.1:40001/log/tile/0/000
  1 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    10.42ms    3.20ms  48.12ms   81.10%
    Req/Sec     6.20k   412.11     6.71k    85.00%
  Latency Distribution
     50%    9.87ms
     75%   11.02ms
     90%   13.50ms
     99%    1.20s
  12345 requests in 2.00s, 98.32MB read
  Socket errors: connect 0, read 3, write 0, timeout 2
  Non-2xx or 3xx responses: 7
Requests/sec:   6172.50
Transfer/sec:     49.16MB
"""


def test_wrk_reports_are_read_with_their_units_and_failures() -> None:
    run = bench.parse_wrk(WRK)
    assert (run.rate, run.p50_ms, run.p99_ms, run.errors) == (6172.5, 9.87, 1200.0, 12)
    clean = bench.parse_wrk(
        WRK.replace("  Socket errors: connect 0, read 3, write 0, timeout 2\n", "")
        .replace("  Non-2xx or 3xx responses: 7\n", "")
        .replace("99%    1.20s", "99%  850.00us")
    )
    assert clean.errors == 0 and clean.p99_ms == pytest.approx(0.85)
    with pytest.raises(ValueError, match="wrk --latency"):
        bench.parse_wrk("Requests/sec: 5\n")


def test_ratios_are_medians_of_same_round_ratios() -> None:
    res = bench.Results(tree_size=1000)
    for notar, hello in ((800.0, 1000.0), (300.0, 1000.0), (900.0, 1000.0)):
        res.rounds.append({name: bench.WrkRun(100.0, 1.0, 2.0, 0) for name in bench.CONTESTANTS}
                          | {bench.NOTAR: bench.WrkRun(notar, 1.0, 2.0, 0),
                             bench.HELLO: bench.WrkRun(hello, 1.0, 2.0, 1)})
    assert bench.ratio(res, bench.NOTAR, bench.HELLO) == 0.8
    text = bench.report(res, seconds=2, connections=64)
    assert "| notar tile ÷ hello world | 0.800× | ≥ 0.8× | yes |" in text
    row = next(line for line in text.splitlines() if line.startswith(f"| {bench.HELLO}"))
    assert row.split("|")[-2].strip() == "3"  # errors summed over rounds
    res.rounds[0][bench.NOTAR] = bench.WrkRun(800.0, 1.0, 2.0, 0, server_cores=0.08)  # 100 µs a read
    res.rounds[0][bench.HELLO] = bench.WrkRun(1000.0, 1.0, 2.0, 0, server_cores=0.05)  # 50 µs
    assert bench.cpu_us(res.rounds[0][bench.NOTAR]) == pytest.approx(100.0)
    assert bench.cpu_ratio(res, bench.HELLO, bench.NOTAR) == "0.50×"  # the rounds without CPU are left out


def test_the_proofs_script_asks_indices_below_the_size(tmp_path: Path) -> None:
    text = bench.proofs_script(tmp_path, 5000, 7).read_text()
    assert "math.random(0, 4999)" in text and "&size=5000" in text and "math.randomseed(7)" in text


@pytest.mark.slow
def test_a_quick_run_measures_every_contestant(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "tiles.json"
    args = ["--quick", "--rounds", "1", "--seconds", "1", "--entries", "2000", "--out", str(out)]
    assert bench.main(args) == 0
    saved = json.loads(out.read_text())
    (run,) = saved["rounds"]
    assert set(run) == set(bench.CONTESTANTS) and saved["tree_size"] >= 2000
    assert all(r["rate"] > 0 and r["errors"] == 0 for r in run.values())
    assert "notar tile ÷ hello world" in capsys.readouterr().out
