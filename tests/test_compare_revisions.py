"""loadtest.compare_revisions: what it reads from the benchmarks' tables, and the same-round ratios
and medians it reports (no benchmark is run here)."""

from __future__ import annotations

from pathlib import Path

import pytest

from loadtest import compare_revisions as cr

SEQUENCER_OUT = """round 1: fs: 70,513 entries/s acknowledged, 63,238/s published, 4 batches, GC 16%
| contestant | acknowledged entries/s | published entries/s | entries per batch | GC pauses | ÷ plain loop |
|---|---|---|---|---|---|
| plain hashlib loop (root only) | 595,354 (505,214–685,493) | — | — | — | 1.00× |
| sequencer, RocksDB + fs (directory) | 76,869 (70,513–83,225) | 63,489 (63,238–63,740) | 15,000 | 14% \
| 0.13× |
"""

API_OUT = """| measurement | contestant | rate (median) | p50 | p99 | server CPU | server CPU per unit \
| client CPU |
| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |
| bulk, closed loop (10,000 digests/request, 4 clients) | notar serve | 7,148 digests/s | 4,995.0 ms \
| 5,681.0 ms | 0.35 cores | 49.4 µs | 0.14 cores |
| bulk, open loop at half the closed-loop rate (0.50 requests/s of 10,000 offered) | notar serve \
| 5,182 digests/s | 1,321.8 ms | 1,882.3 ms | 0.28 cores | 53.5 µs | 0.12 cores |
| single digest, closed loop (512 connections) | notar serve | 254 req/s | 1,530.8 ms | 2,033.9 ms \
| 0.31 cores | 1,196.0 µs | 0.23 cores |
| single digest, closed loop (512 connections) | aiohttp hello world | 1,002 req/s | 415.2 ms \
| 982.3 ms | 0.22 cores | 215.4 µs | 0.46 cores |
"""


def test_figures_are_read_from_the_benchmarks_tables() -> None:
    assert cr.parse_figures("sequencer", SEQUENCER_OUT) == {
        "fs: acknowledged entries/s": 76_869,
        "fs: published entries/s": 63_489,
        "plain hashlib loop, entries/s": 595_354,
    }
    # the open-loop bulk row and hello world's are not taken for notar's closed-loop figures
    assert cr.parse_figures("api", API_OUT) == {
        "bulk: digests/s": 7_148,
        "bulk: server CPU µs/digest": 49.4,
        "single: requests/s": 254,
        "hello world: requests/s": 1_002,
    }
    assert cr.parse_figures("api", "no table here") == {}


def _round(number: int, base: dict[str, float], head: dict[str, float]) -> cr.Round:
    r = cr.Round(number, "sequencer", ("base", "head") if number % 2 else ("head", "base"))
    r.runs = {"base": cr.Run(base, 1.0, (1.0, 2.0)), "head": cr.Run(head, 1.0, (0.5, 3.0))}
    return r


def test_the_median_of_same_round_ratios() -> None:
    name = "fs: acknowledged entries/s"
    # raw rates swing with the load from round to round; within a round head is 0.9, 0.8, 1.0 × base
    rounds = [_round(1, {name: 100}, {name: 90}), _round(2, {name: 50}, {name: 40}),
              _round(3, {name: 200}, {name: 200}), _round(4, {name: 80}, {})]
    assert rounds[0].ratio(name) == pytest.approx(0.9)
    assert rounds[3].ratio(name) is None  # head did not print it: the round does not count
    assert cr.summarize(rounds, name) == pytest.approx((0.9, 0.8, 1.0, 3))
    assert cr.summarize(rounds, "published") is None
    text = cr.report(rounds, ["sequencer"])
    assert "| 2 | head | 0.5–3.0 | 50.0 → 40.0 (0.800) |" in text
    assert f"| {name} | 0.900 | 0.800–1.000 | 3 | head costs 10.0% of throughput |" in text


def test_lower_is_better_figures_say_so() -> None:
    cpu = cr.CPU_FIGURE
    text = cr.report([_round(1, {cpu: 10.0}, {cpu: 11.5})], ["sequencer"])
    assert f"| {cpu} | 1.150 | 1.150–1.150 | 1 | head uses 15.0% more of this per unit |" in text


def test_a_failed_run_ends_the_session_with_the_complete_rounds(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []

    def fake_run(tree: cr.Tree, bench: str, *args: object) -> cr.Run:
        calls.append(tree.name)
        if len(calls) == 3:
            raise cr.RunFailed("exit 1")
        return cr.Run({"fs: acknowledged entries/s": 1.0}, 1.0, (0.0, 0.0))

    monkeypatch.setattr(cr, "run_bench", fake_run)
    trees = {w: cr.Tree(w, Path(w), Path(w)) for w in ("base", "head")}
    logged: list[str] = []
    done = cr.session(trees, ["sequencer"], {"sequencer": []}, rounds=5, budget=60, run_timeout=60,
                      keep=None, log=logged.append)
    assert [r.number for r in done] == [1] and calls == ["base", "head", "head"]  # round 2: head first
    assert "exit 1" in logged[-1] and "after 1 complete pairs" in logged[-1]


def test_head_only_api_arguments_reach_the_head_runs_only(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, list[str]] = {}

    def fake_run(tree: cr.Tree, bench: str, args: list[str], *rest: object) -> cr.Run:
        seen[tree.name] = list(args)
        return cr.Run({"bulk: digests/s": 1.0}, 1.0, (0.0, 0.0))

    monkeypatch.setattr(cr, "run_bench", fake_run)
    trees = {w: cr.Tree(w, Path(w), Path(w)) for w in ("base", "head")}
    cr.session(trees, ["api"], {"api": ["--skip", "single"]}, rounds=1, budget=60, run_timeout=60,
               keep=None, log=lambda _: None, head_args={"api": ["--answers", "default"]})
    assert seen == {"base": ["--skip", "single"], "head": ["--skip", "single", "--answers", "default"]}


def test_a_default_answers_row_is_read_as_the_bulk_figure() -> None:
    out = API_OUT.replace("| notar serve | 7,148", "| notar serve, default answers | 7,148")
    assert cr.parse_figures("api", out)["bulk: digests/s"] == 7_148
