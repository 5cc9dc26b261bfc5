"""Merkle benchmark: notar's merkle/ beside a plain hashlib loop and pymerkle 7, in one process.

Every round runs each implementation once, in an order that rotates from round to round, so a
noisy machine slows all of them alike; rates are medians over rounds and each ratio is the median
of the ratios measured within the same round. Every round also checks that all RFC 9162
implementations agree on the root and on the proofs, so the numbers compare equal work.

    .venv/bin/python -m loadtest.bench_merkle                 # 1M leaves, 5 rounds
    .venv/bin/python -m loadtest.bench_merkle --quick         # 20k leaves, 3 rounds
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import ssl
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import pymerkle

from loadtest.bench_merkle_contestants import (
    NOTAR,
    PLAIN,
    PYMERKLE,
    PYMERKLE_INSECURE,
    PYMERKLE_LIST,
    Contestant,
    Rates,
    Workload,
    contestants,
    make_entries,
    notar_build,
    notar_proofs,
    notar_tile_proofs,
    notar_tree,
    notar_verify,
    notar_warm_tile_proofs,
    plain_root,
    pymerkle_build,
    pymerkle_list_build,
    pymerkle_proofs,
    pymerkle_verify,
    run_notar,
    run_plain,
)

# The runner and report are here; the contestants are kept importable from here since they moved.
__all__ = [
    "NOTAR",
    "PLAIN",
    "PYMERKLE",
    "PYMERKLE_INSECURE",
    "PYMERKLE_LIST",
    "Workload",
    "machine",
    "main",
    "make_entries",
    "notar_build",
    "notar_proofs",
    "notar_tile_proofs",
    "notar_tree",
    "notar_verify",
    "notar_warm_tile_proofs",
    "parse_args",
    "plain_root",
    "pymerkle_build",
    "pymerkle_list_build",
    "pymerkle_proofs",
    "pymerkle_verify",
    "run_notar",
]

# Metrics, in table order: (key, column title, unit counted).
METRICS = (
    ("build", "build: leaves/s", "leaves"),
    ("tree", "in-memory tree: leaves/s", "leaves"),
    ("proofs", "inclusion proofs/s", "proofs"),
    ("tile_proofs", "proofs from tiles/s", "proofs"),
    ("warm_tile_proofs", "proofs from tiles, warm TileSource/s", "proofs"),
    ("verify", "verifications/s", "verifications"),
)



# ---------------------------------------------------------------- rounds, medians, report


@dataclass
class Results:
    rounds: list[dict[str, Rates]] = field(default_factory=list)

    def rate(self, name: str, metric: str) -> float | None:
        values = [r[name][metric] for r in self.rounds if metric in r.get(name, {})]
        return statistics.median(values) if values else None

    def spread(self, name: str, metric: str) -> tuple[float, float] | None:
        values = [r[name][metric] for r in self.rounds if metric in r.get(name, {})]
        return (min(values), max(values)) if values else None

    def ratio(self, a: str, metric_a: str, b: str, metric_b: str) -> float | None:
        """Median over rounds of a's rate / b's rate measured in the same round."""
        values = [
            r[a][metric_a] / r[b][metric_b]
            for r in self.rounds
            if metric_a in r.get(a, {}) and metric_b in r.get(b, {})
        ]
        return statistics.median(values) if values else None


def run_rounds(
    workload: Workload,
    field_: Sequence[Contestant],
    rounds: int,
    budget: float,
    log: Callable[[str], None] = lambda _: None,
) -> Results:
    """Run every contestant once per round in a rotating order; stop early past `budget` seconds."""
    results = Results()
    start = time.perf_counter()
    # The plain loop runs first in round one so that every other contestant is checked against it.
    run_plain(workload)
    for r in range(rounds):
        shift = r % len(field_)
        order = list(field_[shift:]) + list(field_[:shift])
        measured: dict[str, Rates] = {}
        for c in order:
            measured[c.name] = c.run(workload)
            log(f"round {r + 1}/{rounds}: {c.name} {_fmt_rates(measured[c.name])}")
        results.rounds.append(measured)
        if time.perf_counter() - start > budget and r + 1 < rounds:
            log(f"time budget of {budget:.0f}s spent after {r + 1} rounds; stopping")
            break
    return results


def _fmt_rates(rates: Rates) -> str:
    return ", ".join(f"{k}={v:,.0f}/s" for k, v in rates.items())


def _num(x: float | None) -> str:
    if x is None:
        return "—"
    return f"{x:,.0f}" if x >= 100 else f"{x:,.1f}"


def _cell(res: Results, name: str, metric: str) -> str:
    rate, spread = res.rate(name, metric), res.spread(name, metric)
    if rate is None or spread is None:
        return "—"
    if len(res.rounds) == 1:
        return _num(rate)
    return f"{_num(rate)} ({_num(spread[0])}–{_num(spread[1])})"


def _ratio(x: float | None) -> str:
    return "—" if x is None else f"{x:.2f}×"


def goals(res: Results) -> list[tuple[str, float | None, float]]:
    """(what, measured ratio, target) for each goal of issue 2 item 5, plus the honest extras."""
    return [
        ("build (tiles) ÷ plain hashlib loop", res.ratio(NOTAR, "build", PLAIN, "build"), 0.8),
        ("build (tiles) ÷ pymerkle InmemoryTree", res.ratio(NOTAR, "build", PYMERKLE, "build"), 4.0),
        (
            "build (tiles) ÷ pymerkle list backend (its fastest build)",
            res.ratio(NOTAR, "build", PYMERKLE_LIST, "build"),
            4.0,
        ),
        ("proofs (Tree) ÷ pymerkle InmemoryTree", res.ratio(NOTAR, "proofs", PYMERKLE, "proofs"), 10.0),
        (
            "proofs from tiles ÷ pymerkle InmemoryTree",
            res.ratio(NOTAR, "tile_proofs", PYMERKLE, "proofs"),
            10.0,
        ),
        (
            "proofs from a warm TileSource ÷ pymerkle InmemoryTree",
            res.ratio(NOTAR, "warm_tile_proofs", PYMERKLE, "proofs"),
            10.0,
        ),
        ("verifications ÷ pymerkle", res.ratio(NOTAR, "verify", PYMERKLE, "verify"), 0.0),
    ]


def report(res: Results, names: Sequence[str]) -> str:
    head = "| implementation | " + " | ".join(title for _, title, _ in METRICS) + " |"
    lines = [head, "|" + "---|" * (len(METRICS) + 1)]
    for name in names:
        lines.append(f"| {name} | " + " | ".join(_cell(res, name, m) for m, _, _ in METRICS) + " |")
    lines += ["", "| ratio (median of same-round ratios) | measured | goal | met |", "|---|---|---|---|"]
    for what, ratio, target in goals(res):
        met = "—" if ratio is None or not target else ("yes" if ratio >= target else "**no**")
        lines.append(f"| {what} | {_ratio(ratio)} | {f'≥ {target:g}×' if target else '—'} | {met} |")
    return "\n".join(lines)


def machine() -> str:
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (
        f"{cores} cores ({model}), Python {platform.python_version()} "
        f"({platform.python_implementation()}, {ssl.OPENSSL_VERSION}), pymerkle {pymerkle.__version__}"
    )


def load() -> str:
    """The 1-minute load average: other work competing for the cores while we measure."""
    return f"{os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else "unknown"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--leaves", type=int, help="tree size (default 1,000,000; --quick 20,000)")
    p.add_argument("--rounds", type=int, help="interleaved rounds (default 5; --quick 3)")
    p.add_argument("--proofs", type=int,
                   help="proofs and verifications per round (default 20,000; --quick 2,000)")
    p.add_argument("--tile-proofs", type=int,
                   help="proofs per round from cold tiles, ~650 hashes each (default 2,000; --quick 500)")
    p.add_argument("--slow-proofs", type=int, default=100,
                   help="proofs per round from pymerkle's list backend, O(n) hashes each (default 100)")
    p.add_argument("--clock", choices=("cpu", "wall"), default="cpu",
                   help="time by this process's CPU time (default; robust on a shared machine) or wall clock")
    p.add_argument("--batch", type=int, default=4096, help="leaves per TileBuilder.append (default 4096)")
    p.add_argument("--budget", type=float, default=900.0,
                   help="no new round starts after this many seconds (default 900)")
    p.add_argument("--insecure", action="store_true",
                   help="also run pymerkle with disable_security (faster, but not RFC 9162 hashes)")
    p.add_argument("--quick", action="store_true", help="small sizes for a fast look")
    p.add_argument("--seed", type=int, default=9162)
    args = p.parse_args(argv)
    defaults = {
        "leaves": (1_000_000, 20_000),
        "rounds": (5, 3),
        "proofs": (20_000, 2_000),
        "tile_proofs": (2_000, 500),
    }
    for name, (full, quick) in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)
    for name in ("leaves", "rounds", "proofs", "tile_proofs", "slow_proofs", "batch"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.leaves > 1 << 24:
        p.error("--leaves is capped at 16,777,216 to keep the run bounded in memory and time")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    rng = random.Random(args.seed)
    workload = Workload(
        entries=make_entries(args.leaves, args.seed),
        indices=[rng.randrange(args.leaves) for _ in range(args.proofs)],
        slow_indices=[rng.randrange(args.leaves) for _ in range(args.slow_proofs)],
        batch=args.batch,
        tile_proofs=min(args.tile_proofs, args.proofs),
        clock=time.process_time if args.clock == "cpu" else time.perf_counter,
    )
    field_ = contestants(args.insecure)
    load_before = load()
    res = run_rounds(workload, field_, args.rounds, args.budget, log)
    print(f"Machine: {machine()}; load average {load_before} before the run, {load()} after")
    print(
        f"Leaves: {args.leaves:,} (50-byte entries), rounds: {len(res.rounds)}, proofs per round: "
        f"{args.proofs:,} (cold tiles: {workload.tile_proofs:,}, list backend: {args.slow_proofs:,}), "
        f"TileBuilder batch: {args.batch:,}"
    )
    clock = "process CPU time" if args.clock == "cpu" else "wall clock"
    print(f"Rates by {clock}, medians over rounds (min–max in brackets).\n")
    print(report(res, [c.name for c in field_]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
